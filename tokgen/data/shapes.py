"""Shapes: the synthetic captioned video set, the project's offline default dataset.

Each clip shows flat-colored shapes (circle, square, triangle) on black, each moving in a straight
line at constant speed or staying still, captioned ``a red circle moves right``. Start positions are
chosen so that the whole path stays inside the canvas: a caption is true for every frame.

Axis legend: t frames, h height, w width, c channels (RGB). Positions are ``(x, y)`` in pixels, x to
the right, y downwards; pixel (row i, column j) has its centre at ``(j + 0.5, i + 0.5)`` and belongs to
a shape when that centre does, so sub-pixel positions round the same way in every frame.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from tokgen.io.convert import frames_to_tensor

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 200, 0),
    "blue": (40, 80, 255),
    "yellow": (255, 230, 0),
    "cyan": (0, 230, 230),
    "magenta": (230, 0, 230),
    "white": (255, 255, 255),
    "orange": (255, 140, 0),
}
SHAPES = ("circle", "square", "triangle")
STILL = "stays still"
# Unit direction of each motion in image coordinates (y grows downwards).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "moves left": (-1.0, 0.0),
    "moves right": (1.0, 0.0),
    "moves up": (0.0, -1.0),
    "moves down": (0.0, 1.0),
    STILL: (0.0, 0.0),
}
MOTIONS = tuple(DIRECTIONS)
# Alternative wordings per motion, canonical first. None contains " and ", which joins objects.
PHRASINGS: dict[str, tuple[str, ...]] = {
    "moves left": ("moves left", "is moving to the left", "slides left", "heads left", "travels left"),
    "moves right": ("moves right", "is moving to the right", "slides right", "heads right", "travels right"),
    "moves up": ("moves up", "is moving up", "slides up", "heads upwards", "travels up"),
    "moves down": ("moves down", "is moving down", "slides down", "heads downwards", "travels down"),
    STILL: (STILL, "is not moving", "does not move", "stays in place", "remains still"),
}
REFERENCE_RESOLUTION = 64  # sizes and speeds in ShapesConfig are pixels at 64 x 64
_MOTION_OF_PHRASE = {phrase: motion for motion, phrases in PHRASINGS.items() for phrase in phrases}
_MAX_DRAWS = 100  # scene redraws before settling for the least occluded one
_PART = re.compile(r"^(?:a|an|the)\s+(\w+)\s+(\w+)\s+(.+)$")


class CaptionPart(NamedTuple):
    """One object of a caption: ``("red", "circle", "moves right")``."""

    color: str
    shape: str
    motion: str


def format_caption(parts: Sequence[tuple[str, str, str]], rng: np.random.Generator | None = None) -> str:
    """Caption of ``(color, shape, motion)`` parts: canonical, or a random phrasing per part given ``rng``."""
    texts = []
    for color, shape, motion in parts:
        phrase = motion if rng is None else str(rng.choice(PHRASINGS[motion]))
        article = "an" if color[0] in "aeiou" else "a"
        texts.append(f"{article} {color} {shape} {phrase}")
    return " and ".join(texts)


def parse_caption(text: str) -> list[CaptionPart]:
    """Parse ``a red circle moves right and the blue square stays still`` (any phrasing) into parts.

    Raises:
        ValueError: when a part is not ``a|an|the <color> <shape> <motion>`` of the Shapes grammar.
    """
    parts = []
    for chunk in text.strip().lower().rstrip(".").split(" and "):
        match = _PART.match(" ".join(chunk.split()))
        if not match or match[1] not in COLORS or match[2] not in SHAPES or match[3] not in _MOTION_OF_PHRASE:
            raise ValueError(
                f"cannot parse {chunk!r} in caption {text!r}: expected 'a|the <color> <shape> <motion>' with "
                f"color in {list(COLORS)}, shape in {list(SHAPES)}, motion in {list(MOTIONS)} (or a phrasing)"
            )
        parts.append(CaptionPart(match[1], match[2], _MOTION_OF_PHRASE[match[3]]))
    return parts


def _offsets(motions: Sequence[str], speed: float, num_frames: int, change_at: int | None) -> np.ndarray:
    """Displacement from the start, ``(t, 2)``: segment 0 moves until ``change_at``, segment 1 after."""
    t = np.arange(num_frames, dtype=np.float64)
    steps = [t] if change_at is None else [np.minimum(t, change_at), np.maximum(t - change_at, 0.0)]
    offsets = np.zeros((num_frames, 2))
    for n, motion in zip(steps, motions, strict=True):
        offsets += np.outer(n, DIRECTIONS[motion]) * speed
    return offsets


@dataclass(frozen=True)
class ObjectSpec:
    """One shape in a scene, in pixels of the scene's canvas.

    Args:
        color: a key of ``COLORS``.
        shape: one of ``SHAPES``.
        size: circle diameter, square side, triangle base and height (pointing up).
        start: centre ``(x, y)`` at frame 0.
        motions: one motion per segment of the scene.
        speed: pixels per frame while moving.
    """

    color: str
    shape: str
    size: float
    start: tuple[float, float]
    motions: tuple[str, ...]
    speed: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", (float(self.start[0]), float(self.start[1])))
        object.__setattr__(self, "motions", tuple(self.motions))
        if self.color not in COLORS or self.shape not in SHAPES:
            raise ValueError(f"unknown color/shape {self.color}/{self.shape}: use {list(COLORS)} / {SHAPES}")
        if bad := [m for m in self.motions if m not in DIRECTIONS]:
            raise ValueError(f"unknown motions {bad}: use {list(MOTIONS)}")
        if self.size <= 0 or self.speed < 0:
            raise ValueError(f"size must be > 0 and speed >= 0, got size={self.size}, speed={self.speed}")


@dataclass(frozen=True)
class Scene:
    """A clip description: objects (drawn in order, later on top) over ``num_frames`` frames.

    With ``change_at`` every object switches from ``motions[0]`` to ``motions[1]`` at that frame: frames
    ``[0, change_at]`` show segment 0, frames ``[change_at, num_frames)`` segment 1.

    Raises:
        ValueError: when an object would leave the canvas, which would make its caption false.
    """

    objects: tuple[ObjectSpec, ...]
    resolution: int
    num_frames: int
    change_at: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        if self.num_frames < 1 or self.resolution < 1:
            raise ValueError(f"need num_frames, resolution >= 1, got {self.num_frames}, {self.resolution}")
        if self.change_at is not None and not 1 <= self.change_at <= self.num_frames - 2:
            raise ValueError(f"change_at must be in [1, num_frames - 2], got {self.change_at}")
        if bad := [o for o in self.objects if len(o.motions) != self.num_segments]:
            raise ValueError(f"objects need {self.num_segments} motion(s), one per segment: {bad}")
        for obj, path in zip(self.objects, self.paths(), strict=True):
            half = obj.size / 2
            if path.min() - half < -1e-6 or path.max() + half > self.resolution + 1e-6:
                raise ValueError(f"{obj} leaves the {self.resolution} px canvas within the clip")

    @property
    def num_segments(self) -> int:
        """1, or 2 when the motion changes at ``change_at``."""
        return 1 if self.change_at is None else 2

    def paths(self) -> np.ndarray:
        """Centre of every object in every frame, ``(objects, t, 2)`` as ``(x, y)``."""
        paths = [
            np.asarray(o.start) + _offsets(o.motions, o.speed, self.num_frames, self.change_at) for o in self.objects
        ]
        return np.stack(paths) if paths else np.zeros((0, self.num_frames, 2))


def caption(scene: Scene, segment: int = 0, rng: np.random.Generator | None = None) -> str:
    """Caption of one segment of ``scene``; canonical unless ``rng`` draws phrasings."""
    return format_caption([(o.color, o.shape, o.motions[segment]) for o in scene.objects], rng)


def continue_scene(scene: Scene, motions: Sequence[str], num_frames: int | None = None) -> Scene:
    """A one-segment scene whose objects start where ``scene`` ends (its last frame) with new ``motions``.

    Raises:
        ValueError: when ``motions`` is not one per object, or an object would leave the canvas.
    """
    if len(motions) != len(scene.objects):
        raise ValueError(f"need one motion per object ({len(scene.objects)}), got {list(motions)}")
    ends = scene.paths()[:, -1]
    objects = [
        dataclasses.replace(o, start=(float(x), float(y)), motions=(m,))
        for o, (x, y), m in zip(scene.objects, ends, motions, strict=True)
    ]
    return Scene(tuple(objects), scene.resolution, num_frames or scene.num_frames)


def render(scene: Scene) -> np.ndarray:
    """Draw ``scene`` as uint8 frames ``(t, h, w, 3)``: exact palette colors on black, no anti-aliasing."""
    res, num_frames = scene.resolution, scene.num_frames
    frames = np.zeros((num_frames, res, res, 3), dtype=np.uint8)
    centres = np.arange(res) + 0.5
    x, y = centres[None, None, :], centres[None, :, None]  # broadcast to (t, h, w)
    for obj, path in zip(scene.objects, scene.paths(), strict=True):
        dx, dy = x - path[:, 0, None, None], y - path[:, 1, None, None]
        r = obj.size / 2
        if obj.shape == "circle":
            mask = dx**2 + dy**2 <= r**2
        elif obj.shape == "square":
            # Half-open on both axes so a side of s pixels always covers floor(s) or ceil(s) pixels.
            mask = (dx >= -r) & (dx < r) & (dy >= -r) & (dy < r)
        else:
            # Apex at the top centre, base at the bottom: half-width grows by 1/2 px per px down.
            mask = (dy >= -r) & (dy < r) & (np.abs(dx) <= (dy + r) / 2)
        frames[mask] = COLORS[obj.color]  # later objects overwrite earlier ones
    return frames


@dataclass
class ShapesConfig:
    """How Shapes clips are sampled. Sizes and speeds are pixels at 64 x 64, scaled with ``resolution``.

    Args:
        resolution: square frame side in pixels.
        num_frames: frames per clip (1 gives still images, whose objects all "stay still").
        num_objects: objects per clip, all of different colors.
        size_range: object size range (diameter / side / base).
        speed_range: speed range in px/frame; at least 1.5 so motion is unmistakable.
        change_at: frame at which every object switches to a new, different motion (continuation).
        still_prob: probability that an object (segment) "stays still".
        phrasings: draw one of several phrasings per object instead of the canonical caption.
    """

    resolution: int = 64
    num_frames: int = 17
    num_objects: int = 1
    size_range: tuple[float, float] = (12.0, 20.0)
    speed_range: tuple[float, float] = (1.5, 2.5)
    change_at: int | None = None
    still_prob: float = 0.2
    phrasings: bool = False

    def __post_init__(self) -> None:
        # Hydra hands sequences over as ListConfig; keep plain tuples.
        self.size_range = (float(self.size_range[0]), float(self.size_range[1]))
        self.speed_range = (float(self.speed_range[0]), float(self.speed_range[1]))
        if self.resolution < 16 or self.num_frames < 1:
            raise ValueError(f"need resolution >= 16, num_frames >= 1; got {self.resolution}, {self.num_frames}")
        if not 1 <= self.num_objects <= len(COLORS):
            raise ValueError(f"num_objects must be in [1, {len(COLORS)}] (one color each): {self.num_objects}")
        if not 0 < self.size_range[0] <= self.size_range[1]:
            raise ValueError(f"size_range must satisfy 0 < low <= high, got {self.size_range}")
        if not 1.5 <= self.speed_range[0] <= self.speed_range[1]:
            raise ValueError(f"speed_range must satisfy 1.5 <= low <= high, got {self.speed_range}")
        if self.change_at is not None and not 1 <= self.change_at <= self.num_frames - 2:
            raise ValueError(f"change_at must be None or in [1, num_frames - 2], got {self.change_at}")
        if not 0.0 <= self.still_prob <= 1.0:
            raise ValueError(f"still_prob must be in [0, 1], got {self.still_prob}")
        # Worst case on one axis: the fastest, largest object moving the whole clip one way.
        extent = self.size_range[1] + (self.num_frames - 1) * self.speed_range[1]
        if extent * self.scale > self.resolution:
            raise ValueError(
                f"the largest object ({self.size_range[1]} px) moving {self.num_frames - 1} frames at "
                f"{self.speed_range[1]} px/frame spans {extent:g} px at 64 x 64, more than the canvas: lower "
                "num_frames, size_range or speed_range"
            )

    @property
    def scale(self) -> float:
        """Pixels at this resolution per pixel at 64 x 64."""
        return self.resolution / REFERENCE_RESOLUTION


def _sample_motions(rng: np.random.Generator, config: ShapesConfig) -> tuple[str, ...]:
    if config.num_frames == 1:
        return (STILL,)  # a single frame shows no motion, so only "stays still" is true
    moving = [m for m in MOTIONS if m != STILL]
    first = STILL if rng.random() < config.still_prob else str(rng.choice(moving))
    if config.change_at is None:
        return (first,)
    # The second motion always differs from the first, so the continuation prompt means something.
    if first != STILL and rng.random() < config.still_prob:
        return (first, STILL)
    return (first, str(rng.choice([m for m in moving if m != first])))


def _draw_scene(rng: np.random.Generator, config: ShapesConfig) -> Scene:
    colors = rng.choice(list(COLORS), size=config.num_objects, replace=False)
    objects = []
    for color in colors:
        shape = str(rng.choice(SHAPES))
        size = rng.uniform(*config.size_range) * config.scale
        speed = rng.uniform(*config.speed_range) * config.scale
        motions = _sample_motions(rng, config)
        offsets = _offsets(motions, speed, config.num_frames, config.change_at)
        low = size / 2 - offsets.min(axis=0)
        high = config.resolution - size / 2 - offsets.max(axis=0)
        start = rng.uniform(low, np.maximum(high, low))  # high >= low by the config check
        objects.append(ObjectSpec(str(color), shape, size, (start[0], start[1]), motions, speed))
    return Scene(tuple(objects), config.resolution, config.num_frames, config.change_at)


def _worst_visibility(scene: Scene) -> float:
    """Smallest share of frames in which an object's box is clear of every object drawn after it."""
    paths, sizes = scene.paths(), np.array([o.size for o in scene.objects])
    worst = 1.0
    for i in range(len(sizes) - 1):
        reach = (sizes[i] + sizes[i + 1 :, None]) / 2  # (later objects, 1)
        gaps = np.abs(paths[i + 1 :] - paths[i])  # (later objects, t, 2)
        hidden = ((gaps[..., 0] < reach) & (gaps[..., 1] < reach)).any(axis=0)
        worst = min(worst, 1.0 - float(hidden.mean()))
    return worst


def sample_scene(rng: np.random.Generator, config: ShapesConfig) -> Scene:
    """Draw a random scene; start positions keep every object inside the canvas for the whole clip.

    Objects may overlap, but each one is clear of the objects drawn over it in at least half of the
    frames (redrawing up to ``_MAX_DRAWS`` times, else the clearest draw), so every object a caption
    names can actually be seen.
    """
    best = _draw_scene(rng, config)
    for _ in range(_MAX_DRAWS - 1):
        if _worst_visibility(best) >= 0.5:
            break
        scene = _draw_scene(rng, config)
        best = max(best, scene, key=_worst_visibility)
    return best


class ShapesDataset(Dataset):
    """Captioned Shapes clips; item ``i`` depends on ``(seed, i)`` only (any order, any worker).

    Items are ``{"video": (3, t, h, w) float in [-1, 1], "caption": str, "skipped": 0}``; with
    ``change_at`` set, ``caption`` describes the motion after the change (the continuation prompt),
    ``caption_before`` the motion before it and ``change_at`` the frame of the change (``tokgen
    tokenize`` turns it into the latent frames a story window would carry, given in training).

    Args:
        length: number of items.
        seed: dataset seed (>= 0).
        config: sampling config; ``ShapesConfig()`` when None.
        **overrides: ``ShapesConfig`` fields, so Hydra can pass plain keywords
            (``ShapesDataset(length=64, resolution=32, num_frames=9)``).
    """

    def __init__(self, length: int = 1000, seed: int = 0, config: ShapesConfig | None = None, **overrides: Any) -> None:
        if length < 0 or seed < 0:
            raise ValueError(f"need length >= 0 and seed >= 0, got length={length}, seed={seed}")
        fields = {f.name for f in dataclasses.fields(ShapesConfig)}
        if unknown := sorted(set(overrides) - fields):
            raise TypeError(f"unknown ShapesDataset arguments {unknown}; ShapesConfig has {sorted(fields)}")
        self.length, self.seed = length, seed
        self.config = dataclasses.replace(config or ShapesConfig(), **overrides)

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for ShapesDataset of length {self.length}")
        return np.random.default_rng([self.seed, index % self.length])

    def scene(self, index: int) -> Scene:
        """The scene behind item ``index``."""
        return sample_scene(self._rng(index), self.config)

    def frames(self, index: int) -> np.ndarray:
        """Item ``index`` as uint8 frames ``(t, h, w, 3)``."""
        return render(self.scene(index))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        rng = self._rng(index)
        scene = sample_scene(rng, self.config)
        phrasing_rng = rng if self.config.phrasings else None  # drawn after the scene: still (seed, i) only
        item: dict[str, torch.Tensor | str | int] = {
            "video": frames_to_tensor(render(scene))[0],
            "caption": caption(scene, scene.num_segments - 1, phrasing_rng),
            "skipped": 0,
        }
        if scene.change_at is not None:
            item["caption_before"] = caption(scene, 0, phrasing_rng)
            item["change_at"] = scene.change_at
        return item
