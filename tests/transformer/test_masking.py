"""Mask schedules: endpoints, monotonicity, continuous training ratios, exact mask counts."""

from __future__ import annotations

import pytest
import torch

from tokgen.transformer.masking import (
    SCHEDULES,
    num_masked_after_step,
    random_mask,
    sample_mask_ratio,
    schedule,
)


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_endpoints_and_monotone(name: str) -> None:
    assert schedule(name, 0.0) == pytest.approx(1.0)
    assert schedule(name, 1.0) == pytest.approx(0.0, abs=1e-12)
    r = torch.linspace(0, 1, 101)
    gamma = schedule(name, r)
    assert gamma.shape == r.shape
    assert (gamma.diff() <= 1e-7).all() and gamma.min() >= 0 and gamma.max() <= 1
    # floats and tensors share one formula
    assert schedule(name, 0.3) == pytest.approx(float(schedule(name, torch.tensor([0.3]))[0]), abs=1e-6)


def test_schedule_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown mask schedule 'nope'"):
        schedule("nope", 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        schedule("cosine", 1.5)


def test_training_ratio_is_continuous() -> None:
    ratios = sample_mask_ratio(2000, torch.Generator().manual_seed(0), "cosine")
    assert ratios.shape == (2000,) and ratios.min() >= 0 and ratios.max() <= 1
    assert ratios.unique().numel() > 1990  # a continuum, not a handful of levels
    # E[cos(pi/2 * U)] = 2/pi
    assert ratios.mean().item() == pytest.approx(2 / torch.pi, abs=0.03)
    again = sample_mask_ratio(2000, torch.Generator().manual_seed(0), "cosine")
    assert torch.equal(ratios, again)


def test_random_mask_counts_are_exact() -> None:
    gen = torch.Generator().manual_seed(1)
    ratio = torch.tensor([0.0, 0.1, 0.5, 0.999, 1.0, 0.37])
    mask = random_mask((6, 3, 4, 5), ratio, gen)
    assert mask.shape == (6, 3, 4, 5) and mask.dtype == torch.bool
    counts = mask.flatten(1).sum(-1)
    assert counts.tolist() == [1, 6, 30, 60, 60, 22]  # round(ratio * 60), at least 1


def test_random_mask_is_uniform_over_positions() -> None:
    gen = torch.Generator().manual_seed(2)
    mask = random_mask((4000, 10), torch.full((4000,), 0.3), gen)
    freq = mask.float().mean(0)
    assert torch.allclose(freq, torch.full((10,), 0.3), atol=0.04)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize(("steps", "total"), [(12, 576), (8, 64), (12, 5), (1, 10), (3, 0)])
def test_num_masked_after_step(name: str, steps: int, total: int) -> None:
    counts = [num_masked_after_step(s, steps, total, name) for s in range(steps)]
    assert counts[-1] == 0
    previous = total
    for s, count in enumerate(counts):
        assert count <= int(schedule(name, (s + 1) / steps) * total)  # never above the schedule
        assert count < previous or count == 0  # every pass decides at least one token while any remain
        previous = count
    per_sample = torch.tensor([total, total // 2])
    for s in range(steps):
        got = num_masked_after_step(s, steps, per_sample, name)
        assert got.tolist() == [counts[s], num_masked_after_step(s, steps, total // 2, name)]


def test_num_masked_after_step_cosine_reference() -> None:
    counts = [num_masked_after_step(s, 12, 576, "cosine") for s in range(12)]
    assert counts == [571, 556, 532, 498, 456, 407, 350, 288, 220, 149, 75, 0]
