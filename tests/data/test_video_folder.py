"""tokgen.data video and image folders: shapes, captions, clip placement, bad files, path safety."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tokgen.data.datamodule import ClipDataModule
from tokgen.data.image_folder import ImageFolderDataset
from tokgen.data.video_folder import VideoFolderDataset
from tokgen.io.video_write import write_video


def index_frames(t: int, h: int = 24, w: int = 32, step: int = 5) -> np.ndarray:
    """Flat gray frames; frame i has brightness ``step * i`` so clips reveal which frames they hold."""
    return np.repeat((np.arange(t, dtype=np.uint8) * step)[:, None, None, None], h * w * 3).reshape(t, h, w, 3)


def clip_indices(video: torch.Tensor, step: int = 5) -> list[int]:
    """Frame indices of a ``(3, t, h, w)`` item built from :func:`index_frames`."""
    brightness = (video.mean(dim=(0, 2, 3)) + 1) * 127.5
    return torch.round(brightness / step).int().tolist()


def write_jsonl(path: Path, entries: list[dict]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """a.mp4 (48 frames), sub/b.webm (30 frames) and c.gif (20 frames), captioned in captions.jsonl."""
    (tmp_path / "sub").mkdir()
    write_video(tmp_path / "a.mp4", index_frames(48), 24)
    write_video(tmp_path / "sub" / "b.webm", index_frames(30), 24)
    write_video(tmp_path / "c.gif", index_frames(20), 25)
    write_jsonl(
        tmp_path / "captions.jsonl",
        [{"path": "a.mp4", "caption": "a red circle"}, {"path": "./sub/b.webm", "caption": "a blue square"}],
    )
    (tmp_path / "c.txt").write_text("a green triangle\n")
    return tmp_path


def test_items_have_the_contract_shape_range_and_captions(folder: Path) -> None:
    ds = VideoFolderDataset(folder, num_frames=9, temporal_patch=4, size=16)
    assert len(ds) == 3
    assert [ds[i]["caption"] for i in range(3)] == ["a red circle", "a green triangle", "a blue square"]
    for i in range(3):
        item = ds[i]
        video = item["video"]
        assert video.shape == (3, 9, 16, 16) and video.dtype == torch.float32
        assert video.min() >= -1 and video.max() <= 1 and item["skipped"] == 0
        indices = clip_indices(video)
        assert indices == list(range(indices[0], indices[0] + 9))  # consecutive frames of one clip
    assert ds.num_skipped == 0


def test_clip_placement_is_seeded(folder: Path) -> None:
    center = VideoFolderDataset(folder, num_frames=5, size=16, seed=3)
    again = VideoFolderDataset(folder, num_frames=5, size=16, seed=3)
    assert torch.equal(center[0]["video"], again[0]["video"])
    starts = {clip_indices(VideoFolderDataset(folder, num_frames=5, size=16, seed=s)[0]["video"])[0] for s in range(8)}
    assert len(starts) > 1  # a long video is not always read from frame 0
    rand = VideoFolderDataset(folder, num_frames=5, size=16, crop="random", seed=3)
    draws = []
    for epoch in range(6):
        rand.set_epoch(epoch)
        draws.append(clip_indices(rand[0]["video"])[0])
    assert len(set(draws)) > 1  # a new clip each epoch
    rand.set_epoch(2)
    assert clip_indices(rand[0]["video"])[0] == draws[2]  # (seed, index, epoch) fix the draw


@pytest.mark.parametrize("workers", [0, 1])
def test_the_training_loader_draws_new_clips_each_epoch(folder: Path, workers: int) -> None:
    # Lightning sets only the sampler's epoch; the loader must pass it to the dataset, workers included.
    def starts(items: list[torch.Tensor]) -> list[int]:
        return sorted(clip_indices(video)[0] for video in items)

    rand = VideoFolderDataset(folder, num_frames=5, size=16, crop="random", seed=3)
    loader = ClipDataModule(rand, batch_size=3, num_workers=workers).train_dataloader()
    seen = []
    for epoch in range(4):
        loader.sampler.set_epoch(epoch)  # as Lightning's fit loop does
        (batch,) = list(loader)
        seen.append(starts(list(batch["video"])))
        direct = VideoFolderDataset(folder, num_frames=5, size=16, crop="random", seed=3)
        direct.set_epoch(epoch)
        assert seen[-1] == starts([direct[i]["video"] for i in range(3)])
    assert len({tuple(s) for s in seen}) > 1


def test_random_crop_stays_inside_the_frame(tmp_path: Path) -> None:
    frames = np.zeros((3, 24, 48, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(48, dtype=np.uint8)[None, None, :] * 5  # red encodes the column
    write_video(tmp_path / "wide.gif", frames, 10)  # GIF: exact for <= 256 colours
    lefts = set()
    for epoch in range(6):
        ds = VideoFolderDataset(tmp_path, num_frames=3, size=24, crop="random", seed=epoch)
        red = (ds[0]["video"][0, 0, 0] + 1) * 127.5 / 5  # first row: column index of each pixel
        lefts.add(round(float(red[0])))
        assert round(float(red[-1])) - round(float(red[0])) == 23
    assert len(lefts) > 1 and all(0 <= left <= 24 for left in lefts)
    center = VideoFolderDataset(tmp_path, num_frames=3, size=24)[0]["video"]
    assert round(float((center[0, 0, 0, 0] + 1) * 127.5 / 5)) == 12


def test_stride_and_fps_space_the_frames(folder: Path) -> None:
    (folder / "c.gif").unlink()
    ds = VideoFolderDataset(folder, num_frames=5, size=16, stride=2)
    indices = clip_indices(ds[0]["video"])
    assert np.diff(indices).tolist() == [2, 2, 2, 2]
    ds = VideoFolderDataset(folder, num_frames=5, size=16, fps=8)  # 24 fps source: every third frame
    assert np.diff(clip_indices(ds[0]["video"])).tolist() == [3, 3, 3, 3]


def test_missing_captions_are_empty_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("x.mp4", "y.mp4"):
        write_video(tmp_path / name, index_frames(3), 10)
    (tmp_path / "y.txt").write_text("  from the txt file \n")
    with caplog.at_level(logging.WARNING, logger="tokgen.data"):
        ds = VideoFolderDataset(tmp_path, num_frames=3, size=16)
    assert [ds[0]["caption"], ds[1]["caption"]] == ["", "from the txt file"]
    warnings = [r.getMessage() for r in caplog.records if "no caption" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(f"1 of 2 files under '{tmp_path}' have no caption")


def test_bad_and_short_files_are_skipped_counted_and_logged(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    (folder / "b0.mp4").write_bytes(b"this is not a video")  # sorted between a.mp4 and c.gif
    write_video(folder / "b1.mp4", index_frames(4), 24)  # too short for 9 frames
    ds = VideoFolderDataset(folder, num_frames=9, size=16)
    assert [p.name for p in ds.files] == ["a.mp4", "b0.mp4", "b1.mp4", "c.gif", "b.webm"]
    with caplog.at_level(logging.WARNING, logger="tokgen.data"):
        item = ds[1]
    assert item["caption"] == "a green triangle" and item["skipped"] == 2
    assert ds.num_skipped == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("b0.mp4" in m for m in messages) and any("b1.mp4" in m and "too short" in m for m in messages)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tokgen.data"):
        assert ds[2]["skipped"] == 1  # known bad: passed over without decoding or logging again
    assert not caplog.records and ds.num_skipped == 2


def test_all_bad_raises_naming_root(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "b.webm").write_bytes(b"garbage")
    ds = VideoFolderDataset(tmp_path, num_frames=1, size=16)
    with pytest.raises(RuntimeError, match=str(tmp_path)):
        ds[0]
    assert ds.num_skipped == 2


@pytest.mark.parametrize("bad_path", ["../outside.mp4", "/etc/passwd", "sub/../../outside.mp4", "link.mp4"])
def test_caption_paths_may_not_leave_root(tmp_path: Path, bad_path: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_video(tmp_path / "outside.mp4", index_frames(3), 10)
    (root / "link.mp4").symlink_to(tmp_path / "outside.mp4")
    write_jsonl(root / "captions.jsonl", [{"path": "link.mp4x", "caption": "ok"}, {"path": bad_path, "caption": "x"}])
    with pytest.raises(ValueError, match=r"captions\.jsonl, line 2"):
        VideoFolderDataset(root, num_frames=1, size=16)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"caption": "x"}', "path"),
        ('{"path": "a.mp4", "caption": 3}', "caption"),
    ],
)
def test_malformed_captions_file_names_file_and_line(folder: Path, line: str, match: str) -> None:
    with (folder / "captions.jsonl").open("a") as f:
        f.write("\n" + line + "\n")  # the blank line is allowed and still counted
    with pytest.raises(ValueError, match=rf"captions\.jsonl, line 4: .*{match}"):
        VideoFolderDataset(folder, num_frames=1, size=16)


def test_constructor_checks(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(ValueError, match=r"\(num_frames - 1\) % temporal_patch == 0.* 13 and 17"):
        VideoFolderDataset(folder, num_frames=16, temporal_patch=4)
    with pytest.raises(ValueError, match="crop"):
        VideoFolderDataset(folder, crop="middle")
    empty = tmp_path_factory.mktemp("empty")
    (empty / "notes.txt").write_text("no videos here")
    with pytest.raises(ValueError, match=str(empty)):
        VideoFolderDataset(empty)
    with pytest.raises(ValueError, match="not a folder"):
        VideoFolderDataset(empty / "missing")


def test_image_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 20), dtype=np.uint8), mode="L").save(tmp_path / "gray.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 4), dtype=np.uint8), mode="RGBA").save(tmp_path / "rgba.webp")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    (tmp_path / "gray.txt").write_text("a gray picture")
    write_jsonl(tmp_path / "captions.jsonl", [{"path": "rgb.jpg", "caption": "noise"}])
    ds = ImageFolderDataset(tmp_path, size=16)
    assert [p.name for p in ds.files] == ["broken.png", "gray.png", "rgb.jpg", "rgba.webp"]
    with caplog.at_level(logging.WARNING, logger="tokgen.data"):
        items = [ds[i] for i in range(4)]
    assert [item["caption"] for item in items] == ["a gray picture", "a gray picture", "noise", ""]
    assert [item["skipped"] for item in items] == [1, 0, 0, 0]
    assert any("broken.png" in r.getMessage() for r in caplog.records) and ds.num_skipped == 1
    for item in items:
        assert item["video"].shape == (3, 1, 16, 16) and -1 <= item["video"].min() <= item["video"].max() <= 1
    gray = items[1]["video"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # grayscale became RGB
