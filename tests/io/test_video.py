"""tokgen.io.video: round trips, resampling, ranges, resizing, frame folders, streaming, bad input."""

from __future__ import annotations

import weakref
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tokgen.io.video import VideoReadError, iter_frames, probe_video, read_video
from tokgen.io.video_write import write_video


def index_frames(t: int, h: int = 32, w: int = 32, step: int = 5) -> np.ndarray:
    """Flat gray frames whose brightness encodes the frame index: frame i is ``step * i``."""
    return np.repeat((np.arange(t, dtype=np.uint8) * step)[:, None, None, None], h * w * 3).reshape(t, h, w, 3)


def indices(frames: np.ndarray, step: int = 5) -> list[int]:
    """Recover the frame indices written by :func:`index_frames` (codec error is far below step/2)."""
    return np.round(frames.reshape(len(frames), -1).mean(axis=1) / step).astype(int).tolist()


def moving_square(t: int = 24, h: int = 48, w: int = 64) -> np.ndarray:
    """A yellow square moving right over a horizontal red gradient."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, None, :]
    for i in range(t):
        x = (2 * i) % (w - 12)
        frames[i, 16:28, x : x + 12] = (255, 255, 0)
    return frames


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 frames (20 s at 30 fps) of 128x128, flat colour: red 10 * (i // 25), green 10 * (i % 25)."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    i = np.arange(600)
    color = np.stack([10 * (i // 25), 10 * (i % 25), np.zeros_like(i)], axis=1).astype(np.uint8)
    write_video(path, (np.broadcast_to(c, (128, 128, 3)) for c in color), 30)
    return path


def long_index(frames: np.ndarray) -> list[int]:
    """Recover the frame indices of :func:`long_video` (steps of 10 stay clear of codec error)."""
    mean = frames.reshape(len(frames), -1, 3).mean(axis=1) / 10
    return (np.round(mean[:, 0]) * 25 + np.round(mean[:, 1])).astype(int).tolist()


@pytest.mark.parametrize(("suffix", "fps", "tolerance"), [(".mp4", 24, 3.0), (".webm", 24, 3.0), (".gif", 25, 1.0)])
def test_round_trip(tmp_path: Path, suffix: str, fps: int, tolerance: float) -> None:
    frames = moving_square()
    path = write_video(tmp_path / f"clip{suffix}", frames, fps)
    info = probe_video(path)
    assert (info.width, info.height, info.num_frames) == (64, 48, 24)
    assert info.fps == pytest.approx(fps, rel=1e-3)
    assert info.duration == pytest.approx(24 / fps, rel=1e-2)
    back = read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(float) - frames).mean() < tolerance


def test_write_accepts_an_iterator_and_odd_sizes_are_padded(tmp_path: Path) -> None:
    frames = moving_square(t=6, h=33, w=35)
    path = write_video(tmp_path / "odd.mp4", iter(list(frames)), 10)
    back = read_video(path)
    assert back.shape == (6, 34, 36, 3)  # yuv420p needs even sides: one edge pixel was repeated
    assert np.abs(back[:, :33, :35].astype(float) - frames).mean() < 3.0


def test_fps_resampling_drops_and_repeats_the_right_frames(tmp_path: Path) -> None:
    path = write_video(tmp_path / "index.mp4", index_frames(48), 24)
    assert indices(read_video(path, fps=12)) == list(range(0, 48, 2))
    assert indices(read_video(path, fps=48)) == [i // 2 for i in range(96)]
    assert indices(read_video(path, fps=24)) == list(range(48))


def test_variable_frame_rate_uses_timestamps(tmp_path: Path) -> None:
    shown_at_ms = [0, 40, 80, 200, 240, 400, 440, 480]  # gaps: frames 2 and 4 stay on screen longer
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(shown_at_ms):
            frame = av.VideoFrame.from_ndarray(index_frames(8, step=20)[i])
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    # at 25 fps, output k is at k * 40 ms; the last frame lasts 40 ms (the previous gap)
    assert indices(read_video(path, fps=25), step=20) == [0, 1, 2, 2, 2, 3, 4, 4, 4, 4, 5, 6, 7]


def test_start_and_num_frames_count_after_resampling(tmp_path: Path) -> None:
    path = write_video(tmp_path / "index.webm", index_frames(48), 24)
    assert indices(read_video(path, start=10, num_frames=5)) == [10, 11, 12, 13, 14]
    assert indices(read_video(path, fps=12, start=3, num_frames=4)) == [6, 8, 10, 12]
    assert indices(read_video(path, fps=48, start=3, num_frames=4)) == [1, 2, 2, 3]
    assert list(iter_frames(path, start=100)) == []  # past the end: the iterator just stops
    with pytest.raises(VideoReadError, match="only 8"):
        read_video(path, start=40, num_frames=10)
    with pytest.raises(VideoReadError, match="no frames"):
        read_video(path, start=100)


def test_resize_short_side_and_exact(tmp_path: Path) -> None:
    path = write_video(tmp_path / "wide.mp4", moving_square(t=3, h=48, w=64), 24)
    assert read_video(path, size=24).shape == (3, 24, 32, 3)
    assert read_video(path, size=(20, 30)).shape == (3, 20, 30, 3)
    assert read_video(path, size=96).shape == (3, 96, 128, 3)
    with pytest.raises(ValueError, match="size"):
        read_video(path, size=(20,))


def test_folder_of_frames_in_natural_order(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(index_frames(12, step=20)):
        Image.fromarray(frame).save(folder / f"frame_{i}.png")  # frame_2 must come before frame_10
    (folder / "notes.txt").write_text("not a frame")
    info = probe_video(folder)
    assert (info.num_frames, info.fps, info.width) == (12, 25.0, 32)
    assert indices(read_video(folder), step=20) == list(range(12))
    assert indices(read_video(folder, folder_fps=10, fps=5), step=20) == list(range(0, 12, 2))
    assert read_video(folder, size=16, start=2, num_frames=3).shape == (3, 16, 16, 3)


def test_grayscale_palette_and_alpha_become_rgb(tmp_path: Path) -> None:
    gray = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 7
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(moving_square(1)[0]).quantize(8).save(tmp_path / "palette.png")
    out = read_video(tmp_path / "gray.png")
    assert out.shape == (1, 16, 16, 3) and (out[0] == gray[..., None]).all()
    assert (read_video(tmp_path / "rgba.png")[0] == (200, 0, 0)).all()  # alpha dropped, not composited
    assert read_video(tmp_path / "palette.png").shape == (1, 48, 64, 3)
    # the same for video streams: lossless PNG-in-MOV with gray and rgba pixel formats
    for pix_fmt, frame in [("gray", gray), ("rgba", rgba)]:
        path = tmp_path / f"{pix_fmt}.mov"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("png", rate=25)
            stream.width, stream.height, stream.pix_fmt = 16, 16, pix_fmt
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format=pix_fmt)))
            container.mux(stream.encode(None))
        expected = gray[..., None].repeat(3, -1) if pix_fmt == "gray" else rgba[..., :3]
        assert (read_video(path)[0] == expected).all()


class _CountingContainer:
    """Wraps a PyAV input container and counts the frames its decoder hands out."""

    def __init__(self, container: av.container.InputContainer, counter: list[int]) -> None:
        self._container, self._counter = container, counter

    def __getattr__(self, name: str):
        return getattr(self._container, name)

    def __enter__(self) -> _CountingContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._container.close()

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self._counter[0] += 1
            yield frame


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-element list counting every frame PyAV decodes from now on."""
    counter = [0]
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k), counter))
    return counter


def test_reading_stops_decoding_when_enough_frames(long_video: Path, decoded: list[int]) -> None:
    frames = iter_frames(long_video)
    next(frames)
    assert decoded[0] <= 4  # decoder threads may run a frame or two ahead, never the whole video
    frames.close()
    decoded[0] = 0
    assert long_index(read_video(long_video, num_frames=5)) == [0, 1, 2, 3, 4]
    assert decoded[0] <= 8


def test_late_start_seeks_instead_of_decoding_everything(long_video: Path, decoded: list[int]) -> None:
    clip = read_video(long_video, fps=30, start=520, num_frames=5)
    assert long_index(clip) == [520, 521, 522, 523, 524]
    assert decoded[0] < 300  # from the keyframe before frame 520, not from frame 0
    decoded[0] = 0
    assert long_index(read_video(long_video, start=520, num_frames=5)) == [520, 521, 522, 523, 524]
    assert decoded[0] >= 520  # no fps: start counts source frames, so it decodes its way there


def test_iterating_a_long_video_holds_no_frames(long_video: Path) -> None:
    alive = []
    count = 0
    for frame in iter_frames(long_video, size=32):
        assert frame.shape == (32, 32, 3)
        alive.append(weakref.ref(frame))
        count += 1
        del frame
    assert count == 600
    assert all(ref() is None for ref in alive)  # the reader keeps no frame it handed out


@pytest.mark.parametrize("content", [b"", b"this is a text file, not a video\n", "random", "truncated"])
def test_unreadable_files_raise_naming_the_path(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "bad.mp4"
    if content == "random":
        content = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    elif content == "truncated":
        good = write_video(tmp_path / "good.mp4", moving_square(), 24).read_bytes()
        content = good[:300]
    path.write_bytes(content)
    with pytest.raises(VideoReadError, match="bad.mp4"):
        read_video(path)
    with pytest.raises(VideoReadError, match="bad.mp4"):
        probe_video(path)


def test_cut_off_video_is_short_and_read_video_says_so(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.webm", index_frames(48), 24).read_bytes()
    path = tmp_path / "cut.webm"
    path.write_bytes(good[: len(good) // 2])
    assert 0 < len(list(iter_frames(path))) < 48
    with pytest.raises(VideoReadError, match="cut.webm"):
        read_video(path, num_frames=48)


def test_missing_and_empty_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        iter_frames(tmp_path / "nope.mp4")  # at the call, not at the first next()
    with pytest.raises(ValueError, match="start"):
        iter_frames(tmp_path / "nope.mp4", start=-1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoReadError, match="empty"):
        read_video(tmp_path / "empty")
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "0.png").write_text("not a png")
    with pytest.raises(VideoReadError, match="0.png"):
        read_video(tmp_path / "frames")


def test_write_never_overwrites_unless_asked(tmp_path: Path) -> None:
    path = write_video(tmp_path / "a.mp4", index_frames(3), 10)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="a.mp4"):
        write_video(path, index_frames(5), 10)
    assert path.read_bytes() == before
    write_video(path, index_frames(5), 10, overwrite=True)
    assert probe_video(path).num_frames == 5


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    def frames():
        yield from index_frames(4)
        yield np.zeros((16, 16, 3), np.uint8)  # a different size mid-stream

    with pytest.raises(ValueError, match="shape"):
        write_video(tmp_path / "a.gif", frames(), 10)
    path = write_video(tmp_path / "b.mp4", index_frames(3), 10)
    with pytest.raises(ValueError, match="shape"):
        write_video(path, frames(), 10, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.mp4"]  # no a.gif, no temporary file
    assert probe_video(path).num_frames == 3


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="uint8"):
        write_video(tmp_path / "a.mp4", index_frames(2).astype(np.float32), 10)
    with pytest.raises(ValueError, match=r"\(t, h, w, 3\)"):
        write_video(tmp_path / "a.mp4", index_frames(2)[..., 0], 10)
    with pytest.raises(ValueError, match=r"\.mp4.*\.webm.*\.gif"):
        write_video(tmp_path / "a.avi", index_frames(2), 10)
    with pytest.raises(ValueError, match="quality"):
        write_video(tmp_path / "a.gif", index_frames(2), 10, quality=20)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "a.mp4", [], 10)
    assert list(tmp_path.iterdir()) == []


def test_quality_is_crf(tmp_path: Path) -> None:
    frames = moving_square()
    best = write_video(tmp_path / "best.mp4", frames, 24, quality=0)
    worst = write_video(tmp_path / "worst.mp4", frames, 24, quality=51)
    assert best.stat().st_size > worst.stat().st_size
    assert (
        np.abs(read_video(best).astype(float) - frames).mean() < np.abs(read_video(worst).astype(float) - frames).mean()
    )
