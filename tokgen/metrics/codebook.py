"""How much of a codebook the codes use: usage fraction and perplexity."""

from __future__ import annotations

import torch


def code_histogram(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Counts of each code in ``codes`` (any shape, long), ``(codebook_size,)``."""
    flat = codes.reshape(-1).long()
    if flat.numel() and (flat.min() < 0 or flat.max() >= codebook_size):
        raise ValueError(f"codes must lie in [0, {codebook_size}), got range [{flat.min()}, {flat.max()}]")
    return torch.bincount(flat, minlength=codebook_size)


def codebook_usage(counts: torch.Tensor) -> float:
    """Fraction of codes used at least once, from a histogram."""
    return (counts > 0).float().mean().item()


def codebook_perplexity(counts: torch.Tensor) -> float:
    """``exp(entropy)`` of the code distribution: the effective number of codes in use."""
    p = counts.float() / counts.sum().clamp_min(1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum()
    return entropy.exp().item()
