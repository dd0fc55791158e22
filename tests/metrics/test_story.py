"""Story adherence: true Shapes stories score as adhering; wrong motions, colours and jumps are caught."""

from __future__ import annotations

import numpy as np
import pytest

from tokgen.data.shapes import DIRECTIONS, ObjectSpec, Scene, continue_scene, parse_caption, render
from tokgen.metrics.story import score_story, shapes_stories, summarize

SPEED, SIZE, FRAMES = 2.5, 20.0, 16  # the largest, fastest Shapes object: the hardest to fit


def tell(prompts: list[str], *, speed: float = SPEED, size: float = SIZE) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Render a story truthfully: each prompt moves the object ``FRAMES`` frames from where it stopped."""
    parts = [parse_caption(p)[0] for p in prompts]
    steps = np.array([DIRECTIONS[p.motion] for p in parts]) * speed * FRAMES
    path = np.concatenate([[[0.0, 0.0]], np.cumsum(steps, axis=0)])
    start = size / 2 - path.min(axis=0) + 0.5  # the path's lowest point sits just inside the canvas
    first = parts[0]
    scene = Scene((ObjectSpec(first.color, first.shape, size, tuple(start), (first.motion,), speed),), 64, FRAMES + 1)
    clips, ranges = [render(scene)], [(0, FRAMES + 1)]
    for part in parts[1:]:
        scene = continue_scene(scene, [part.motion], FRAMES + 1)
        clips.append(render(scene)[1:])  # frame 0 repeats the previous segment's last frame
        ranges.append((ranges[-1][1], ranges[-1][1] + FRAMES))
    return np.concatenate(clips), ranges


STORY = ["a red circle moves right", "the red circle moves up", "the red circle moves left"]


def test_a_true_story_adheres_and_has_no_jump() -> None:
    frames, ranges = tell(STORY)
    score = score_story(frames, STORY, ranges, seams=[17, 25, 33])
    assert score.all and all(s.color and s.shape and s.motion for s in score.segments)
    assert score.typical_step == pytest.approx(SPEED, abs=0.5)
    assert max(score.seam_jumps) < 2 * SPEED  # continuous motion: a seam looks like any other frame


def test_wrong_motion_colour_and_jumps_are_caught() -> None:
    frames, ranges = tell(STORY)
    # The third segment goes down instead of left.
    wrong = ["a red circle moves right", "the red circle moves up", "the red circle moves down"]
    score = score_story(frames, wrong, ranges)
    assert [s.motion for s in score.segments] == [True, True, False] and not score.all
    # The object turns blue in the last segment: it did not keep its colour.
    recolored = frames.copy()
    last = recolored[ranges[2][0] :]
    last[(last == (255, 0, 0)).all(-1)] = (40, 80, 255)
    score = score_story(recolored, STORY, ranges)
    assert not score.segments[2].color and score.segments[0].all and not score.all
    # The object is redrawn 20 px away at a seam: a jump, though every segment still adheres.
    jumped = frames.copy()
    jumped[25:] = np.roll(frames[25:], 20, axis=2)
    score = score_story(jumped, STORY, ranges, seams=[17, 25])
    assert score.seam_jumps[1] > 15 > 2 * SPEED > score.seam_jumps[0]


def test_summary_counts_per_segment_and_story() -> None:
    good, ranges = tell(STORY)
    bad = score_story(
        good, ["a red circle moves right", "the red circle moves up", "the red circle moves down"], ranges
    )
    summary = summarize([score_story(good, STORY, ranges, seams=[17, 33]), bad])
    assert summary["stories"] == 2 and summary["story_accuracy"] == 0.5
    assert [s["motion"] for s in summary["segments"]] == [1.0, 1.0, 0.5]
    assert summary["seam_jump"]["count"] == 2 and summary["seam_jump"]["max"] < 2 * SPEED


def test_generated_stories_change_motion_and_can_be_told_truthfully() -> None:
    stories = shapes_stories(50, seed=0)
    assert len(stories) == 50 and len({tuple(s) for s in stories}) > 40
    for story in stories:
        parts = [parse_caption(p)[0] for p in story]
        assert story[0].startswith(("a ", "an ")) and all(p.startswith("the ") for p in story[1:])
        assert len({(p.color, p.shape) for p in parts}) == 1  # one object throughout
        assert all(a.motion != b.motion for a, b in zip(parts, parts[1:], strict=False))
    for story in stories[:10]:  # rendering checks that the object never leaves the canvas
        frames, ranges = tell(story)
        assert score_story(frames, story, ranges).all


def test_bad_ranges_are_clear_errors() -> None:
    frames, ranges = tell(STORY)
    with pytest.raises(ValueError, match="one frame range per prompt"):
        score_story(frames, STORY, ranges[:2])
    with pytest.raises(ValueError, match=r"\[33, 60\) lies outside the story's 49 frames"):
        score_story(frames, STORY, [*ranges[:2], (33, 60)])
