"""Moving Fashion-MNIST: real garment images bouncing around a black canvas, for offline development.

Like Moving MNIST, but with the 28 x 28 Fashion-MNIST garments: each clip shows one to three garments
moving in straight lines at constant speed and bouncing elastically off the canvas edges, drawn with
max-compositing so overlapping garments stay visible. The caption names the garments only
(``an ankle boot and a bag``): with bounces, no single direction is true for the whole clip.

The data is read from the idx files of the Debian package ``dataset-fashion-mnist`` (or any folder
holding the four files, gzipped or not), parsed here with gzip and numpy, once per dataset instance.

Axis legend: t frames, h height, w width, c channels (RGB). Positions are ``(x, y)`` of a garment's
top-left pixel, x to the right, y downwards.
"""

from __future__ import annotations

import colorsys
import dataclasses
import gzip
import os
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tokgen.io.convert import frames_to_tensor

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
# Label i of Fashion-MNIST is CLASS_NAMES[i] (the dataset's own order).
CLASS_NAMES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
PLURALS = {
    "T-shirt/top": "T-shirts/tops",
    "trouser": "trousers",
    "pullover": "pullovers",
    "dress": "dresses",
    "coat": "coats",
    "sandal": "sandals",
    "shirt": "shirts",
    "sneaker": "sneakers",
    "bag": "bags",
    "ankle boot": "ankle boots",
}
SPLITS: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # 0x0803 / 0x0801: unsigned bytes, 3 / 1 dimensions
MAX_OBJECTS = 3
REFERENCE_RESOLUTION = 64  # garment_size and speed_range are pixels at 64 x 64
_COUNT_WORDS = {2: "two", 3: "three"}


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """Read an idx file of unsigned bytes (gzipped when the name ends in ``.gz``) as a read-only array.

    The header is a big-endian uint32 magic number (``0x08`` type, then the number of dimensions),
    followed by one big-endian uint32 per dimension; the payload is the bytes, row-major.

    Raises:
        ValueError: naming ``path`` when it is not valid gzip, or the magic number or size is wrong.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        # A truncated download ends the gzip stream early (EOFError) rather than failing the header check.
        raise ValueError(f"{path}: not a readable gzip file ({err}); re-download or reinstall it") from err
    ndim = magic & 0xFF
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than the {header}-byte idx header")
    found, *dims = (int(v) for v in np.frombuffer(data, dtype=">u4", count=1 + ndim))
    if found != magic:
        raise ValueError(f"{path}: idx magic number {found}, expected {magic} (ubyte, {ndim} dimensions)")
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(
            f"{path}: {len(data)} bytes, expected {expected} for an idx file of shape {tuple(dims)} "
            "(truncated or corrupt)"
        )
    # A view of the decompressed bytes, no copy; read-only, which suits arrays shared by loader workers.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def find_split_files(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """Paths of the images and labels idx files of ``split`` under ``root`` (``.gz`` preferred).

    Raises:
        ValueError: for an unknown split.
        FileNotFoundError: naming the missing folder or file and how to get it.
    """
    if split not in SPLITS:
        raise ValueError(f"MovingFashionMNIST: split must be one of {list(SPLITS)}, got {split!r}")
    root = Path(root)
    hint = (
        f"on Debian/Ubuntu `apt-get install dataset-fashion-mnist` provides them in {DEFAULT_ROOT}, "
        "or pass root= a folder holding the Fashion-MNIST idx files"
    )
    if not root.is_dir():
        raise FileNotFoundError(f"MovingFashionMNIST: no Fashion-MNIST folder at '{root}': {hint}")
    paths = []
    for name in SPLITS[split]:
        candidates = [root / f"{name}.gz", root / name]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"MovingFashionMNIST: missing '{candidates[0]}' ({split} split): {hint}")
        paths.append(found)
    return paths[0], paths[1]


def load_split(root: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, h, w)`` uint8 and labels ``(n,)`` uint8 of one Fashion-MNIST split.

    Raises:
        FileNotFoundError: when a file is missing (see :func:`find_split_files`).
        ValueError: naming the file when it is malformed or the two files do not match.
    """
    images_path, labels_path = find_split_files(root, split)
    images, labels = read_idx(images_path, IMAGE_MAGIC), read_idx(labels_path, LABEL_MAGIC)
    if len(images) == 0:
        raise ValueError(f"{images_path}: holds no images")
    if len(images) != len(labels):
        raise ValueError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
    if labels.max() >= len(CLASS_NAMES):
        raise ValueError(f"{labels_path}: label {labels.max()} outside 0..{len(CLASS_NAMES) - 1}")
    return images, labels


def bounce(start: np.ndarray, velocity: np.ndarray, num_frames: int, span: float) -> np.ndarray:
    """Positions ``(t, 2)`` moving from ``start`` at ``velocity`` per frame, reflected off 0 and ``span``.

    Folding the free straight-line path into ``[0, span]`` (a triangle wave of period ``2 span``) is an
    exact elastic bounce, however many walls a fast object hits between two frames.
    """
    free = np.asarray(start, dtype=np.float64) + np.arange(num_frames)[:, None] * np.asarray(velocity)
    if span <= 0:
        return np.zeros_like(free)
    folded = np.mod(free, 2 * span)
    return np.where(folded > span, 2 * span - folded, folded)


def format_caption(labels: Sequence[int]) -> str:
    """``an ankle boot and a bag``; repeated classes are counted: ``two sneakers and a bag``."""
    parts = []
    for label, count in Counter(int(v) for v in labels).items():  # first-appearance order
        name = CLASS_NAMES[label]
        if count == 1:
            parts.append(f"{'an' if name[0] in 'aeiou' else 'a'} {name}")
        else:
            parts.append(f"{_COUNT_WORDS[count]} {PLURALS[name]}")
    return " and ".join(parts)


@dataclass
class MovingFashionMNISTConfig:
    """How Moving Fashion-MNIST clips are sampled. Sizes and speeds are pixels at 64 x 64.

    Args:
        resolution: square frame side in pixels.
        num_frames: frames per clip.
        num_objects: garments per clip, 1 to 3.
        garment_size: garment side at 64 x 64 (28 is the native size; scaled with ``resolution``).
        speed_range: speed range in px/frame; the direction is uniform over all angles.
        colorize: tint each garment with a random bright color instead of plain gray.
    """

    resolution: int = 64
    num_frames: int = 17
    num_objects: int = 1
    garment_size: float = 28.0
    speed_range: tuple[float, float] = (1.0, 3.0)
    colorize: bool = False

    def __post_init__(self) -> None:
        # Hydra hands sequences over as ListConfig; keep plain tuples.
        self.speed_range = (float(self.speed_range[0]), float(self.speed_range[1]))
        if self.resolution < 8 or self.num_frames < 1:
            raise ValueError(
                f"MovingFashionMNISTConfig: need resolution >= 8 and num_frames >= 1, got "
                f"{self.resolution}, {self.num_frames}"
            )
        if not 1 <= self.num_objects <= MAX_OBJECTS:
            raise ValueError(f"MovingFashionMNISTConfig: num_objects must be in [1, 3], got {self.num_objects}")
        if not 0 < self.garment_size <= REFERENCE_RESOLUTION or self.size < 1:
            raise ValueError(
                f"MovingFashionMNISTConfig: garment_size must be in (0, 64] px at 64 x 64 and at least 1 px "
                f"at resolution {self.resolution}, got {self.garment_size}"
            )
        if not 0.0 <= self.speed_range[0] <= self.speed_range[1]:
            raise ValueError(
                f"MovingFashionMNISTConfig: speed_range must satisfy 0 <= low <= high, got {self.speed_range}"
            )

    @property
    def scale(self) -> float:
        """Pixels at this resolution per pixel at 64 x 64."""
        return self.resolution / REFERENCE_RESOLUTION

    @property
    def size(self) -> int:
        """Garment side in pixels at this resolution (never more than the canvas)."""
        return min(round(self.garment_size * self.scale), self.resolution)


@dataclass
class Clip:
    """The random choices behind one clip.

    Args:
        indices: garment indices into the split, ``(objects,)``.
        positions: integer top-left ``(x, y)`` of every garment in every frame, ``(objects, t, 2)``,
            each in ``[0, resolution - size]``.
        colors: RGB tint per garment in ``[0, 1]``, ``(objects, 3)``; white when not colorized.
    """

    indices: np.ndarray
    positions: np.ndarray
    colors: np.ndarray


def sample_clip(rng: np.random.Generator, config: MovingFashionMNISTConfig, num_images: int) -> Clip:
    """Draw garments, start positions, velocities and (when colorizing) tints for one clip."""
    n = config.num_objects
    span = config.resolution - config.size
    indices = rng.integers(0, num_images, size=n)
    starts = rng.uniform(0.0, span, size=(n, 2))
    speeds = rng.uniform(*config.speed_range, size=n) * config.scale
    angles = rng.uniform(0.0, 2 * np.pi, size=n)
    velocities = speeds[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    paths = np.stack([bounce(s, v, config.num_frames, span) for s, v in zip(starts, velocities, strict=True)])
    # Rounding a point of [0, span] with integer span stays in [0, span]: garments never leave the canvas.
    positions = np.rint(paths).astype(np.int64)
    colors = np.ones((n, 3))
    if config.colorize:
        # Drawn last, so colorize on/off shows the same garments on the same paths.
        hues, saturations = rng.uniform(size=n), rng.uniform(0.6, 1.0, size=n)
        colors = np.array([colorsys.hsv_to_rgb(h, s, 1.0) for h, s in zip(hues, saturations, strict=True)])
    return Clip(indices, positions, colors)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """A square uint8 image resized to ``size x size`` (antialiased when shrinking)."""
    if image.shape == (size, size):
        return image
    x = torch.from_numpy(image.astype(np.float32))[None, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def render(clip: Clip, images: np.ndarray, config: MovingFashionMNISTConfig) -> np.ndarray:
    """Draw ``clip`` as uint8 frames ``(t, h, w, 3)``: garments on black, max-composited."""
    res, size = config.resolution, config.size
    frames = np.zeros((config.num_frames, res, res, 3), dtype=np.uint8)
    for index, path, color in zip(clip.indices, clip.positions, clip.colors, strict=True):
        gray = _resize(np.asarray(images[index]), size).astype(np.float64)
        sprite = np.rint(gray[..., None] * color).astype(np.uint8)  # (h, w, c)
        for frame, (x, y) in zip(frames, path, strict=True):
            region = frame[y : y + size, x : x + size]
            # Max, not overwrite: a garment's black background must not hide the garment beneath it.
            np.maximum(region, sprite, out=region)
    return frames


class MovingFashionMNIST(Dataset):
    """Captioned Moving Fashion-MNIST clips; item ``i`` depends on ``(seed, i)`` only (given the split).

    Items are ``{"video": (3, t, h, w) float in [-1, 1], "caption": str, "skipped": 0}``. The split is
    read on first use, once per instance (each loader worker that forks before then reads its own).

    Args:
        length: number of items.
        seed: dataset seed (>= 0).
        config: sampling config; ``MovingFashionMNISTConfig()`` when None.
        split: ``"train"`` (60,000 garments) or ``"test"`` (10,000): hold out garments for validation.
        root: folder with the Fashion-MNIST idx files.
        **overrides: ``MovingFashionMNISTConfig`` fields, so Hydra can pass plain keywords
            (``MovingFashionMNIST(length=64, split="test", num_objects=2)``).

    Raises:
        FileNotFoundError: when ``root`` or one of the split's files is missing.
    """

    def __init__(
        self,
        length: int = 1000,
        seed: int = 0,
        config: MovingFashionMNISTConfig | None = None,
        *,
        split: str = "train",
        root: str | os.PathLike = DEFAULT_ROOT,
        **overrides: Any,
    ) -> None:
        if length < 0 or seed < 0:
            raise ValueError(f"MovingFashionMNIST: need length >= 0 and seed >= 0, got {length}, {seed}")
        fields = {f.name for f in dataclasses.fields(MovingFashionMNISTConfig)}
        if unknown := sorted(set(overrides) - fields):
            raise TypeError(
                f"unknown MovingFashionMNIST arguments {unknown}; MovingFashionMNISTConfig has {sorted(fields)}"
            )
        self.length, self.seed, self.split, self.root = length, seed, split, Path(root)
        self.config = dataclasses.replace(config or MovingFashionMNISTConfig(), **overrides)
        find_split_files(self.root, split)  # fail now on a missing file, not in a loader worker later
        self._data: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    @property
    def images(self) -> np.ndarray:
        """Garments of the split, ``(n, 28, 28)`` uint8 (read on first use)."""
        return self._load()[0]

    @property
    def labels(self) -> np.ndarray:
        """Class index of each garment, ``(n,)`` uint8; names in ``CLASS_NAMES``."""
        return self._load()[1]

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        if self._data is None:
            self._data = load_split(self.root, self.split)
        return self._data

    def clip(self, index: int) -> Clip:
        """The random choices behind item ``index``."""
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for MovingFashionMNIST of length {self.length}")
        rng = np.random.default_rng([self.seed, index % self.length])
        return sample_clip(rng, self.config, len(self.images))

    def frames(self, index: int) -> np.ndarray:
        """Item ``index`` as uint8 frames ``(t, h, w, 3)``."""
        return render(self.clip(index), self.images, self.config)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        clip = self.clip(index)
        return {
            "video": frames_to_tensor(render(clip, self.images, self.config))[0],
            "caption": format_caption(self.labels[clip.indices]),
            "skipped": 0,
        }
