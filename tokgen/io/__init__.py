"""Video in and out (PyAV), the uint8 <-> tensor conversions, contact sheets and checkpoints."""

from tokgen.io.atomic import atomic_output
from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.io.convert import frames_to_tensor, tensor_to_frames
from tokgen.io.video import VideoInfo, VideoReadError, iter_frames, probe_video, read_video
from tokgen.io.video_write import VideoWriteError, write_video

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
