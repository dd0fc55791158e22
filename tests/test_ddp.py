"""Real DDP: two CPU processes (gloo) started by torchrun train the tiny transformer on token shards.

The test writes token shards with the tiny tokenizer, then launches this file as a module under
``torch.distributed.run`` (a subprocess, so pytest's own process is never forked). Each rank runs
``tokgen.cli.run`` twice: a fit of one epoch that checkpoints, then a fit resumed from that
checkpoint. A callback records, per rank and step, a fingerprint of every clip it trained on and a
checksum of the weights. Both runs share one launch because each process spends most of its time
importing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TRAIN_CLIPS = 16  # 20 clips written, the first 4 held out for validation (transformer_tiny)


def fingerprint(codes: torch.Tensor, caption: str) -> str:
    """Identifies one training clip: its codes and caption."""
    return hashlib.sha1(codes.to(torch.int64).numpy().tobytes() + caption.encode()).hexdigest()[:16]


def weights_checksum(module: torch.nn.Module) -> float:
    return float(sum(p.detach().double().sum() for p in module.parameters()))


class RecordBatches(L.Callback):
    """Writes ``<folder>/<run>-rank<r>.json``: the clips of every training step and weight checksums."""

    def __init__(self, folder: str, run: str) -> None:
        self.path = Path(folder) / f"{run}-rank{int(os.environ.get('RANK', 0))}.json"
        self.record: dict = {"steps": []}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record.update(rank=trainer.global_rank, world_size=trainer.world_size)
        self.record["start_checksum"] = weights_checksum(pl_module)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict, batch_idx: int):
        prints = [fingerprint(c, t) for c, t in zip(batch["codes"].cpu(), batch["caption"], strict=True)]
        self.record["steps"].append({"step": trainer.global_step, "epoch": trainer.current_epoch, "clips": prints})

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record["end_checksum"] = weights_checksum(pl_module)
        self.path.write_text(json.dumps(self.record))


def _overrides(shards: Path, out: Path, run: str, max_steps: int) -> list[str]:
    return [
        "experiment=transformer_tiny",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        f"trainer.max_steps={max_steps}",
        "trainer.val_check_interval=2",
        "trainer.enable_model_summary=false",
        f"tokenize.out={shards}",
        "tokenize.tokenizer=null",  # no sampled previews: this test is about the data and the weights
        "~callbacks.progress",
        "callbacks.checkpoint.every_n_train_steps=2",
        f"+callbacks.record={{_target_: tests.test_ddp.RecordBatches, folder: '{out}', run: {run}}}",
        f"run_dir={out / run}",
    ]


def worker(shards: Path, out: Path) -> None:
    """One rank: fit one epoch (2 steps of 2 x 4 clips), then resume from its last.ckpt for 2 more."""
    from tokgen.cli import compose_config, run

    run(compose_config(_overrides(shards, out, "fit", 2)), "fit")
    resume = _overrides(shards, out, "resume", 4) + [f"ckpt_path={out / 'fit' / 'checkpoints' / 'last.ckpt'}"]
    run(compose_config(resume), "fit")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omegaconf import OmegaConf

    from tests.shards import write_tiny_shards
    from tokgen.cli import compose_config
    from tokgen.tokenizer.config import TokenizerConfig
    from tokgen.tokenizer.model import VideoTokenizer

    torch.manual_seed(0)
    tokenizer = VideoTokenizer(TokenizerConfig(**OmegaConf.to_container(compose_config(["tokenizer=tiny"]).tokenizer)))
    tokenizer.eval()

    return write_tiny_shards(tokenizer, tmp_path_factory.mktemp("ddp") / "shards", clips=20, batch_size=10)


def test_two_process_ddp_fit_checkpoint_resume(shards: Path, tmp_path: Path) -> None:
    from tokgen.data.token_shards import TokenShardDataset

    train = TokenShardDataset(shards, max_text_len=16, offset=4)
    expected = {fingerprint(item["codes"], item["caption"]) for item in train}
    assert len(expected) == TRAIN_CLIPS  # fingerprints tell every training clip apart

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    command += ["-m", "tests.test_ddp", str(shards), str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]

    records = {
        (run, rank): json.loads((tmp_path / f"{run}-rank{rank}.json").read_text())
        for run in ("fit", "resume")
        for rank in (0, 1)
    }
    for (run, rank), record in records.items():
        assert record["rank"] == rank and record["world_size"] == 2
        # fit: steps 0-1 of epoch 0; the resumed run continues at step 2 in epoch 1 (not from scratch).
        first = 0 if run == "fit" else 2
        assert [s["step"] for s in record["steps"]] == [first, first + 1], (run, rank)
        assert {s["epoch"] for s in record["steps"]} == {first // 2}
    for run in ("fit", "resume"):
        rank0 = [c for s in records[run, 0]["steps"] for c in s["clips"]]
        rank1 = [c for s in records[run, 1]["steps"] for c in s["clips"]]
        # One epoch: the ranks split the training clips, each clip seen once, by exactly one rank.
        assert len(rank0) == len(rank1) == TRAIN_CLIPS // 2
        assert not set(rank0) & set(rank1)
        assert set(rank0) | set(rank1) == expected
        # Gradients were averaged: both replicas start and end with the same weights.
        assert records[run, 0]["start_checksum"] == records[run, 1]["start_checksum"]
        assert records[run, 0]["end_checksum"] == pytest.approx(records[run, 1]["end_checksum"], abs=1e-9)
    # The resumed run starts from the checkpoint's weights, and trains on.
    assert records["resume", 0]["start_checksum"] == pytest.approx(records["fit", 0]["end_checksum"], abs=1e-9)
    assert records["resume", 0]["end_checksum"] != records["resume", 0]["start_checksum"]

    # Only rank 0 wrote: one run folder per run, each with its config and checkpoints.
    for run, step in (("fit", 2), ("resume", 4)):
        ckpt = torch.load(tmp_path / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == step
        assert (tmp_path / run / "config.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["fit", "resume"]


if __name__ == "__main__":  # a rank of the torchrun launch above
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
