"""The learning-rate schedule of tokenizer and transformer training: warm up, hold, cool down.

Linear warm-up over ``warmup_steps``, then the full rate, then -- with ``cooldown`` > 0 -- a linear
decay to zero over the last ``cooldown`` fraction of the run. A run here is usually bounded by time
(``trainer.max_time``: "15 minutes on 2 cores"), so its length in steps is unknown in advance; the
run's *progress* is therefore the larger of ``global_step / max_steps`` and ``elapsed / max_time``,
whichever limit ends the run first ends the decay with it. Resuming with a larger budget lowers the
progress, so the rate climbs back (a warm restart) and cools down again before the new end.

In data-parallel runs every rank must step with the same rate or their weights drift apart, and each
rank has its own clock: rank 0's progress is broadcast (one tiny collective per step, as Lightning's
own ``Timer`` does to stop all ranks together).
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Timer


def run_progress(trainer: pl.Trainer) -> float:
    """Fraction of the run done, in ``[0, 1]``: steps over ``max_steps`` or time over ``max_time``.

    Runs bounded by neither (``max_steps=-1`` and no ``max_time``) report 0: no cooldown.
    """
    done = 0.0
    if trainer.max_steps and trainer.max_steps > 0:
        done = trainer.global_step / trainer.max_steps
    for callback in trainer.callbacks:
        if isinstance(callback, Timer):
            remaining = callback.time_remaining()
            if remaining is not None:
                elapsed = callback.time_elapsed()
                done = max(done, elapsed / max(elapsed + remaining, 1e-9))
    if trainer.world_size > 1:
        done = trainer.strategy.broadcast(done, src=0)
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
