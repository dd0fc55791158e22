"""Patch discriminators for the tokenizer's optional adversarial loss (training only; used by lit.py).

Axis legend: b batch, c channels, t frames, h height, w width.
The frame discriminator judges each frame alone (detail); the clip discriminator judges short
spacetime volumes (motion). Both are PatchGAN-style: a map of logits, not one score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

KINDS = ("frames", "clips", "both")


def _stack(conv: type[nn.Module], channels: int, dim: int, layers: int) -> nn.Sequential:
    """Strided convs halving space each layer, GroupNorm + LeakyReLU, then a 1-channel logit map."""
    blocks: list[nn.Module] = []
    width = channels
    for i in range(layers):
        out = dim * 2**i
        blocks += [conv(width, out, 4, stride=2, padding=1)]
        if i > 0:
            blocks += [nn.GroupNorm(8 if out % 8 == 0 else 1, out)]
        blocks += [nn.LeakyReLU(0.2)]
        width = out
    blocks += [conv(width, 1, 3, padding=1)]
    return nn.Sequential(*blocks)


class Discriminator(nn.Module):
    """Frame and/or clip patch discriminator.

    Args:
        kind: ``"frames"``, ``"clips"`` or ``"both"``.
        channels: image channels.
        dim: width of the first conv layer (doubles per layer).
        layers: strided layers (each halves the spatial size).
    """

    def __init__(self, *, kind: str = "frames", channels: int = 3, dim: int = 64, layers: int = 3) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"discriminator kind must be one of {KINDS}, got {kind!r}")
        self.frames = _stack(nn.Conv2d, channels, dim, layers) if kind in ("frames", "both") else None
        self.clips = _stack(nn.Conv3d, channels, dim, layers) if kind in ("clips", "both") else None
        self.min_frames = 2**layers  # each strided 3-D layer halves time too

    def forward(self, video: torch.Tensor) -> list[torch.Tensor]:
        """``(b, c, t, h, w)`` -> a list of logit maps (one per discriminator)."""
        logits = []
        if self.frames is not None:
            logits.append(self.frames(rearrange(video, "b c t h w -> (b t) c h w")))
        if self.clips is not None:
            # Short clips (images, t=1) would vanish under the strided 3-D convs: repeat the last frame.
            short = self.min_frames - video.shape[2]
            if short > 0:
                video = torch.cat([video, video[:, :, -1:].expand(-1, -1, short, -1, -1)], 2)
            logits.append(self.clips(video))
        return logits


def hinge_discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Hinge loss for the discriminator (Lim & Ye 2017), summed over discriminators."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True))


def generator_adversarial_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """The generator's side of the hinge game: raise the discriminator's logits on reconstructions."""
    return sum(-f.mean() for f in fake)
