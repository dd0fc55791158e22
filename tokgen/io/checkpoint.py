"""Pickle-free checkpoints: a folder holding ``config.json`` and ``model.safetensors``.

``config.json`` is ``{"kind": ..., "format_version": 1, "config": {...}}``: the kind (``"tokenizer"``,
``"transformer"``, ...) says which class may load it, the config rebuilds the model's arguments.
Nothing is unpickled on load, so a checkpoint from anywhere cannot run code.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


def check_writable(*directories: str | Path, overwrite: bool = False) -> None:
    """Raise FileExistsError unless each folder can take a checkpoint (missing, empty, or ``overwrite``).

    Savers that write several folders check them all first, so a refusal leaves nothing half-written.
    """
    for directory in map(Path, directories):
        if directory.exists() and not directory.is_dir():
            raise FileExistsError(f"{directory} is a file, not a checkpoint folder")
        if directory.is_dir() and any(directory.iterdir()) and not overwrite:
            raise FileExistsError(f"{directory} is not empty; pass overwrite=True to replace its checkpoint files")


def save_pretrained(
    directory: str | Path,
    config: dict,
    state_dict: dict[str, torch.Tensor],
    *,
    kind: str,
    overwrite: bool = False,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory``, atomically.

    Both files are written into a temporary folder beside ``directory`` first and then renamed into
    place, so a crash never leaves a half-written checkpoint.

    Args:
        directory: the export folder; created if missing.
        config: JSON-serialisable model arguments.
        state_dict: the tensors to save (moved to CPU; tensors sharing memory are copied apart).
        kind: what the folder holds, checked by `load_pretrained`.
        overwrite: replace the two files in a folder that is not empty; other files there are kept.

    Returns:
        The folder.
    """
    directory = Path(directory)
    check_writable(directory, overwrite=overwrite)
    payload = json.dumps({"kind": kind, "format_version": FORMAT_VERSION, "config": config}, indent=2)
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkdtemp: its 0o700 mode would stick to the renamed folder; mkdir honours the umask.
    staging = directory.parent / f".{directory.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        (staging / CONFIG_FILE).write_text(payload + "\n")
        save_file(_separate(state_dict), staging / WEIGHTS_FILE, metadata={"format": "pt", "kind": kind})
        if not directory.exists():
            os.rename(staging, directory)
            return directory
        for name in (CONFIG_FILE, WEIGHTS_FILE):  # one atomic replace per file; the user's others stay
            os.replace(staging / name, directory / name)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return directory


def load_pretrained(
    directory: str | Path, *, kind: str, device: str | torch.device = "cpu"
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a folder written by `save_pretrained`, checking that it holds a ``kind`` checkpoint.

    Returns:
        ``(config, state_dict)``, the tensors on ``device``.

    Raises:
        FileNotFoundError: no such folder, or a file is missing (the message names both files).
        ValueError: a Lightning ``.ckpt`` given instead of an export folder, another kind of
            checkpoint, malformed ``config.json`` or weights.
    """
    directory = Path(directory)
    expected = f"a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}"
    if directory.is_file():
        if directory.suffix == ".ckpt":
            raise ValueError(
                f"{directory} is a Lightning training checkpoint, expected {expected}; "
                f"run `tokgen export {directory} OUT_DIR` to make one"
            )
        raise ValueError(f"{directory} is a file, expected {expected}")
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} does not exist; expected {expected}")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (directory / name).is_file()]
    if missing:
        hint = ""
        if any(directory.glob("**/*.ckpt")):
            hint = "; it holds Lightning .ckpt files: run `tokgen export` on one to make an export folder"
        raise FileNotFoundError(f"{directory} lacks {', '.join(missing)}; expected {expected}{hint}")
    try:
        meta = json.loads((directory / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{directory / CONFIG_FILE} is not valid JSON: {error}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) or "kind" not in meta:
        raise ValueError(f"{directory / CONFIG_FILE} lacks the 'kind' and 'config' fields of a tokgen checkpoint")
    if meta["kind"] != kind:
        raise ValueError(f"{directory} holds a {meta['kind']!r} checkpoint, expected a {kind!r} one")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{directory / CONFIG_FILE} has format_version {version!r}; this tokgen reads <= {FORMAT_VERSION}"
        )
    try:
        state_dict = load_file(directory / WEIGHTS_FILE, device=str(torch.device(device)))
    except SafetensorError as error:
        raise ValueError(f"{directory / WEIGHTS_FILE} is not a readable safetensors file: {error}") from None
    return meta["config"], state_dict


def _separate(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors sharing no memory (safetensors refuses shared storage: tied weights)."""
    out, seen = {}, set()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else None
        if pointer in seen:
            tensor = tensor.clone()
        elif pointer is not None:
            seen.add(pointer)
        out[name] = tensor
    return out
