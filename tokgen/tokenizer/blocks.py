"""The C-ViViT tokenizer's parts: position tables, attention, and transformer blocks along one axis.

Axis legend (as in ``tokgen.tokenizer.model``): b batch, t latent frames, s spatial tokens per latent
frame, d model width, n heads, e head width, L sequence length.

The blocks are our own, not x-transformers' (5-7% slower per layer here, measured, and needing the
tokens copied into (b h w) t order for time): q, k, v of both axes are strided views of one fused
projection, and temporal attention takes the window mask and absolute positions chunks need.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

SHORT_ATTENTION = 32  # attention over at most this many tokens uses explicit matmuls, not SDPA
SHORT_ATTENTION_CPU_HALF = 128  # the same bound on a CPU in bf16 / fp16 (see `attend`)


# --- positions ---------------------------------------------------------------------------------------


def sincos_2d(h: int, w: int, dim: int, *, device: torch.device) -> Tensor:
    """Fixed 2-D sine table ``(h * w, dim)``: half the channels encode the row, half the column."""
    quarter = dim // 4
    freqs = 10000 ** -(torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    rows = torch.arange(h, device=device)[:, None] * freqs  # (h, dim/4)
    cols = torch.arange(w, device=device)[:, None] * freqs  # (w, dim/4)
    rows = torch.cat([rows.sin(), rows.cos()], dim=-1)[:, None].expand(h, w, 2 * quarter)
    cols = torch.cat([cols.sin(), cols.cos()], dim=-1)[None].expand(h, w, 2 * quarter)
    table = torch.cat([rows, cols], dim=-1).reshape(h * w, 4 * quarter)
    return F.pad(table, (0, dim - 4 * quarter))  # zero channels when 4 does not divide dim


def rotary(positions: Tensor, dim: int) -> Tensor:
    """Rotary embedding (RoFormer) of the given frame positions: complex rotations ``(t, dim / 2)``."""
    freqs = 10000 ** -(torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    angles = positions.float()[:, None] * freqs  # (t, dim/2)
    return torch.polar(torch.ones_like(angles), angles)


def rotate(x: Tensor, rope: Tensor) -> Tensor:
    """Rotate channel pairs of ``x`` ``(..., t, e)`` by ``rope``; q.k then depends only on t_q - t_k.

    One complex multiply instead of the usual rotate-half (slices, a cat and four elementwise ops). Under
    torch.compile the same rotation is written in real arithmetic: inductor generates no code for complex
    numbers and fuses the real form into one kernel.
    """
    pairs = x.float().unflatten(-1, (-1, 2))  # (..., t, e/2, 2)
    if torch.compiler.is_compiling():
        x0, x1, cos, sin = pairs[..., 0], pairs[..., 1], rope.real, rope.imag
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2).to(x.dtype)
    return torch.view_as_real(torch.view_as_complex(pairs) * rope).flatten(-2).to(x.dtype)


def window_mask(t: int, window: int | None, *, device: torch.device) -> Tensor | None:
    """Boolean ``(t, t)``, True where frame i sees frame j (``i - window < j <= i``); None if causal is."""
    if window is None or t <= window:
        return None
    i = torch.arange(t, device=device)
    gap = i[:, None] - i[None, :]
    return (gap >= 0) & (gap < window)


def attend(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None, causal: bool) -> Tensor:
    """softmax(q k^T / sqrt(e)) v over ``(..., L, e)``; ``mask`` (True = attend) or else ``causal``.

    SDPA (no ``L x L`` matrix), except for short sequences (temporal attention over a few latent
    frames), where fused kernels pad every one of thousands of tiny sequences to a whole tile: explicit
    matmuls are faster on a CPU (2 cores, train step: 14 ms against 23 ms per temporal layer) and, with
    the blocks compiled, on a GPU (H100, bf16, `base` at batch 32: 104 ms against 136 ms per step).
    On a CPU in bf16 the flash kernel's backward is slow: explicit matmuls win up to ~128 tokens (fwd +
    bwd, 2 cores: 329 vs 891 ms at 64 tokens), so spatial attention goes explicit too (small step 0.31 -> 0.23 s).
    """
    length = q.shape[-2]
    cpu_half = q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16)
    if length > (SHORT_ATTENTION_CPU_HALF if cpu_half else SHORT_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
    scores = (q @ k.transpose(-1, -2)).mul_(q.shape[-1] ** -0.5)  # (..., L, L)
    if mask is None and causal:
        mask = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill_(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


# --- transformer ------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention of ``(b, t, s, d)`` tokens along space, or causally along time."""

    def __init__(self, *, temporal: bool, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.temporal, self.heads, self.dim_head = temporal, heads, dim_head
        # Output features ordered (n, 3, e): q, k, v of both axes are then views, not copies.
        self.to_qkv = nn.Linear(dim, heads * 3 * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim)

    def forward(self, x: Tensor, *, rope: Tensor | None, mask: Tensor | None) -> Tensor:
        b, t, s, _ = x.shape
        qkv = self.to_qkv(x).view(b, t, s, self.heads, 3, self.dim_head)  # (b, t, s, n, 3, e)
        if self.temporal:  # one sequence of t frames per (spatial position, head)
            q, k, v = (rearrange(z, "b t s n e -> b (s n) t e") for z in qkv.unbind(-2))
            if rope is not None:
                q, k = rotate(q, rope), rotate(k, rope)
            out = attend(q, k, v, mask=mask, causal=True)
            out = rearrange(out, "b (s n) t e -> b t s (n e)", n=self.heads)
        else:  # one sequence of s tokens per (latent frame, head)
            q, k, v = (rearrange(z, "b t s n e -> (b t) n s e") for z in qkv.unbind(-2))
            out = attend(q, k, v, mask=None, causal=False)
            out = rearrange(out, "(b t) n s e -> b t s (n e)", b=b)
        return self.to_out(out)


class Block(nn.Module):
    """Pre-norm transformer block: attention then a GELU feed-forward, each with a residual."""

    def __init__(self, *, temporal: bool, dim: int, heads: int, dim_head: int, ff_mult: float) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(temporal=temporal, dim=dim, heads=heads, dim_head=dim_head)
        self.ff_norm = nn.LayerNorm(dim)
        # No bias into the GELU: the LayerNorm's shift times the weight already is one.
        hidden = int(dim * ff_mult)
        self.ff = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, *, rope: Tensor | None, mask: Tensor | None) -> Tensor:
        x = x + self.attn(self.attn_norm(x), rope=rope, mask=mask)
        return x + self.ff(self.ff_norm(x))


class Transformer(nn.ModuleList):
    """``depth`` blocks attending along one axis: space, or (``temporal=True``) causally time."""

    def __init__(self, *, depth: int, temporal: bool, dim: int, heads: int, dim_head: int, ff_mult: float) -> None:
        width = dict(dim=dim, heads=heads, dim_head=dim_head, ff_mult=ff_mult)
        super().__init__(Block(temporal=temporal, **width) for _ in range(depth))

    checkpointing = False  # set by training (train.checkpointing): recompute blocks in backward

    def forward(self, x: Tensor, *, rope: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        for block in self:
            if self.checkpointing and torch.is_grad_enabled():
                # Keep only each block's input; its activations are recomputed in backward (same values).
                x = torch.utils.checkpoint.checkpoint(block, x, rope=rope, mask=mask, use_reentrant=False)
            else:
                x = block(x, rope=rope, mask=mask)
        return x


class PixelRefine(nn.Module):
    """Residual per-frame 3x3 convolutions over decoded pixels ``(b, c, T, H, W)``: mend the patch seams.

    Each frame is refined on its own, so the decoder stays causal and chunked decoding unchanged. The
    last convolution starts at zero: a new model decodes exactly as without refinement.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, channels, 3, padding=1)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, video: Tensor) -> Tensor:
        # Channels-last: oneDNN's CPU convolutions run 2-3x faster on it (16 channels, 136 frames of
        # 64x64 in bf16, fwd + bwd on 2 cores: 70 against 133 ms).
        frames = rearrange(video, "b c t h w -> (b t) c h w").contiguous(memory_format=torch.channels_last)
        return video + rearrange(self.net(frames), "(b t) c h w -> b c t h w", b=video.shape[0])
