"""Streaming shards for clusters: clips in litdata's chunked format, read from local disk or object storage.

A map-style dataset (token shards, Shapes, a video folder) is written once into ~64 MB chunks with an
index (``write_stream``); training then streams the chunks (``StreamingClips``), each rank and loader
worker reading only its share, from a local folder or ``s3://``, ``gs://``, ``azure://`` URLs (litdata
downloads chunks into a bounded local cache). ``StreamingClipDataModule`` hands Lightning litdata's
``StreamingDataLoader``, whose position Lightning stores in every checkpoint, so a restarted run goes
on mid-epoch with the clips it had not seen yet.

Layout written by ``write_stream(dataset, out, val_clips=n)``::

    out/val/    the first n clips (held out; absent when n = 0)
    out/train/  the others; each folder holds litdata's index.json and chunk-*.bin files

What is stored per clip (``restore_clip`` undoes it): ``video`` (c, T, H, W) in [-1, 1] as uint8
frames (t, h, w, c) under ``frames`` (4x smaller, exact for decoded video); ``text_emb`` / ``text_mask``
trimmed to the last real text token, fp16; ``index`` the clip's position in the source dataset; other
tensors, strings and numbers as they are.

litdata is an optional dependency (``pip install "tokgen[stream]"``); only this module imports it.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from rich.progress import Progress
from torch.utils.data import Dataset

from tokgen.io.convert import frames_to_tensor, tensor_to_frames

SPLITS = ("train", "val")
REMOTE_PREFIXES = ("s3://", "gs://", "azure://", "hf://", "local:")


def _litdata():
    try:
        import litdata
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            'streaming shards need litdata: pip install "tokgen[stream]" (or pip install litdata)'
        ) from err
    return litdata


def _is_remote(path: str) -> bool:
    return str(path).startswith(REMOTE_PREFIXES)


# ------------------------------------------------------------------------------------ one clip
def pack_clip(item: dict, index: int) -> dict:
    """One dataset item -> what a chunk stores (see the module docstring); raises on unsupported fields."""
    out: dict[str, Any] = {"index": int(index)}
    for key, value in item.items():
        if key == "index":
            continue
        if key == "video":
            out["frames"] = torch.from_numpy(np.ascontiguousarray(tensor_to_frames(value)))  # (t, h, w, c) uint8
        elif key == "text_mask":
            continue  # stored with text_emb
        elif key == "text_emb":
            mask = item["text_mask"].bool()
            real = torch.nonzero(mask).flatten()
            keep = max(1, int(real[-1]) + 1 if real.numel() else 0)  # drop the padding after the last token
            out["text_emb"] = value[:keep].to(torch.float16).contiguous()
            out["text_mask"] = mask[:keep].contiguous()
        elif isinstance(value, torch.Tensor):
            out[key] = value.contiguous()
        elif isinstance(value, (str, int, float, bool)):
            out[key] = value
        else:
            raise TypeError(
                f"clip {index}: field {key!r} is a {type(value).__name__}; streaming shards store tensors, "
                "strings and numbers"
            )
    return out


def restore_clip(item: dict, *, max_text_len: int | None = None) -> dict:
    """A stored clip -> the item its source dataset gave (``video`` float, text padded to ``max_text_len``)."""
    item = dict(item)
    if "frames" in item:
        item["video"] = frames_to_tensor(item.pop("frames"))[0]  # (c, T, H, W) in [-1, 1]
    if "codes" in item:
        item["codes"] = item["codes"].long()
    if "text_emb" in item:
        emb, mask = item["text_emb"].float(), item["text_mask"].bool()
        if max_text_len is not None:
            extra = max_text_len - emb.shape[0]
            if extra < 0:
                if int(mask.sum()) > max_text_len:
                    raise ValueError(
                        f"clip {item.get('index')}: text of {int(mask.sum())} tokens exceeds "
                        f"max_text_len={max_text_len}"
                    )
                emb, mask, extra = emb[:max_text_len], mask[:max_text_len], 0
            emb = torch.nn.functional.pad(emb, (0, 0, 0, extra))
            mask = torch.nn.functional.pad(mask, (0, extra))
        item["text_emb"], item["text_mask"] = emb, mask
    return item


# -------------------------------------------------------------------------------------- writing
def write_stream(
    dataset: Dataset,
    out: str | Path,
    *,
    val_clips: int = 0,
    chunk_bytes: int | str = "64MB",
    chunk_size: int | None = None,
) -> Path:
    """Write every clip of ``dataset`` into a streaming folder ``out`` (``out/val``, ``out/train``).

    The folder appears complete or not at all: it is written under a temporary name beside ``out`` and
    renamed into place. Copy it to object storage with your usual tool (``aws s3 sync``, ``gcloud storage
    rsync``) to stream it from there.

    Args:
        dataset: map-style; items are dicts (``TokenShardDataset``, ``ShapesDataset``, ...).
        out: a local folder that must not exist yet (an old stream is never overwritten or deleted).
        val_clips: the first ``val_clips`` clips go to ``out/val``, held out from training.
        chunk_bytes: target chunk size (litdata's recommendation for object storage is ~64 MB).
        chunk_size: clips per chunk instead of bytes (small chunks in tests).
    """
    litdata_writer = _litdata().streaming.writer.BinaryWriter
    if _is_remote(str(out)):  # before Path(), which would fold "s3://" into "s3:/"
        raise ValueError(f"write_stream writes a local folder, got {out}; copy it to object storage afterwards")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; streaming shards go into a new folder (remove the old one yourself)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out}: folder {out.parent} does not exist")
    n = len(dataset)
    if not 0 <= val_clips < n:
        raise ValueError(f"val_clips must be in [0, {n}) for a dataset of {n} clips, got {val_clips}")
    size = {"chunk_size": chunk_size} if chunk_size else {"chunk_bytes": chunk_bytes}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        with Progress() as progress:
            task = progress.add_task("writing streaming shards", total=n)
            for split, indices in (("val", range(val_clips)), ("train", range(val_clips, n))):
                if not len(indices):
                    continue
                writer = litdata_writer(str(tmp / split), **size)
                for position, index in enumerate(indices):
                    writer.add_item(position, pack_clip(dataset[index], index))
                    progress.advance(task)
                writer.done()
                writer.merge()
        os.replace(tmp, out)
    finally:
        if tmp.exists():  # only our own temporary folder, never ``out``
            shutil.rmtree(tmp)
    return out


# -------------------------------------------------------------------------------------- reading
def _split_url(root: str, split: str) -> str:
    return f"{root.rstrip('/')}/{split}"


def streaming_clips(
    root: str | Path,
    *,
    max_text_len: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool | None = None,
    cache_dir: str | None = None,
    max_cache_size: str = "50GB",
):
    """A litdata ``StreamingDataset`` over one split folder, yielding items like the source dataset's.

    Build it where the distributed environment is known (a datamodule's ``setup``): it reads this
    process's rank and world size to pick its share of the chunks.

    Args:
        root: a split folder (``.../train``) on local disk, or an ``s3://`` / ``gs://`` / ``azure://`` URL.
        max_text_len: pad (or crop padding of) text embeddings to this many positions.
        shuffle: shuffle chunk order and clips within chunks, per epoch, from ``seed``.
        drop_last: drop a final partial batch so every rank runs the same number of steps.
        cache_dir: where chunks of a remote root are downloaded (default: litdata's cache folder).
        max_cache_size: evict downloaded chunks beyond this.
    """
    litdata = _litdata()
    root = str(root)
    if not _is_remote(root) and not (Path(root) / "index.json").is_file():
        raise FileNotFoundError(
            f"{root}: no index.json; write streaming shards with tokgen.data.streaming.write_stream"
        )
    dataset = litdata.StreamingDataset(
        root,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
        cache_dir=cache_dir,
        max_cache_size=max_cache_size if _is_remote(root) else None,
        transform=functools.partial(restore_clip, max_text_len=max_text_len),
    )
    return dataset


class StreamingClipDataModule(L.LightningDataModule):
    """Train and validation loaders over a streaming folder (``write_stream``); resumable mid-epoch.

    Args:
        root: the folder holding ``train/`` (and ``val/``): local, or an object-storage URL.
        batch_size: clips per batch and per process.
        num_workers: loader worker processes per training process.
        seed: seeds the shuffle (the same on every rank: litdata splits one permutation between them).
        max_text_len: text positions per item (token shards); None leaves text as stored.
        validate: whether ``root/val`` exists and validation should use it.
        cache_dir: local cache for chunks of a remote root.
        max_cache_size: cache bound, e.g. ``"50GB"``.
    """

    def __init__(
        self,
        root: str,
        *,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        max_text_len: int | None = None,
        validate: bool = True,
        cache_dir: str | None = None,
        max_cache_size: str = "50GB",
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.root = str(root)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.options = dict(max_text_len=max_text_len, cache_dir=cache_dir, max_cache_size=max_cache_size)
        self.use_val = validate
        self.train = self.val = None

    def setup(self, stage: str) -> None:
        # Here, not in __init__: the process group exists now, and litdata reads the rank from it.
        if self.train is None and stage == "fit":
            self.train = streaming_clips(
                _split_url(self.root, "train"), shuffle=True, seed=self.seed, drop_last=True, **self.options
            )
            first = self.train[0]
            if (
                "codes" in first
            ):  # token shards: the latent grid, which the transformer records (like TokenShardDataset)
                self.train.codes_shape = tuple(first["codes"].shape)
        if self.val is None and self.use_val and stage in ("fit", "validate", "test", "predict"):
            self.val = streaming_clips(_split_url(self.root, "val"), **self.options)

    def _loader(self, dataset, split: str):
        if dataset is None:
            raise ValueError(f"no {split!r} split: {self.root}/{split} was not written (write_stream val_clips=0)")
        return _litdata().StreamingDataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers)

    def train_dataloader(self):
        return self._loader(self.train, "train")

    def val_dataloader(self):
        return self._loader(self.val, "val")

    test_dataloader = predict_dataloader = val_dataloader
