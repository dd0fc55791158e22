"""The masked bidirectional video transformer: codes (with ``[MASK]``) + text embeddings -> code logits.

It knows no pixels and no strings: codes come from a tokenizer, text embeddings from a text encoder,
and both seams are checked here (``check_tokenizer``, the text width in ``forward``). Classifier-free
guidance needs nothing special: the null prompt is just another text embedding (that of ``""``).

Axis legend: ``b`` batch, ``t h w`` latent frames / rows / columns of codes, ``n`` = ``t h w`` tokens,
``l`` text tokens, ``c`` text embedding width, ``d`` model width, ``v`` codebook size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from x_transformers import Encoder
from x_transformers.attend import Attend

from tokgen.transformer.config import TransformerConfig


def _softmax(scores: Tensor) -> Tensor:
    """Attention weights in the scores' own dtype (the explicit path runs only for CPU bf16 / fp16).

    x-transformers' default upcasts to fp32 and back: two copies of every ``(b, heads, n, n)`` matrix
    each way, and PyTorch's fp32 CPU softmax backward on top. In bf16 the forward is bit-identical (the
    kernel accumulates in fp32) and the gradients differ by bf16 rounding; a small-preset step (2 cores,
    5x8x8 codes, batch 16) spent ~2/3 of its time on those matrices and runs 1.2-1.45x faster.
    """
    return scores.softmax(dim=-1)


def rotary_angles(grid: tuple[int, int, int], dim_head: int, base: float, device: torch.device | None = None) -> Tensor:
    """``(1, t*h*w, 2 * (dim_head // 2))`` rotary angles of a ``(t, h, w)`` grid, for x-transformers.

    Each pair of head dims turns with one axis: a quarter of the pairs with the latent frame, the rest
    split between row and column; an axis with ``k`` pairs uses frequencies ``base ** (-i / k)``. A
    query and key then score by their offset along every axis. Pairs are interleaved as x-transformers
    rotates them (dims ``2i, 2i + 1`` share angle ``i``).
    """
    pairs = dim_head // 2
    t_pairs = max(1, pairs // 4)
    h_pairs = (pairs - t_pairs) // 2
    counts = (t_pairs, h_pairs, pairs - t_pairs - h_pairs)
    coords = torch.meshgrid(*(torch.arange(n, device=device, dtype=torch.float32) for n in grid), indexing="ij")
    angles = []
    for coord, k in zip(coords, counts, strict=True):
        freqs = base ** (-torch.arange(k, device=device, dtype=torch.float32) / k)
        angles.append(coord.reshape(-1, 1) * freqs)  # (n, k)
    return torch.cat(angles, dim=-1).repeat_interleave(2, dim=-1)[None]


class MaskedTransformer(nn.Module):
    """MaskGIT-style bidirectional transformer over a ``t x h x w`` grid of codes, cross-attending to text."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.dim
        self.token_emb = nn.Embedding(config.vocab_size, dim)
        self.digit_emb, levels = None, config.code_levels
        if levels:
            # code_digits[k, d]: row of digit_emb for digit d of code k (per-digit tables stacked).
            basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), 0)
            offsets = torch.cumsum(torch.tensor([0, *levels[:-1]]), 0)
            digits = torch.arange(config.codebook_size)[:, None] // basis % torch.tensor(levels)
            self.register_buffer("code_digits", digits + offsets, persistent=False)
            self.digit_emb = nn.Embedding(sum(levels), dim)
        # Positions: factorized learned tables, one per axis, summed (pos = T[t] + H[h] + W[w]).
        # Why not rotary: x-transformers' rotary is 1-D over the flattened sequence, so a 3-D variant
        # means splitting head dims by hand inside every attention; learned absolute tables are what
        # MaskGIT and Phenaki use, cost (max_t + max_h + max_w) * dim parameters, nothing per layer,
        # and slice to any smaller grid (story windows re-index t from 0, so no extrapolation is needed).
        self.pos_t = nn.Parameter(torch.zeros(config.max_t, dim))
        self.pos_h = nn.Parameter(torch.zeros(config.max_h, dim))
        self.pos_w = nn.Parameter(torch.zeros(config.max_w, dim))
        self.emb_dropout = nn.Dropout(config.dropout)
        # Text encoders differ wildly in output scale (T5's activations are large, CLIP's normalized),
        # so normalize before projecting to the model width.
        self.text_proj = nn.Sequential(nn.LayerNorm(config.text_dim), nn.Linear(config.text_dim, dim))
        # Pre-norm layers of [self-attention, cross-attention to text, feed-forward]; attn_flash routes
        # attention to PyTorch SDPA. The Encoder ends with its own final norm.
        self.encoder = Encoder(
            dim=dim,
            depth=config.depth,
            heads=config.heads,
            attn_dim_head=config.dim_head,
            ff_mult=config.ff_mult,
            cross_attend=True,
            attn_flash=True,
            # x-transformers' default list leaves out cuDNN; with it, PyTorch picks among all its kernels.
            attn_attend_sdp_kwargs={f"enable_{k}": True for k in ("flash", "cudnn", "mem_efficient", "math")},
            attn_custom_attn_fn=_softmax,
            attn_dropout=config.dropout,
            ff_dropout=config.dropout,
        )
        # Output head tied to the code embeddings (as MaskGIT's MLM layer): the vector that means
        # "code k" on input also scores code k on output; saves codebook_size * dim parameters. Only
        # the real codes get a row, so [MASK] can never be predicted.
        self.head_bias = nn.Parameter(torch.zeros(config.codebook_size))
        # Self-attention runs on SDPA (see _choose_attention). Cross-attention to the few text tokens
        # runs as explicit matmuls: with its key-padding mask SDPA can only take the memory-efficient
        # kernel, which took 2.7 ms of a 61 ms base step (H200, bf16, batch 32) for ~0.1% of its FLOPs.
        self._attends, cross = [], []
        for kind, layer in zip(self.encoder.layer_types, self.encoder.layers, strict=True):
            attends = [m for m in layer.modules() if isinstance(m, Attend)]
            (cross if kind == "c" else self._attends).extend(attends)
        for attend in cross:
            attend.flash = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Small embeddings: with tying, an N(0, 1) table would start the logits at scale sqrt(dim).
        tables = [self.token_emb.weight, self.pos_t, self.pos_h, self.pos_w]
        for table in tables + ([self.digit_emb.weight] if self.digit_emb is not None else []):
            nn.init.normal_(table, std=0.02)
        nn.init.zeros_(self.head_bias)

    def enable_checkpointing(self) -> None:
        """Recompute every attention and feed-forward block in the backward pass (gradient checkpointing).

        Activation memory drops from all blocks' to about one block's for ~1/3 more compute; values and
        gradients are unchanged. x-transformers has no switch for it, so each block is wrapped in torch's
        checkpoint wrapper, whose state-dict hooks keep the parameter names as they were. Idempotent.
        """
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            CheckpointWrapper,
            apply_activation_checkpointing,
        )
        from x_transformers.x_transformers import Attention, FeedForward

        if not any(isinstance(m, CheckpointWrapper) for m in self.encoder.modules()):
            apply_activation_checkpointing(self.encoder, check_fn=lambda m: isinstance(m, (Attention, FeedForward)))

    def _choose_attention(self, device: torch.device) -> None:
        """SDPA, except on a CPU in bf16 / fp16: there x-transformers' explicit attention.

        PyTorch's CPU flash kernel is slow in bf16 (its backward took 56% of a small training step). A
        bare small-preset step (2 cores, 5x8x8 codes, batch 16) then runs 1.65x faster than in fp32
        (0.36 vs 0.60 s) where flash gave 1.1x. Same maths, and the same zeroing of fully masked rows.
        """
        half = (torch.float16, torch.bfloat16)
        cpu_half = device.type == "cpu" and (
            (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") in half)
            or self.token_emb.weight.dtype in half
        )
        for attend in self._attends:
            if attend.flash == cpu_half:  # only on a change: a compiled GPU model never mutates here
                attend.flash = not cpu_half

    def code_table(self) -> Tensor:
        """``(codebook_size + 1, dim)``: the vector of every code and of ``[MASK]`` (the last row)."""
        if self.digit_emb is None:
            return self.token_emb.weight
        digits = self.digit_emb(self.code_digits).sum(-2)  # (codebook_size, dim)
        return torch.cat([self.token_emb.weight[:-1] + digits, self.token_emb.weight[-1:]])

    @property
    def mask_id(self) -> int:
        """Id of the ``[MASK]`` token (``codebook_size``)."""
        return self.config.mask_id

    def check_tokenizer(
        self, codebook_size: int, codes_shape: tuple[int, int, int], levels: Sequence[int] | None = None
    ) -> None:
        """Raise ``ValueError`` unless a tokenizer's codes fit this transformer.

        Args:
            codebook_size: the tokenizer's number of codes; must equal this transformer's.
            codes_shape: the tokenizer's latent grid ``(t, h, w)`` for the intended clips.
            levels: the tokenizer's ``code_levels`` (empty for VQ / LFQ; None: not known); must equal
                this transformer's ``code_levels`` when it has them.
        """
        cfg = self.config
        if codebook_size != cfg.codebook_size:
            raise ValueError(
                f"tokenizer codebook_size {codebook_size} != transformer codebook_size {cfg.codebook_size}: "
                "the transformer was built (or trained) for another tokenizer"
            )
        if cfg.code_levels and levels is not None and list(levels) != cfg.code_levels:
            raise ValueError(
                f"transformer code_levels {cfg.code_levels} do not match the tokenizer's quantizer levels "
                f"{list(levels) or '(none: not an FSQ tokenizer)'}: its codes would be split into the wrong digits"
            )
        self._check_grid(tuple(codes_shape), what="tokenizer codes shape")

    def _check_grid(self, grid: tuple[int, ...], *, what: str) -> None:
        cfg = self.config
        if len(grid) != 3 or min(grid) < 1:
            raise ValueError(f"{what} must be (t, h, w) with each >= 1, got {grid}")
        if any(size > limit for size, limit in zip(grid, cfg.max_latent_shape, strict=True)):
            raise ValueError(
                f"{what} (t, h, w) = {grid} exceeds the transformer maxima (max_t, max_h, max_w) = "
                f"{cfg.max_latent_shape}"
            )

    def _check_inputs(self, codes: Tensor, text: Tensor, text_mask: Tensor) -> None:
        cfg = self.config
        if codes.ndim != 4 or codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"codes must be an integer tensor (B, t, h, w), got {codes.dtype} {tuple(codes.shape)}")
        self._check_grid(tuple(codes.shape[1:]), what="codes grid")
        # Value checks read the tensors back to the host (a sync each); a compiled model (training) skips
        # them, so its graph has no breaks and the GPU no idle gaps. Shape checks cost nothing and stay.
        compiling = torch.compiler.is_compiling()
        if not compiling and codes.numel() and (codes.min() < 0 or codes.max() > cfg.mask_id):
            raise ValueError(
                f"codes {tuple(codes.shape)} hold values in [{int(codes.min())}, {int(codes.max())}], "
                f"outside [0, {cfg.mask_id}] (codes 0..{cfg.codebook_size - 1}, [MASK] = {cfg.mask_id})"
            )
        if text.ndim != 3 or not text.is_floating_point():
            raise ValueError(f"text must be a float tensor (B, L, D_text), got {text.dtype} {tuple(text.shape)}")
        if text.shape[-1] != cfg.text_dim:
            raise ValueError(
                f"text embedding width {text.shape[-1]} does not match transformer text_dim {cfg.text_dim} "
                f"(text {tuple(text.shape)})"
            )
        if text.shape[1] > cfg.max_text_len:
            raise ValueError(
                f"text length {text.shape[1]} exceeds max_text_len {cfg.max_text_len} (text {tuple(text.shape)})"
            )
        if text_mask.dtype != torch.bool or text_mask.shape != text.shape[:2]:
            raise ValueError(
                f"text_mask must be bool (B, L) = {tuple(text.shape[:2])}, "
                f"got {text_mask.dtype} {tuple(text_mask.shape)}"
            )
        if text.shape[0] != codes.shape[0]:
            raise ValueError(f"batch mismatch: codes {tuple(codes.shape)} but text {tuple(text.shape)}")
        if not compiling and not bool(torch.isfinite(text[text_mask]).all()):  # padded positions are never read
            raise ValueError(f"text embeddings {tuple(text.shape)} hold NaN or Inf values")

    def forward(self, codes: Tensor, text: Tensor, text_mask: Tensor, *, select: Tensor | None = None) -> Tensor:
        """Logits over the real codes at every position (or at the selected ones).

        Args:
            codes: ``(B, t, h, w)`` long in ``[0, codebook_size]``; ``codebook_size`` is ``[MASK]``.
            text: ``(B, L, text_dim)`` float text embeddings (the null prompt is that of ``""``).
            text_mask: ``(B, L)`` bool, True = real text token. All False is allowed.
            select: ``(B, t, h, w)`` bool: score only these positions (training's masked tokens), the
                same values as ``forward(...)[select]`` without the output head's work elsewhere.

        Returns:
            ``(B, t, h, w, codebook_size)`` float logits (``[MASK]`` has no logit); with ``select``,
            ``(select.sum(), codebook_size)`` in ``select``'s row-major order.
        """
        self._check_inputs(codes, text, text_mask)
        self._choose_attention(codes.device)
        _, t, h, w = codes.shape
        pos = (
            rearrange(self.pos_t[:t], "t d -> t 1 1 d")
            + rearrange(self.pos_h[:h], "h d -> 1 h 1 d")
            + rearrange(self.pos_w[:w], "w d -> 1 1 w d")
        )  # (t, h, w, d)
        table = self.code_table()
        x = F.embedding(codes, table) + pos  # (b, t, h, w, d)
        x = self.emb_dropout(rearrange(x, "b t h w d -> b (t h w) d"))
        context = self.text_proj(text)  # (b, l, d)
        rotary = None
        if self.config.rotary:
            cfg = self.config
            rotary = (rotary_angles((t, h, w), cfg.dim_head, cfg.rotary_base, codes.device), 1.0)
        x = self.encoder(x, context=context, context_mask=text_mask, rotary_pos_emb=rotary)  # (b, n, d), final-normed
        if select is not None:
            if select.shape != codes.shape or select.dtype != torch.bool:
                raise ValueError(
                    f"select must be bool {tuple(codes.shape)} like codes, got {select.dtype} {tuple(select.shape)}"
                )
            x = x[select.flatten(1)]  # (k, d)
        # Tied head: rows 0..codebook_size-1 of the input table, so [MASK] is never predicted.
        logits = F.linear(x, table[: self.config.codebook_size], self.head_bias)  # (b, n, v) or (k, v)
        if select is not None:
            return logits
        return rearrange(logits, "b (t h w) v -> b t h w v", t=t, h=h, w=w)


def masked_token_loss(
    logits: Tensor, codes: Tensor, mask: Tensor, *, label_smoothing: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy and accuracy over the masked positions: ``(loss, accuracy)``, scalar float32.

    The same values as ``F.cross_entropy(logits[mask], codes[mask])``, but with the mask as a weight
    instead of a selection: no host sync (a boolean index must count its rows first) and static shapes,
    so under torch.compile the log-softmax, the weighting and the argmax fuse into passes over the
    logits. Eagerly it scores every position, twice the work of the selection: use it compiled.

    Args:
        logits: ``(..., v)`` float logits; ``codes``: ``(...)`` long targets; ``mask``: ``(...)`` bool.
    """
    flat = logits.flatten(0, -2).float()
    targets, weight = codes.flatten(), mask.flatten().float()
    count = weight.sum().clamp_min(1.0)
    ce = F.cross_entropy(flat, targets, reduction="none", label_smoothing=label_smoothing)
    accuracy = ((flat.argmax(-1) == targets).float() * weight).sum() / count
    return (ce * weight).sum() / count, accuracy
