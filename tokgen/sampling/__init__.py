"""tokgen.sampling: MaskGIT iterative decoding with classifier-free guidance."""

from tokgen.sampling.maskgit import (
    LogitsFn,
    TextConditionedModel,
    maskgit_sample,
    sample_from_prompts,
    text_logits_fn,
)

__all__ = ["LogitsFn", "TextConditionedModel", "maskgit_sample", "sample_from_prompts", "text_logits_fn"]
