"""Fréchet Video Distance: the Fréchet distance in float64 and I3D features from weights on disk.

The published protocol (Unterthiner et al., 2018, "Towards Accurate Generative Models of Video"):
16 frames per clip, each frame resized to 224 x 224 (bilinear), values in [-1, 1], features from an
Inception-v1 I3D trained on Kinetics-400 (its 400 logits), then the Fréchet distance between
Gaussians fitted to the features of real and generated clips. Numbers depend on N and on which real
clips are used, so both are written into every report.

tokgen never downloads weights. `load_i3d` reads a local file:

- a TorchScript file (``torch.jit.load``), e.g. the ``i3d_torchscript.pt`` used by StyleGAN-V, whose
  ``forward(x, rescale, resize, return_features)`` is called with ``return_features=True`` and no
  internal rescaling or resizing (we do both here, once), or any scripted ``forward(x) -> (b, d)``;
- a state dict (``torch.load(weights_only=True)``, never unpickled) in the layout of the common
  PyTorch port (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b0...``, ``logits.conv3d.weight``), loaded
  into `InceptionI3d` below; width and class count are read from the tensors' shapes.

Axis legend: b batch, c channels, t frames, h height, w width, d feature width.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

PROTOCOL_FRAMES = 16
PROTOCOL_SIZE = 224
EXPECTED_FILE = (
    "an I3D weights file: TorchScript (e.g. i3d_torchscript.pt, as used by StyleGAN-V) or a state dict "
    "of the PyTorch I3D port (e.g. rgb_imagenet.pt); tokgen downloads nothing, so put one on disk and pass its path"
)


# --- the Fréchet distance -------------------------------------------------------------------------


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of features ``(n, d)``, in float64."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features (n, d) with n >= 2 to fit a Gaussian, got shape {tuple(features.shape)}")
    x = features.detach().double().cpu()
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (len(x) - 1)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})`` between two Gaussians, in float64.

    ``tr((S1 S2)^{1/2})`` is computed as ``tr((A S2 A)^{1/2})`` with ``A = S1^{1/2}``: the two matrices
    are similar, and the second is symmetric positive semi-definite, so symmetric eigensolvers give it
    without the complex round-off of a general matrix square root.
    """
    mu1, mu2, sigma1, sigma2 = (x.detach().double().cpu() for x in (mu1, mu2, sigma1, sigma2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: shapes mu1 {tuple(mu1.shape)}, sigma1 {tuple(sigma1.shape)}, "
            f"mu2 {tuple(mu2.shape)}, sigma2 {tuple(sigma2.shape)} do not describe two Gaussians of one width"
        )
    values, vectors = torch.linalg.eigh((sigma1 + sigma1.T) / 2)
    root = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    inner = root @ sigma2 @ root
    trace_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt)


def frechet_distance_of_features(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features ``(n, d)`` and ``(m, d)``."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (n, d) and (m, d) of one width, got {tuple(a.shape)} and {tuple(b.shape)}")
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


# --- I3D (Inception-v1 inflated to 3-D, Carreira & Zisserman 2017) ---------------------------------


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (front, back) of one axis: the original I3D was trained with it."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    (pt, pt2), (ph, ph2), (pw, pw2) = (
        _same_padding(n, k, s) for n, k, s in zip(x.shape[2:], kernel, stride, strict=True)
    )
    return F.pad(x, (pw, pw2, ph, ph2, pt, pt2))  # zeros: inputs of every pool follow a ReLU (>= 0)


class Unit3D(nn.Module):
    """Conv3d ('SAME' padding) -> BatchNorm3d -> ReLU; the logits layer has a bias and neither of the rest."""

    def __init__(self, c_in: int, c_out: int, kernel: int | tuple = 1, stride: int | tuple = 1, *, logits=False):
        super().__init__()
        self.kernel = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
        self.stride = (stride,) * 3 if isinstance(stride, int) else tuple(stride)
        self.conv3d = nn.Conv3d(c_in, c_out, self.kernel, self.stride, bias=logits)
        self.bn = None if logits else nn.BatchNorm3d(c_out, eps=1e-3, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        return x if self.bn is None else F.relu(self.bn(x))


class MaxPoolSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | pool -> 1x1, concatenated on channels."""

    def __init__(self, c_in: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(c_in, widths[0])
        self.b1a, self.b1b = Unit3D(c_in, widths[1]), Unit3D(widths[1], widths[2], 3)
        self.b2a, self.b2b = Unit3D(c_in, widths[3]), Unit3D(widths[3], widths[4], 3)
        self.b3a, self.b3b = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(c_in, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x)))
        return torch.cat(branches, dim=1)


# Branch widths of each Inception block of I3D (at width 1).
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
_POOL_BEFORE = {"Mixed_3b": "MaxPool3d_3a_3x3", "Mixed_4b": "MaxPool3d_4a_3x3", "Mixed_5b": "MaxPool3d_5a_2x2"}
_POOLS = {
    "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)),
    "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2)),
}


class InceptionI3d(nn.Module):
    """I3D: video ``(b, 3, 16, 224, 224)`` in [-1, 1] -> logits ``(b, num_classes)`` (the FVD features).

    Args:
        num_classes: 400 for Kinetics-400.
        width: channel multiplier; 1 is the real network, smaller values make test stand-ins.
    """

    def __init__(self, num_classes: int = 400, width: float = 1.0) -> None:
        super().__init__()
        c = lambda n: max(1, round(n * width))  # noqa: E731
        self.Conv3d_1a_7x7 = Unit3D(3, c(64), 7, 2)
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(c(64), c(64))
        self.Conv3d_2c_3x3 = Unit3D(c(64), c(192), 3)
        channels = c(192)
        for name, widths in _MIXED.items():
            if name in _POOL_BEFORE:
                self.add_module(_POOL_BEFORE[name], MaxPoolSame(*_POOLS[_POOL_BEFORE[name]]))
            block = Mixed(channels, tuple(c(n) for n in widths))
            self.add_module(name, block)
            channels = block.out_channels
        self.logits = Unit3D(channels, num_classes, logits=True)

    def forward(self, x: Tensor) -> Tensor:
        for name, module in self.named_children():
            if name != "logits":
                x = module(x)
        # Average over the remaining (2, 7, 7) grid (the original's AvgPool3d at 224 px), then 1x1x1 logits.
        return self.logits(x.mean(dim=(2, 3, 4), keepdim=True)).flatten(1)

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], *, source: str = "state dict") -> InceptionI3d:
        """Build a network whose width and class count match ``state``'s shapes, and load it."""
        try:
            width = state["Conv3d_1a_7x7.conv3d.weight"].shape[0] / 64
            num_classes = state["logits.conv3d.weight"].shape[0]
        except KeyError as err:
            raise ValueError(f"{source} is not an I3D state dict: no {err} tensor; expected {EXPECTED_FILE}") from None
        model = cls(num_classes=num_classes, width=width)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{source} does not fit the I3D architecture: {err}") from None
        return model


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold compiled ``code/``; plain state dicts hold only ``data.pkl`` + tensors."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.endswith("constants.pkl") for name in archive.namelist())


def load_i3d(path: str | Path) -> nn.Module:
    """Load I3D from a local TorchScript or state-dict file, in eval mode, on the CPU.

    Raises:
        FileNotFoundError: no file at ``path`` (the message says which file is expected).
        ValueError: the file is neither TorchScript nor an I3D state dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"I3D weights not found at '{path}': expected {EXPECTED_FILE}")
    if _is_torchscript(path):
        return torch.jit.load(str(path), map_location="cpu").eval()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (torch raises several kinds for foreign files)
        raise ValueError(f"cannot read '{path}' as TorchScript or a weights-only state dict: {err}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"'{path}' holds no tensor dict; expected {EXPECTED_FILE}")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    return InceptionI3d.from_state_dict(state, source=f"'{path}'").eval()


def i3d_inputs(video: Tensor) -> Tensor:
    """The published protocol's input: the first 16 frames, each resized to 224 x 224 (bilinear), in [-1, 1].

    Args:
        video: ``(b, 3, t, h, w)`` float in [-1, 1] with ``t >= 16``.
    """
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"FVD expects video (b, 3, t, h, w) in [-1, 1], got shape {tuple(video.shape)}")
    b, _, t, _, _ = video.shape
    if t < PROTOCOL_FRAMES:
        raise ValueError(f"the FVD protocol uses {PROTOCOL_FRAMES} frames per clip; got clips of {t} frames")
    frames = rearrange(video[:, :, :PROTOCOL_FRAMES].float(), "b c t h w -> (b t) c h w")
    frames = F.interpolate(frames, size=(PROTOCOL_SIZE, PROTOCOL_SIZE), mode="bilinear", align_corners=False)
    return rearrange(frames.clamp(-1, 1), "(b t) c h w -> b c t h w", b=b)


@torch.no_grad()
def i3d_features(model: nn.Module, videos: Tensor, *, batch_size: int = 8) -> Tensor:
    """I3D features ``(n, d)`` float64 of ``videos`` ``(n, 3, t, h, w)`` in [-1, 1], by the protocol."""
    takes_flags = isinstance(model, torch.jit.ScriptModule) and "return_features" in {
        arg.name for arg in model.forward.schema.arguments
    }
    device = next(iter(model.parameters()), torch.empty(0)).device
    out = []
    for start in range(0, len(videos), batch_size):
        x = i3d_inputs(videos[start : start + batch_size]).to(device)
        y = model(x, rescale=False, resize=False, return_features=True) if takes_flags else model(x)
        if y.ndim != 2 or len(y) != len(x):
            raise ValueError(f"I3D must return features (b, d), got shape {tuple(y.shape)} for {len(x)} clips")
        out.append(y.double().cpu())
    return torch.cat(out)
