"""Prompt adherence on the Shapes grammar, measured from pixels alone.

A clip is read the way a person would: every bright pixel gets the palette color of nearest hue, each
color's largest blob per frame is one object, its outline gives the shape and a straight line fitted
to its centre path gives the motion; an object that shows as two sizeable pieces in many frames (broken
up, or drawn twice) has none of the caption's shapes. The caption is parsed with the Shapes grammar and
compared attribute by attribute, objects matched to caption parts by color.

Built for reconstructed and generated video too, so nothing relies on exact colors: blur against the
black background dims a pixel but keeps its hue, and shape features use only the pixels brighter
than half the blob's own brightness, so a soft edge falls away. Reliable for objects of >= ~6 px
(Shapes at resolution >= 32).

Axis legend: t frames, h height, w width, c channels (RGB). Positions are ``(x, y)`` pixel centres.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tokgen.data.shapes import COLORS, STILL, parse_caption
from tokgen.io.convert import tensor_to_frames

MIN_BRIGHTNESS = 80  # max channel; the background is black, noise and codec ringing stay far below
WHITE_SATURATION = 0.4  # white has saturation 0; the least saturated other color (blue) 0.84
STILL_SPEED = 0.5  # px/frame at 64 x 64; Shapes objects move >= 1.5
MIN_AREA_FRACTION = 0.003  # of the frame: smaller blobs are blur or noise at color boundaries
# A second blob of an object's color counts as a piece when it has >= this share of the largest's
# pixels; an object in pieces in more than MAX_SPLIT_SHARE of its frames fails its shape. Real Shapes
# clips split an object only while another passes over it.
PIECE_FRACTION = 0.25
MAX_SPLIT_SHARE = 0.25
# (fill of the bounding box, share of the area in its top half) of each shape; a triangle points up.
PROTOTYPES = {"circle": (math.pi / 4, 0.5), "square": (1.0, 0.5), "triangle": (0.5, 0.25)}
_COLOR_NAMES = list(COLORS)
_WHITE = _COLOR_NAMES.index("white")


@dataclass(frozen=True)
class ObjectTrack:
    """One object found in a clip.

    Attributes:
        color, shape, motion: the attributes read from pixels, in the Shapes vocabulary.
        path: centre ``(x, y)`` per frame, ``(t, 2)``, NaN where the object was not seen.
        velocity: fitted ``(vx, vy)`` in px/frame of this clip (y grows downwards).
        split: share of the frames it was seen in where its color showed as more than one piece.
    """

    color: str
    shape: str
    motion: str
    path: np.ndarray
    velocity: tuple[float, float]
    split: float = 0.0

    @property
    def whole(self) -> bool:
        """One piece in all but a few frames (an object passing over it may cut it for a while)."""
        return self.split <= MAX_SPLIT_SHARE


@dataclass(frozen=True)
class AdherenceScore:
    """Whether a clip shows what its caption says, per attribute; ``all`` when every one holds."""

    color: bool
    shape: bool
    motion: bool
    all: bool
    tracks: tuple[ObjectTrack, ...]


def _hue_saturation(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue in degrees and saturation of float RGB ``(..., 3)`` (the HSV definitions)."""
    r, g, b = np.moveaxis(rgb, -1, 0)
    high, low = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    delta = np.maximum(high - low, 1e-6)
    hue = np.where(high == r, ((g - b) / delta) % 6, np.where(high == g, (b - r) / delta + 2, (r - g) / delta + 4))
    return hue * 60.0, (high - low) / np.maximum(high, 1e-6)


_PALETTE_HUE, _ = _hue_saturation(np.array(list(COLORS.values()), dtype=np.float64))


def _label_colors(frames: np.ndarray, brightness: np.ndarray) -> np.ndarray:
    """Palette index of every pixel, ``(t, h, w)``, -1 for background."""
    labels = np.full(frames.shape[:3], -1, dtype=np.int64)
    bright = brightness >= MIN_BRIGHTNESS
    hue, saturation = _hue_saturation(frames[bright].astype(np.float64))
    gap = np.abs(hue[:, None] - _PALETTE_HUE[None, :]) % 360
    gap = np.minimum(gap, 360 - gap)
    gap[:, _WHITE] = np.inf  # white has no hue; it is decided by saturation alone
    labels[bright] = np.where(saturation < WHITE_SATURATION, _WHITE, gap.argmin(-1))
    return labels


def _components(labels: np.ndarray) -> np.ndarray:
    """4-connected components of equal labels per frame, ``(t, h, w)``: a pixel index per blob, -1 off.

    Min-label propagation between equal neighbours plus pointer jumping (every label is the index of
    a pixel of the same blob, so following it stays inside the blob), which converges in a few steps.
    """
    fg = labels >= 0
    sentinel = labels.size
    comp = np.where(fg, np.arange(labels.size).reshape(labels.shape), sentinel)
    same_down = fg[:, 1:] & (labels[:, 1:] == labels[:, :-1])  # pixel and the one below it
    same_right = fg[:, :, 1:] & (labels[:, :, 1:] == labels[:, :, :-1])
    while True:
        new = comp.copy()
        np.minimum(new[:, :-1], np.where(same_down, comp[:, 1:], sentinel), out=new[:, :-1])
        np.minimum(new[:, 1:], np.where(same_down, comp[:, :-1], sentinel), out=new[:, 1:])
        np.minimum(new[:, :, :-1], np.where(same_right, comp[:, :, 1:], sentinel), out=new[:, :, :-1])
        np.minimum(new[:, :, 1:], np.where(same_right, comp[:, :, :-1], sentinel), out=new[:, :, 1:])
        flat = new.reshape(-1)
        flat[fg.reshape(-1)] = flat[flat[fg.reshape(-1)]]
        if np.array_equal(new, comp):
            return np.where(fg, comp, -1)
        comp = new


def _blob_features(mask: np.ndarray, brightness: np.ndarray) -> tuple[float, float, float, float, int]:
    """``(x, y, fill, top_share, area)`` of one blob, from its pixels brighter than half its brightness."""
    ys, xs = np.nonzero(mask)
    level = brightness[ys, xs]
    strong = level >= 0.5 * np.percentile(level, 90)
    ys, xs = ys[strong], xs[strong]
    height, width = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    middle = (ys.min() + ys.max()) / 2
    top = (ys < middle).sum() + 0.5 * (ys == middle).sum()  # a row on the midline counts half
    return xs.mean() + 0.5, ys.mean() + 0.5, len(ys) / (height * width), top / len(ys), len(ys)


def _classify_shape(fill: float, top_share: float) -> str:
    # Top share separates the triangle twice as strongly as fill does, so it weighs double.
    def distance(proto: tuple[float, float]) -> float:
        return (fill - proto[0]) ** 2 + 4 * (top_share - proto[1]) ** 2

    return min(PROTOTYPES, key=lambda name: distance(PROTOTYPES[name]))


def _motion(velocity: tuple[float, float], still_speed: float) -> str:
    vx, vy = velocity
    if math.hypot(vx, vy) < still_speed:
        return STILL
    if abs(vx) >= abs(vy):
        return "moves right" if vx > 0 else "moves left"
    return "moves down" if vy > 0 else "moves up"


def _track(brightness: np.ndarray, labels: np.ndarray, comps: np.ndarray, color: int) -> ObjectTrack | None:
    """The object of palette color ``color``: its largest blob per frame, or None if mostly absent."""
    num_frames, height, width = labels.shape
    min_area = max(3.0, MIN_AREA_FRACTION * height * width)
    rows = []  # (t, x, y, fill, top_share, area, pieces) per frame where the color shows
    for t in range(num_frames):
        ids = comps[t][labels[t] == color]
        if ids.size == 0:
            continue
        values, counts = np.unique(ids, return_counts=True)
        features = _blob_features(comps[t] == values[counts.argmax()], brightness[t])
        pieces = int((counts >= max(min_area, PIECE_FRACTION * counts.max())).sum())
        if features[-1] >= min_area:
            rows.append((t, *features, pieces))
    if len(rows) < max(1, math.ceil(num_frames / 3)):
        return None
    table = np.array(rows)
    # Partly hidden frames (another object on top) shift the centre and change the outline, so the
    # fit uses mostly whole views and the shape vote only whole ones (small blobs vary ~10% in area).
    area = table[:, 5]
    fit, whole = table[area >= 0.75 * area.max()], table[area >= 0.9 * area.max()]
    if len(fit) >= 2:
        vx, vy = (float(np.polyfit(fit[:, 0], fit[:, i], 1)[0]) for i in (1, 2))
    else:
        vx = vy = 0.0
    votes = [_classify_shape(fill, top) for fill, top in whole[:, 3:5]]
    path = np.full((num_frames, 2), np.nan)
    path[table[:, 0].astype(int)] = table[:, 1:3]
    still_speed = STILL_SPEED * max(height, width) / 64
    shape = max(PROTOTYPES, key=votes.count)
    split = float((table[:, 6] > 1).mean())
    return ObjectTrack(_COLOR_NAMES[color], shape, _motion((vx, vy), still_speed), path, (vx, vy), split)


def describe_clip(frames: np.ndarray) -> list[ObjectTrack]:
    """Objects in a clip of uint8 frames ``(t, h, w, 3)``, one per palette color, in palette order."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"describe_clip expects uint8 frames (t, h, w, 3), got {frames.dtype} {frames.shape}")
    # Max over channels; np.maximum beats .max(-1), which reduces over a length-3 axis slowly.
    brightness = np.maximum(np.maximum(frames[..., 0], frames[..., 1]), frames[..., 2])
    labels = _label_colors(frames, brightness)
    comps = _components(labels)
    tracks = (_track(brightness, labels, comps, color) for color in np.unique(labels[labels >= 0]))
    return [track for track in tracks if track is not None]


def score_clip(frames: np.ndarray, caption: str) -> AdherenceScore:
    """Score one clip ``(t, h, w, 3)`` uint8 against its caption.

    ``color`` holds when the clip shows exactly the caption's colors (no missing, no extra object);
    ``shape`` and ``motion`` when every caption part's object, found by color, has that attribute (for
    ``shape`` also in one piece: `ObjectTrack.whole`). For a clip whose motion changes, score the
    frames of one segment (e.g. ``frames[change_at:]``).
    """
    parts = parse_caption(caption)
    tracks = describe_clip(frames)
    by_color = {track.color: track for track in tracks}
    found = [by_color.get(part.color) for part in parts]
    color = sorted(part.color for part in parts) == sorted(by_color)
    shape = all(
        track is not None and track.whole and track.shape == part.shape
        for track, part in zip(found, parts, strict=True)
    )
    motion = all(track is not None and track.motion == part.motion for track, part in zip(found, parts, strict=True))
    return AdherenceScore(color, shape, motion, color and shape and motion, tuple(tracks))


def score_clips(clips: Sequence[np.ndarray] | np.ndarray | torch.Tensor, captions: Sequence[str]) -> dict[str, float]:
    """Per-attribute accuracy over clips.

    Args:
        clips: uint8 clips ``(t, h, w, 3)`` (a sequence or a ``(b, t, h, w, 3)`` array), or a model-space
            float tensor ``(b, 3, t, h, w)`` in [-1, 1].
        captions: one caption per clip.

    Returns:
        ``{"color", "shape", "motion", "all"}`` accuracies in [0, 1] and ``"num_clips"``.
    """
    if isinstance(clips, torch.Tensor):
        clips = tensor_to_frames(clips) if clips.dtype != torch.uint8 else clips.numpy()
    if len(clips) != len(captions) or len(captions) == 0:
        raise ValueError(f"need as many clips as captions (at least one), got {len(clips)} and {len(captions)}")
    scores = [score_clip(np.asarray(clip), text) for clip, text in zip(clips, captions, strict=True)]
    result = {key: float(np.mean([getattr(s, key) for s in scores])) for key in ("color", "shape", "motion", "all")}
    return {**result, "num_clips": float(len(scores))}
