"""Errors of video reading and writing, and FFmpeg's reason for a failure, shared by the PyAV modules."""

from __future__ import annotations


class VideoReadError(ValueError):
    """A video (or frame folder) could not be read; the message names the path and the cause."""


class UnsupportedPixelFormat(VideoReadError):
    """Frames decode, but FFmpeg cannot convert their pixel format to RGB."""


def ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's reason without the file name PyAV appends (our messages name the path already)."""
    return getattr(error, "strerror", None) or str(error)
