"""Story mode: a sliding window of MaskGIT sampling across a list of prompts, carrying *codes*.

A pure function of a logits-callable factory and a ``torch.Generator``, like ``maskgit_sample``: no
model, no text, no pixels. The story is one sequence of latent frames. Each window holds at most
``window`` latent frames: its first ``context`` frames are the last ``context`` latent frames already
in the story, passed to the sampler as *known* codes (never decoded to pixels and re-encoded, which
would lose detail and drift), and the rest are sampled under the window's own prompt. A segment (one
prompt) longer than ``window - context`` new frames takes several windows; a shorter one takes a
shorter window. So the story has no length cap, and the transformer only ever sees ``window`` frames.

Axis legend: ``b`` batch, ``t`` latent frames (of a window or the whole story), ``h w`` latent grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tokgen.sampling.maskgit import LogitsFn, maskgit_sample
from tokgen.transformer.config import DEFAULT_GUIDANCE, DEFAULT_TEMPERATURE


@dataclass(frozen=True)
class Segment:
    """One prompt's part of a story, in latent frames, with its own sampling settings.

    Attributes:
        frames: latent frames this segment adds to the story (>= 1).
        guidance: classifier-free guidance scale for its windows.
        temperature: sampling temperature for its windows.
        seed: when set, the segment draws from its own generator seeded with it, so changing one
            segment's seed leaves the segments before it unchanged; None: the story's generator.
    """

    frames: int
    guidance: float = DEFAULT_GUIDANCE
    temperature: float = DEFAULT_TEMPERATURE
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.frames, int) or self.frames < 1:
            raise ValueError(f"Segment.frames must be an int >= 1 latent frame, got {self.frames!r}")


@dataclass(frozen=True)
class Window:
    """One sampler call: story latent frames ``[start, stop)``, of which ``[start, start + context)`` were known."""

    segment: int
    start: int
    context: int
    stop: int

    @property
    def new(self) -> tuple[int, int]:
        """The latent frames ``[first, stop)`` this window sampled."""
        return self.start + self.context, self.stop


@dataclass(frozen=True)
class StoryCodes:
    """``codes``: ``(b, t, h, w)`` long, the whole story (given ``init`` first); ``windows`` in order."""

    codes: Tensor
    windows: tuple[Window, ...]


def plan_windows(lengths: Sequence[int], *, window: int, context: int, init: int = 0) -> list[Window]:
    """The windows that sample segments of ``lengths`` latent frames after ``init`` given ones.

    Every window is at most ``window`` frames, starts with ``min(context, frames so far)`` known
    frames and samples only frames of its own segment.
    """
    if not 1 <= context < window:
        raise ValueError(f"story needs 1 <= context < window latent frames, got context={context}, window={window}")
    if init < 0 or not lengths or min(lengths) < 1:
        raise ValueError(f"story needs init >= 0 and segments of >= 1 latent frame, got {init}, {list(lengths)}")
    windows, done = [], init
    for index, length in enumerate(lengths):
        left = length
        while left:
            known = min(context, done)
            new = min(window - known, left)
            windows.append(Window(index, done - known, known, done + new))
            done, left = done + new, left - new
    return windows


@torch.no_grad()
def story_sample(
    logits_for: Callable[[int], LogitsFn],
    segments: Sequence[Segment],
    *,
    grid: tuple[int, int],
    window: int,
    context: int,
    mask_id: int,
    generator: torch.Generator,
    init: Tensor | None = None,
    batch: int = 1,
    steps: int = 12,
    top_k: int | None = None,
    schedule: str = "cosine",
    noise_temperature: float = 4.5,
    on_window: Callable[[Window], None] | None = None,
    first_frame: bool = False,
) -> StoryCodes:
    """Sample a story of ``sum(segment.frames)`` new latent frames window by window.

    Args:
        logits_for: ``segment index -> LogitsFn`` (see ``tokgen.sampling.maskgit``), e.g. the model
            conditioned on that segment's prompt; called once per segment.
        segments: one per prompt, in order.
        grid: ``(h, w)`` of every latent frame.
        window: most latent frames per sampler call (the transformer's trained length, at most).
        context: known latent frames carried into each window from the story so far.
        mask_id: the ``[MASK]`` id.
        generator: random source of segments without their own seed (its device is used).
        init: ``(b, t0, h, w)`` long codes the story continues (a given clip or a first frame); kept as is.
        batch: stories sampled at once (``init`` then has ``batch`` rows).
        steps, top_k, schedule, noise_temperature: ``maskgit_sample``'s options, for every window.
        on_window: called after each window (e.g. to advance a progress bar).
        first_frame: ``maskgit_sample``'s option: in the first window of a story without ``init``, the
            story's first latent frame is decoded before the rest (later windows know their first frames).

    Returns:
        ``StoryCodes``: ``(b, t0 + sum(frames), h, w)`` codes beginning with ``init``, and the windows.
    """
    h, w = grid
    device = generator.device
    if init is not None:
        if init.ndim != 4 or init.shape[0] != batch or tuple(init.shape[2:]) != (h, w) or init.shape[1] < 1:
            raise ValueError(f"init codes must be (b={batch}, t0 >= 1, h={h}, w={w}), got {tuple(init.shape)}")
        init = init.to(device, torch.long)
    windows = plan_windows(
        [s.frames for s in segments], window=window, context=context, init=0 if init is None else init.shape[1]
    )
    # The story so far, in pieces: concatenating once at the end keeps the work per window constant.
    pieces: list[Tensor] = [] if init is None else [init]
    tail = init  # (b, <= context, h, w): the latest frames, all that the next window needs
    current, logits_fn, source = -1, None, generator
    for win in windows:
        if win.segment != current:
            current, segment = win.segment, segments[win.segment]
            logits_fn = logits_for(win.segment)
            own = segment.seed is not None
            source = torch.Generator(device=device).manual_seed(segment.seed) if own else generator
        shape = (batch, win.stop - win.start, h, w)
        known = torch.zeros(shape, dtype=torch.long, device=device)
        known_mask = torch.zeros(shape, dtype=torch.bool, device=device)
        if win.context:
            known[:, : win.context] = tail[:, tail.shape[1] - win.context :]
            known_mask[:, : win.context] = True
        codes = maskgit_sample(
            logits_fn,
            shape=shape,
            mask_id=mask_id,
            generator=source,
            known=known,
            known_mask=known_mask,
            steps=steps,
            temperature=segment.temperature,
            top_k=top_k,
            guidance=segment.guidance,
            schedule=schedule,
            noise_temperature=noise_temperature,
            first_frame=first_frame,
        )
        new = codes[:, win.context :]
        pieces.append(new)
        tail = torch.cat([tail, new], dim=1)[:, -context:] if tail is not None else new[:, -context:]
        if on_window is not None:
            on_window(win)
    return StoryCodes(torch.cat(pieces, dim=1), tuple(windows))
