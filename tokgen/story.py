"""`Story`: what ``Generator.story`` returns, and the progress bar over its windows.

Kept apart from the generator so the result type and its writer read on their own; the sampling
itself lives in `tokgen.sampling.story`, the files in `tokgen.io.story`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tokgen.io.story import StorySegment, write_story
from tokgen.sampling.story import Window


@dataclass(frozen=True)
class Story:
    """What ``Generator.story`` returns.

    Attributes:
        frames: uint8 ``(T, H, W, 3)``, the given ``init`` frames (decoded from their codes) first.
        codes: ``(1, t, h, w)`` long, the story's codes (``T = 1 + (t - 1) * temporal_patch``).
        segments: one per prompt, in order, covering ``[init_frames, T)``.
        windows: the sampler calls, in latent frames (``tokgen.sampling.story.Window``).
        seams: the first pixel frame of each window that continued carried codes (where windows meet).
        init_frames: pixel frames given by ``init`` (0 without).
        settings: the sampling settings, for the sidecar.
    """

    frames: np.ndarray
    codes: torch.Tensor
    segments: tuple[StorySegment, ...]
    windows: tuple[Window, ...]
    seams: tuple[int, ...] = ()
    init_frames: int = 0
    settings: dict = field(default_factory=dict)

    def write(self, out: str | Path, *, fps: float = 8.0, overwrite: bool = False) -> dict[str, Path]:
        """Write ``out`` (the video) with a ``.png`` contact sheet and a ``.json`` sidecar beside it."""
        windows = [{"segment": w.segment, "latent": [w.start, w.stop], "context": w.context} for w in self.windows]
        extra = {"settings": self.settings, "windows": windows, "seams": list(self.seams)}
        frames, segments, init = self.frames, self.segments, self.init_frames
        return write_story(out, frames, segments, init_frames=init, fps=fps, extra=extra, overwrite=overwrite)


@contextlib.contextmanager
def window_progress(show: bool, total: int) -> Iterator[Callable[[Window], None] | None]:
    """A rich progress bar over story windows (or nothing), advanced by the callback it yields."""
    if not show:
        yield None
        return
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task("story windows", total=total)
        yield lambda _window: bar.advance(task)
