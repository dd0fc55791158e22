"""Atomic outputs: write under a temporary name, rename into place only when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    A failure (or interrupt) removes the temporary file, so ``path`` is never half-written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False (checked before any work).
        FileNotFoundError: the folder of ``path`` does not exist.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write '{path}': folder '{path.parent}' does not exist")
    # Hidden name in the same folder: os.replace is atomic only within one filesystem.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the output the mode any new file gets (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        if tmp.exists():
            tmp.chmod(0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- reading internals ------------------------------------------------------------------------
