"""Training callbacks that keep a long run safe: stop on non-finite numbers, resume exactly.

``FiniteCheck`` stops a run the moment its loss or weights stop being finite, before a checkpoint
could store them: Lightning runs ``ModelCheckpoint`` after every other callback, so the last
checkpoint on disk is the last good one. ``RandomState`` stores the global random generators in
every checkpoint and restores them on resume, so whatever draws from them during training (dropout,
the vector quantizer's dead-code restarts) continues the same sequence as an uninterrupted run.
Both are in ``conf/callbacks/default.yaml``.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class FiniteCheck(L.Callback):
    """Raise ``FloatingPointError`` when a batch, a training step's loss or the weights after it are NaN/Inf.

    Args:
        every_n_steps: check the weights every this many steps (the loss is checked every step);
            a checkpoint step is always checked, whatever this is.
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        if every_n_steps < 1:
            raise ValueError(f"FiniteCheck: every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # NaN in the data is a data problem, not a divergence: say so before it reaches the loss.
        items = batch.items() if isinstance(batch, dict) else []
        for key, value in items:
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise FloatingPointError(
                    f"training stopped: batch {batch_idx} of epoch {trainer.current_epoch} (step "
                    f"{trainer.global_step}) holds NaN/Inf in {key!r} {tuple(value.shape)}; check the data"
                )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            self._stop(trainer, f"the training loss is {loss.detach().float().mean().item()} at step {step}")
        if step % self.every_n_steps and not _checkpoint_due(trainer):
            return
        params = [(name, p) for name, p in pl_module.named_parameters() if p.numel()]
        if not params:
            return
        # One device sync per check (not one per tensor); located by name only when something is wrong.
        if bool(torch.stack([torch.isfinite(p.detach()).all() for _, p in params]).all()):
            return
        bad = [name for name, p in params if not bool(torch.isfinite(p.detach()).all())]
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        self._stop(trainer, f"after step {step} the weights hold NaN/Inf ({shown})")

    @staticmethod
    def _stop(trainer: L.Trainer, what: str) -> None:
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
        kept = f"the last good checkpoint is kept: {last}" if last else "no checkpoint was written yet"
        raise FloatingPointError(
            f"training stopped: {what}; {kept}. Resume from it with a lower model.train.lr or a "
            "smaller model.train.grad_clip, or check the data"
        )


def _checkpoint_due(trainer: L.Trainer) -> bool:
    """Whether a ModelCheckpoint may save after this batch (its step interval is reached)."""
    every = getattr(trainer.checkpoint_callback, "_every_n_train_steps", 0) or 0
    return bool(every) and trainer.global_step % every == 0


class RandomState(L.Callback):
    """Save the global torch (CPU and CUDA), NumPy and Python random states with each checkpoint.

    Restoring them on resume makes a run stopped after N steps and resumed continue the same random
    sequence as a run that never stopped. Stored as tensors and plain ints, so checkpoints still load
    with ``weights_only=True``. Under DDP the checkpoint holds rank 0's states and every rank restores
    them (as ``seed_everything`` gives every rank the same seed).
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {
                "kind": str(kind),
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "gauss": float(gauss),
            },
            "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        n = state_dict["numpy"]
        keys = n["keys"].numpy().astype(np.uint32)
        np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
        p = state_dict["python"]
        random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
        cuda = state_dict.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
