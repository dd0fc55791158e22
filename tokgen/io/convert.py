"""The two conversions between the IO boundary and the model.

Axis legend: b batch, c channels (3, RGB), t frames, h height, w width.

- IO boundary: ``uint8`` numpy ``(t, h, w, c)``, what PyAV decodes and encodes.
- Model: float tensor ``(b, c, t, h, w)`` in ``[-1, 1]``.

Every module converts with these two functions and nothing else, so value ranges never mix.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange


def frames_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames ``(t, h, w, c)`` (or a batch ``(b, t, h, w, c)``) -> float ``(b, c, t, h, w)`` in [-1, 1]."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.dtype != torch.uint8:
        raise TypeError(f"frames_to_tensor expects uint8 frames, got dtype {x.dtype}")
    if x.ndim == 4:
        x = x.unsqueeze(0)
    if x.ndim != 5 or x.shape[-1] != 3:
        raise ValueError(f"frames_to_tensor expects (t, h, w, 3) or (b, t, h, w, 3) uint8, got shape {tuple(x.shape)}")
    x = rearrange(x, "b t h w c -> b c t h w").float()
    return x / 127.5 - 1.0


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """float ``(b, c, t, h, w)`` or ``(c, t, h, w)`` in [-1, 1] -> uint8 ``(b, t, h, w, c)`` or ``(t, h, w, c)``.

    Values outside [-1, 1] are clipped (decoders overshoot slightly); rounding is to nearest; NaN or Inf
    (a broken model) is a ``ValueError``.
    """
    if video.ndim not in (4, 5) or video.shape[-4] != 3:
        raise ValueError(f"tensor_to_frames expects (b, 3, t, h, w) or (3, t, h, w), got shape {tuple(video.shape)}")
    if not bool(torch.isfinite(video).all()):  # clamp and uint8 would turn NaN into black pixels silently
        raise ValueError(f"tensor_to_frames: the video {tuple(video.shape)} holds NaN or Inf values")
    x = ((video.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    pattern = "b c t h w -> b t h w c" if x.ndim == 5 else "c t h w -> t h w c"
    return rearrange(x, pattern).numpy()
