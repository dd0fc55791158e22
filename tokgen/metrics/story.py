"""Story adherence on Shapes: does each segment do what its prompt says, and does the object stay itself?

A story is a video and its prompts, each prompt covering a range of frames (its segment). Each
segment is scored on its own frames with ``tokgen.metrics.adherence`` (colour, shape and motion read
from pixels). A story *adheres* when every segment does: since every prompt names the object, this
also means the object kept its colour and shape across windows. Continuity is measured where windows
meet (the seams): the jump of the object's centre from the frame before a seam to the frame at it,
beside the typical frame-to-frame step elsewhere; a story that re-draws its object at a seam jumps.

Axis legend: t frames, h height, w width, c channels (RGB). Positions are ``(x, y)`` pixel centres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tokgen.data.shapes import COLORS, DIRECTIONS, SHAPES, STILL, format_caption, parse_caption
from tokgen.metrics.adherence import AdherenceScore, describe_clip, score_clip

ATTRIBUTES = ("color", "shape", "motion", "all")


@dataclass(frozen=True)
class StoryScore:
    """Adherence of one story.

    Attributes:
        segments: one ``AdherenceScore`` per prompt, on that prompt's frames.
        all: every segment adheres (right colour, shape and motion everywhere).
        seam_jumps: per seam, the distance in px the first prompt's object moved from the frame before
            the seam to the seam frame (NaN where it was not seen in both).
        typical_step: median frame-to-frame distance in px away from the seams (NaN if unseen).
    """

    segments: tuple[AdherenceScore, ...]
    all: bool
    seam_jumps: tuple[float, ...]
    typical_step: float


def score_story(
    frames: np.ndarray, prompts: Sequence[str], ranges: Sequence[tuple[int, int]], seams: Sequence[int] = ()
) -> StoryScore:
    """Score a story of uint8 frames ``(t, h, w, 3)``.

    Args:
        frames: the whole story.
        prompts: Shapes captions, one per segment (``a red circle moves right``, ``the red circle ...``).
        ranges: frames ``[start, stop)`` of each segment.
        seams: frames where a window's new frames begin (``Story.seams``); each needs a frame before it.
    """
    frames = np.asarray(frames)
    if len(prompts) != len(ranges) or not prompts:
        raise ValueError(f"need one frame range per prompt (at least one), got {len(prompts)} and {len(ranges)}")
    for start, stop in ranges:
        if not 0 <= start < stop <= len(frames):
            raise ValueError(f"segment range [{start}, {stop}) lies outside the story's {len(frames)} frames")
    if any(not 1 <= seam < len(frames) for seam in seams):
        raise ValueError(f"seams {list(seams)} must lie in [1, {len(frames)})")
    segments = tuple(score_clip(frames[a:b], prompt) for prompt, (a, b) in zip(prompts, ranges, strict=True))
    color = parse_caption(prompts[0])[0].color
    track = next((t for t in describe_clip(frames) if t.color == color), None)
    if track is None:
        return StoryScore(segments, all(s.all for s in segments), tuple(float("nan") for _ in seams), float("nan"))
    steps = np.linalg.norm(np.diff(track.path, axis=0), axis=-1)  # (t - 1,): step i is frame i -> i + 1
    jumps = tuple(float(steps[seam - 1]) for seam in seams)
    elsewhere = np.delete(steps, [seam - 1 for seam in seams])
    elsewhere = elsewhere[np.isfinite(elsewhere)]
    typical = float(np.median(elsewhere)) if elsewhere.size else float("nan")
    return StoryScore(segments, all(s.all for s in segments), jumps, typical)


def summarize(scores: Sequence[StoryScore]) -> dict:
    """Accuracy per segment position and attribute, the story rate, and seam-jump statistics.

    Returns:
        ``{"stories", "story_accuracy", "segments": [{"color", "shape", "motion", "all"} per position],
        "seam_jump": {"mean", "median", "max", "count"}, "typical_step": median}`` (px for distances).
    """
    if not scores:
        raise ValueError("summarize needs at least one story score")
    positions = max(len(s.segments) for s in scores)
    per_segment = []
    for i in range(positions):
        at = [s.segments[i] for s in scores if len(s.segments) > i]
        per_segment.append({key: float(np.mean([getattr(seg, key) for seg in at])) for key in ATTRIBUTES})
    jumps = np.array([j for s in scores for j in s.seam_jumps], dtype=np.float64)
    seen = jumps[np.isfinite(jumps)]
    steps = np.array([s.typical_step for s in scores], dtype=np.float64)
    steps = steps[np.isfinite(steps)]
    stats = (
        {"mean": float(seen.mean()), "median": float(np.median(seen)), "max": float(seen.max())} if seen.size else {}
    )
    return {
        "stories": len(scores),
        "story_accuracy": float(np.mean([s.all for s in scores])),
        "segments": per_segment,
        "seam_jump": {**stats, "count": int(seen.size), "unseen": int(jumps.size - seen.size)},
        "typical_step": float(np.median(steps)) if steps.size else float("nan"),
    }


def shapes_stories(
    count: int,
    *,
    seed: int = 0,
    prompts: int = 3,
    frames_per_prompt: int = 16,
    resolution: int = 64,
    max_size: float = 20.0,
    max_speed: float = 2.5,
) -> list[list[str]]:
    """``count`` Shapes stories of one object whose motion changes at every prompt.

    The first prompt introduces the object (``a red circle moves right``), the next ones refer back
    to it (``the red circle moves up``). Motions are chosen so that the whole path fits the canvas
    even for the largest, fastest Shapes object (sizes and speeds in px at 64 x 64), so every story
    can be told truthfully.
    """
    rng = np.random.default_rng(seed)
    moving = [m for m in DIRECTIONS if m != STILL]
    scale = resolution / 64
    room = resolution - max_size * scale  # the centre's range on either axis
    stories = []
    while len(stories) < count:
        motions = [str(rng.choice(moving))]
        while len(motions) < prompts:
            motions.append(str(rng.choice([m for m in moving if m != motions[-1]])))
        steps = np.array([DIRECTIONS[m] for m in motions]) * max_speed * scale * frames_per_prompt
        path = np.concatenate([[[0.0, 0.0]], np.cumsum(steps, axis=0)])  # (prompts + 1, 2)
        if np.any(path.max(axis=0) - path.min(axis=0) > room):
            continue
        color, shape = str(rng.choice(list(COLORS))), str(rng.choice(SHAPES))
        first = format_caption([(color, shape, motions[0])])
        stories.append([first] + [f"the {color} {shape} {m}" for m in motions[1:]])
    return stories
