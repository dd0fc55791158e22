"""The text-encoder interface: `TextEncoder` (a protocol) and what it returns, `TextEmbedding`.

Axis legend: b prompts, l tokens (the longest prompt of the batch, at most ``max_length``), d width.

Any ``nn.Module`` with ``dim``, ``max_length`` and ``encode`` is a text encoder; nothing subclasses
a base class. The transformer sees only `TextEmbedding`s, never strings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


@dataclass
class TextEmbedding:
    """Per-token embeddings of a batch of prompts.

    Attributes:
        emb: ``(b, l, d)`` float32; padding positions are zero.
        mask: ``(b, l)`` bool, True on real tokens. Real tokens come first (right padding) and every
            prompt, the blank one included, has at least one.
    """

    emb: Tensor
    mask: Tensor

    def __post_init__(self) -> None:
        if self.emb.ndim != 3 or self.mask.shape != self.emb.shape[:2]:
            raise ValueError(
                f"TextEmbedding needs emb (b, l, d) and mask (b, l), got {tuple(self.emb.shape)} and "
                f"{tuple(self.mask.shape)}"
            )

    @classmethod
    def from_rows(cls, rows: list[Tensor]) -> TextEmbedding:
        """Right-pad per-prompt ``(l_i, d)`` embeddings into a batch (also joins two batches:
        ``TextEmbedding.from_rows(a.rows() + b.rows())``). Differentiable."""
        lengths = [row.shape[0] for row in rows]
        emb = pad_sequence(rows, batch_first=True)  # (b, max l_i, d), zeros after each row
        positions = torch.arange(emb.shape[1], device=emb.device)
        mask = positions[None, :] < torch.tensor(lengths, device=emb.device)[:, None]
        return cls(emb=emb, mask=mask)

    def rows(self) -> list[Tensor]:
        """The real-token embeddings of each prompt, ``[(l_i, d), ...]`` (views, no copy)."""
        return [self.emb[i, :n] for i, n in enumerate(self.mask.sum(1).tolist())]


@runtime_checkable
class TextEncoder(Protocol):
    """What the rest of tokgen asks of a text encoder (an ``nn.Module``).

    Attributes:
        dim: embedding width ``d``.
        max_length: most tokens per prompt; longer prompts are truncated with a warning.
    """

    dim: int
    max_length: int

    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Embed ``prompts`` on the module's device; ``""`` is the unconditional prompt."""
        ...


def check_prompts(prompts: list[str]) -> None:
    """Raise on an empty batch or a non-string prompt (a bare string would embed its characters)."""
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
        raise TypeError(f"encode expects a list of prompts, got {type(prompts).__name__}")
    if not prompts:
        raise ValueError("encode needs at least one prompt (use '' for the unconditional prompt)")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise TypeError(f"prompts must be strings, got {type(bad[0]).__name__}: {bad[0]!r}")


def warn_truncated(prompt: str, length: int, max_length: int) -> None:
    """Warn that ``prompt`` (``length`` tokens) is cut to ``max_length`` tokens."""
    head = prompt if len(prompt) <= 40 else prompt[:40] + "..."
    warnings.warn(
        f"prompt {head!r} has {length} tokens, more than max_length={max_length}; it is truncated",
        UserWarning,
        stacklevel=2,
    )
