"""Tokenizer training end to end through the real configs, Trainer and checkpoints (tiny, CPU)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tokgen.cli import compose_config, main, run
from tokgen.data.shapes import ShapesDataset
from tokgen.tokenizer.lit import TokenizerLit
from tokgen.tokenizer.model import VideoTokenizer

TINY = [
    "experiment=tokenizer_tiny",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "callbacks.checkpoint.every_n_train_steps=2",
    "~callbacks.progress",
    "model.train.cooldown=0.5",  # the rate decays over the last half of max_steps
]


def _lr(ckpt: dict) -> tuple[float, float]:
    group = ckpt["optimizer_states"][0]["param_groups"][0]
    return group["lr"], group["initial_lr"]


TINY_CONFIG = OmegaConf.to_container(compose_config(["tokenizer=tiny"]).tokenizer)  # the tiny preset


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("tok") / "fit"
    return run(compose_config([*TINY, f"run_dir={run_dir}"]), "fit")


def test_fit_writes_config_checkpoint_metrics_and_previews(fitted: Path) -> None:
    assert "patch_size: 4" in (fitted / "config.yaml").read_text()
    ckpt = torch.load(fitted / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4
    lr, base = _lr(ckpt)  # after step 4 of 4, begun at 3/4 of the run: warm-up 5/100, cooldown (1 - 3/4) / 0.5
    assert lr == pytest.approx(base * 0.05 * 0.5)
    rows = list(csv.DictReader((fitted / "logs" / "metrics.csv").open()))
    psnrs = [float(r["val/psnr"]) for r in rows if r.get("val/psnr")]
    assert len(psnrs) == 2 and all(5 < p < 60 for p in psnrs)
    assert any(r.get("val/codebook_usage") for r in rows)
    assert sorted(p.name for p in (fitted / "previews").iterdir())  # input | reconstruction PNGs


def test_resume_from_last_checkpoint_continues_the_step_count(fitted: Path, tmp_path: Path) -> None:
    resumed = run(
        compose_config(
            [
                *TINY,
                "trainer.max_steps=6",
                f"run_dir={tmp_path / 'resumed'}",
                f"ckpt_path={fitted / 'checkpoints' / 'last.ckpt'}",
            ]
        ),
        "fit",
    )
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6
    lr, base = _lr(ckpt)  # the schedule resumes too: warm-up 7/100, cooldown (1 - 5/6) / 0.5
    assert lr == pytest.approx(base * 0.07 / 3)
    assert (fitted / "checkpoints" / "last.ckpt").exists()  # the old run is untouched


def test_export_then_from_pretrained_gives_identical_codes(fitted: Path, tmp_path: Path) -> None:
    main(["export", f"ckpt={fitted / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / 'export'}"])
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["config.json", "model.safetensors"]
    exported = VideoTokenizer.from_pretrained(tmp_path / "export").eval()
    lit = TokenizerLit.load_from_checkpoint(fitted / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    video = torch.stack([ShapesDataset(length=2, seed=5, resolution=16, num_frames=9)[i]["video"] for i in range(2)])
    with torch.no_grad():
        assert torch.equal(exported.encode(video), lit.model.eval().encode(video))
    with pytest.raises(SystemExit, match="not empty"):  # never overwrites an export
        main(["export", f"ckpt={fitted / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / 'export'}"])
    with pytest.raises(SystemExit, match="Lightning checkpoint file"):  # an export folder is not a .ckpt
        main(["export", f"ckpt={tmp_path / 'export'}", f"out={tmp_path / 'again'}"])


def test_validate_and_predict_from_checkpoint(fitted: Path, tmp_path: Path) -> None:
    ckpt = f"ckpt_path={fitted / 'checkpoints' / 'last.ckpt'}"
    # A different tokenizer preset in the config doesn't matter: the checkpoint brings its architecture.
    run(compose_config([*TINY, ckpt, "tokenizer.dim=64", f"run_dir={tmp_path / 'val'}"]), "validate")
    predicted = run(compose_config([*TINY, ckpt, f"run_dir={tmp_path / 'pred'}", "data.val.length=3"]), "predict")
    files = sorted(p.name for p in (predicted / "predictions").iterdir())
    assert "predictions.json" in files and "reconstructions.png" in files
    assert len([f for f in files if f.endswith(".mp4")]) == 3


def test_fast_dev_run_for_each_tokenizer_experiment(tmp_path: Path) -> None:
    main(["make-shapes", f"out={tmp_path}/clips", "count=2", "resolution=64", "num_frames=17"])
    for experiment, extra in [
        ("tokenizer_small_shapes", []),
        ("tokenizer_small_folder", [f"data.train.root={tmp_path}/clips", "data.num_workers=0"]),
        ("tokenizer_base_shapes", ["trainer=debug", "data.train.num_frames=3", "data.num_workers=0"]),
        (
            "tokenizer_base_folder",
            [
                f"data.train.root={tmp_path}/clips",
                "data.num_workers=0",
                "data.train.num_frames=3",
                "data.train.size=64",
                "model.train.gan_start_step=0",
            ],
        ),
    ] + ([("tokenizer_small_fashion", [])] if Path("/usr/share/datasets/fashion-mnist").is_dir() else []):
        cfg = compose_config(
            [
                f"experiment={experiment}",
                "trainer=debug",
                "data.batch_size=1",
                *extra,
                f"run_dir={tmp_path / experiment}",
            ]
        )
        run(cfg, "fit")


def test_perceptual_loss_needs_its_weights_file_and_uses_it(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from tokgen.tokenizer.config import TokenizerTrainConfig
    from tokgen.tokenizer.perceptual import VGG16, PerceptualLoss

    with pytest.raises(FileNotFoundError, match="does not exist"):
        TokenizerLit(
            TINY_CONFIG,
            TokenizerTrainConfig(perceptual_weight=0.1, perceptual_weights=str(tmp_path / "vgg.safetensors")),
        )
    # A VGG16-shaped network with random weights, saved the way real weights would be.
    state, width, index = {}, 3, 0
    for v in VGG16:
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(v, width, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(v)
        width, index = v, index + 2
    save_file(state, str(tmp_path / "vgg.safetensors"))
    loss = PerceptualLoss(tmp_path / "vgg.safetensors", max_frames=2)
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    assert loss(video, video).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(video, -video).item() > 0
    lit = TokenizerLit(
        TINY_CONFIG, TokenizerTrainConfig(perceptual_weight=0.1, perceptual_weights=str(tmp_path / "vgg.safetensors"))
    )
    assert not any(p.requires_grad for p in lit.perceptual.parameters())  # frozen, never optimised


def test_ema_weights_and_gan_switch_compose_and_run(tmp_path: Path) -> None:
    cfg = compose_config(
        [
            *TINY,
            "callbacks=ema",
            "trainer.log_every_n_steps=1",
            "model.train.gan_weight=0.1",
            "model.train.gan_start_step=2",
            "model.train.disc_kind=both",
            f"run_dir={tmp_path / 'ema'}",
        ]
    )
    run_dir = run(cfg, "fit")
    rows = list(csv.DictReader((run_dir / "logs" / "metrics.csv").open()))
    assert any(r.get("train/gan_d") for r in rows)  # the discriminator trained once the GAN switched on
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert any("discriminator" in k for k in ckpt["state_dict"])
    disc = ckpt["optimizer_states"][1]["param_groups"][0]
    assert 0 < disc["lr"] < 0.1 * disc["initial_lr"]  # the discriminator's rate is scheduled too


def test_training_clips_shorter_than_the_temporal_window_warn(recwarn: pytest.WarningsRecorder) -> None:
    # 9 frames hold 5 latent frames: a window of 8 leaves attention distances 5-7 untrained.
    with pytest.warns(UserWarning, match=r"temporal_window <= 5 or train on clips of >= 15 frames"):
        TokenizerLit({**TINY_CONFIG, "temporal_window": 8})._check_window(9)
    with pytest.warns(UserWarning, match=r"every earlier latent frame"):
        TokenizerLit({**TINY_CONFIG, "temporal_window": None})._check_window(9)
    recwarn.clear()
    TokenizerLit({**TINY_CONFIG, "temporal_window": 5})._check_window(9)  # the tiny and small presets
    TokenizerLit({**TINY_CONFIG, "temporal_window": 8})._check_window(1)  # images: no temporal attention
    assert not [w for w in recwarn if "temporal attention" in str(w.message)]


def test_codebook_collapse_warns_only_once_the_decoder_sees_codes() -> None:
    train = {"quantizer_warmup_steps": 4, "quantizer_ramp_steps": 2}  # codes alone from step 6
    vq, fsq = TokenizerLit(TINY_CONFIG, train), TokenizerLit({**TINY_CONFIG, "quantizer": "fsq"}, train)
    counts = torch.zeros(64)
    counts[:2] = 500  # 2 of 64 codes for 1000 tokens: 3%, below the 5% warning line
    assert vq.collapse_message(counts, 2.0, step=6, sanity=False) == (
        "used 2 of 64 codes (perplexity 2.0); consider a higher dead_code_ratio, lower codebook_dim, or fsq/lfq "
        "quantizers"
    )
    assert "fill few of the quantizer's cells" in fsq.collapse_message(counts, 2.0, step=6, sanity=False)
    assert vq.collapse_message(counts, 2.0, step=5, sanity=False) is None  # still blending latents and codes
    assert vq.collapse_message(counts, 2.0, step=6, sanity=True) is None  # Lightning's check before training
    counts[:4] = 250  # 4 of 64 codes: 6%
    assert vq.collapse_message(counts, 4.0, step=6, sanity=False) is None
    few = torch.zeros(64)
    few[0] = 20  # 20 tokens can use at most 20 codes: one is 5%, not below the line
    assert vq.collapse_message(few, 1.0, step=6, sanity=False) is None
