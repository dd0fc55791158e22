"""tokgen.transformer: the masked bidirectional transformer (codes + text -> logits) and mask schedules.

Names are imported lazily, so ``tokgen.sampling`` (which needs only ``masking``) does not pull in
x-transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TransformerConfig": "tokgen.transformer.config",
    "MaskedTransformer": "tokgen.transformer.model",
    "SCHEDULES": "tokgen.transformer.masking",
    "schedule": "tokgen.transformer.masking",
    "sample_mask_ratio": "tokgen.transformer.masking",
    "random_mask": "tokgen.transformer.masking",
    "num_masked_after_step": "tokgen.transformer.masking",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tokgen.transformer' has no attribute {name!r}")
