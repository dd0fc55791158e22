"""Transformer training end to end on tiny models: tokenize -> fit -> export -> generate / predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tokgen.cli import compose_config, main, run, tokenize
from tokgen.data.token_shards import TokenShardDataset
from tokgen.generator import Generator
from tokgen.io.video import read_video
from tokgen.tokenizer.config import TokenizerConfig
from tokgen.tokenizer.model import VideoTokenizer
from tokgen.transformer.config import TransformerTrainConfig
from tokgen.transformer.lit import TransformerLit

TINY_TOKENIZER = OmegaConf.to_container(compose_config(["tokenizer=tiny"]).tokenizer)  # the tiny preset


def _tokenize_args(tokenizer_dir: Path, shard_dir: Path) -> list[str]:
    # 20 Shapes clips at 16x16, 9 frames, into shards of 8 (the last one partial).
    return [
        "experiment=tokenizer_tiny",
        "text=learned",
        "text.dim=32",
        "text.depth=1",
        "text.max_length=16",
        f"tokenize.tokenizer={tokenizer_dir}",
        f"tokenize.out={shard_dir}",
        "tokenize.shard_size=8",
        "tokenize.batch_size=4",
        "data.train.length=20",
    ]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tf")
    torch.manual_seed(0)
    VideoTokenizer(TokenizerConfig(**TINY_TOKENIZER)).save_pretrained(root / "tokenizer")
    tokenize(compose_config(_tokenize_args(root / "tokenizer", root / "shards")))
    return root / "tokenizer", root / "shards"


def test_tokenize_writes_resumable_shards(shards: tuple[Path, Path]) -> None:
    tokenizer_dir, shard_dir = shards
    dataset = TokenShardDataset(shard_dir, max_text_len=16)
    assert len(dataset) == 20 and dataset.codes_shape == (5, 4, 4)
    item = dataset[13]  # shard 1
    assert item["codes"].shape == (5, 4, 4) and item["codes"].min() >= 0 and item["codes"].max() < 64
    assert item["text_emb"].shape == (16, 32) and item["text_mask"].dtype == torch.bool and item["caption"]
    # The codes are the tokenizer's own.
    from tokgen.data.shapes import ShapesDataset

    video = ShapesDataset(length=20, seed=0, resolution=16, num_frames=9)[13]["video"][None]
    with torch.no_grad():
        assert torch.equal(VideoTokenizer.from_pretrained(tokenizer_dir).eval().encode(video)[0], item["codes"])
    # Resuming: a deleted shard is rewritten, existing ones are kept as they are.
    (shard_dir / "shard_00001.safetensors").unlink()
    kept = (shard_dir / "shard_00000.safetensors").stat().st_mtime_ns
    tokenize(compose_config(_tokenize_args(tokenizer_dir, shard_dir)))
    assert (shard_dir / "shard_00001.safetensors").exists()
    assert (shard_dir / "shard_00000.safetensors").stat().st_mtime_ns == kept
    assert torch.equal(TokenShardDataset(shard_dir, max_text_len=16)[13]["codes"], item["codes"])


def test_tokenize_resumes_shards_recorded_before_a_config_field_existed(
    shards: tuple[Path, Path], tmp_path: Path
) -> None:
    tokenizer_dir, shard_dir = shards
    copy = tmp_path / "shards"
    shutil.copytree(shard_dir, copy)
    index_path = copy / "index.json"
    index = json.loads(index_path.read_text())
    # As an older tokgen wrote it: its TokenizerConfig had no fsq_center_weight (the default, 0, is what it did).
    del index["sources"]["tokenizer_config"]["fsq_center_weight"]
    index_path.write_text(json.dumps(index))
    (copy / "shard_00002.safetensors").unlink()
    tokenize(compose_config(_tokenize_args(tokenizer_dir, copy)))
    assert (copy / "shard_00002.safetensors").exists()
    assert "fsq_center_weight" in json.loads(index_path.read_text())["sources"]["tokenizer_config"]
    # A recorded value that differs is still another tokenizer's shards, and the error names it.
    index["sources"]["tokenizer_config"]["fsq_center_weight"] = 0.05
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"other settings .*sources\.tokenizer_config\.fsq_center_weight: 0\.05 -> "):
        tokenize(compose_config(_tokenize_args(tokenizer_dir, copy)))


def test_tokenize_gives_shapes_clips_whose_motion_changes_their_story_context(
    shards: tuple[Path, Path], tmp_path: Path
) -> None:
    tokenizer_dir, _ = shards
    # 9 frames, temporal patch 2: the motion changes at frame 4, the end of latent frame 2.
    tokenize(compose_config([*_tokenize_args(tokenizer_dir, tmp_path / "story"), "++data.train.change_at=4"]))
    dataset = TokenShardDataset(tmp_path / "story", max_text_len=16)
    assert dataset.index["context_frames"] and {dataset[i]["context_frames"] for i in range(20)} == {3}


def test_text_dropout_and_continuation_reach_training(shards: tuple[Path, Path]) -> None:
    tokenizer_dir, _ = shards
    cfg = compose_config(
        ["experiment=transformer_tiny", "model.train.text_dropout=0.5", "model.train.continuation_prob=0.99"]
    )
    from hydra.utils import instantiate

    lit: TransformerLit = instantiate(cfg.model)
    codes = torch.randint(0, 64, (64, 5, 4, 4))
    mask = lit.masked_batch(codes, torch.Generator().manual_seed(0))
    prefix_visible = (~mask[:, 0]).all(dim=(1, 2))  # first latent frame fully visible
    assert prefix_visible.float().mean() > 0.5  # continuation clips keep a visible prefix
    assert (mask.flatten(1).sum(1) >= 1).all()  # every clip still has something to predict
    seen = []
    original = lit.model.forward
    lit.model.forward = lambda c, e, m, **kw: seen.append(m.sum(1)) or original(c, e, m, **kw)  # type: ignore[method-assign]
    batch = {"codes": codes[:16], "caption": ["a red circle moves right"] * 16}
    lit.training_step(batch, 0)
    lengths = seen[0]
    # Dropped rows carry the null prompt (shorter than the real caption): both kinds occur at p=0.5.
    assert 0 < (lengths == lengths.min()).sum() < 16


def test_fit_export_generate_and_predict(shards: tuple[Path, Path], tmp_path: Path) -> None:
    tokenizer_dir, shard_dir = shards
    base = [
        "experiment=transformer_tiny",
        f"tokenize.tokenizer={tokenizer_dir}",
        f"tokenize.out={shard_dir}",
        "~callbacks.progress",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "model.train.cooldown=0.5",
    ]
    fitted = run(compose_config([*base, f"run_dir={tmp_path / 'fit'}"]), "fit")
    ckpt = fitted / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["hyper_parameters"]["codes_shape"] == [5, 4, 4]
    group = state["optimizer_states"][0]["param_groups"][0]
    assert group["lr"] == pytest.approx(group["initial_lr"] * 0.5)  # warmed up (5 steps); cooled (1 - 3/4) / 0.5
    assert list((fitted / "samples").iterdir())  # validation sampled and decoded clips

    main(["export", f"ckpt={ckpt}", f"out={tmp_path / 'gen'}"])
    generator = Generator.from_pretrained(tmp_path / "gen")
    clip = generator.generate("a red circle moves right", steps=3, guidance=2.0, seed=1)
    assert clip.dtype == np.uint8 and clip.shape == (9, 16, 16, 3)
    again = generator.generate("a red circle moves right", steps=3, guidance=2.0, seed=1)
    assert np.array_equal(clip, again)  # same seed, same clip
    longer = generator.generate(["a blue square stays still", "a red circle moves up"], num_frames=5, steps=2)
    assert [c.shape for c in longer] == [(5, 16, 16, 3)] * 2

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two prompts\na red circle moves right\n\na green square moves up\n")
    predicted = run(
        compose_config(
            [
                *base,
                "data=prompts",
                f"data.predict.prompts={prompts}",
                f"ckpt_path={ckpt}",
                f"run_dir={tmp_path / 'pred'}",
            ]
        ),
        "predict",
    )
    record = json.loads((predicted / "predictions" / "predictions.json").read_text())
    assert [s["prompt"] for s in record["samples"]] == ["a red circle moves right", "a green square moves up"]
    assert [s["frames"] for s in record["samples"]] == [9, 9]
    # Every sampling setting is recorded, so the clips can be drawn again.
    assert {"steps", "guidance", "temperature", "top_k", "schedule", "first_frame"} <= set(record["settings"])
    frames = read_video(predicted / "predictions" / record["samples"][0]["file"])
    assert frames.shape == (9, 16, 16, 3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("transformer.codebook_size=128", "codebook_size 64"),
        # 64 codes, but the tiny tokenizer's are VQ codes: no digits to split them into
        ("transformer.code_levels=[8,8]", r"code_levels \[8, 8\] do not match .* not an FSQ tokenizer"),
    ],
)
def test_vocabulary_mismatch_is_a_clear_error(
    shards: tuple[Path, Path], tmp_path: Path, override: str, message: str
) -> None:
    tokenizer_dir, shard_dir = shards
    cfg = compose_config(
        [
            "experiment=transformer_tiny",
            f"tokenize.tokenizer={tokenizer_dir}",
            f"tokenize.out={shard_dir}",
            override,
            f"run_dir={tmp_path / 'bad'}",
            "~callbacks.progress",
        ]
    )
    with pytest.raises(ValueError, match=message):
        run(cfg, "fit")


def test_code_levels_are_checked_against_the_tokenizer_the_shards_recorded(
    shards: tuple[Path, Path], tmp_path: Path
) -> None:
    _, shard_dir = shards
    assert json.loads((shard_dir / "index.json").read_text())["sources"]["tokenizer_config"]["quantizer"] == "vq"
    cfg = compose_config(
        [
            "experiment=transformer_tiny",
            f"tokenize.out={shard_dir}",  # no tokenizer given: the shards' record is all there is
            "transformer.code_levels=[8,8]",
            "model.train.num_samples=0",
            f"run_dir={tmp_path / 'bad'}",
            "~callbacks.progress",
        ]
    )
    with pytest.raises(ValueError, match=rf"{shard_dir}: transformer code_levels \[8, 8\] do not match"):
        run(cfg, "fit")


def test_image_share_trains_first_latent_frames_as_one_frame_grids() -> None:
    from hydra.utils import instantiate

    cfg = compose_config(["experiment=transformer_tiny", "model.train.image_share=0.25", "model.train.text_dropout=0"])
    lit: TransformerLit = instantiate(cfg.model)
    assert lit.image_rows(16, 5) == 4 and lit.image_rows(16, 1) == 0 and lit.image_rows(3, 5) == 1
    codes = torch.randint(0, 64, (16, 5, 4, 4), generator=torch.Generator().manual_seed(0))
    captions = ["a red circle moves right"] * 12 + ["a small blue square moves up"] * 4
    seen = []
    original = lit.model.forward
    lit.model.forward = lambda c, e, m, **kw: seen.append((c, m.sum(1))) or original(c, e, m, **kw)  # type: ignore[method-assign]
    loss = lit.training_step({"codes": codes, "caption": captions}, 0)
    assert [tuple(c.shape) for c, _ in seen] == [(12, 5, 4, 4), (4, 1, 4, 4)]
    images, lengths = seen[1]
    given = images != lit.transformer_config.mask_id
    assert torch.equal(images[given], codes[12:, :1][given])  # the image rows' own first latent frames
    assert 0 < int(given.sum()) < images.numel()  # partly masked, like any training grid
    assert torch.equal(lengths, lit.text.encode(captions[12:]).mask.sum(1))  # with their own captions
    # One mean over the masked positions of both passes.
    lit.model.forward = original  # type: ignore[method-assign]
    masks = [c == lit.transformer_config.mask_id for c, _ in seen]
    text = lit.text.encode(captions)
    logits = [lit.model(seen[0][0], text.emb[:12], text.mask[:12]), lit.model(images, text.emb[12:], text.mask[12:])]
    selected = torch.cat([lg[m] for lg, m in zip(logits, masks, strict=True)])
    targets = torch.cat([codes[:12][masks[0]], codes[12:, :1][masks[1]]])
    expected = torch.nn.functional.cross_entropy(selected, targets, label_smoothing=lit.train_config.label_smoothing)
    torch.testing.assert_close(loss, expected)
    # A batch of images (shards of t = 1 codes) trains in one pass, all rows as images.
    seen.clear()
    lit.model.forward = lambda c, e, m, **kw: seen.append((c, m.sum(1))) or original(c, e, m, **kw)  # type: ignore[method-assign]
    assert torch.isfinite(lit.training_step({"codes": codes[:, :1], "caption": captions}, 0))
    assert [tuple(c.shape) for c, _ in seen] == [(16, 1, 4, 4)]
    with pytest.raises(ValueError, match=r"train.image_share must be in \[0, 1\), got 1.0"):
        TransformerTrainConfig(image_share=1.0)


@pytest.mark.parametrize("image_share", [0.0, 0.25])
def test_compiled_training_loss_equals_the_eager_one(monkeypatch: pytest.MonkeyPatch, image_share: float) -> None:
    """With train.compile the loss is masked_token_loss compiled with the model: the same loss as eagerly."""
    from hydra.utils import instantiate

    cfg = compose_config(
        [
            "experiment=transformer_tiny",
            "tokenize.out=/unused",
            "tokenize.tokenizer=null",
            "model.train.compile=true",
            f"model.train.image_share={image_share}",
        ]
    )
    torch.manual_seed(0)
    lit: TransformerLit = instantiate(cfg.model)
    # Inductor would compile C++ for minutes on this CPU: run the functions handed to torch.compile as they are.
    monkeypatch.setattr(torch, "compile", lambda fn, *args, **kwargs: fn)
    batch = {"codes": torch.randint(0, 64, (8, 5, 4, 4), generator=torch.Generator().manual_seed(1))}
    batch["caption"] = ["a red circle moves right"] * 8
    eager = lit.training_step(batch, 0)
    assert "_compiled_loss" not in lit.__dict__
    lit.configure_model()
    assert "_compiled_loss" in lit.__dict__
    compiled = lit.training_step(batch, 0)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
