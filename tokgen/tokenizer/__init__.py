"""tokgen.tokenizer: the C-ViViT video tokenizer (pixels <-> discrete spacetime codes) and its config.

Names are imported lazily, so composing a config does not pull in x-transformers or the quantizers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TokenizerConfig": "tokgen.tokenizer.config",
    "TokenizerTrainConfig": "tokgen.tokenizer.config",
    "VideoTokenizer": "tokgen.tokenizer.model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tokgen.tokenizer' has no attribute {name!r}")
