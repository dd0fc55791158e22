"""C-ViViT video tokenizer (Phenaki, section 2.1): causal in time, so images are one-frame videos.

Axis legend:
    b batch, c channels, T H W pixel frames / height / width,
    t latent frames, h w latent grid (H / p, W / p), s = h * w spatial tokens per latent frame,
    pt temporal patch, p1 p2 spatial patch, d model width, n heads, e head width.

Encoder: frame 0 patched alone (p x p), later frames as tubelets (pt x p x p); a fixed 2-D sine table
places each token at any resolution; a spatial transformer over the s tokens of each latent frame; a
causal temporal transformer with rotary positions (and an optional sliding window) over the t latent
frames of each position; the quantizer. The decoder mirrors it. Nothing looks ahead in time, so the
codes of a clip's prefix are the prefix of its codes, and encode / decode can run in chunks.

The position tables, attention and blocks live in ``tokgen.tokenizer.blocks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from tokgen.io.checkpoint import load_pretrained, save_pretrained
from tokgen.tokenizer.blocks import Block, PixelRefine, Transformer, rotary, sincos_2d, window_mask
from tokgen.tokenizer.config import TokenizerConfig
from tokgen.tokenizer.quantizer import Quantizer

KIND = "tokenizer"


@dataclass
class TokenizerOutput:
    """`VideoTokenizer.forward`: ``recon`` shaped like the video, ``codes`` ``(b, t, h, w)`` long, and
    ``quantizer_loss``, a scalar: the quantizer's own weighted loss (VQ commitment, LFQ entropy, FSQ 0)."""

    recon: Tensor
    codes: Tensor
    quantizer_loss: Tensor


# --- the tokenizer ----------------------------------------------------------------------------------


class VideoTokenizer(nn.Module):
    """C-ViViT: ``(b, c, T, H, W)`` video in [-1, 1] <-> ``(b, t, h, w)`` codes, ``t = 1 + (T - 1) / pt``.

    Args:
        config: architecture and quantizer; stored as ``self.config`` and in saved checkpoints.
    """

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        c, p, pt, d = config.channels, config.patch_size, config.temporal_patch, config.dim
        width = dict(dim=d, heads=config.heads, dim_head=config.dim_head, ff_mult=config.ff_mult)
        k = p + 2 * config.patch_overlap  # a patch's side with the overlap into its neighbours
        self.embed_first = nn.Linear(c * k * k, d)  # frame 0, patched alone
        self.embed_rest = nn.Linear(c * pt * k * k, d)  # later frames, in tubelets of pt
        self.enc_space = Transformer(depth=config.spatial_depth, temporal=False, **width)
        self.enc_time = Transformer(depth=config.temporal_depth, temporal=True, **width)
        self.enc_norm = nn.LayerNorm(d)  # tokens reach the quantizer's projection at a fixed scale
        self.quantizer = Quantizer(config)
        self.dec_time = Transformer(depth=config.temporal_depth, temporal=True, **width)
        self.dec_space = Transformer(depth=config.spatial_depth, temporal=False, **width)
        self.dec_norm = nn.LayerNorm(d)
        self.to_first = nn.Linear(d, c * k * k)
        self.to_rest = nn.Linear(d, c * pt * k * k)
        self.refine = PixelRefine(c, config.refine_channels) if config.refine_channels else None
        self._grids: dict[tuple, Tensor] = {}  # 2-D sine tables by (h, w, device); not weights
        own = {id(m) for m in self.quantizer.modules()}  # the quantizer keeps the library's init
        for module in self.modules():
            if isinstance(module, nn.Linear) and id(module) not in own:
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # --- public API ---------------------------------------------------------------------------------

    def compile_blocks(self, **options: object) -> None:
        """``torch.compile`` every transformer block in place (regional compilation), ``options`` passed on.

        The blocks hold nearly all the work; compiling them alone compiles each distinct block once and
        leaves the quantizer (data-dependent dead-code restarts) and the patching eager. Whole-model
        compilation fails in inductor's partitioner on torch 2.11 with CUDA (measured on an H100).
        """
        for module in self.modules():
            if isinstance(module, Block):
                module.compile(**options)

    def codes_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Codes ``(t, h, w)`` of a clip of ``num_frames`` frames of ``height x width`` pixels."""
        p = self.config.patch_size
        if height % p or width % p or height < p or width < p:
            raise ValueError(f"frames of {height}x{width} pixels are not a whole number of {p}x{p} patches")
        return self.config.latent_frames(num_frames), height // p, width // p

    @torch.no_grad()
    def encode(self, video: Tensor, *, chunk_frames: int | None = None) -> Tensor:
        """Video ``(b, c, T, H, W)`` float in [-1, 1] -> codes ``(b, t, h, w)`` long.

        No gradients, and the codebook never changes, whatever the module's mode.

        Args:
            video: ``T = 1 + k * temporal_patch`` frames; ``H, W`` multiples of ``patch_size``.
            chunk_frames: encode this many latent frames at a time, recomputing the
                ``temporal_depth * (temporal_window - 1)`` frames before each chunk that its codes
                depend on; the codes are the same as in one pass. Memory then stays bounded for any
                length, except with ``temporal_window=None`` where every chunk sees all before it.
        """
        t, h, w = self._check_video(video)
        codes = []
        for context, start, stop in self._spans(t, chunk_frames):
            x = self._encode_latents(video[:, :, self._frame(context) : self._frame(stop)], first=context)
            codes.append(self.quantizer.indices(x[:, start - context :].flatten(1, 2)))
        return rearrange(torch.cat(codes, dim=1), "b (t h w) -> b t h w", h=h, w=w)

    def decode(self, codes: Tensor, *, chunk_frames: int | None = None) -> Tensor:
        """Codes ``(b, t, h, w)`` long -> video ``(b, c, T, H, W)``, ``T = 1 + (t - 1) * temporal_patch``.

        Args:
            codes: ids in ``[0, codebook_size)``.
            chunk_frames: decode this many latent frames at a time (with context, as in `encode`);
                the pixels equal one pass up to float rounding.
        """
        self._check_codes(codes)
        b, t, h, w = codes.shape
        frames = []
        for context, start, stop in self._spans(t, chunk_frames):
            x = self.quantizer.embed(codes[:, context:stop].flatten(1))
            x = self._decode_latents(rearrange(x, "b (t s) d -> b t s d", t=stop - context), first=context, h=h)
            frames.append(x[:, :, self._frame(start) - self._frame(context) :])
        return torch.cat(frames, dim=2)

    def forward(self, video: Tensor, *, quantizer_mix: float = 1.0) -> TokenizerOutput:
        """Training pass: encode, quantize (straight-through gradients), decode, in one piece.

        Args:
            video: ``(b, c, T, H, W)`` in [-1, 1].
            quantizer_mix: what the decoder sees, ``x + mix * (quantized - x)``: 1 the codes, 0 the
                continuous latents ``x``, between a blend (quantizer warm-up: through a narrow
                quantized bottleneck from step 0 the model learns where objects are long before their
                colour, so training first finds an informative latent space, then moves onto the codes
                gradually). Codes and the quantizer's loss are computed whatever the mix, and a VQ
                codebook keeps following the encoder through its EMA.
        """
        if not 0.0 <= quantizer_mix <= 1.0:
            raise ValueError(f"quantizer_mix must be in [0, 1], got {quantizer_mix}")
        _, h, _ = self._check_video(video)
        x = self._encode_latents(video, first=0)
        quant = self.quantizer(x.flatten(1, 2))  # (b, t*s, d)
        quantized = quant.quantized.view_as(x)
        if quantizer_mix < 1.0:
            quantized = x + quantizer_mix * (quantized - x)
        recon = self._decode_latents(quantized, first=0, h=h)
        codes = rearrange(quant.indices, "b (t h w) -> b t h w", t=x.shape[1], h=h)
        return TokenizerOutput(recon=recon, codes=codes, quantizer_loss=quant.loss)

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory`` (see `tokgen.io.checkpoint`)."""
        return save_pretrained(directory, self.config.to_dict(), self.state_dict(), kind=KIND, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> VideoTokenizer:
        """Rebuild a tokenizer saved by `save_pretrained`, weights on ``map_location``, in eval mode."""
        config, state = load_pretrained(directory, kind=KIND, device=map_location)
        model = cls(TokenizerConfig.from_dict(config))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:  # lists missing, unexpected and misshapen tensors
            raise ValueError(f"{directory}: model.safetensors does not fit its config.json: {error}") from None
        return model.to(map_location).eval()

    # --- encoder and decoder ------------------------------------------------------------------------

    def _encode_latents(self, video: Tensor, *, first: int) -> Tensor:
        """Pixels of latent frames ``first, first + 1, ...`` -> tokens ``(b, t, s, d)`` before quantizing."""
        p, pt = self.config.patch_size, self.config.temporal_patch
        h, w = video.shape[-2] // p, video.shape[-1] // p
        parts = []
        if first == 0:
            parts.append(self.embed_first(self._patch(video[:, :, :1], 1)))
            video = video[:, :, 1:]
        if video.shape[2]:
            parts.append(self.embed_rest(self._patch(video, pt)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        x = self.enc_space(x + self._grid(h, w, x))
        x = self.enc_time(x, **self._time(first, x.shape[1], x.device))
        return self.enc_norm(x)

    def _decode_latents(self, x: Tensor, *, first: int, h: int) -> Tensor:
        """Quantized tokens ``(b, t, s, d)`` of latent frames ``first, ...`` -> pixels ``(b, c, T, H, W)``."""
        pt = self.config.temporal_patch
        w = x.shape[2] // h
        x = self.dec_time(x + self._grid(h, w, x), **self._time(first, x.shape[1], x.device))
        x = self.dec_norm(self.dec_space(x))
        parts = []
        if first == 0:
            parts.append(self._unpatch(self.to_first(x[:, :1]), 1, h))
            x = x[:, 1:]
        if x.shape[1]:
            parts.append(self._unpatch(self.to_rest(x), pt, h))
        video = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        return video if self.refine is None else self.refine(video)

    def _patch(self, video: Tensor, frames: int) -> Tensor:
        """``(b, c, t * frames, H, W)`` -> ``(b, t, h * w, c * frames * k * k)``: each token's pixels.

        ``k = patch_size + 2 * patch_overlap``; with an overlap, patches reach into their neighbours'
        and zeros beyond the frame's edge.
        """
        p, o = self.config.patch_size, self.config.patch_overlap
        if o == 0:
            return rearrange(video, "b c (t f) (h p1) (w p2) -> b t (h w) (c f p1 p2)", f=frames, p1=p, p2=p)
        b = video.shape[0]
        stacked = rearrange(video, "b c (t f) H W -> (b t) (c f) H W", f=frames)
        patches = F.unfold(stacked, kernel_size=p + 2 * o, stride=p, padding=o)  # (b t, c f k k, h w)
        return rearrange(patches, "(b t) x s -> b t s x", b=b)

    def _unpatch(self, x: Tensor, frames: int, h: int) -> Tensor:
        """Token vectors laid out as `_patch` reads them -> pixels ``(b, c, t * frames, H, W)``.

        The inverse of `_patch` without an overlap; with one, patches are summed where they meet (so
        neighbouring tokens blend across the seam) and what falls beyond the frame's edge is dropped.
        """
        p, o = self.config.patch_size, self.config.patch_overlap
        if o == 0:
            tubes = "b t (h w) (c f p1 p2) -> b c (t f) (h p1) (w p2)"
            return rearrange(x, tubes, h=h, f=frames, p1=p, p2=p)
        b, w = x.shape[0], x.shape[2] // h
        patches = rearrange(x, "b t s x -> (b t) x s")
        stacked = F.fold(patches, (h * p, w * p), kernel_size=p + 2 * o, stride=p, padding=o)  # (b t, c f, H, W)
        return rearrange(stacked, "(b t) (c f) H W -> b c (t f) H W", b=b, f=frames)

    def _grid(self, h: int, w: int, like: Tensor) -> Tensor:
        """The ``(h * w, d)`` sine table of an ``h x w`` grid, built once per grid and device."""
        key = (h, w, like.device)
        if key not in self._grids:
            # Outside inference mode, so a table first built under it still works in training.
            with torch.inference_mode(False), torch.no_grad():
                self._grids[key] = sincos_2d(h, w, self.config.dim, device=like.device)
        return self._grids[key]

    def _time(self, first: int, t: int, device: torch.device) -> dict[str, object]:
        """Rotary rotations at absolute positions ``first, ...`` and the window mask of ``t`` frames."""
        rope = rotary(torch.arange(first, first + t, device=device), self.config.dim_head)
        return {"rope": rope, "mask": window_mask(t, self.config.temporal_window, device=device)}

    def _spans(self, t: int, chunk_frames: int | None) -> list[tuple[int, int, int]]:
        """``(context, start, stop)`` spans of latent frames: compute ``[context, stop)``, keep from start."""
        if chunk_frames is None:
            return [(0, 0, t)]
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1 latent frame, got {chunk_frames}")
        window = self.config.temporal_window
        # Each causal layer reaches window - 1 frames further back; without a window, all the way.
        reach = t if window is None else self.config.temporal_depth * (window - 1)
        return [(max(0, start - reach), start, min(start + chunk_frames, t)) for start in range(0, t, chunk_frames)]

    def _frame(self, latent: int) -> int:
        """Index of the first pixel frame of latent frame ``latent`` (frame 0 is alone)."""
        return 0 if latent == 0 else 1 + (latent - 1) * self.config.temporal_patch

    # --- contracts ----------------------------------------------------------------------------------

    def _check_video(self, video: Tensor) -> tuple[int, int, int]:
        """Raise ValueError unless ``video`` fits this tokenizer; return its codes shape ``(t, h, w)``."""
        shape = tuple(video.shape)
        if video.ndim != 5 or not video.is_floating_point():
            raise ValueError(f"expected a float video (b, c, T, H, W), got {video.dtype} of shape {shape}")
        if shape[1] != self.config.channels:
            raise ValueError(f"expected {self.config.channels} channels (b, c, T, H, W), got shape {shape}")
        try:
            codes_shape = self.codes_shape(*shape[2:])
        except ValueError as error:
            raise ValueError(f"video of shape {shape} (b, c, T, H, W): {error}") from None
        low, high = torch.aminmax(video)  # one pass; NaN propagates into both
        if not (torch.isfinite(low) and torch.isfinite(high)):
            raise ValueError(f"video of shape {shape} contains NaN or Inf values")
        return codes_shape

    def _check_codes(self, codes: Tensor) -> None:
        """Raise ValueError unless ``codes`` are integer ``(b, t, h, w)`` ids in ``[0, codebook_size)``."""
        shape, size = tuple(codes.shape), self.config.codebook_size
        if codes.ndim != 4 or codes.is_floating_point() or codes.is_complex() or 0 in shape:
            raise ValueError(f"expected integer codes (b, t, h, w), got {codes.dtype} of shape {shape}")
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= size:
            bad = low if low < 0 else high
            raise ValueError(f"codes of shape {shape} hold {bad}, outside the codebook [0, {size})")
