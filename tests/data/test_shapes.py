"""Shapes: determinism, geometry, captions that are true of the pixels, the caption grammar."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tokgen.data.shapes import (
    COLORS,
    DIRECTIONS,
    MOTIONS,
    PHRASINGS,
    SHAPES,
    STILL,
    ObjectSpec,
    Scene,
    ShapesConfig,
    ShapesDataset,
    caption,
    continue_scene,
    format_caption,
    parse_caption,
    render,
    sample_scene,
)


def centroids(frames: np.ndarray, color: str) -> np.ndarray:
    """Centre (x, y) per frame of the exact-color mask, ``(t, 2)``; computed here, not by adherence.py."""
    mask = (frames == np.array(COLORS[color], dtype=np.uint8)).all(-1)
    t, ys, xs = np.nonzero(mask)
    counts = np.bincount(t, minlength=len(frames))
    assert (counts > 0).all(), f"{color} object missing in some frame"
    return np.stack([np.bincount(t, xs) / counts, np.bincount(t, ys) / counts], axis=1)


def assert_motion(path: np.ndarray, motion: str, min_speed: float) -> None:
    """``path`` (t, 2) moves along ``motion`` at >= ``min_speed`` px/frame, or not at all when still."""
    steps = len(path) - 1
    dx, dy = (path[-1] - path[0]) / steps
    direction = np.array(DIRECTIONS[motion])
    if motion == STILL:
        assert np.allclose(path, path[0]), f"still object moved: {path}"
        return
    along = dx * direction[0] + dy * direction[1]
    across = abs(dx * direction[1] - dy * direction[0])
    # Rounding to pixels moves a centroid by < 1 px, i.e. < 1/steps px/frame on average.
    assert along >= min_speed - 1.0 / steps, f"{motion}: {along:.2f} px/frame along"
    assert across <= 1.0 / steps, f"{motion}: {across:.2f} px/frame across"


def test_item_shapes_range_and_keywords() -> None:
    ds = ShapesDataset(length=3, seed=1, resolution=32, num_frames=9)
    item = ds[0]
    assert len(ds) == 3 and ds.config.resolution == 32
    assert item["video"].shape == (3, 9, 32, 32) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -1.0 and item["video"].max() <= 1.0
    assert isinstance(item["caption"], str) and item["skipped"] == 0
    assert ds.frames(0).shape == (9, 32, 32, 3) and ds.frames(0).dtype == np.uint8
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(TypeError, match="unknown"):
        ShapesDataset(resolutoin=32)


def test_deterministic_by_seed_and_index() -> None:
    a, b = ShapesDataset(length=8, seed=3), ShapesDataset(length=8, seed=3)
    first = [a[i] for i in (5, 2)]  # access order must not matter
    for item, i in zip(first, (5, 2), strict=True):
        again = b[i]
        assert torch.equal(item["video"], again["video"]) and item["caption"] == again["caption"]
    other = ShapesDataset(length=8, seed=4)
    assert not all(torch.equal(a[i]["video"], other[i]["video"]) for i in range(4))
    assert not torch.equal(a[0]["video"], a[1]["video"])


def test_default_collate_batches_items() -> None:
    ds = ShapesDataset(length=4, resolution=16, num_frames=5, change_at=2, speed_range=(1.5, 1.5))
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["video"].shape == (4, 3, 5, 16, 16)
    assert len(batch["caption"]) == 4 and len(batch["caption_before"]) == 4


@pytest.mark.parametrize("overrides", [{}, {"num_objects": 3}, {"resolution": 32, "num_frames": 9}])
def test_objects_stay_inside_the_canvas(overrides: dict) -> None:
    config = ShapesConfig(**overrides)
    for i in range(60):
        scene = sample_scene(np.random.default_rng([0, i]), config)
        for obj, path in zip(scene.objects, scene.paths(), strict=True):
            assert (path - obj.size / 2 >= -1e-9).all() and (path + obj.size / 2 <= config.resolution + 1e-9).all()
            # On a canvas padded by 8 px the same object must draw nothing outside the original area.
            (x, y), pad = obj.start, 8
            moved = dataclasses.replace(obj, start=(x + pad, y + pad))
            big = render(Scene((moved,), scene.resolution + 2 * pad, scene.num_frames)).any(-1)
            assert big.sum() == big[:, pad:-pad, pad:-pad].sum() > 0, "an object was clipped by the border"


def test_caption_motion_matches_rendered_trajectory() -> None:
    ds = ShapesDataset(length=200, seed=5)
    seen = set()
    for i in range(len(ds)):
        scene = ds.scene(i)
        frames, text = render(scene), caption(scene)
        if i < 10:
            assert ds[i]["caption"] == text and np.array_equal(ds.frames(i), frames)
        (color, shape, motion), *_ = parse_caption(text)
        obj = scene.objects[0]
        assert (color, shape, motion) == (obj.color, obj.shape, obj.motions[0])
        assert obj.speed >= 1.5
        assert_motion(centroids(frames, color), motion, min_speed=1.5)
        seen.add(motion)
    assert seen == set(MOTIONS)


def test_speed_scales_with_resolution() -> None:
    config = ShapesConfig(resolution=128, num_frames=9)
    speeds = [o.speed for i in range(50) for o in sample_scene(np.random.default_rng(i), config).objects]
    assert min(speeds) >= 3.0 and max(speeds) <= 5.0


def test_change_at_switches_motion_at_that_frame() -> None:
    ds = ShapesDataset(length=60, seed=2, num_frames=17, change_at=8, size_range=(10, 16), speed_range=(1.5, 2))
    for i in range(len(ds)):
        item, frames = ds[i], ds.frames(i)
        (color, _, before), (_, _, after) = (
            parse_caption(item["caption_before"])[0],
            parse_caption(item["caption"])[0],
        )
        assert before != after
        path = centroids(frames, color)
        assert_motion(path[: 8 + 1], before, min_speed=1.5)  # frames 0..8 move with the first motion
        assert_motion(path[8:], after, min_speed=1.5)


def test_exact_palette_colors_on_black() -> None:
    palette = {(0, 0, 0), *COLORS.values()}
    ds = ShapesDataset(length=20, seed=0, num_objects=2)
    for i in range(len(ds)):
        packed = ds.frames(i).astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])  # one int per RGB triple
        colors = {(int(c) >> 16, (int(c) >> 8) & 255, int(c) & 255) for c in np.unique(packed)}
        assert colors <= palette
        assert {COLORS[o.color] for o in ds.scene(i).objects} <= colors
        assert (0, 0, 0) in colors


def test_multi_object_caption_joins_with_and() -> None:
    item = ShapesDataset(length=1, seed=0, num_objects=3)[0]
    parts = parse_caption(item["caption"])
    assert item["caption"].count(" and ") == 2 and len({p.color for p in parts}) == 3


def test_parse_caption_round_trip_over_the_grammar() -> None:
    for color, shape, motion in itertools.product(COLORS, SHAPES, MOTIONS):
        text = format_caption([(color, shape, motion)])
        assert text.split(" ", 1)[1] == f"{color} {shape} {motion}"
        assert parse_caption(text) == [(color, shape, motion)]
        for phrase in PHRASINGS[motion]:
            assert parse_caption(f"The {color} {shape} {phrase}.") == [(color, shape, motion)]
    pair = [("red", "circle", "moves right"), ("blue", "square", STILL)]
    assert format_caption(pair) == "a red circle moves right and a blue square stays still"
    assert parse_caption(format_caption(pair, np.random.default_rng(0))) == pair
    assert parse_caption("the red circle moves up") == [("red", "circle", "moves up")]
    for bad in ("a purple circle moves up", "a red hexagon moves up", "a red circle dances", ""):
        with pytest.raises(ValueError, match="cannot parse"):
            parse_caption(bad)


def test_phrasings_option_varies_captions() -> None:
    plain = {ShapesDataset(length=40, seed=0)[i]["caption"] for i in range(40)}
    varied = [ShapesDataset(length=40, seed=0, phrasings=True)[i]["caption"] for i in range(40)]
    assert all(parse_caption(c)[0].motion in MOTIONS for c in varied)
    assert set(varied) - plain, "phrasings=True never used a non-canonical phrasing"


def test_hand_built_scene_and_continuation() -> None:
    obj = ObjectSpec("red", "circle", 12.0, (10.0, 32.0), ("moves right",), 2.0)
    scene = Scene((obj,), resolution=64, num_frames=9)
    assert caption(scene) == "a red circle moves right"
    nxt = continue_scene(scene, ["moves up"])
    assert nxt.objects[0].start == (26.0, 32.0) and caption(nxt) == "a red circle moves up"
    assert np.array_equal(render(nxt)[0], render(scene)[-1])
    with pytest.raises(ValueError, match="leaves"):
        continue_scene(nxt, ["moves up"], num_frames=17)  # would pass the top edge


def test_single_frame_clips_stay_still() -> None:
    ds = ShapesDataset(length=10, num_frames=1)
    assert all(parse_caption(ds[i]["caption"])[0].motion == STILL for i in range(10))


@pytest.mark.parametrize(
    "overrides",
    [
        {"resolution": 8},
        {"num_frames": 0},
        {"num_objects": 9},
        {"speed_range": (1.0, 2.0)},
        {"size_range": (20.0, 10.0)},
        {"change_at": 16},
        {"still_prob": 1.5},
        {"num_frames": 33},  # 32 frames at >= 1.5 px/frame cannot fit with the largest object
    ],
)
def test_config_rejects_bad_values(overrides: dict) -> None:
    with pytest.raises(ValueError):
        ShapesConfig(**overrides)


def test_config_accepts_lists_from_hydra() -> None:
    config = ShapesConfig(size_range=[8, 12], speed_range=[1.5, 2])  # type: ignore[arg-type]
    assert config.size_range == (8.0, 12.0) and config.speed_range == (1.5, 2.0)
