"""Write a Shapes set to disk as mp4 files + ``captions.jsonl``, the layout `VideoFolderDataset` reads.

The same clips then exercise the real-video path (PyAV decode, crop, captions) end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.progress import track

from tokgen.data.shapes import ShapesDataset
from tokgen.io.atomic import atomic_output
from tokgen.io.video_write import write_video


def write_shapes_folder(
    out: str | Path,
    *,
    count: int = 100,
    seed: int = 0,
    fps: float = 8.0,
    overwrite: bool = False,
    **config: Any,
) -> Path:
    """Render ``count`` Shapes clips into ``out`` (``clip_00000.mp4`` ...) with ``captions.jsonl``.

    Args:
        out: the folder; must be empty or absent unless ``overwrite`` (then only our files are replaced).
        count: number of clips.
        seed: Shapes seed (clip ``i`` is item ``i`` of ``ShapesDataset(seed=seed)``).
        fps: frame rate written into the files.
        overwrite: replace existing clips and captions of the same names.
        **config: ``ShapesConfig`` fields (resolution, num_frames, num_objects, ...).
    """
    out = Path(out)
    if count < 1:
        raise ValueError(f"count={count}: a Shapes folder needs at least one clip")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; choose another folder or pass overwrite=true")
    out.mkdir(parents=True, exist_ok=True)
    dataset = ShapesDataset(length=count, seed=seed, **config)
    lines = []
    for i in track(range(count), description="rendering Shapes", transient=True):
        name = f"clip_{i:05d}.mp4"
        write_video(out / name, dataset.frames(i), fps, overwrite=overwrite)
        lines.append(json.dumps({"path": name, "caption": dataset[i]["caption"]}))
    with atomic_output(out / "captions.jsonl", overwrite=overwrite) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return out
