"""Image files as video sources: a single image is a one-frame video, a folder of images its frames.

Frames are sorted by name with digit runs compared as numbers (``frame_2`` before ``frame_10``) and
decoded with PyAV only when kept, so they get the same pixel-format handling as video frames
(``tokgen.io.video`` reads them through :func:`image_source_files` and :func:`image_frames`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import av

from tokgen.io.video_errors import VideoReadError, ffmpeg_reason

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

# Decodes one frame when called: a frame is decoded only if it is kept.
_Load = Callable[[], av.VideoFrame]


def image_source_files(path: Path) -> list[Path] | None:
    """Frame files of a folder or single image source; None if ``path`` is a video file."""
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
        if not files:
            raise VideoReadError(f"{path}: folder holds no frames ({', '.join(IMAGE_EXTENSIONS)})")
        # frame_2 before frame_10: compare digit runs as numbers
        return sorted(files, key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        if not path.exists():
            raise FileNotFoundError(f"no such image: '{path}'")
        return [path]
    return None


def image_frames(files: list[Path], source: Path, fps: float) -> Iterator[tuple[float, _Load | None]]:
    """Image files as frames ``i / fps`` apart, decoded only when kept."""
    for i, file in enumerate(files):
        yield i / fps, load_image(file, source)
    yield len(files) / fps, None


def load_image(file: Path, source: Path) -> _Load:
    """Loader decoding one image with PyAV (same pixel-format handling as video frames)."""

    def load() -> av.VideoFrame:
        try:
            with av.open(str(file)) as container:
                return next(container.decode(video=0))
        except (av.error.FFmpegError, StopIteration) as e:
            where = f"{source}: frame '{file.name}'" if source != file else f"{file}"
            raise VideoReadError(f"{where} is not a readable image ({ffmpeg_reason(e) or 'no frame'})") from e

    return load
