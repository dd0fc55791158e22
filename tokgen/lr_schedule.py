"""The learning-rate schedule of tokenizer and transformer training: warm up, hold, cool down.

Linear warm-up over ``warmup_steps``, then the full rate, then -- with ``cooldown`` > 0 -- a linear
decay to zero over the last ``cooldown`` fraction of the run. A run here is usually bounded by time
(``trainer.max_time``: "15 minutes on 2 cores"), so its length in steps is unknown in advance; the
run's *progress* is therefore the larger of ``global_step / max_steps`` and ``elapsed / max_time``,
whichever limit ends the run first ends the decay with it. Resuming with a larger budget lowers the
progress, so the rate climbs back (a warm restart) and cools down again before the new end.

In data-parallel runs every rank must step with the same rate or their weights drift apart. Step
counts agree across ranks; clocks do not, so time-based progress is rank 0's, broadcast every
``SYNC_EVERY`` steps and held in between (a staircase of 16-step treads: half a percent of a
3000-step run each). A broadcast every step cost 11 ms of a 0.17 s step of the tiny DDP benchmark
(``tools/bench_ddp.py``): Lightning pickles the value and sends it twice.
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Timer

SYNC_EVERY = 16  # steps between broadcasts of rank 0's time-based progress in multi-process runs


def _time_progress(trainer: pl.Trainer) -> float | None:
    """Elapsed over ``max_time`` of this process's clock, None when no time limit is set."""
    for callback in trainer.callbacks:
        if isinstance(callback, Timer):
            remaining = callback.time_remaining()
            if remaining is not None:
                elapsed = callback.time_elapsed()
                return elapsed / max(elapsed + remaining, 1e-9)
    return None


def run_progress(trainer: pl.Trainer, previous: float | None = None) -> float:
    """Fraction of the run done, in ``[0, 1]``: steps over ``max_steps`` or time over ``max_time``.

    Runs bounded by neither (``max_steps=-1`` and no ``max_time``) report 0: no cooldown. With several
    ranks and a time limit, pass the last value as ``previous``: it is kept, steps permitting, until
    the next ``SYNC_EVERY``-th step, when every rank takes rank 0's time (all ranks must call this
    at the same steps, as they do from ``on_train_batch_start``).
    """
    done = trainer.global_step / trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else 0.0
    timed = _time_progress(trainer)
    if timed is not None:
        if trainer.world_size == 1:
            done = max(done, timed)
        elif previous is None or trainer.global_step % SYNC_EVERY == 0:
            done = max(done, trainer.strategy.broadcast(timed, src=0))
        else:
            done = max(done, previous)
    return min(1.0, max(0.0, done))


def lr_factor(step: int, progress: float, warmup_steps: int, cooldown: float) -> float:
    """Multiplier of the base rate at optimizer ``step`` with the run ``progress`` done.

    Args:
        step: optimizer steps taken so far (LambdaLR's count).
        progress: fraction of the run done (``run_progress``).
        warmup_steps: linear warm-up length; 0 starts at the full rate.
        cooldown: fraction of the run, at its end, over which the rate decays linearly to 0; 0 disables.
    """
    factor = min(1.0, (step + 1) / max(1, warmup_steps))
    if cooldown > 0:
        factor *= min(1.0, max(0.0, (1.0 - progress) / cooldown))
    return factor
