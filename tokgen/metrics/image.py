"""Reconstruction quality of videos: PSNR and SSIM, per clip.

Axis legend: b batch, c channels, t frames, h height, w width. Inputs are model-space videos
``(b, c, t, h, w)`` in ``[-1, 1]``; SSIM is computed per frame (2-D Gaussian window, the usual
image protocol) and averaged over frames.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torchmetrics.functional.image import structural_similarity_index_measure

DATA_RANGE = 2.0  # model space is [-1, 1]


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 5:
        raise ValueError(
            f"expected two videos of the same shape (b, c, t, h, w), got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per clip, ``(b,)``, for videos in [-1, 1]."""
    _check(pred, target)
    mse = (pred.float().clamp(-1, 1) - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(DATA_RANGE**2 / mse.clamp_min(1e-10))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per clip, ``(b,)``: the mean over frames of 2-D SSIM (11x11 Gaussian, sigma 1.5)."""
    _check(pred, target)
    b = pred.shape[0]
    frames = lambda x: rearrange(x.float().clamp(-1, 1), "b c t h w -> (b t) c h w")  # noqa: E731
    # fp32 even inside a caller's autocast (validation under bf16-mixed): its Gaussian filter is a
    # conv2d, which autocast would run in bf16; on mostly-black frames that turned 0.93 into ~0.80.
    with torch.autocast(pred.device.type, enabled=False):
        per_frame = structural_similarity_index_measure(
            frames(pred), frames(target), data_range=DATA_RANGE, reduction="none"
        )
    return rearrange(per_frame, "(b t) -> b t", b=b).mean(1)
