"""Mask schedules, written once and shared by training (how much to mask) and sampling (how much to keep).

A schedule maps the progress ``r`` in ``[0, 1]`` to the masked fraction ``gamma(r)``, with ``gamma(0) = 1``
(everything masked) and ``gamma(1) = 0`` (nothing masked), decreasing in between (MaskGIT, Chang et al.
2022, section 3.2). Training draws ``r ~ U(0, 1)`` per sample, so the model sees every masking ratio the
sampler will visit; sampling walks ``r = 1/steps, 2/steps, ..., 1``.

Axis legend: ``b`` batch, ``n`` tokens of one sample (``t * h * w`` flattened).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

# gamma(r) on tensors; floats go through a 0-d tensor so each formula is written once.
_SCHEDULES: dict[str, Callable[[Tensor], Tensor]] = {
    # MaskGIT's choice: few tokens decided early (when the model knows least), many late.
    "cosine": lambda r: torch.cos(r * (math.pi / 2)),
    "linear": lambda r: 1 - r,
    "square": lambda r: 1 - r**2,
    "cubic": lambda r: 1 - r**3,
    "sqrt": lambda r: 1 - r.sqrt(),
}
SCHEDULES = tuple(_SCHEDULES)


def _check_name(name: str) -> None:
    if name not in _SCHEDULES:
        raise ValueError(f"unknown mask schedule {name!r}; known schedules: {SCHEDULES}")


def schedule(name: str, r: Tensor | float) -> Tensor | float:
    """Masked fraction ``gamma(r)`` of the schedule ``name``.

    Args:
        name: one of ``SCHEDULES`` (``"cosine"`` is MaskGIT's default).
        r: progress in ``[0, 1]``, a float or a float tensor of any shape.

    Returns:
        ``gamma(r)`` in ``[0, 1]``, the same type (and shape) as ``r``.
    """
    _check_name(name)
    if isinstance(r, Tensor):
        if r.numel() and (r.min() < 0 or r.max() > 1):
            raise ValueError(f"schedule progress r must lie in [0, 1], got values in [{r.min()}, {r.max()}]")
        # Clamp: in float32, cos(pi/2) is -4e-8, and a negative fraction would break callers' counts.
        return _SCHEDULES[name](r if r.is_floating_point() else r.float()).clamp(0, 1)
    if not 0 <= r <= 1:
        raise ValueError(f"schedule progress r must lie in [0, 1], got {r}")
    return float(_SCHEDULES[name](torch.tensor(float(r), dtype=torch.float64)).clamp(0, 1))


def sample_mask_ratio(
    batch: int, generator: torch.Generator, name: str = "cosine", device: torch.device | str | None = None
) -> Tensor:
    """Training masking ratios: ``gamma(r)`` with ``r ~ U(0, 1)``, one continuous value per sample.

    Args:
        batch: number of samples.
        generator: the random source (its device decides where ``r`` is drawn).
        name: schedule name.
        device: where the ratios go; defaults to the generator's device.

    Returns:
        ``(batch,)`` float ratios in ``[0, 1]``.
    """
    _check_name(name)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    r = torch.rand(batch, generator=generator, device=generator.device)
    return schedule(name, r).to(device if device is not None else generator.device)


def random_mask(shape: tuple[int, ...] | torch.Size, ratio: Tensor, generator: torch.Generator) -> Tensor:
    """A bool mask with exactly ``round(ratio * N)`` (at least 1) True entries per sample, uniformly placed.

    Args:
        shape: ``(B, *rest)``; ``N = prod(rest)`` tokens per sample.
        ratio: ``(B,)`` masked fractions in ``[0, 1]``.
        generator: the random source; the mask is drawn on its device.

    Returns:
        ``(B, *rest)`` bool mask, True = masked.
    """
    batch, *rest = shape
    n = math.prod(rest)
    if ratio.shape != (batch,):
        raise ValueError(f"ratio must have shape ({batch},) for mask shape {tuple(shape)}, got {tuple(ratio.shape)}")
    if n < 1:
        raise ValueError(f"mask shape {tuple(shape)} has no tokens per sample")
    device = generator.device
    # At least one masked token: a sample with nothing masked gives no loss (and MaskGIT never asks
    # the model to predict nothing).
    count = (ratio.to(device, torch.float64) * n).round().long().clamp(1, n)  # (b,)
    # Rank of each token under a uniform random permutation; the lowest `count` ranks are masked.
    scores = torch.rand(batch, n, generator=generator, device=device)  # (b, n)
    ranks = scores.argsort(dim=-1).argsort(dim=-1)
    return (ranks < count[:, None]).reshape(shape)


def num_masked_after_step(step: int, steps: int, total: int | Tensor, name: str = "cosine") -> int | Tensor:
    """How many of ``total`` initially masked tokens are still masked after sampling step ``step``.

    ``floor(gamma((step + 1) / steps) * total)``, additionally forced to drop by at least one per step
    while tokens remain, so every forward pass decides something even when ``total`` is small. The
    counts are monotone non-increasing in ``step`` and 0 after the last step.

    Args:
        step: 0-based step index, ``0 <= step < steps``.
        steps: number of sampling steps (forward passes), ``>= 1``.
        total: tokens masked before step 0 (an int, or a ``(B,)`` long tensor of per-sample counts).
        name: schedule name.

    Returns:
        The count, an int or a long tensor shaped like ``total``.
    """
    _check_name(name)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 <= step < steps:
        raise ValueError(f"step must be in [0, {steps}), got {step}")
    totals = torch.as_tensor(total, dtype=torch.long)
    if totals.numel() and totals.min() < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    remaining = totals
    for s in range(step + 1):
        target = (schedule(name, (s + 1) / steps) * totals.double()).floor().long()
        remaining = torch.minimum(target, remaining - 1).clamp(min=0)
    return int(remaining) if not isinstance(total, Tensor) else remaining.to(total.device)


def given_frames(
    batch: int,
    t: int,
    generator: torch.Generator,
    *,
    given_prob: float,
    first_frame_share: float = 0.0,
    interpolation_share: float = 0.0,
) -> Tensor:
    """Latent frames a training clip is *given* (never masked): the known-token patterns sampling uses.

    A clip gets given frames with probability ``given_prob``. Of those, a ``first_frame_share``
    fraction gets only its first latent frame (image-to-video), an ``interpolation_share`` fraction
    gets a prefix and a suffix, each of at least one frame, with at least one frame between them
    (frame interpolation, CogVideo), and the rest a prefix of ``k ~ U[1, t - 1]`` frames
    (continuation: story windows, ``init=`` videos). At least one frame is always left to predict.

    Args:
        batch: clips.
        t: latent frames per clip; with ``t == 1`` nothing is given, with ``t == 2`` no interpolation.
        generator: the random source (its device is used).
        given_prob: probability that a clip gets given frames.
        first_frame_share, interpolation_share: fractions of those clips, summing to at most 1.

    Returns:
        ``(batch, t)`` bool, True = given.
    """
    if not (0 <= given_prob <= 1 and min(first_frame_share, interpolation_share) >= 0):
        raise ValueError(
            f"need 0 <= given_prob <= 1 and shares >= 0, got {given_prob}, {first_frame_share}, {interpolation_share}"
        )
    if first_frame_share + interpolation_share > 1:
        raise ValueError(
            f"first_frame_share + interpolation_share must be <= 1, got {first_frame_share} + {interpolation_share}"
        )
    device = generator.device
    frame = torch.arange(t, device=device)[None, :]  # (1, t)
    if t < 2:
        return torch.zeros(batch, t, dtype=torch.bool, device=device)
    given = torch.rand(batch, generator=generator, device=device) < given_prob  # (b,)
    kind = torch.rand(batch, generator=generator, device=device)  # (b,): which pattern
    uniform = torch.rand(batch, 2, generator=generator, device=device)  # (b, 2): pattern sizes
    first_only = kind < first_frame_share
    interpolate = (kind >= first_frame_share) & (kind < first_frame_share + interpolation_share) & (t >= 3)
    # Continuation: prefix k in [1, t - 1]; image-to-video: k = 1.
    k = (uniform[:, 0] * (t - 1)).long().clamp(max=t - 2) + 1
    k = torch.where(first_only, torch.ones_like(k), k)
    # Interpolation: prefix a in [1, t - 2], suffix z in [1, t - 1 - a], so a + z <= t - 1.
    a = (uniform[:, 0] * (t - 2)).long().clamp(max=max(t - 3, 0)) + 1
    z = (uniform[:, 1] * (t - 1 - a)).long().clamp(min=0) + 1
    z = torch.minimum(z, t - 1 - a)
    prefix = frame < torch.where(interpolate, a, k)[:, None]
    suffix = interpolate[:, None] & (frame >= t - z[:, None])
    return given[:, None] & (prefix | suffix)


def training_mask(
    codes: Tensor,
    generator: torch.Generator,
    schedule_name: str,
    continuation_prob: float,
    *,
    first_frame_share: float = 0.0,
    interpolation_share: float = 0.0,
    context: Tensor | None = None,
) -> Tensor:
    """A training batch's mask ``(b, t, h, w)`` bool: schedule-drawn ratios, given frames never masked.

    Clips get given frames with ``continuation_prob`` (the patterns of ``given_frames``) and, with
    ``context`` ``(b,)``, always their first ``context`` latent frames: a story window's carried codes,
    for clips whose caption describes what follows them (token shards' ``context_frames``). At least
    one frame stays free; a clip left with nothing masked gets its first free frame masked.
    """
    b, t = codes.shape[:2]
    device = codes.device
    ratio = sample_mask_ratio(b, generator, schedule_name, device=device)
    mask = random_mask(codes.shape, ratio, generator).to(device)
    given = torch.zeros(b, t, dtype=torch.bool, device=device)
    if t > 1 and continuation_prob > 0:
        shares = dict(first_frame_share=first_frame_share, interpolation_share=interpolation_share)
        given = given_frames(b, t, generator, given_prob=continuation_prob, **shares).to(device)
    if context is not None:
        given |= torch.arange(t, device=device)[None, :] < context.to(device).clamp(max=t - 1)[:, None]
    mask = mask & ~given[:, :, None, None]
    empty = mask.flatten(1).sum(1) == 0
    free = (~given).int().argmax(dim=1)  # (b,) first frame that is not given (one always is)
    mask[empty, free[empty]] = True
    return mask
