"""`LearnedTextEncoder`: a small byte-level transformer encoder, trained with whatever uses it.

Axis legend: b prompts, l tokens (BOS, the prompt's UTF-8 bytes, EOS; at most ``max_length``),
d width.

No vocabulary file and nothing to download: the token ids are the 256 byte values plus three
specials. Meant for tests and tiny runs (the synthetic shapes captions), where a pretrained encoder
is more than the task needs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from tokgen.text.cache import PromptCache, weights_stamp
from tokgen.text.embedding import TextEmbedding, check_prompts, warn_truncated

VOCABS = ("bytes",)
PAD, BOS, EOS = 256, 257, 258
NUM_TOKENS = 259


class LearnedTextEncoder(nn.Module):
    """Trainable encoder: byte embeddings, then a pre-norm transformer with rotary positions.

    Gradients flow through `encode` in training mode or whenever grad is enabled; only in eval
    mode under ``torch.no_grad()`` are embeddings cached (and the cache is dropped as soon as the
    weights change). A blank prompt ``""`` embeds ``BOS EOS``.

    Args:
        dim: embedding width.
        depth: transformer layers.
        heads: attention heads; must divide ``dim``.
        max_length: most tokens per prompt, BOS and EOS included (so ``max_length - 2`` bytes).
        vocab: token alphabet; only "bytes" (UTF-8) for now.
        cache_size: most prompts whose embeddings are kept in eval mode; 0 disables the cache.
    """

    def __init__(
        self,
        *,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        max_length: int = 32,
        vocab: str = "bytes",
        cache_size: int = 256,
    ) -> None:
        super().__init__()
        if vocab not in VOCABS:
            raise ValueError(f"LearnedTextEncoder vocab must be one of {VOCABS}, got {vocab!r}")
        if min(dim, depth, heads) < 1 or dim % heads:
            raise ValueError(
                f"LearnedTextEncoder needs dim, depth, heads >= 1 and heads dividing dim, got "
                f"dim={dim}, depth={depth}, heads={heads}"
            )
        if max_length < 2:
            raise ValueError(f"LearnedTextEncoder max_length must be >= 2 (BOS and EOS), got {max_length}")
        # Imported here: x-transformers pulls in einx and torch._dynamo (about 1.5 s).
        from x_transformers import Encoder

        self.dim = dim
        self.max_length = max_length
        self.vocab = vocab
        self.token_emb = nn.Embedding(NUM_TOKENS, dim)
        # Small init (GPT-2): pre-norm residual blocks then start near the identity.
        nn.init.normal_(self.token_emb.weight, std=0.02)
        # Rotary positions over the whole head: tiny heads (16 wide by default) have few dims to spare,
        # and verbose=False drops x-transformers' advice on rotary width for large language models.
        self.encoder = Encoder(
            dim=dim,
            depth=depth,
            heads=heads,
            attn_dim_head=dim // heads,
            rotary_pos_emb=True,
            rotary_emb_dim=dim // heads,
            verbose=False,
        )
        self.cache = PromptCache(cache_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_length={self.max_length}, vocab={self.vocab!r}"

    def tokenize(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """Byte ids ``(b, l)`` long and mask ``(b, l)`` bool on the module's device; warns on truncation."""
        rows = []
        for prompt in prompts:
            data = prompt.encode("utf-8")
            if len(data) + 2 > self.max_length:
                warn_truncated(prompt, len(data) + 2, self.max_length)
                data = data[: self.max_length - 2]  # may split a multi-byte character; harmless for bytes
            rows.append(torch.tensor([BOS, *data, EOS]))
        ids = pad_sequence(rows, batch_first=True, padding_value=PAD).to(self.token_emb.weight.device)
        return ids, ids != PAD

    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Embed ``prompts``: ``emb (b, l, dim)`` float32 on the module's device; ``mask (b, l)``."""
        check_prompts(prompts)
        if self.training or torch.is_grad_enabled():
            return self._embed(list(prompts))
        return self.cache.encode(list(prompts), self._embed, weights_stamp(self))

    def _embed(self, prompts: list[str]) -> TextEmbedding:
        ids, mask = self.tokenize(prompts)
        hidden = self.encoder(self.token_emb(ids), mask=mask)  # (b, l, d)
        return TextEmbedding(emb=hidden.float() * mask[..., None], mask=mask)
