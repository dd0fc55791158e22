"""Token shards of tiny Shapes clips for tests that train the tiny transformer."""

from __future__ import annotations

from pathlib import Path

import torch

from tokgen.data.shapes import ShapesDataset
from tokgen.data.token_shards import write_token_shards
from tokgen.tokenizer.model import VideoTokenizer


def _placeholder_text(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    # transformer_tiny trains its own (learned) text encoder from the captions; these embeddings go unused.
    return torch.zeros(len(prompts), 4, 32), torch.ones(len(prompts), 4, dtype=torch.bool)


def write_tiny_shards(tokenizer: VideoTokenizer, out: Path, *, clips: int, batch_size: int) -> Path:
    """``clips`` 9-frame 16x16 Shapes clips (seed 0) encoded by ``tokenizer`` into shards of 8 under ``out``."""
    with torch.no_grad():
        return write_token_shards(
            ShapesDataset(length=clips, seed=0, resolution=16, num_frames=9),
            out,
            encode_video=tokenizer.encode,
            encode_text=_placeholder_text,
            codebook_size=tokenizer.config.codebook_size,
            shard_size=8,
            batch_size=batch_size,
        )
