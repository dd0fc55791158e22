"""`ImageFolderDataset`: captioned images as one-frame clips, for joint image-video training."""

from __future__ import annotations

import os
from collections.abc import Sequence

from tokgen.data.video_folder import VideoFolderDataset
from tokgen.io.image_frames import IMAGE_EXTENSIONS


class ImageFolderDataset(VideoFolderDataset):
    """Every image under ``root`` as a one-frame clip ``(3, 1, size, size)`` in [-1, 1].

    An image is a one-frame video, so this is :class:`VideoFolderDataset` with ``num_frames=1``:
    the same captions (``captions.jsonl`` or a ``.txt`` beside), resize, crop and skip-bad-file rules.
    Grayscale, palette and alpha images become RGB (alpha is dropped).

    Args:
        root: folder searched recursively for files with ``extensions``.
        size: side of the square frames (short side resized to it, then cropped).
        crop: ``"center"`` or ``"random"`` (random squares change with :meth:`set_epoch`).
        seed: seeds the random crops.
        extensions: file suffixes that count as images.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        size: int = 64,
        crop: str = "center",
        seed: int = 0,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        super().__init__(root, num_frames=1, size=size, crop=crop, seed=seed, extensions=extensions)
