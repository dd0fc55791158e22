"""`VideoFolderDataset`: captioned clips from a folder of video files, decoded on demand.

Axis legend: c channels (3, RGB), t frames, h height, w width.

Each item decodes only its clip (PyAV streams and, for long videos, seeks), resizes the short side
while decoding, then crops a ``size x size`` square. A file that cannot be read, or is too short for
the clip, is logged once, remembered, and replaced by the next good file, so one bad file among a
million does not stop a training run.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import Dataset

from tokgen.data.captions import find_media, load_captions
from tokgen.io.convert import frames_to_tensor
from tokgen.io.image_frames import IMAGE_EXTENSIONS
from tokgen.io.video import VIDEO_EXTENSIONS, VideoReadError, probe_video, read_video

logger = logging.getLogger("tokgen.data")

CROPS = ("center", "random")


class VideoFolderDataset(Dataset):
    """Clips of ``num_frames`` frames from every video under ``root``, with their captions.

    Clip placement: the clip starts at a random frame drawn from a generator seeded with
    ``(seed, index)`` for ``crop="center"`` (the same clip every epoch: evaluation), or with
    ``(seed, index, epoch)`` for ``crop="random"`` (a new clip and a random square each epoch after
    :meth:`set_epoch`). ``crop="center"`` takes the central square.

    Args:
        root: folder searched recursively for files with ``extensions``.
        num_frames: frames per clip; ``(num_frames - 1) % temporal_patch`` must be 0.
        temporal_patch: the tokenizer's temporal patch size (frame 0 alone, then groups).
        size: side of the square frames.
        crop: ``"center"`` or ``"random"``.
        stride: keep every ``stride``-th frame (after resampling to ``fps``).
        fps: resample videos to this rate first; None uses each video's average rate (clips are
            always read on a uniform time grid, so a variable-rate video comes out evenly spaced).
        seed: seeds clip placement and random crops.
        extensions: file suffixes that count as videos.

    Items are ``{"video": float (3, num_frames, size, size) in [-1, 1], "caption": str,
    "skipped": int}``, ``skipped`` counting the bad files passed over to produce the item.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        num_frames: int = 17,
        temporal_patch: int = 1,
        size: int = 64,
        crop: str = "center",
        stride: int = 1,
        fps: float | None = None,
        seed: int = 0,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
    ) -> None:
        name = type(self).__name__
        if num_frames < 1 or temporal_patch < 1 or size < 1 or stride < 1:
            raise ValueError(
                f"{name}: num_frames, temporal_patch, size and stride must be >= 1, "
                f"got {num_frames}, {temporal_patch}, {size}, {stride}"
            )
        if (num_frames - 1) % temporal_patch:
            below = num_frames - (num_frames - 1) % temporal_patch
            raise ValueError(
                f"{name}: num_frames={num_frames} breaks the rule (num_frames - 1) % temporal_patch == 0 "
                f"with temporal_patch={temporal_patch}; nearest valid values are {below} and "
                f"{below + temporal_patch}"
            )
        if crop not in CROPS:
            raise ValueError(f"{name}: crop must be one of {CROPS}, got {crop!r}")
        if fps is not None and not fps > 0:
            raise ValueError(f"{name}: fps must be > 0 or None, got {fps}")
        if seed < 0:
            raise ValueError(f"{name}: seed must be >= 0 (it seeds numpy generators), got {seed}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{name}: root '{self.root}' is not a folder")
        self.files = find_media(self.root, extensions)
        if not self.files:
            raise ValueError(f"{name}: no files with suffix {', '.join(extensions)} under '{self.root}'")
        self.captions = load_captions(self.root, self.files)
        self.num_frames, self.size, self.crop = num_frames, size, crop
        self.stride, self.fps, self.seed = stride, fps, seed
        self.epoch = 0
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_skipped(self) -> int:
        """Distinct bad files found so far in this process (each DataLoader worker counts its own)."""
        return len(self._bad)

    def set_epoch(self, epoch: int) -> None:
        """Draw new clips and crops for ``crop="random"`` (call at each epoch start)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        n = len(self.files)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {n} files")
        # Every file passed over on the way to the one returned was bad, so `skipped` is the distance.
        for skipped in range(n):
            j = (index + skipped) % n
            if j in self._bad:
                continue
            try:
                video = self._load(j)
            except (VideoReadError, OSError, av.error.FFmpegError) as e:
                self._bad.add(j)
                reason = str(e) if str(self.files[j]) in str(e) else f"{self.files[j]}: {e}"
                logger.warning("skipping a bad file: %s", reason)
                continue
            return {"video": video, "caption": self.captions[j], "skipped": skipped}
        raise RuntimeError(
            f"{type(self).__name__}: all {n} files under '{self.root}' are unreadable or too short "
            "(see the warnings logged by 'tokgen.data')"
        )

    def _load(self, index: int) -> torch.Tensor:
        """Decode, place and crop the clip of file ``index``: float ``(c, t, size, size)``."""
        path = self.files[index]
        key = (self.seed, index) if self.crop == "center" else (self.seed, index, self.epoch)
        rng = np.random.default_rng(key)
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            rate, available = None, 1  # images are one-frame videos; no header to probe
        else:
            info = probe_video(path)
            rate = (self.fps or info.fps) / self.stride
            # +1e-6: duration * rate is an integer up to float error for constant-rate files
            available = math.floor(info.duration * rate + 1e-6) if info.duration else None
        if available is not None and available < self.num_frames:
            at = f" at {rate:g} fps" if rate else ""
            raise VideoReadError(f"{path}: too short, {available} frames{at}, a clip needs {self.num_frames}")
        start = int(rng.integers(0, available - self.num_frames + 1)) if available else 0
        try:
            frames = read_video(path, start=start, num_frames=self.num_frames, fps=rate, size=self.size)
        except VideoReadError:
            if start == 0:
                raise
            # Header durations can overstate (e.g. an audio track outlasting the video): retry at 0.
            frames = read_video(path, num_frames=self.num_frames, fps=rate, size=self.size)
        return frames_to_tensor(self._crop(frames, rng))[0]

    def _crop(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(t, h, w, c)`` with short side ``size`` -> ``(t, size, size, c)``."""
        _, h, w, _ = frames.shape
        if self.crop == "center":
            top, left = (h - self.size) // 2, (w - self.size) // 2
        else:
            top, left = int(rng.integers(0, h - self.size + 1)), int(rng.integers(0, w - self.size + 1))
        return frames[:, top : top + self.size, left : left + self.size]
