"""`TextEncoderConfig` and `build_text_encoder`: which text encoder a run uses, as a typed config.

A checkpoint stores this config, so a generator can rebuild its text encoder: pretrained encoders
are read again from their package or folder, a learned one gets its weights from the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tokgen.text.hf import HFTextEncoder
from tokgen.text.learned import LearnedTextEncoder
from tokgen.text.minilm import minilm_encoder

KINDS = ("minilm", "hf", "learned")


@dataclass
class TextEncoderConfig:
    """Which text encoder to build.

    Attributes:
        kind: "minilm" (the default, offline all-MiniLM-L6-v2), "hf" (a Hugging Face encoder at
            ``path``) or "learned" (a small byte-level encoder trained with the transformer).
        path: local folder or cached hub name of the "hf" model; must be None otherwise.
        max_length: most tokens per prompt, special tokens included.
        dim: width of the "learned" encoder (pretrained encoders bring their own).
        depth: layers of the "learned" encoder.
    """

    kind: str = "minilm"
    path: str | None = None
    max_length: int = 32
    dim: int = 64
    depth: int = 2

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"TextEncoderConfig.kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "hf" and not self.path:
            raise ValueError("TextEncoderConfig.path is required when kind='hf' (a local folder or cached hub name)")
        if self.kind != "hf" and self.path is not None:
            raise ValueError(
                f"TextEncoderConfig.path is only read when kind='hf', got path={self.path!r} with kind={self.kind!r}"
            )
        if self.max_length < 2:
            raise ValueError(f"TextEncoderConfig.max_length must be >= 2, got {self.max_length}")
        if self.dim < 1 or self.depth < 1:
            raise ValueError(f"TextEncoderConfig.dim and depth must be >= 1, got dim={self.dim}, depth={self.depth}")


def build_text_encoder(config: TextEncoderConfig) -> nn.Module:
    """The text encoder ``config`` describes (see `tokgen.text.TextEncoder` for its interface)."""
    if config.kind == "minilm":
        return minilm_encoder(max_length=config.max_length)
    if config.kind == "hf":
        return HFTextEncoder(config.path, max_length=config.max_length)
    return LearnedTextEncoder(dim=config.dim, depth=config.depth, max_length=config.max_length)
