"""tokgen.tokenizer: the C-ViViT video tokenizer (pixels <-> discrete spacetime codes) and its config.

Names are imported lazily, so composing a config does not pull in x-transformers or the quantizers.
"""

from __future__ import annotations

from tokgen.lazy import lazy_getattr

_EXPORTS = {
    "TokenizerConfig": "tokgen.tokenizer.config",
    "TokenizerTrainConfig": "tokgen.tokenizer.config",
    "VideoTokenizer": "tokgen.tokenizer.model",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
