"""Contact sheets: clips laid out as rows of frames, with a caption under each row.

Axis legend: n clips, t frames, h height, w width, c channels (3, RGB).

Used for story previews (each prompt under its segment) and reconstruction previews (an input row
above its output row). Frames are upscaled by repetition (nearest neighbour) so that 64x64 frames
stay sharp and every pixel the model produced is visible as it is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from einops import repeat
from PIL import Image, ImageDraw, ImageFont

from tokgen.io.atomic import atomic_output

_BACKGROUND = (16, 16, 16)
_TEXT = (235, 235, 235)
_MAX_LABEL_LINES = 3


def contact_sheet(
    clips: np.ndarray | Sequence[np.ndarray],
    *,
    labels: Sequence[str] | None = None,
    max_columns: int = 17,
    scale: int = 1,
    pad: int = 2,
) -> np.ndarray:
    """Lay clips out one per row, frames left to right, on a dark background.

    A clip longer than ``max_columns`` frames shows ``max_columns`` evenly spaced frames, always
    including the first and the last. Labels are wrapped to the sheet width and cut after three
    lines. Clips may differ in length and frame size; rows are left-aligned.

    Args:
        clips: uint8 ``(t, h, w, 3)`` (one clip), ``(n, t, h, w, 3)``, or a sequence of
            ``(t, h, w, 3)`` clips (a ``(h, w, 3)`` item is a one-frame clip).
        labels: one caption per clip, drawn under its row; None for no captions.
        max_columns: most frames shown per row.
        scale: integer nearest-neighbour upscaling of every frame.
        pad: pixels (after scaling) between frames, rows and around the border.

    Returns:
        uint8 ``(H, W, 3)`` image.
    """
    clips = _as_clip_list(clips)
    if labels is not None and len(labels) != len(clips):
        raise ValueError(f"contact_sheet: got {len(clips)} clips but {len(labels)} labels")
    if max_columns < 1 or scale < 1 or pad < 0:
        raise ValueError(
            f"contact_sheet: need max_columns >= 1, scale >= 1, pad >= 0; got {max_columns}, {scale}, {pad}"
        )
    rows = [_row(clip, max_columns, scale, pad) for clip in clips]
    width = max(row.shape[1] for row in rows) + 2 * pad
    font = _font(11 + 3 * (scale - 1))  # text grows with the frames, slower, so prompts still fit
    line_height = _line_height(font)
    texts = [_wrap(label, font, width - 2 * pad) for label in labels] if labels is not None else None
    height = pad + sum(row.shape[0] + pad for row in rows)
    if texts is not None:
        height += sum(len(lines) * line_height + pad for lines in texts)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = pad
    for i, row in enumerate(rows):
        sheet.paste(Image.fromarray(row), (pad, y))
        y += row.shape[0] + pad
        for line in texts[i] if texts is not None else []:
            draw.text((pad, y), line, fill=_TEXT, font=font)
            y += line_height
        y += pad if texts is not None else 0
    return np.asarray(sheet)


def save_png(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a uint8 ``(H, W, 3)`` image as PNG, atomically.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        TypeError / ValueError: wrong dtype or shape.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"save_png: image must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"save_png: image must have shape (H, W, 3), got {image.shape}")
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def _as_clip_list(clips: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Normalise the accepted inputs to a list of uint8 ``(t, h, w, 3)`` arrays."""
    if isinstance(clips, np.ndarray):
        if clips.ndim not in (4, 5):
            raise ValueError(f"contact_sheet: clips must be (t, h, w, 3) or (n, t, h, w, 3), got shape {clips.shape}")
        clips = [clips] if clips.ndim == 4 else list(clips)
    out = []
    for i, clip in enumerate(clips):
        clip = np.asarray(clip)
        clip = clip[None] if clip.ndim == 3 else clip
        if clip.dtype != np.uint8:
            raise TypeError(f"contact_sheet: clip {i} must be uint8, got dtype {clip.dtype}")
        if clip.ndim != 4 or clip.shape[-1] != 3 or 0 in clip.shape:
            raise ValueError(f"contact_sheet: clip {i} must be a non-empty (t, h, w, 3), got shape {clip.shape}")
        out.append(clip)
    if not out:
        raise ValueError("contact_sheet: no clips given")
    return out


def _row(clip: np.ndarray, max_columns: int, scale: int, pad: int) -> np.ndarray:
    """One clip as a strip ``(h * scale, n * w * scale + (n - 1) * pad, 3)``."""
    t = clip.shape[0]
    picks = np.unique(np.linspace(0, t - 1, min(t, max_columns)).round().astype(int))
    frames = repeat(clip[picks], "n h w c -> n (h s1) (w s2) c", s1=scale, s2=scale)
    n, h, w, _ = frames.shape
    row = np.empty((h, n * w + (n - 1) * pad, 3), np.uint8)
    row[:] = _BACKGROUND
    for j, frame in enumerate(frames):
        row[:, j * (w + pad) : j * (w + pad) + w] = frame
    return row


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font; sized where FreeType is available (Pillow >= 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow 10.0: no size argument, fixed bitmap font
        return ImageFont.load_default()


def _line_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    return font.getbbox("Hgjy|")[3] + 2  # bottom of the tallest glyphs, plus leading


def _wrap(label: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; at most three lines, the last cut with '...'."""
    lines, line = [], ""
    for word in label.split():
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width:
            lines.append(line)
            candidate = word
        line = candidate
    lines = [_cut(text, font, width) for text in [*lines, line]]  # one word can be wider than a row
    if len(lines) > _MAX_LABEL_LINES:
        lines = lines[: _MAX_LABEL_LINES - 1] + [_cut(lines[_MAX_LABEL_LINES - 1], font, width, always=True)]
    return lines


def _cut(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int, *, always: bool = False) -> str:
    """``text`` if it fits in ``width`` pixels (and not ``always``), else shortened to end in '...'."""
    if not always and font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text.rstrip() + "..."
