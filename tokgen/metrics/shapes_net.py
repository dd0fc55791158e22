"""ShapesNet: a small 3D-CNN that classifies Shapes clips, the feature space of Shapes-FVD and Shapes-IS.

Published FVD needs I3D (Kinetics weights, 224 x 224 upscaling of 64 px cartoons) and barely reacts
to temporal corruption. Shapes clips have exact labels (color, shape, motion), so a network trained
on them in-repo gives an offline, reproducible feature space that must see motion to classify it:

- **Shapes-FVD**: the Fréchet distance between Gaussians fitted to its penultimate features.
- **Shapes-IS**: the Inception Score of its class probabilities.

Both are *not comparable to published FVD / IS numbers*: a different network, data and scale.

The network reads single-object clips of ``num_frames`` frames; any resolution is resized to its
own ``resolution`` (area averaging, as a camera would), so 64 px clips and 16 px clips share it.

Axis legend: b batch, c channels, t frames, h height, w width, d feature width.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from tokgen.data.shapes import COLORS, MOTIONS, SHAPES, Scene
from tokgen.dataclass_dict import from_fields
from tokgen.io.checkpoint import load_pretrained, save_pretrained

KIND = "shapes_net"
HEADS: dict[str, tuple[str, ...]] = {"color": tuple(COLORS), "shape": SHAPES, "motion": MOTIONS}
NOT_COMPARABLE = "in-repo ShapesNet features: not comparable to published FVD / IS numbers"


def default_weights() -> Path:
    """The trained network shipped in the package: ``tokgen/metrics/weights/shapes_net``."""
    return Path(str(files("tokgen.metrics") / "weights" / "shapes_net"))


@dataclass
class ShapesNetConfig:
    """Architecture of the classifier.

    Args:
        resolution: clips are resized to ``resolution x resolution`` before the first layer.
        num_frames: clip length it is trained on (the Shapes-FVD protocol's clip length).
        widths: channels of the four 3x3x3 conv stages.
        feature_dim: width of the penultimate layer (the Shapes-FVD feature space); small, so the
            covariance of a few hundred clips is well estimated.
    """

    resolution: int = 32
    num_frames: int = 17
    widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    feature_dim: int = 64

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)  # JSON gives lists
        if self.resolution < 8 or self.num_frames < 1 or self.feature_dim < 1:
            raise ValueError(f"ShapesNetConfig needs resolution >= 8, num_frames >= 1, feature_dim >= 1: {self}")
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ValueError(f"ShapesNetConfig.widths must be four positive ints, got {self.widths}")

    @classmethod
    def from_dict(cls, data: dict) -> ShapesNetConfig:
        """Build from a plain dict; unknown keys are an error naming the known fields."""
        return from_fields(cls, data)


@dataclass(frozen=True)
class ShapesNetOutput:
    """``features`` ``(b, d)`` (penultimate layer) and ``logits`` per head of ``HEADS``: ``"color"``
    ``(b, 8)``, ``"shape"`` ``(b, 3)``, ``"motion"`` ``(b, 5)``, classes in the order of ``HEADS``."""

    features: Tensor
    logits: dict[str, Tensor]


def _stage(c_in: int, c_out: int, stride: tuple[int, int, int]) -> nn.Sequential:
    # GroupNorm, not BatchNorm: features of a clip must not depend on the rest of its batch.
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(min(8, c_out), c_out), nn.SiLU()
    )


class ShapesNet(nn.Module):
    """Video ``(b, 3, t, h, w)`` in [-1, 1] -> `ShapesNetOutput`.

    The first stage keeps every frame (stride 1 in time): at 32 px an object moves ~1 px per frame,
    and the direction must be read before time is subsampled.
    """

    def __init__(self, config: ShapesNetConfig) -> None:
        super().__init__()
        self.config = config
        w1, w2, w3, w4 = config.widths
        self.stages = nn.Sequential(
            _stage(3, w1, (1, 2, 2)),
            _stage(w1, w2, (2, 2, 2)),
            _stage(w2, w3, (2, 2, 2)),
            _stage(w3, w4, (2, 2, 2)),
        )
        self.to_features = nn.Sequential(nn.Linear(w4, config.feature_dim), nn.SiLU())
        self.heads = nn.ModuleDict({name: nn.Linear(config.feature_dim, len(c)) for name, c in HEADS.items()})

    def prepare(self, video: Tensor) -> Tensor:
        """Check ``(b, 3, t, h, w)`` and resize frames to ``config.resolution`` (area average / bilinear)."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"ShapesNet expects video (b, 3, t, h, w) in [-1, 1], got shape {tuple(video.shape)}")
        b, _, t, h, w = video.shape
        res = self.config.resolution
        if (h, w) == (res, res):
            return video.float()
        frames = rearrange(video.float(), "b c t h w -> (b t) c h w")
        frames = F.interpolate(frames, size=(res, res), mode="bilinear", antialias=h > res or w > res)
        return rearrange(frames, "(b t) c h w -> b c t h w", b=b, t=t)

    def forward(self, video: Tensor) -> ShapesNetOutput:
        x = self.stages(self.prepare(video))  # (b, w4, t', h', w')
        features = self.to_features(x.mean(dim=(2, 3, 4)))  # global average: (b, d)
        return ShapesNetOutput(features, {name: head(features) for name, head in self.heads.items()})

    def save_pretrained(self, directory: str | Path, *, training: dict, overwrite: bool = False) -> Path:
        """Write ``config.json`` (architecture + how it was trained) and ``model.safetensors``."""
        config = {"net": asdict(self.config), "training": training}
        return save_pretrained(directory, config, self.state_dict(), kind=KIND, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None) -> ShapesNet:
        """Load a trained network (default: the one shipped with tokgen), in eval mode.

        Raises:
            FileNotFoundError: the folder or its files are missing; retrain with
                ``python tools/train_shapes_net.py``.
        """
        directory = default_weights() if directory is None else Path(directory)
        try:
            config, state = load_pretrained(directory, kind=KIND)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err}. The Shapes-FVD network ships in tokgen/metrics/weights/shapes_net; "
                "rebuild it with `python tools/train_shapes_net.py`"
            ) from None
        net = cls(ShapesNetConfig.from_dict(config["net"]))
        net.load_state_dict(state)
        net.training_record = config.get("training", {})
        return net.eval()


def scene_labels(scene: Scene) -> tuple[int, int, int]:
    """Class indices ``(color, shape, motion)`` of a single-object scene (segment 0)."""
    if len(scene.objects) != 1:
        raise ValueError(f"ShapesNet labels single-object scenes, got {len(scene.objects)} objects")
    obj = scene.objects[0]
    return HEADS["color"].index(obj.color), HEADS["shape"].index(obj.shape), HEADS["motion"].index(obj.motions[0])


@torch.no_grad()
def shapes_net_outputs(net: ShapesNet, videos: Tensor, *, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Features ``(n, d)`` float64 and joint class probabilities ``(n, 8 * 3 * 5)`` of ``videos`` ``(n, 3, t, h, w)``.

    The joint distribution is the product of the three heads' softmaxes (the heads are trained as
    independent classifiers), flattened colour-major.
    """
    features, joint = [], []
    for start in range(0, len(videos), batch_size):
        out = net(videos[start : start + batch_size])
        p_color, p_shape, p_motion = (out.logits[name].softmax(-1) for name in HEADS)
        product = torch.einsum("bi,bj,bk->bijk", p_color, p_shape, p_motion)
        features.append(out.features.double())
        joint.append(product.flatten(1).double())
    return torch.cat(features), torch.cat(joint)


def inception_score(probs: Tensor) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))`` of class probabilities ``(n, k)``; in ``[1, k]``.

    High when every clip is classified confidently and the classes are spread evenly.
    """
    if probs.ndim != 2 or len(probs) < 1:
        raise ValueError(f"inception_score expects probabilities (n, k) with n >= 1, got {tuple(probs.shape)}")
    p = probs.double().clamp_min(1e-12)
    marginal = p.mean(0, keepdim=True)
    kl = (p * (p.log() - marginal.log())).sum(1)
    return math.exp(kl.mean().item())
