"""Video in and out (PyAV), the uint8 <-> tensor conversions, contact sheets and checkpoints."""

from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.io.convert import frames_to_tensor, tensor_to_frames
from tokgen.io.video import (
    VideoInfo,
    VideoReadError,
    VideoWriteError,
    atomic_output,
    iter_frames,
    probe_video,
    read_video,
    write_video,
)

__all__ = [
    "VideoInfo",
    "VideoReadError",
    "VideoWriteError",
    "atomic_output",
    "contact_sheet",
    "frames_to_tensor",
    "iter_frames",
    "probe_video",
    "read_video",
    "save_png",
    "tensor_to_frames",
    "write_video",
]
