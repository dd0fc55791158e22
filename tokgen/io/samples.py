"""Generated clips on disk: one mp4 + contact sheet per clip and a JSON record of how each was made.

Written by ``tokgen predict`` (from a transformer checkpoint) and ``tokgen generate`` (from an
exported generator folder), so both leave the same layout::

    sample_0000.mp4   sample_0000.png   ...   (one per clip; the sheet is its frames, prompt below)
    sheet.png                                   the first SHEET_ROWS clips, one row each, to compare at a glance
    <record>.json                               {"settings": ..., "samples": [{file, prompt, seed, frames, ...}]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tokgen.io.atomic import atomic_output
from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.io.video_write import write_video

SHEET_ROWS = 32


def check_samples_folder(folder: str | Path, *, overwrite: bool = False) -> Path:
    """``folder`` as a Path if samples may be written there: missing, empty, or ``overwrite``.

    Raises:
        FileExistsError: ``folder`` is a file, or a folder with files in it and ``overwrite`` is False.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, not a folder for generated clips")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} is not empty; choose a new folder or pass overwrite=true")
    return folder


def write_samples(
    folder: str | Path,
    clips: Sequence[np.ndarray],
    records: Sequence[dict],
    settings: dict,
    *,
    fps: float = 8.0,
    record: str = "samples.json",
    overwrite: bool = False,
) -> Path:
    """Write ``sample_{k:04d}.mp4`` and ``.png`` for every clip, ``sheet.png`` and ``record`` (the JSON).

    Args:
        clips: uint8 ``(T, H, W, 3)`` frames, one array per clip.
        records: one dict per clip with at least ``prompt`` (its sheet's label) and ``seed``; the file
            name and frame count are added.
        settings: the sampling settings shared by all clips.

    Returns:
        ``folder``.
    """
    if len(clips) != len(records):
        raise ValueError(f"write_samples: {len(clips)} clips but {len(records)} records")
    folder = check_samples_folder(folder, overwrite=overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for k, (frames, info) in enumerate(zip(clips, records, strict=True)):
        stem = f"sample_{k:04d}"
        write_video(folder / f"{stem}.mp4", frames, fps, overwrite=overwrite)
        save_png(folder / f"{stem}.png", contact_sheet([frames], labels=[info["prompt"]], scale=2), overwrite=overwrite)
        samples.append({"file": f"{stem}.mp4", **info, "frames": len(frames)})
    labels = [f"{info['prompt']} (seed {info['seed']})" for info in records[:SHEET_ROWS]]
    save_png(folder / "sheet.png", contact_sheet(list(clips[:SHEET_ROWS]), labels=labels, scale=2), overwrite=overwrite)
    with atomic_output(folder / record, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps({"settings": settings, "samples": samples}, indent=1))
    return folder
