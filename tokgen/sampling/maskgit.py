"""MaskGIT iterative decoding (Chang et al. 2022, section 3.2) with classifier-free guidance.

A pure function of a logits callable and a ``torch.Generator``: no model, no text, no pixels. Each of
``steps`` forward passes predicts every masked token at once, keeps the most confident predictions
and re-masks the rest, so a clip of ``t * h * w`` codes costs ``steps`` passes (12 for 576 codes)
where token-by-token autoregressive decoding costs ``t * h * w`` (576).

Guidance contract (``LogitsFn``): the sampler calls ``logits_fn(codes, guided=...)`` exactly once per
step (with ``first_frame``, also once per step of the first frame's own pass, on a one-frame grid).
With ``guided=False`` (``guidance == 1``), ``codes`` is the ``(B, t, h, w)`` batch and the logits
are conditioned on the real prompts. With ``guided=True``, ``codes`` is the doubled batch
``[codes; codes]`` of ``2B`` rows: rows ``0..B-1`` must be conditioned on the real prompts and rows
``B..2B-1`` on the null prompt; the sampler combines ``null + guidance * (cond - null)``.
``text_logits_fn`` builds such a callable from a text-conditioned model.

Axis legend: ``b`` batch, ``t h w`` latent grid, ``n`` = ``t h w`` tokens, ``v`` codebook size,
``m`` masked positions gathered across the batch.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from tokgen.transformer.masking import SCHEDULES, num_masked_after_step


class LogitsFn(Protocol):
    """``codes (N, t, h, w) long -> logits (N, t, h, w, V) float``; ``guided``: see the module docstring."""

    def __call__(self, codes: Tensor, *, guided: bool) -> Tensor: ...


class TextConditionedModel(Protocol):
    """``model(codes, text, text_mask) -> logits``, as ``tokgen.transformer.MaskedTransformer``."""

    def __call__(self, codes: Tensor, text: Tensor, text_mask: Tensor) -> Tensor: ...


def _pad_text(text: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    pad = length - text.shape[1]
    return F.pad(text, (0, 0, 0, pad)), F.pad(mask, (0, pad), value=False)


def text_logits_fn(
    model: TextConditionedModel,
    text: Tensor,
    text_mask: Tensor,
    null_text: Tensor | None = None,
    null_text_mask: Tensor | None = None,
) -> LogitsFn:
    """A ``LogitsFn`` that conditions ``model`` on prompts, pairing guided second halves with the null prompt.

    Args:
        model: ``model(codes, text, text_mask) -> logits``.
        text: ``(B, L, D)`` prompt embeddings; ``text_mask``: ``(B, L)`` bool.
        null_text: ``(1, L0, D)`` or ``(B, L0, D)`` embedding of the empty prompt; needed only for guidance.
        null_text_mask: ``(1, L0)`` or ``(B, L0)`` bool.

    Returns:
        The callable for ``maskgit_sample``. Prompt and null lengths may differ: both are right-padded
        with masked-out positions to a common length for the doubled batch.
    """
    guided_text: tuple[Tensor, Tensor] | None = None
    if null_text is not None:
        if null_text_mask is None:
            raise ValueError("null_text needs null_text_mask")
        batch, length = text.shape[0], max(text.shape[1], null_text.shape[1])
        if null_text.shape[0] not in (1, batch) or null_text_mask.shape != null_text.shape[:2]:
            raise ValueError(
                f"null_text {tuple(null_text.shape)} / null_text_mask {tuple(null_text_mask.shape)} must be "
                f"(1 or {batch}, L0, D) / (1 or {batch}, L0) for text {tuple(text.shape)}"
            )
        null, null_mask = _pad_text(null_text, null_text_mask, length)
        cond, cond_mask = _pad_text(text, text_mask, length)
        null, null_mask = null.expand(batch, -1, -1), null_mask.expand(batch, -1)
        guided_text = (torch.cat([cond, null]), torch.cat([cond_mask, null_mask]))

    def logits_fn(codes: Tensor, *, guided: bool) -> Tensor:
        if not guided:
            return model(codes, text, text_mask)
        if guided_text is None:
            raise ValueError("guidance != 1 needs a null prompt: pass null_text and null_text_mask")
        return model(codes, *guided_text)

    return logits_fn


def _gumbel(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    # Inverse-CDF Gumbel(0, 1); the tiny floor keeps log(0) out when rand returns exactly 0.
    u = torch.rand(shape, generator=generator, device=device).clamp_(min=1e-20)
    return -torch.log((-torch.log(u)).clamp_(min=1e-20))


def _categorical(logits: Tensor, temperature: float, generator: torch.Generator) -> Tensor:
    """One sample per row of ``(m, v)`` logits at ``temperature`` (0 = argmax) -> ``(m,)`` long."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    # Inverse CDF: one uniform per row instead of a Gumbel draw per vocabulary entry (8192x fewer
    # random numbers; Gumbel-max made the sampler's own work ~15% of a CPU clip).
    cdf = (logits if temperature == 1 else logits / temperature).softmax(dim=-1).cumsum(dim=-1)  # (m, v)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device) * cdf[:, -1:]
    # right=True returns the first entry whose cdf exceeds u: never a zero-probability (top-k'd) code.
    return torch.searchsorted(cdf, u, right=True)[:, 0].clamp_(max=cdf.shape[-1] - 1)


@torch.no_grad()  # sampling never needs gradients; no_grad (not inference_mode) keeps outputs usable
def maskgit_sample(
    logits_fn: LogitsFn,
    *,
    shape: tuple[int, int, int, int],
    mask_id: int,
    generator: torch.Generator,
    known: Tensor | None = None,
    known_mask: Tensor | None = None,
    steps: int = 12,
    temperature: float = 1.0,
    top_k: int | None = None,
    guidance: float = 1.0,
    schedule: str = "cosine",
    noise_temperature: float = 4.5,
    first_frame: bool = False,
) -> Tensor:
    """Decode a grid of codes in ``steps`` parallel passes by confidence-based re-masking.

    Args:
        logits_fn: see ``LogitsFn``; called once per step (on ``2B`` rows when ``guidance != 1``).
        shape: ``(B, t, h, w)`` of the codes to produce.
        mask_id: the ``[MASK]`` id; must lie outside the logits' vocabulary ``[0, V)``.
        generator: the only random source (token sampling and confidence noise); its device is used.
        known: ``(B, t, h, w)`` long codes that are given (e.g. frames carried over in story mode).
        known_mask: ``(B, t, h, w)`` bool, True where ``known`` is fixed; those codes never change.
        steps: forward passes; ``num_masked_after_step`` says how many tokens stay masked after each.
        temperature: softmax temperature for sampling tokens; 0 = argmax.
        top_k: sample only among the ``top_k`` most likely codes (None = all).
        guidance: classifier-free guidance scale; 1 = plain conditional (one single-batch pass per step).
        schedule: mask schedule name (``tokgen.transformer.masking.SCHEDULES``).
        noise_temperature: scale of the Gumbel noise added to log-confidences, annealed linearly to 0
            at the last step (MaskGIT's "choice temperature": early steps explore, late steps commit).
        first_frame: decode the first latent frame alone first (``steps`` passes over a one-frame
            grid, an image), then the rest given it (``steps`` more). Where the first frame is not
            known, what the clip shows is then settled in one frame before it is set in motion:
            decoding all frames at once can commit early tokens of different frames to different
            objects. Doubles the passes (the first ones over ``1 / t`` of the tokens).

    Returns:
        ``(B, t, h, w)`` long codes in ``[0, V)``, with ``known`` wherever ``known_mask``.
    """
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be (B, t, h, w) with each >= 1, got {tuple(shape)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    for name, value in (("guidance", guidance), ("temperature", temperature), ("noise_temperature", noise_temperature)):
        if not math.isfinite(value):  # NaN passes every comparison below; it would sample noise silently
            raise ValueError(f"{name} must be a finite number, got {value}")
    if temperature < 0 or noise_temperature < 0:
        raise ValueError(f"temperature and noise_temperature must be >= 0, got {temperature}, {noise_temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if schedule not in SCHEDULES:  # fail before any forward pass
        raise ValueError(f"unknown mask schedule {schedule!r}; known schedules: {SCHEDULES}")
    device = generator.device
    batch = shape[0]
    codes = torch.full(shape, mask_id, dtype=torch.long, device=device)
    if (known is None) != (known_mask is None):
        raise ValueError("known and known_mask go together: pass both or neither")
    if known is not None and known_mask is not None:
        if tuple(known.shape) != tuple(shape) or tuple(known_mask.shape) != tuple(shape):
            raise ValueError(
                f"known {tuple(known.shape)} and known_mask {tuple(known_mask.shape)} must have shape {tuple(shape)}"
            )
        if known_mask.dtype != torch.bool:
            raise ValueError(f"known_mask must be bool, got {known_mask.dtype}")
        known, known_mask = known.to(device, torch.long), known_mask.to(device)
        fixed = known[known_mask]
        if fixed.numel() and (fixed.min() < 0 or fixed.max() >= mask_id):
            raise ValueError(
                f"known codes must lie in [0, {mask_id}) where known_mask, got [{int(fixed.min())}, {int(fixed.max())}]"
            )
        codes = torch.where(known_mask, known, codes)

    if first_frame and shape[1] > 1 and (known_mask is None or not bool(known_mask[:, 0].all())):
        options = dict(steps=steps, temperature=temperature, top_k=top_k, guidance=guidance)
        options.update(schedule=schedule, noise_temperature=noise_temperature)
        first = maskgit_sample(
            logits_fn,
            shape=(batch, 1, *shape[2:]),
            mask_id=mask_id,
            generator=generator,
            known=None if known is None else known[:, :1],
            known_mask=None if known_mask is None else known_mask[:, :1],
            **options,
        )
        codes[:, :1] = first
    flat = rearrange(codes, "b t h w -> b (t h w)").clone()  # (b, n): the sampler's state
    total = (flat == mask_id).sum(dim=-1)  # (b,) tokens to generate per sample
    guided = guidance != 1.0
    for step in range(steps):
        masked = flat == mask_id  # (b, n)
        if not masked.any():
            break  # everything decided early (total < steps, or all known): no pass is wasted
        # A copy per call: a logits_fn that keeps or edits its input cannot touch the state.
        grid = flat.view(shape).clone()
        raw = logits_fn(torch.cat([grid, grid]) if guided else grid, guided=guided)
        expected = (2 * batch if guided else batch, *shape[1:])
        if raw.ndim != 5 or tuple(raw.shape[:4]) != expected:
            raise ValueError(f"logits_fn returned {tuple(raw.shape)} for codes {expected} (+ vocabulary axis)")
        if torch.isnan(raw).any():
            raise FloatingPointError(f"logits_fn returned NaN logits at step {step} (are the model's weights finite?)")
        vocab = raw.shape[-1]
        if mask_id < vocab:
            raise ValueError(f"mask_id {mask_id} lies inside the logits vocabulary [0, {vocab}): it could be sampled")
        # Only masked positions are sampled: decided tokens are never revisited (MaskGIT never re-masks).
        raw = rearrange(raw, "b t h w v -> b (t h w) v")
        if guided:
            cond, null = raw[:batch][masked].float(), raw[batch:][masked].float()  # (m, v) each
            logits = null + guidance * (cond - null)
        else:
            logits = raw[masked].float()  # (m, v)
        if top_k is not None and top_k < vocab:
            kth = logits.topk(top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        sampled = _categorical(logits, temperature, generator)  # (m,)
        # Confidence = the (guided, filtered) model probability of the sampled code, plus annealed noise.
        confidence = logits.log_softmax(dim=-1).gather(-1, sampled[:, None])[:, 0]  # (m,)
        anneal = noise_temperature * (1.0 - (step + 1) / steps)
        if anneal > 0:
            confidence = confidence + anneal * _gumbel(confidence.shape, generator, device)
        scores = torch.full(flat.shape, float("inf"), device=device)  # decided tokens: never re-masked
        scores[masked] = confidence
        flat[masked] = sampled
        # Re-mask the least confident so exactly the scheduled count stays masked in each sample.
        keep_masked = num_masked_after_step(step, steps, total, schedule)  # (b,)
        ranks = scores.argsort(dim=-1).argsort(dim=-1)  # 0 = least confident
        flat[ranks < keep_masked[:, None]] = mask_id
    assert not (flat == mask_id).any(), "the last step of every schedule leaves nothing masked"
    return flat.view(shape)


@torch.no_grad()
def sample_from_prompts(
    model: TextConditionedModel,
    text_encoder,
    prompts: list[str],
    codes_shape: tuple[int, int, int],
    *,
    mask_id: int,
    seed: int = 0,
    **options,
) -> Tensor:
    """``maskgit_sample`` for ``prompts``: embeds them and the null prompt ``""`` with ``text_encoder``.

    Args:
        model: ``model(codes, text, text_mask) -> logits`` (an ``nn.Module``; its device is used).
        text_encoder: anything with ``encode(list[str]) -> (emb, mask)`` (see ``tokgen.text``).
        prompts: one prompt per sample.
        codes_shape: ``(t, h, w)`` of each sample.
        mask_id: the ``[MASK]`` id.
        seed: seeds the one ``torch.Generator`` the sampler draws from.
        **options: ``maskgit_sample``'s keyword options (steps, guidance, temperature, top_k, known, ...).
    """
    text, null = text_encoder.encode(list(prompts)), text_encoder.encode([""])
    logits_fn = text_logits_fn(model, text.emb, text.mask, null.emb, null.mask)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    return maskgit_sample(
        logits_fn, shape=(len(prompts), *codes_shape), mask_id=mask_id, generator=generator, **options
    )
