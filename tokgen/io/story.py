"""A story on disk: the video, a contact sheet with each prompt under its segment, a JSON sidecar.

``story.mp4`` comes with ``story.png`` and ``story.json`` beside it. All three are checked before any
work (so a long sampling run never ends in a refusal to write) and appear together, renamed into place
only once all three are complete.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tokgen.io.atomic import atomic_output
from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.io.video_write import write_video

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")


@dataclass(frozen=True)
class StorySegment:
    """One prompt of a story: its pixel frames ``[start, stop)`` and the settings it was sampled with.

    ``source`` is the ``file:line`` the prompt came from (``""`` when given in code).
    """

    prompt: str
    start: int
    stop: int
    seed: int
    guidance: float
    temperature: float
    source: str = ""


def story_outputs(out: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """``{"video", "sheet", "json"}`` paths of a story written to ``out``; raises if any would be overwritten.

    Raises:
        ValueError: ``out`` is not a video file name.
        FileExistsError: one of the three exists and ``overwrite`` is False.
        FileNotFoundError: the folder of ``out`` does not exist.
    """
    video = Path(out)
    if video.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"story out={video}: expected a video file ending in {', '.join(VIDEO_SUFFIXES)}")
    paths = {"video": video, "sheet": video.with_suffix(".png"), "json": video.with_suffix(".json")}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass overwrite=true to replace")
    if not video.parent.is_dir():
        raise FileNotFoundError(f"cannot write {video}: folder {video.parent} does not exist")
    return paths


def write_story(
    out: str | Path,
    frames: np.ndarray,
    segments: Sequence[StorySegment],
    *,
    init_frames: int = 0,
    fps: float = 8.0,
    extra: dict | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write a story's video, contact sheet and sidecar.

    Args:
        out: the video path; the sheet and sidecar take its name with ``.png`` and ``.json``.
        frames: uint8 ``(T, H, W, 3)``.
        segments: one per prompt; a sheet row each, the prompt and frame range under it.
        init_frames: frames ``[0, init_frames)`` were given (a continued clip); they get a row of their own.
        fps: frame rate of the video.
        extra: more sidecar fields (settings, windows, seams).
        overwrite: replace existing files.

    Returns:
        The paths written, as `story_outputs`.
    """
    paths = story_outputs(out, overwrite=overwrite)
    if frames.ndim != 4 or not segments or segments[-1].stop != len(frames):
        raise ValueError(f"story frames {frames.shape} do not match segments ending at {segments[-1:]}")
    rows = [frames[:init_frames]] if init_frames else []
    labels = [f"given: frames 0-{init_frames - 1}"] if init_frames else []
    for i, seg in enumerate(segments):
        rows.append(frames[seg.start : seg.stop])
        labels.append(f"{i + 1}. {seg.prompt}  (frames {seg.start}-{seg.stop - 1})")
    sidecar = {
        "prompts": [seg.prompt for seg in segments],
        "num_frames": len(frames),
        "fps": fps,
        "init_frames": init_frames,
        "segments": [_record(seg) for seg in segments],
        **(extra or {}),
        "files": {"video": paths["video"].name, "contact_sheet": paths["sheet"].name},
    }
    # The three files are written under hidden names first and renamed together at the end, so a failure
    # in any of them leaves no story without its sheet or sidecar (and no earlier story half-replaced).
    staged = {k: p.with_name(f".{p.stem}.{uuid.uuid4().hex}{p.suffix}") for k, p in paths.items()}
    try:
        write_video(staged["video"], frames, fps)
        save_png(staged["sheet"], contact_sheet(rows, labels=labels, scale=2))
        with atomic_output(staged["json"]) as tmp:
            tmp.write_text(json.dumps(sidecar, indent=1) + "\n", encoding="utf-8")
        story_outputs(out, overwrite=overwrite)  # nothing appeared there meanwhile
        for key in ("json", "sheet", "video"):
            os.replace(staged[key], paths[key])
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    return paths


def _record(segment: StorySegment) -> dict:
    """A segment for the sidecar: its frame range as one ``[start, stop)`` pair."""
    record = asdict(segment)
    record["frames"] = [record.pop("start"), record.pop("stop")]
    return record
