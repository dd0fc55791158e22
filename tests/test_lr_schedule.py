"""The learning-rate schedule: warm-up, hold, linear cooldown by steps or by the time budget."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest

from tokgen.lr_schedule import lr_factor, run_progress
from tokgen.tokenizer.config import TokenizerTrainConfig
from tokgen.transformer.config import TransformerTrainConfig


def test_factor_warms_up_holds_and_cools_down_to_zero() -> None:
    assert [lr_factor(s, 0.0, 4, 0.25) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(100, 0.75, 4, 0.25) == 1.0  # held until the last quarter
    assert lr_factor(100, 0.875, 4, 0.25) == pytest.approx(0.5)
    assert lr_factor(100, 1.0, 4, 0.25) == 0.0
    assert lr_factor(100, 1.0, 4, 0.0) == 1.0  # no cooldown: held to the end
    assert lr_factor(1, 0.9, 4, 0.2) == pytest.approx(0.5 * 0.5)  # both at once multiply


def _trainer(**limits) -> L.Trainer:
    return L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, **limits)


def test_progress_follows_the_time_budget_when_it_ends_the_run_first() -> None:
    trainer = _trainer(max_steps=1000, max_time={"seconds": 60})
    timer = next(c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.Timer))
    assert run_progress(trainer) == 0.0
    timer.load_state_dict({"time_elapsed": {"train": 45.0}})  # as a resumed run 45 s in
    assert run_progress(trainer) == pytest.approx(0.75)
    timer.load_state_dict({"time_elapsed": {"train": 90.0}})
    assert run_progress(trainer) == 1.0  # clamped
    assert run_progress(_trainer(max_steps=-1)) == 0.0  # unbounded: no cooldown


def test_ranks_take_rank_zeros_time_every_sync_every_steps_and_hold_it_between() -> None:
    trainer = _trainer(max_steps=1000, max_time={"seconds": 60})
    timer = next(c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.Timer))
    timer.load_state_dict({"time_elapsed": {"train": 45.0}})  # this rank's clock: 0.75
    sent = []

    def broadcast(value: float, src: int = 0) -> float:  # rank 0's clock says 0.5
        sent.append(value)
        return 0.5

    # run_progress reads only these members, so a stand-in for rank 1 of 2 needs no process group.
    rank1 = SimpleNamespace(
        callbacks=trainer.callbacks, max_steps=1000, world_size=2, strategy=SimpleNamespace(broadcast=broadcast)
    )
    rank1.global_step = 32
    assert run_progress(rank1, previous=0.1) == 0.5 and sent == [0.75]  # a sync step: rank 0's value
    rank1.global_step = 33
    assert run_progress(rank1, previous=0.5) == 0.5 and len(sent) == 1  # held, no collective
    rank1.global_step = 600
    assert run_progress(rank1, previous=0.5) == 0.6 and len(sent) == 1  # steps agree across ranks
    rank1.global_step = 17
    assert run_progress(rank1, previous=None) == 0.5 and len(sent) == 2  # nothing held yet: sync now


@pytest.mark.parametrize("config", [TokenizerTrainConfig, TransformerTrainConfig])
@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_cooldown_outside_zero_one_is_a_clear_error(config: type, bad: float) -> None:
    with pytest.raises(ValueError, match=r"train\.cooldown must be in \[0, 1\)"):
        config(cooldown=bad)
