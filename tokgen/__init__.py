"""tokgen: autoregressive, token-based video generation (C-ViViT tokenizer, masked transformer, story mode).

The public names are imported lazily, so ``tokgen --help`` and config composition stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "VideoTokenizer": "tokgen.tokenizer.model",
    "TokenizerConfig": "tokgen.tokenizer.config",
    "read_video": "tokgen.io.video",
    "write_video": "tokgen.io.video_write",
    "iter_frames": "tokgen.io.video",
    "probe_video": "tokgen.io.video",
    "frames_to_tensor": "tokgen.io.convert",
    "tensor_to_frames": "tokgen.io.convert",
    "contact_sheet": "tokgen.io.contact_sheet",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tokgen' has no attribute {name!r}")
