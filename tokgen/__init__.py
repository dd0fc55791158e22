"""tokgen: autoregressive, token-based video generation (C-ViViT tokenizer, masked transformer, story mode).

The public names are imported lazily, so ``tokgen --help`` and config composition stay fast.
"""

from __future__ import annotations

from tokgen.lazy import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _EXPORTS)
