"""Video writing with PyAV: mp4 (H.264), webm (VP9) and gif, atomically, from any iterable of frames.

Axis legend: t frames, h height, w width, c channels (3, RGB). Frames are ``uint8`` ``(h, w, 3)``;
a long video is encoded as it is produced, never held whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from tokgen.io.atomic import atomic_output
from tokgen.io.video import _prepend
from tokgen.io.video_errors import ffmpeg_reason

# suffix -> (muxer, encoder, pixel format, default CRF, largest CRF the encoder accepts)
_WRITE_FORMATS = {
    ".mp4": ("mp4", "libx264", "yuv420p", 18, 51),
    ".webm": ("webm", "libvpx-vp9", "yuv420p", 30, 63),
    ".gif": ("gif", "gif", "pal8", None, None),
}


class VideoWriteError(ValueError):
    """A video could not be encoded; the message names the path and the cause."""


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float,
    *,
    overwrite: bool = False,
    quality: int | None = None,
) -> Path:
    """Encode frames to a video file chosen by suffix, atomically.

    ``.mp4`` is H.264 (yuv420p; an odd width or height is padded by one edge pixel because 4:2:0
    chroma needs even sizes), ``.webm`` is VP9, ``.gif`` uses one adaptive 256-colour palette per
    frame (exact for frames with at most 256 colours; GIF stores delays in 1/100 s, so rates that do
    not divide 100 play back approximately). Nothing appears at ``path`` unless encoding completes.

    Args:
        path: output file; its suffix picks the codec.
        frames: uint8 ``(t, h, w, 3)`` array, or an iterable of ``(h, w, 3)`` frames (streamed).
        fps: frame rate.
        overwrite: replace an existing file.
        quality: CRF (lower is better): default 18 for mp4 (0-51), 30 for webm (0-63); must be None for gif.

    Returns:
        ``path`` as a Path.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: unknown suffix, bad quality or fps, no frames.
        TypeError: frames are not uint8.
        VideoWriteError: the encoder failed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITE_FORMATS:
        raise ValueError(f"write_video: cannot write '{path}': supported suffixes are {', '.join(_WRITE_FORMATS)}")
    muxer, codec, pix_fmt, default_crf, max_crf = _WRITE_FORMATS[suffix]
    if max_crf is None and quality is not None:
        raise ValueError(f"write_video: quality is a CRF and has no meaning for {suffix} ('{path}'); pass None")
    crf = default_crf if quality is None else quality
    if max_crf is not None and not 0 <= crf <= max_crf:
        raise ValueError(f"write_video: quality (CRF) for {suffix} must be in [0, {max_crf}], got {crf}")
    if not fps > 0:
        raise ValueError(f"write_video: fps must be > 0, got {fps}")
    frame_iter = iter(_checked_frames(frames))
    first = next(frame_iter, None)
    if first is None:
        raise ValueError(f"write_video: no frames to write to '{path}'")
    height, width = first.shape[:2]
    pad = pix_fmt == "yuv420p" and codec == "libx264"
    if pad:
        height, width = height + height % 2, width + width % 2
    options = {"crf": str(crf)} if crf is not None else {}
    if codec == "libvpx-vp9":
        # b=0 makes crf a constant-quality target instead of a cap under libvpx's default bitrate.
        options |= {"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
    # faststart puts the index first: the file plays while downloading and a cut-off copy still opens.
    container_options = {"movflags": "+faststart"} if muxer == "mp4" else {}
    with atomic_output(path, overwrite=overwrite) as tmp:
        try:
            with av.open(str(tmp), "w", format=muxer, container_options=container_options) as container:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
                stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
                for frame in _prepend(first, frame_iter):
                    if frame.shape != first.shape:
                        raise ValueError(
                            f"write_video: every frame must have shape {first.shape} like the first, "
                            f"got {frame.shape} ('{path}')"
                        )
                    if pad:
                        frame = np.pad(
                            frame, ((0, height - frame.shape[0]), (0, width - frame.shape[1]), (0, 0)), "edge"
                        )
                    container.mux(stream.encode(_to_av_frame(frame, pix_fmt)))
                container.mux(stream.encode(None))
        except av.error.FFmpegError as e:
            raise VideoWriteError(f"{path}: encoding with {codec} failed ({ffmpeg_reason(e)})") from e
    return path


def _checked_frames(frames: np.ndarray | Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    """Validate an array of frames up front, or each frame of an iterable as it arrives."""
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8:
            raise TypeError(f"write_video: frames must be uint8, got dtype {frames.dtype}")
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"write_video: frames must have shape (t, h, w, 3), got {frames.shape}")
        return frames
    return (_checked_frame(f, i) for i, f in enumerate(frames))


def _checked_frame(frame: np.ndarray, index: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise TypeError(f"write_video: frame {index} must be uint8, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"write_video: frame {index} must have shape (h, w, 3), got {frame.shape}")
    return frame


def _to_av_frame(frame: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """RGB array -> PyAV frame; for GIF with its own adaptive palette (swscale's fixed one bands)."""
    frame = np.ascontiguousarray(frame)
    if pix_fmt != "pal8":
        return av.VideoFrame.from_ndarray(frame, format="rgb24")
    image = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT)
    rgb = np.zeros((256, 3), np.uint8)
    used = np.asarray(image.getpalette(), np.uint8).reshape(-1, 3)[:256]
    rgb[: len(used)] = used
    argb = np.concatenate([np.full((256, 1), 255, np.uint8), rgb], axis=1)  # PyAV wants ARGB rows
    return av.VideoFrame.from_ndarray((np.asarray(image), argb), format="pal8")
