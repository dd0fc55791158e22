"""Video in and out (PyAV), the uint8 <-> tensor conversions, contact sheets and checkpoints.

The PyAV readers and writers are imported lazily: the models import ``tokgen.io.checkpoint`` alone, so
loading, exporting or benchmarking a model works without PyAV.
"""

from __future__ import annotations

import importlib
from typing import Any

# contact_sheet is both a submodule and a function: bound here, so the function wins.
from tokgen.io.atomic import atomic_output
from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.io.convert import frames_to_tensor, tensor_to_frames

_LAZY = {
    "VideoInfo": "tokgen.io.video",
    "VideoReadError": "tokgen.io.video",
    "iter_frames": "tokgen.io.video",
    "probe_video": "tokgen.io.video",
    "read_video": "tokgen.io.video",
    "VideoWriteError": "tokgen.io.video_write",
    "write_video": "tokgen.io.video_write",
}
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tokgen.io' has no attribute {name!r}")
