"""tokgen.transformer: the masked bidirectional transformer (codes + text -> logits) and mask schedules.

Names are imported lazily, so ``tokgen.sampling`` (which needs only ``masking``) does not pull in
x-transformers.
"""

from __future__ import annotations

from tokgen.lazy import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _EXPORTS)
