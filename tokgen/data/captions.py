"""Captioned media folders: which files a folder dataset holds, and the caption of each file.

Captions come from ``root/captions.jsonl`` (one ``{"path": ..., "caption": ...}`` object per line,
paths relative to ``root``), else from a ``.txt`` file beside the media file with the same stem, else
the caption is ``""`` (one warning gives the count). A caption path may not leave ``root``: absolute
paths, ``..`` and symlinks that resolve outside are rejected, so a caption file from elsewhere cannot
make a dataset read arbitrary files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

CAPTIONS_FILE = "captions.jsonl"

logger = logging.getLogger("tokgen.data")


def find_media(root: Path, extensions: Sequence[str]) -> list[Path]:
    """Files under ``root`` (recursively) with one of ``extensions``, sorted by relative path.

    Hidden files and folders (name starting with ``.``) are left out: they are editor backups and the
    temporary files of atomic writes, never data. Symlinked files are listed; symlinked folders are
    not entered, since a link loop would make the walk endless.
    """
    suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes:
                found.append(Path(dirpath, name))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def load_captions(root: Path, files: Sequence[Path]) -> list[str]:
    """The caption of each file in ``files`` (which lie under ``root``).

    Raises:
        ValueError: ``captions.jsonl`` has a malformed line or a path escaping ``root`` (the message
            names the file and the line number).
    """
    listed = _read_captions_file(root)
    captions, missing = [], 0
    for file in files:
        text = listed.get(_key(file.relative_to(root).as_posix()))
        beside = file.with_suffix(".txt")
        if text is None and beside.is_file():
            text = beside.read_text(encoding="utf-8").strip()
        missing += text is None
        captions.append(text or "")
    if missing:
        logger.warning(
            "%d of %d files under '%s' have no caption (no entry in %s, no .txt beside); using ''",
            missing,
            len(files),
            root,
            CAPTIONS_FILE,
        )
    return captions


def _read_captions_file(root: Path) -> dict[str, str]:
    """``captions.jsonl`` as normalised relative path -> caption; empty if the file does not exist."""
    file = root / CAPTIONS_FILE
    if not file.is_file():
        return {}
    real_root = root.resolve()
    captions: dict[str, str] = {}
    absent = 0
    with file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{file}, line {number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from e
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise ValueError(f'{where}: expected {{"path": str, "caption": str}}, got {line.strip()[:80]}')
            if not isinstance(entry.get("caption"), str):
                raise ValueError(f"{where}: 'caption' must be a string, got {entry.get('caption')!r}")
            relative = Path(entry["path"])
            target = (root / relative).resolve()
            if relative.is_absolute() or not target.is_relative_to(real_root):
                raise ValueError(f"{where}: path '{entry['path']}' leaves the dataset root '{root}'")
            absent += not target.exists()
            captions[_key(entry["path"])] = entry["caption"]  # a later line for the same file wins
    if absent:
        logger.warning("%d entries of %s name files that do not exist", absent, file)
    return captions


def _key(relative: str) -> str:
    """One spelling per relative path, so ``./a/b.mp4`` and ``a//b.mp4`` find the same file."""
    return Path(os.path.normpath(relative)).as_posix()
