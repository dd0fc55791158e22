"""Prompt adherence from pixels: agrees with real Shapes captions, rejects wrong ones, tolerates blur."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tokgen.data.shapes import ObjectSpec, Scene, ShapesDataset, caption, render
from tokgen.io.convert import frames_to_tensor
from tokgen.metrics.adherence import describe_clip, score_clip, score_clips


def blur(frames: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur over h and w: a mild stand-in for a reconstruction's softness."""
    x = frames.astype(np.float64)
    for axis in (1, 2):
        x = 0.25 * np.roll(x, 1, axis) + 0.5 * x + 0.25 * np.roll(x, -1, axis)
    return np.clip(x.round(), 0, 255).astype(np.uint8)


def noise(frames: np.ndarray, rng: np.random.Generator, sigma: float = 8.0) -> np.ndarray:
    return np.clip(frames + rng.normal(0.0, sigma, frames.shape), 0, 255).astype(np.uint8)


def clips_and_captions(n: int, seed: int, **overrides: object) -> tuple[list[np.ndarray], list[str]]:
    ds = ShapesDataset(length=n, seed=seed, **overrides)
    scenes = [ds.scene(i) for i in range(n)]  # the dataset's caption is caption(scene, last segment)
    return [render(s) for s in scenes], [caption(s) for s in scenes]


@pytest.fixture(scope="module")
def real() -> tuple[list[np.ndarray], list[str]]:
    return clips_and_captions(300, seed=11)


def test_agrees_with_real_shapes_captions(real: tuple[list[np.ndarray], list[str]]) -> None:
    result = score_clips(*real)
    print(f"adherence on 300 real Shapes clips (64 px, 17 frames): {result}")
    assert result["num_clips"] == 300
    for key in ("color", "shape", "motion"):
        assert result[key] >= 0.98, result


@pytest.mark.parametrize(
    "overrides", [{"num_objects": 2}, {"resolution": 32, "num_frames": 9}], ids=["two-objects", "32px"]
)
def test_agrees_on_other_settings(overrides: dict) -> None:
    result = score_clips(*clips_and_captions(60, seed=12, **overrides))
    print(f"adherence with {overrides}: {result}")
    assert result["all"] >= 0.95, result


def test_recognises_wrong_captions(real: tuple[list[np.ndarray], list[str]]) -> None:
    frames, text = real[0][0], real[1][0]
    color, shape, motion = text.split(" ", 1)[1].split(" ", 2)
    other_color = "blue" if color != "blue" else "red"
    other_shape = "square" if shape != "square" else "circle"
    other_motion = "moves left" if motion != "moves left" else "moves right"
    assert score_clip(frames, text).all
    wrong = score_clip(frames, f"a {other_color} {shape} {motion}")
    assert not wrong.color and not wrong.all
    assert not score_clip(frames, f"a {color} {other_shape} {motion}").shape
    wrong = score_clip(frames, f"a {color} {shape} {other_motion}")
    assert wrong.color and wrong.shape and not wrong.motion and not wrong.all
    # An extra object the clip does not show makes the colors wrong.
    assert not score_clip(frames, f"{text} and a {other_color} square stays still").color


def test_robust_to_mild_blur_and_noise(real: tuple[list[np.ndarray], list[str]]) -> None:
    rng = np.random.default_rng(0)
    clips, captions = real[0][:60], real[1][:60]
    for name, degrade in [
        ("blur", blur),
        ("noise", lambda f: noise(f, rng)),
        ("both", lambda f: noise(blur(f), rng)),
    ]:
        result = score_clips([degrade(f) for f in clips], captions)
        print(f"adherence under {name}: {result}")
        for key in ("color", "shape", "motion"):
            assert result[key] >= 0.95, (name, result)


def test_static_clip_stays_still() -> None:
    obj = ObjectSpec("green", "triangle", 14.0, (30.3, 20.6), ("stays still",), 0.0)
    frames = noise(render(Scene((obj,), resolution=64, num_frames=17)), np.random.default_rng(1), sigma=4.0)
    (track,) = describe_clip(frames)
    assert (track.color, track.shape, track.motion) == ("green", "triangle", "stays still")
    assert score_clip(frames, "the green triangle stays still").all
    assert not score_clip(frames, "a green triangle moves down").motion


def test_an_object_in_two_pieces_fails_its_shape_unless_only_for_a_few_frames() -> None:
    obj = ObjectSpec("green", "triangle", 14.0, (20.0, 44.0), ("moves right",), 2.0)
    frames = render(Scene((obj,), resolution=64, num_frames=9))
    assert score_clip(frames, "a green triangle moves right").all
    doubled = frames.copy()
    doubled[:, :24] = np.maximum(doubled[:, :24], frames[:, 36:60])  # a second triangle above the first
    (track,) = describe_clip(doubled)
    assert track.split == 1.0 and not track.whole
    score = score_clip(doubled, "a green triangle moves right")
    assert score.color and score.motion and not score.shape and not score.all
    speck = frames.copy()
    speck[:2, 2:8, 2:8] = frames[0, 44, 20]  # a 36-pixel fleck of the color in 2 of 9 frames
    (track,) = describe_clip(speck)
    assert track.split == pytest.approx(2 / 9) and track.whole
    assert score_clip(speck, "a green triangle moves right").all


def test_tracks_report_path_and_velocity() -> None:
    obj = ObjectSpec("orange", "square", 12.0, (10.0, 40.0), ("moves right",), 2.0)
    (track,) = describe_clip(render(Scene((obj,), resolution=64, num_frames=9)))
    assert track.path.shape == (9, 2) and track.motion == "moves right"
    assert track.velocity[0] == pytest.approx(2.0, abs=0.1) and abs(track.velocity[1]) < 0.1
    assert describe_clip(np.zeros((4, 32, 32, 3), np.uint8)) == []


def test_score_clips_accepts_model_space_tensors(real: tuple[list[np.ndarray], list[str]]) -> None:
    video = frames_to_tensor(np.stack(real[0][:4]))  # (b, c, t, h, w) in [-1, 1]
    assert video.dtype == torch.float32
    assert score_clips(video, real[1][:4])["all"] == 1.0
    with pytest.raises(ValueError, match="as many"):
        score_clips(video, real[1][:3])


def test_change_at_segments_score_separately() -> None:
    ds = ShapesDataset(length=20, seed=3, change_at=8, size_range=(10, 16), speed_range=(1.5, 2))
    for i in range(len(ds)):
        frames, item = ds.frames(i), ds[i]
        assert score_clip(frames[8:], item["caption"]).all
        assert score_clip(frames[: 8 + 1], item["caption_before"]).all


def test_import_pulls_in_neither_lightning_nor_hydra() -> None:
    code = "import sys, tokgen.metrics.adherence; print(sorted({'lightning', 'hydra'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
