"""Streaming shards (litdata): written by `tokgen tokenize`, read back exactly, resumed mid-epoch exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

pytest.importorskip("litdata", reason="streaming shards need the optional litdata (pip install 'tokgen[stream]')")

from tokgen.cli import compose_config, run, tokenize  # noqa: E402
from tokgen.data.shapes import ShapesDataset  # noqa: E402
from tokgen.data.streaming import StreamingClipDataModule, write_stream  # noqa: E402
from tokgen.data.token_shards import TokenShardDataset  # noqa: E402
from tokgen.io.convert import frames_to_tensor, tensor_to_frames  # noqa: E402
from tokgen.tokenizer.config import TokenizerConfig  # noqa: E402
from tokgen.tokenizer.model import VideoTokenizer  # noqa: E402

CLIPS, VAL, BATCH = 32, 16, 4  # `tokenize` holds out min(64, half): 16 training clips, 4 batches an epoch


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Token shards and the same clips as streaming shards, both written by `tokgen tokenize`."""
    root = tmp_path_factory.mktemp("stream")
    torch.manual_seed(0)
    tiny = OmegaConf.to_container(compose_config(["tokenizer=tiny"]).tokenizer)
    VideoTokenizer(TokenizerConfig(**tiny)).save_pretrained(root / "tokenizer")
    args = [
        "experiment=tokenizer_tiny",
        "text=learned",
        "text.dim=32",
        "text.depth=1",
        "text.max_length=16",
        "transformer=tiny",
        "transformer.text_dim=32",
        "transformer.max_text_len=16",
        f"tokenize.tokenizer={root / 'tokenizer'}",
        f"tokenize.out={root / 'shards'}",
        f"++tokenize.stream={root / 'stream'}",
        "tokenize.shard_size=8",
        f"data.train.length={CLIPS}",
    ]
    tokenize(compose_config(args))
    return root / "shards", root / "stream"


def _datamodule(root: Path, **options) -> StreamingClipDataModule:
    dm = StreamingClipDataModule(str(root), batch_size=BATCH, max_text_len=16, seed=3, **options)
    dm.setup("fit")
    return dm


def test_tokenize_writes_streaming_shards_that_read_back_exactly(stream: tuple[Path, Path]) -> None:
    shards, root = stream
    assert sorted(p.name for p in root.iterdir()) == ["train", "val"]
    source = TokenShardDataset(shards, max_text_len=16)
    dm = _datamodule(root)
    assert len(dm.val) == VAL and len(dm.train) == CLIPS - VAL
    assert dm.train.codes_shape == source.codes_shape == (5, 4, 4)
    for split in (dm.val, dm.train):
        for k in range(len(split)):
            item = split[k]
            want = source[item["index"]]
            assert torch.equal(item["codes"], want["codes"]) and item["codes"].dtype == torch.long
            assert torch.equal(item["text_emb"], want["text_emb"]) and item["text_emb"].shape == (16, 32)
            assert torch.equal(item["text_mask"], want["text_mask"])
            assert item["caption"] == want["caption"]
    assert sorted(dm.val[k]["index"] for k in range(VAL)) == list(range(VAL))  # the held-out clips come first


def test_video_clips_stream_as_exact_uint8_frames(tmp_path: Path) -> None:
    shapes = ShapesDataset(length=3, seed=5, resolution=16, num_frames=5)
    write_stream(shapes, tmp_path / "videos", chunk_size=2)
    dm = StreamingClipDataModule(str(tmp_path / "videos"), validate=False)
    dm.setup("fit")
    for k in range(3):
        item = dm.train[k]
        video = shapes[item["index"]]["video"]
        assert item["video"].shape == video.shape == (3, 5, 16, 16)
        # What a video file would hold: 8-bit frames, restored by the one conversion helper.
        assert torch.equal(item["video"], frames_to_tensor(tensor_to_frames(video))[0])
        assert item["caption"] == shapes[item["index"]]["caption"]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_resumes_mid_epoch_with_the_remaining_clips_exactly_once(
    stream: tuple[Path, Path], num_workers: int
) -> None:
    _, root = stream
    first = _datamodule(root, num_workers=num_workers).train_dataloader()
    seen, batches = [], iter(first)
    for _ in range(2):
        seen += next(batches)["index"].tolist()
    state = first.state_dict()
    del batches

    resumed = _datamodule(root, num_workers=num_workers).train_dataloader()  # as after a restart
    resumed.load_state_dict(state)
    rest = [i for batch in resumed for i in batch["index"].tolist()]
    assert len(seen) == 2 * BATCH and len(rest) == CLIPS - VAL - 2 * BATCH
    assert sorted(seen + rest) == list(range(VAL, CLIPS))  # every training clip once, no repeats


class RecordIndices(L.Callback):
    def __init__(self, path: str) -> None:
        self.path, self.steps = Path(path), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps.append([trainer.current_epoch, trainer.global_step, batch["index"].tolist()])

    def on_train_end(self, trainer, pl_module) -> None:
        self.path.write_text(json.dumps(self.steps))


def test_fit_restarted_mid_epoch_trains_on_the_rest_of_the_epoch(stream: tuple[Path, Path], tmp_path: Path) -> None:
    _, root = stream

    def fit(name: str, max_steps: int, *extra: str) -> list:
        cfg = compose_config(
            [
                "model=transformer",
                "transformer=tiny",
                "transformer.text_dim=32",
                "transformer.max_text_len=16",
                "text=learned",
                "text.dim=32",
                "text.depth=1",
                "text.max_length=16",
                "data=stream",
                f"data.root={root}",
                f"data.batch_size={BATCH}",
                "trainer.accelerator=cpu",
                f"trainer.max_steps={max_steps}",
                "trainer.val_check_interval=4",
                "trainer.limit_val_batches=1",
                "trainer.enable_model_summary=false",
                "model.train.num_samples=0",
                "~callbacks.progress",
                "callbacks.checkpoint.every_n_train_steps=1",
                f"+callbacks.record={{_target_: tests.data.test_streaming.RecordIndices, path: '{tmp_path / name}'}}",
                f"run_dir={tmp_path / (name + '-run')}",
                *extra,
            ]
        )
        run(cfg, "fit")
        return json.loads((tmp_path / name).read_text())

    before = fit("before", 2)  # stopped after 2 of the epoch's 4 steps (a crash, a preemption)
    ckpt = tmp_path / "before-run" / "checkpoints" / "last.ckpt"
    after = fit("after", 4, f"ckpt_path={ckpt}")
    assert [step for _, step, _ in before] == [0, 1] and [step for _, step, _ in after] == [2, 3]
    assert {epoch for epoch, _, _ in before + after} == {0}  # still the first epoch
    trained = [i for *_, indices in before + after for i in indices]
    assert sorted(trained) == list(range(VAL, CLIPS))  # the epoch completed: each clip exactly once
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["hyper_parameters"]["codes_shape"] == [5, 4, 4]  # the latent grid is recorded for predict


def test_bad_folders_are_clear_errors(stream: tuple[Path, Path], tmp_path: Path) -> None:
    shards, root = stream
    with pytest.raises(FileExistsError, match="exists"):
        write_stream(TokenShardDataset(shards), root)
    with pytest.raises(ValueError, match="local folder"):
        write_stream(TokenShardDataset(shards), "s3://bucket/stream")
    with pytest.raises(FileNotFoundError, match="index.json"):
        _datamodule(tmp_path)
    with pytest.raises(ValueError, match="val_clips"):
        write_stream(TokenShardDataset(shards), tmp_path / "new", val_clips=CLIPS)
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.*"))  # nothing half-written
