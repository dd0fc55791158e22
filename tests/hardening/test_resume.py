"""A run killed mid-epoch and resumed from last.ckpt ends with the weights of a run that never stopped.

Each case trains N steps and stops (as a crash or a preemption would, after the step-N checkpoint),
resumes from ``last.ckpt`` to 2N, and compares with one uninterrupted 2N-step run, all through
`tokgen fit` with the real configs. 2N crosses an epoch boundary, so the data order of the next epoch
is covered too. What makes it hold: the training loader records its place in the epoch in every
checkpoint (`tokgen.data.datamodule.ResumableDataLoader`), epoch orders depend on (seed, epoch) only,
the global random generators are checkpointed (`tokgen.callbacks.RandomState`: the vector
quantizer's dead-code restarts draw from them), and the transformer's masks come from generators
keyed by the step (`TransformerLit._generator`).

Tolerance: 1e-6 absolute on every weight and optimizer-state tensor. The runs are the same
computation on one CPU thread, so they agree exactly today; the tolerance only absorbs reordered
float reductions a future kernel might bring.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from tokgen.cli import compose_config, run

TOLERANCE = 1e-6
N = 3  # steps before the "crash"; 2N = 6 steps, one epoch being 5 batches


class RecordBatches(L.Callback):
    """Writes the captions of every training batch to ``path`` (to compare data order across runs)."""

    def __init__(self, path: str) -> None:
        self.path, self.batches = Path(path), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append([trainer.global_step, list(batch["caption"])])

    def on_train_end(self, trainer, pl_module) -> None:
        self.path.write_text(json.dumps(self.batches))


def _fit(base: list[str], tmp_path: Path, name: str, steps: int, resume: Path | None = None) -> tuple[dict, list]:
    record = tmp_path / f"{name}.json"
    overrides = [
        *base,
        "~callbacks.progress",
        "logger=none",
        f"trainer.max_steps={steps}",
        "trainer.enable_model_summary=false",
        "callbacks.checkpoint.every_n_train_steps=1",
        f"+callbacks.record={{_target_: {__name__}.RecordBatches, path: '{record}'}}",
        f"run_dir={tmp_path / name}",
    ]
    if resume is not None:
        overrides.append(f"ckpt_path={resume}")
    run_dir = run(compose_config(overrides), "fit")
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt, json.loads(record.read_text())


def _largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between two dicts of tensors with the same names."""
    assert a.keys() == b.keys() and a
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _optimizer_tensors(ckpt: dict) -> dict[str, torch.Tensor]:
    out = {}
    for i, opt in enumerate(ckpt["optimizer_states"]):
        for param, state in opt["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    out[f"opt{i}.{param}.{key}"] = value.float()
    return out


def _compare(full: tuple[dict, list], first: tuple[dict, list], resumed: tuple[dict, list]) -> None:
    (full_ckpt, full_batches), (_, first_batches), (resumed_ckpt, resumed_batches) = full, first, resumed
    assert resumed_ckpt["global_step"] == full_ckpt["global_step"] == 2 * N
    assert resumed_ckpt["epoch"] == full_ckpt["epoch"] == 1  # the 6th step is the first of epoch 1
    # The same batches, in the same order, at the same steps: nothing replayed, nothing skipped.
    assert first_batches + resumed_batches == full_batches
    weights = {k: v for k, v in full_ckpt["state_dict"].items() if v.is_floating_point()}
    assert _largest_difference(weights, {k: resumed_ckpt["state_dict"][k] for k in weights}) <= TOLERANCE
    assert _largest_difference(_optimizer_tensors(full_ckpt), _optimizer_tensors(resumed_ckpt)) <= TOLERANCE


def _resume_case(base: list[str], tmp_path: Path) -> None:
    full = _fit(base, tmp_path, "full", 2 * N)
    first = _fit(base, tmp_path, "first", N)
    resumed = _fit(base, tmp_path, "resumed", 2 * N, resume=tmp_path / "first" / "checkpoints" / "last.ckpt")
    _compare(full, first, resumed)


def test_tokenizer_killed_mid_epoch_resumes_to_the_same_weights(tmp_path: Path) -> None:
    # 20 Shapes clips in batches of 4: 5 steps an epoch; validation off (it would not change the weights).
    base = ["experiment=tokenizer_tiny", "data.train.length=20", "trainer.limit_val_batches=0"]
    _resume_case(base, tmp_path)


def test_transformer_killed_mid_epoch_resumes_to_the_same_weights(shards: Path, tmp_path: Path) -> None:
    # 24 clips, 4 held out: 20 in batches of 4, 5 steps an epoch. Text dropout and continuation masks on.
    base = [
        "experiment=transformer_tiny",
        f"tokenize.out={shards}",
        "tokenize.tokenizer=null",
        "trainer.limit_val_batches=0",
        "model.train.text_dropout=0.5",
        "model.train.continuation_prob=0.5",
    ]
    _resume_case(base, tmp_path)


@pytest.mark.parametrize("step", [N])
def test_the_loader_position_is_in_the_checkpoint(step: int, tmp_path: Path) -> None:
    base = ["experiment=tokenizer_tiny", "data.train.length=20", "trainer.limit_val_batches=0"]
    ckpt, _ = _fit(base, tmp_path, "first", step)
    (state,) = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert state == {"epoch": 0, "batches": step, "batch_size": 4}
    assert any("RandomState" in key for key in ckpt["callbacks"])  # the random generators travel with it
