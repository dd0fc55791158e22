"""Perceptual loss from VGG16 features whose weights are a file on disk (training only; used by lit.py).

Nothing is downloaded: enabling the loss without the file is an error at start. The file is a
VGG16 ``features`` state dict in the torchvision key layout (``features.0.weight``, ...), saved as
``.safetensors`` (preferred) or as a tensors-only ``.pt``/``.pth`` (read with ``weights_only=True``).
The distance is the mean squared difference of channel-normalised activations after each of the
five blocks (relu1_2 ... relu5_3), as in LPIPS without its learned per-channel weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

# VGG16 convolution widths; "M" is a 2x2 max-pool. Features are taken before each pool.
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"perceptual loss is enabled (perceptual_weight > 0) but its weights file {str(path)!r} does not "
            "exist; save VGG16 `features` weights (torchvision key layout) there as .safetensors, or set "
            "model.train.perceptual_weight=0"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


class PerceptualLoss(nn.Module):
    """Frozen VGG16 feature distance between two videos ``(b, c, t, h, w)`` in [-1, 1].

    Args:
        weights: path of the VGG16 features state dict.
        max_frames: frames per clip compared (evenly spaced) to bound the cost on long clips.
    """

    def __init__(self, weights: str | Path, *, max_frames: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 3
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(width, v, 3, padding=1), nn.ReLU(inplace=False)]
                width = v
        self.features = nn.Sequential(*layers)
        state = {
            k.removeprefix("features."): v for k, v in _load_state(Path(weights)).items() if k.startswith("features.")
        }
        missing, unexpected = self.features.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{weights}: not a VGG16 features state dict (missing {missing[:4]}, unexpected {unexpected[:4]})"
            )
        self.features.requires_grad_(False).eval()
        self.max_frames = max_frames
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen: never switch to training behaviour
        return self

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        taps = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                taps.append(x)
            x = layer(x)
        return [*taps, x]

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = pred.shape[2]
        idx = torch.linspace(0, t - 1, min(t, self.max_frames)).round().long().to(pred.device)
        frames = lambda v: rearrange(v.index_select(2, idx), "b c t h w -> (b t) c h w")  # noqa: E731
        loss = pred.new_zeros(())
        for a, b in zip(self._taps(frames(pred)), self._taps(frames(target)), strict=True):
            loss = loss + (F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).sum(1).mean()
        return loss
