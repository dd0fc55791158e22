"""Video reading with PyAV, streaming frame by frame.

Axis legend: t frames, h height, w width, c channels (3, RGB).

Sources that read: video files (mp4, webm, mov, mkv, avi, gif), a single image file (a one-frame
video) and a folder of image frames (sorted by name, digits compared as numbers). Every frame comes
out as ``uint8`` ``(h, w, 3)`` RGB, whatever the source's pixel format (grayscale, alpha, palette,
16-bit), because FFmpeg's swscale does the conversion (alpha is dropped, not composited).

Reading never holds more than a couple of decoded frames: :func:`iter_frames` is a generator that
resizes each frame inside PyAV while decoding and stops decoding as soon as it has produced enough.
Writing lives in ``tokgen.io.video_write``, image files and folders as sources in
``tokgen.io.image_frames``, the errors in ``tokgen.io.video_errors``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from tokgen.io.image_frames import image_frames, image_source_files, load_image
from tokgen.io.video_errors import UnsupportedPixelFormat, VideoReadError, ffmpeg_reason

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")

# Skipping ahead by decoding is exact and cheap for a few seconds of video; past that a keyframe seek
# saves decoding everything before the clip (what a dataset drawing clips from long videos needs).
_SEEK_MIN_SECONDS = 2.0


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says about a video, without decoding it.

    Attributes:
        path: the probed path.
        width: frame width in pixels.
        height: frame height in pixels.
        fps: average frame rate (``folder_fps`` for image folders and single images).
        num_frames: number of frames, from the header or estimated from duration; None if unknown.
        duration: seconds, including the last frame's display time; None if unknown.
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int | None
    duration: float | None


# A decoded frame is converted to RGB only if it is kept; a loader defers that work.
_Load = Callable[[], av.VideoFrame]
_T = TypeVar("_T")


def probe_video(path: str | os.PathLike, *, folder_fps: float = 25.0) -> VideoInfo:
    """Read the header of a video file, or list a folder of frames / a single image.

    Args:
        path: video file, image file, or folder of image frames.
        folder_fps: frame rate reported for folders and single images.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoReadError: not a readable video, no video stream, or an empty folder.
    """
    path = Path(path)
    images = image_source_files(path)
    if images is not None:
        frame = load_image(images[0], path)()
        n = len(images)
        return VideoInfo(path, frame.width, frame.height, folder_fps, n, n / folder_fps)
    with _open_input(path) as (container, stream):
        tb = stream.time_base
        duration = None
        if stream.duration is not None and tb is not None:
            duration = float(stream.duration * tb)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        frames = stream.frames or None
        if frames and duration:
            # GIF headers round delays to centiseconds, so average_rate can be off; count/duration is not.
            fps = frames / duration
        else:
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
        if frames is None and duration and fps:
            frames = round(duration * fps)
        width, height = stream.codec_context.width, stream.codec_context.height
    if fps <= 0:
        raise VideoReadError(f"{path}: the header states no frame rate")
    return VideoInfo(path, width, height, fps, frames, duration)


def iter_frames(
    path: str | os.PathLike,
    *,
    start: int = 0,
    num_frames: int | None = None,
    fps: float | None = None,
    size: int | tuple[int, int] | None = None,
    folder_fps: float = 25.0,
) -> Iterator[np.ndarray]:
    """Yield uint8 ``(h, w, 3)`` RGB frames one at a time.

    ``start`` and ``num_frames`` count frames *after* resampling to ``fps``. With ``fps`` given,
    output frame ``k`` is the source frame on screen at time ``k / fps`` (from the decoded
    timestamps, so variable frame rate works): frames are dropped or repeated as needed. Too few
    frames is not an error here: the iterator just stops early (:func:`read_video` checks).

    Args:
        path: video file, image file, or folder of image frames.
        start: first output frame to yield.
        num_frames: how many frames to yield at most; None for all.
        fps: target frame rate; None keeps every source frame.
        size: an int resizes the short side to it keeping the aspect ratio; ``(h, w)`` resizes exactly.
        folder_fps: frame rate of folders and single images.

    Raises:
        FileNotFoundError: ``path`` does not exist (at the call, like argument errors).
        VideoReadError: corrupt or not a video, no video stream, or no frame decoded at all (while
            iterating; an empty frame folder at the call).
    """
    if start < 0 or (num_frames is not None and num_frames < 0):
        raise ValueError(f"iter_frames: start and num_frames must be >= 0, got {start} and {num_frames}")
    if fps is not None and not fps > 0:
        raise ValueError(f"iter_frames: fps must be > 0, got {fps}")
    if folder_fps <= 0:
        raise ValueError(f"iter_frames: folder_fps must be > 0, got {folder_fps}")
    _check_size(size)
    path = Path(path)
    images = image_source_files(path)
    if images is None and not path.exists():
        raise FileNotFoundError(f"no such video: '{path}'")
    stop = None if num_frames is None else start + num_frames
    if stop == 0:
        return iter(())
    if images is None:
        return _video_file_frames(path, start, stop, fps, size)
    timed = image_frames(images, path, folder_fps)
    picks = _resample(timed, fps, t0=0.0, tol=1e-9, first_index=0) if fps else _enumerate(timed)
    return _convert(picks, start, stop, size)


def read_video(
    path: str | os.PathLike,
    *,
    start: int = 0,
    num_frames: int | None = None,
    fps: float | None = None,
    size: int | tuple[int, int] | None = None,
    folder_fps: float = 25.0,
) -> np.ndarray:
    """Read a clip into memory as uint8 ``(t, h, w, 3)``; arguments as in :func:`iter_frames`.

    Raises:
        VideoReadError: as :func:`iter_frames`; also when ``num_frames`` was given and the video
            ends before that many frames, or when nothing is left at or after ``start``.
    """
    frames = list(iter_frames(path, start=start, num_frames=num_frames, fps=fps, size=size, folder_fps=folder_fps))
    if num_frames is not None and len(frames) < num_frames:
        at = f" at {fps:g} fps" if fps else ""
        raise VideoReadError(
            f"{path}: asked for {num_frames} frames from frame {start}{at}, the video has only {len(frames)} there"
        )
    if not frames:
        raise VideoReadError(f"{path}: no frames at or after frame {start}")
    return np.stack(frames)


def _video_file_frames(
    path: Path, start: int, stop: int | None, fps: float | None, size: int | tuple[int, int] | None
) -> Iterator[np.ndarray]:
    """:func:`iter_frames` for a video file: decode lazily, seeking first when the clip starts late."""
    try:
        if fps is not None and start / fps >= _SEEK_MIN_SECONDS:
            yield from _convert(_seek_and_resample(path, fps, start), start, stop, size)
            return
        with _open_input(path) as (container, stream):
            t0, tol = _stream_timing(stream)
            timed = _container_frames(container, stream, path)
            picks = _resample(timed, fps, t0, tol, first_index=0) if fps else _enumerate(timed)
            yield from _convert(picks, start, stop, size)
    except av.error.FFmpegError as e:
        raise VideoReadError(f"{path}: decoding failed ({ffmpeg_reason(e)})") from e
    except UnsupportedPixelFormat as e:
        raise UnsupportedPixelFormat(f"{path}: {e}") from e.__cause__


# With ``threads`` unset, PyAV 18.1.1 gives swscale a thread pool that a forked DataLoader worker
# inherits without its threads: the first conversion there waits forever (seen in
# tests/data/test_video_folder.py with one worker). Emptied on the first TypeError: an older PyAV
# has no ``threads`` argument.
_ONE_THREAD = {"threads": 1}


def _to_rgb(frame: av.VideoFrame, width: int, height: int, interpolation: str) -> np.ndarray:
    """The frame as RGB ``(height, width, 3)``, converted on the calling thread alone."""
    size = {"width": width, "height": height, "interpolation": interpolation}
    if _ONE_THREAD:
        try:
            return frame.to_ndarray(format="rgb24", **size, **_ONE_THREAD)
        except TypeError:
            _ONE_THREAD.clear()
    return frame.to_ndarray(format="rgb24", **size)


@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open a media file and its first video stream, turning FFmpeg errors into VideoReadError."""
    if not path.exists():
        raise FileNotFoundError(f"no such video: '{path}'")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VideoReadError(f"{path}: not a readable video ({ffmpeg_reason(e)})") from e
    with container:
        if not container.streams.video:
            raise VideoReadError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads; decoding dominates read time
        yield container, stream


def _stream_timing(stream: av.video.stream.VideoStream) -> tuple[float | None, float]:
    """Start time (None if unknown) and timestamp tolerance of a stream, in seconds."""
    tb = stream.time_base
    t0 = float(stream.start_time * tb) if stream.start_time is not None and tb else None
    # Timestamps are rounded to the time base (1 ms for webm, 10 ms for gif): allow one tick of error.
    return t0, float(tb) if tb else 1e-6


def _container_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> Iterator[tuple[float, _Load | None]]:
    """Decoded frames as ``(time, loader)``, then ``(end time, None)``; error if there are none."""
    last, step, count = None, None, 0
    for frame in container.decode(stream):
        time = frame.time
        if time is None:  # no timestamp (some avi): assume the average rate
            time = 0.0 if last is None else last + (step or 1 / float(stream.average_rate or 25))
        if last is not None and time > last:
            step = time - last
        if frame.duration and frame.time_base:
            step = float(frame.duration * frame.time_base)
        last, count = time, count + 1
        yield time, (lambda f=frame: f)
    if count == 0:
        raise VideoReadError(f"{path}: no frame could be decoded")
    yield last + (step or 1 / float(stream.average_rate or 25)), None


def _seek_and_resample(path: Path, fps: float, start: int) -> Iterator[tuple[int, _Load]]:
    """Resampled frames from output index ``start`` on, seeking to the keyframe before it first.

    Falls back to decoding from the beginning when the container cannot seek there exactly.
    """
    with _open_input(path) as (container, stream):
        t0, tol = _stream_timing(stream)
        if t0 is not None and stream.time_base:
            target = t0 + start / fps
            try:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
                timed = _container_frames(container, stream, path)
                first = next(timed)
            except (av.error.FFmpegError, VideoReadError):
                first = (math.inf, None)  # the container cannot seek: decode from the start below
            # Landing anywhere at or before the target is exact: earlier frames are just passed over.
            if first[1] is not None and first[0] <= target + tol:
                yield from _resample(_prepend(first, timed), fps, t0, tol, first_index=start)
                return
    with _open_input(path) as (container, stream):
        t0, tol = _stream_timing(stream)
        yield from _resample(_container_frames(container, stream, path), fps, t0, tol, first_index=0)


def _resample(
    timed: Iterable[tuple[float, _Load | None]], fps: float, t0: float | None, tol: float, first_index: int
) -> Iterator[tuple[int, _Load]]:
    """For each output time ``t0 + k / fps`` pick the frame on screen then; yield ``(k, loader)``."""
    k, shown = first_index, None
    for time, load in timed:
        if t0 is None:
            t0 = time
        # Output times before this frame's time show the previous frame.
        while shown is not None and t0 + k / fps < time - tol:
            yield k, shown
            k += 1
        if load is None:
            return
        shown = load


def _enumerate(timed: Iterable[tuple[float, _Load | None]]) -> Iterator[tuple[int, _Load]]:
    """Every source frame in order, without resampling."""
    for k, (_, load) in enumerate(timed):
        if load is not None:
            yield k, load


def _convert(
    picks: Iterable[tuple[int, _Load]], start: int, stop: int | None, size: int | tuple[int, int] | None
) -> Iterator[np.ndarray]:
    """Turn picked frames in ``[start, stop)`` into resized RGB arrays (a fresh array each time)."""
    for k, load in picks:
        if stop is not None and k >= stop:
            return
        if k < start:
            continue
        frame = load()
        height, width = _output_size(frame.height, frame.width, size)
        shrink = height * width < frame.height * frame.width
        # AREA averages source pixels when shrinking (no aliasing); bilinear is smoother when enlarging.
        interpolation = "AREA" if shrink else "BILINEAR"
        try:
            rgb = _to_rgb(frame, width, height, interpolation)
        except av.error.FFmpegError as e:  # swscale has no conversion from this pixel format
            raise UnsupportedPixelFormat(f"pixel format {frame.format.name!r} cannot be converted to RGB") from e
        yield rgb
        if stop is not None and k + 1 >= stop:
            return  # do not decode another frame just to learn that we are done


def _output_size(height: int, width: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """``(h, w)`` after resizing: short side to an int ``size``, or exactly to a tuple."""
    if size is None:
        return height, width
    if isinstance(size, tuple):
        return size
    scale = size / min(height, width)
    return max(size, round(height * scale)), max(size, round(width * scale))


def _check_size(size: int | tuple[int, int] | None) -> None:
    ok = size is None or (isinstance(size, int) and size > 0)
    ok = ok or (isinstance(size, tuple) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size))
    if not ok:
        raise ValueError(f"size must be None, a positive int (short side) or a (height, width) tuple, got {size!r}")


def _prepend(first: _T, rest: Iterator[_T]) -> Iterator[_T]:
    """``first`` then the rest: puts back an item taken to peek."""
    yield first
    yield from rest
