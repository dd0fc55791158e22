"""Bad and unusual video inputs: datasets skip and count them, single-file commands name the file.

Reading-level cases (`read_video` on empty, text, random and truncated bytes; grayscale/alpha frames;
a variable-rate file at fixed fps) are in tests/io/test_video.py; a too-short file in a dataset is in
tests/data/test_video_folder.py. Here each case goes through the paths users and training runs take.
"""

from __future__ import annotations

import logging
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.hardening.conftest import files_in, index_frames, moving_square
from tokgen.cli import main
from tokgen.codec import compress
from tokgen.data.image_folder import ImageFolderDataset
from tokgen.data.video_folder import VideoFolderDataset
from tokgen.io.video_write import write_video


def _zero_frames(path: Path) -> None:
    """An mp4 whose video stream was opened and closed without a single frame."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        container.start_encoding()  # writes the header: the file exists, with its (empty) video track
        container.mux(stream.encode(None))


def _raw_frame(path: Path, pix_fmt: str) -> None:
    """One uncompressed black frame in ``pix_fmt`` (NUT holds any pixel format; the suffix stays .mkv)."""
    with av.open(str(path), "w", format="nut") as container:
        stream = container.add_stream("rawvideo", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, pix_fmt
        frame = av.VideoFrame(16, 16, pix_fmt)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _png_video(path: Path, pix_fmt: str, frame: np.ndarray, count: int) -> None:
    """Lossless PNG-in-MOV frames kept in ``pix_fmt`` (gray, rgba), as cameras and screen recorders write."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, pix_fmt
        for _ in range(count):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format=pix_fmt)))
        container.mux(stream.encode(None))


def _make_bad(kind: str, folder: Path) -> Path:
    """One bad input of each kind, named ``<kind>.mp4`` (or ``.mkv``)."""
    if kind == "corrupt":
        path = folder / "corrupt.mp4"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        whole = write_video(folder / "whole.mp4", moving_square(9), 8).read_bytes()
        (folder / "whole.mp4").unlink()
        path = folder / "truncated.mp4"
        path.write_bytes(whole[: len(whole) // 2])  # the index says 9 frames, the data stops early
    elif kind == "zero_frames":
        path = folder / "zero_frames.mp4"
        _zero_frames(path)
    elif kind == "text":
        path = folder / "text.mp4"
        path.write_text("a caption someone saved with the wrong name\n")
    elif kind == "pixel_format":
        path = folder / "pixel_format.mkv"
        _raw_frame(path, "rgb4")  # decodes, but swscale cannot turn rgb4 into RGB
    else:
        raise ValueError(kind)
    return path


BAD = ["corrupt", "truncated", "zero_frames", "text", "pixel_format"]


@pytest.mark.parametrize("kind", BAD)
def test_dataset_skips_and_counts_a_bad_file(kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_video(tmp_path / "good.mp4", moving_square(9), 8)
    bad = _make_bad(kind, tmp_path)
    ds = VideoFolderDataset(tmp_path, num_frames=9, size=16)
    with caplog.at_level(logging.WARNING, logger="tokgen.data"):
        items = [ds[i] for i in range(len(ds))]
    assert all(item["video"].shape == (3, 9, 16, 16) for item in items)  # every item is the good clip
    assert sorted(item["skipped"] for item in items) == [0, 1]  # the bad file's index passed on to the good one
    assert ds.num_skipped == 1  # counted once, however often it is drawn
    assert any(str(bad) in r.getMessage() for r in caplog.records)  # the log names the file


@pytest.mark.parametrize("kind", BAD)
def test_compress_fails_naming_the_file_and_writes_nothing(kind: str, tokenizer_dir: Path, tmp_path: Path) -> None:
    bad = _make_bad(kind, tmp_path)
    out = tmp_path / "out.tok"
    with pytest.raises(SystemExit, match=f"tokgen compress: error: .*{bad.name}"):
        main(["compress", f"input={bad}", f"output={out}", f"tokenizer={tokenizer_dir}"])
    assert not out.exists() and files_in(tmp_path) == [bad.name]


@pytest.mark.parametrize("kind", [*BAD, "shorter_than_a_tubelet"])
def test_story_init_fails_naming_the_file_before_sampling(kind: str, generator_dir: Path, tmp_path: Path) -> None:
    if kind == "shorter_than_a_tubelet":  # 4 frames: not 1 + k * temporal_patch (2)
        bad = write_video(tmp_path / "short.mp4", moving_square(4), 8)
    else:
        bad = _make_bad(kind, tmp_path)
    prompts = tmp_path / "story.txt"
    prompts.write_text("a red circle moves right\n")
    out = tmp_path / "story.mp4"
    args = ["story", f"prompts={prompts}", f"out={out}", f"generator={generator_dir}", f"init={bad}", "steps=1"]
    with pytest.raises(SystemExit, match=f"tokgen story: error: .*{bad.name}"):
        main(args)
    assert not out.exists() and not out.with_suffix(".png").exists() and not out.with_suffix(".json").exists()


def test_grayscale_and_rgba_videos_become_rgb_clips(tokenizer_dir: Path, tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))  # (16, 16): a horizontal ramp
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 9  # red under a nearly transparent alpha: alpha is dropped
    _png_video(tmp_path / "gray.mov", "gray", gray, 3)
    _png_video(tmp_path / "rgba.mov", "rgba", rgba, 3)
    ds = VideoFolderDataset(tmp_path, num_frames=3, size=16)
    items = {p.stem: ds[i]["video"] for i, p in enumerate(ds.files)}
    assert ds.num_skipped == 0
    for video in items.values():
        assert video.shape == (3, 3, 16, 16) and video.dtype == torch.float32
    g = items["gray"]
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])  # three equal channels
    assert torch.allclose((g[0, 0] + 1) * 127.5, torch.as_tensor(gray, dtype=torch.float32), atol=0.5)
    assert torch.allclose((items["rgba"][:, 0, 0, 0] + 1) * 127.5, torch.tensor([200.0, 0.0, 0.0]), atol=0.5)
    result = compress(tmp_path / "gray.mov", tmp_path / "gray.tok", tokenizer_dir)
    assert result.codes_shape == (2, 4, 4)  # 3 frames at temporal patch 2, 16x16 at patch 4


def test_huge_resolution_is_resized_while_streaming(tmp_path: Path) -> None:
    height, width = 2160, 3840  # one 4K RGB frame is 24.9 MB
    frames = (np.full((height, width, 3), 30 * i, np.uint8) for i in range(3))
    write_video(tmp_path / "uhd.mp4", frames, 8)
    ds = VideoFolderDataset(tmp_path, num_frames=3, size=16)
    tracemalloc.start()
    try:
        item = ds[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert item["video"].shape == (3, 3, 16, 16)
    # FFmpeg scales inside the decoder; Python never holds a full-size frame (or anything near one).
    assert peak < height * width * 3 / 10, f"peak Python allocation {peak} bytes"
    brightness = ((item["video"].mean(dim=(0, 2, 3)) + 1) * 127.5).tolist()
    assert brightness == pytest.approx([0, 30, 60], abs=3)


def test_variable_frame_rate_gives_evenly_spaced_clips(tmp_path: Path) -> None:
    shown_at_ms = [0, 40, 80, 200, 240, 400, 440, 480]  # frames 2 and 4 stay on screen longer
    with av.open(str(tmp_path / "vfr.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(shown_at_ms):
            frame = av.VideoFrame.from_ndarray(index_frames(8)[i])
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    clip = VideoFolderDataset(tmp_path, num_frames=13, size=16, fps=25)[0]["video"]  # the whole 0.52 s
    shown = torch.round((clip.mean(dim=(0, 2, 3)) + 1) * 127.5 / 20).int().tolist()
    assert shown == [0, 1, 2, 2, 2, 3, 4, 4, 4, 4, 5, 6, 7]  # the frame on screen at every 40 ms tick


def test_image_folder_skips_and_counts_a_text_file_named_png(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(moving_square(1)[0]).save(tmp_path / "good.png")
    (tmp_path / "notes.png").write_text("not an image")
    ds = ImageFolderDataset(tmp_path, size=16)
    assert [ds[i]["skipped"] for i in range(2)] == [0, 1] and ds.num_skipped == 1
