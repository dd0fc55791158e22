"""Token shards: a dataset's clips as tokenizer codes + captions + text embeddings, on disk.

Transformer training reads these and never decodes video. Layout of a shard folder::

    index.json                 what the shards hold (code shape, codebook size, text width, sources)
    shard_00000.safetensors    codes (n, t, h, w) int16/int32, text_emb (n, l, d) fp16, text_mask (n, l),
                               context_frames (n,) int16 when the clips carry it (see TokenShardDataset)
    shard_00000.json           the n captions
    null_text.safetensors      the text encoder's embedding of "" (the unconditional prompt)

Writing is resumable: shard k always holds clips ``[k * shard_size, (k + 1) * shard_size)``, each
shard file appears atomically, and a restarted run skips the shards already on disk.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from rich.progress import Progress
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

from tokgen.io.atomic import atomic_output
from tokgen.tokenizer.config import TokenizerConfig

INDEX = "index.json"
NULL_TEXT = "null_text.safetensors"
FORMAT_VERSION = 1


def _shard_name(k: int) -> str:
    return f"shard_{k:05d}"


def _comparable(sources: dict) -> dict:
    """``sources`` as JSON holds it, its tokenizer config completed with this version's defaults.

    A field added to ``TokenizerConfig`` after shards were written is missing from their index; filled
    in with its default (as ``from_pretrained`` fills it in for that tokenizer) the record still
    matches, so the shards resume. A config this version cannot read is compared as it stands.
    """
    sources = json.loads(json.dumps(sources))
    config = sources.get("tokenizer_config")
    if isinstance(config, dict):
        with contextlib.suppress(TypeError, ValueError):
            sources["tokenizer_config"] = json.loads(json.dumps(TokenizerConfig.from_dict(config).to_dict()))
    return sources


_ABSENT = object()


def _differences(recorded: object, current: object, path: str = "") -> list[str]:
    """Dotted keys where two JSON records differ, each with both values: ``key: recorded -> current``."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(recorded) | set(current), key=str):
            found += _differences(recorded.get(key, _ABSENT), current.get(key, _ABSENT), f"{path}.{key}".lstrip("."))
        return found
    if recorded == current:
        return []
    shown = ["(absent)" if v is _ABSENT else json.dumps(v)[:80] for v in (recorded, current)]
    return [f"{path}: {shown[0]} -> {shown[1]}"]


def _context_before(change_at: torch.Tensor, temporal_patch: int | None) -> torch.Tensor:
    """Latent frames wholly before pixel frame ``change_at`` (frame 0 alone, then ``temporal_patch`` each)."""
    if temporal_patch is None:
        raise ValueError(
            "the clips carry change_at (their motion changes there); write_token_shards needs the tokenizer's "
            "temporal_patch to turn it into context_frames"
        )
    return torch.as_tensor(change_at) // temporal_patch + 1


def write_token_shards(
    dataset: Dataset,
    out: str | Path,
    *,
    encode_video: Callable[[torch.Tensor], torch.Tensor],
    encode_text: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]],
    codebook_size: int,
    shard_size: int = 1024,
    batch_size: int = 16,
    num_workers: int = 0,
    sources: dict | None = None,
    temporal_patch: int | None = None,
) -> Path:
    """Encode every clip of ``dataset`` into shards under ``out``; resumes where a previous run stopped.

    Args:
        dataset: items with ``video`` (c, T, H, W) and ``caption``.
        out: the shard folder (created; an existing one must hold shards of the same sources).
        encode_video: ``(b, c, T, H, W) -> codes (b, t, h, w)``.
        encode_text: ``prompts -> (emb (b, l, d), mask (b, l))``.
        codebook_size: recorded so training can check the transformer's vocabulary.
        shard_size: clips per shard.
        batch_size: clips per encoder call.
        num_workers: loader workers decoding clips.
        sources: what made the codes (tokenizer and text-encoder configs, dataset); stored in the
            index and compared on resume so shards from two tokenizers never mix.
        temporal_patch: the tokenizer's, for items that carry ``change_at`` (the frame where a
            Shapes clip's motion changes; its caption describes what follows) instead of
            ``context_frames``: they get the latent frames wholly before the change,
            ``change_at // temporal_patch + 1``, so the clip trains as a story window.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / INDEX
    sources = sources or {}
    old = json.loads(index_path.read_text()) if index_path.exists() else None
    if old is not None:
        recorded = {"sources": _comparable(old.get("sources") or {}), "shard_size": old.get("shard_size")}
        differ = _differences(recorded, {"sources": _comparable(sources), "shard_size": shard_size})
        if differ:
            shown = "; ".join(differ[:5]) + (f"; and {len(differ) - 5} more" if len(differ) > 5 else "")
            raise ValueError(
                f"{out} holds shards made with other settings ({index_path}: recorded -> now: {shown}); "
                "choose a new folder"
            )
    n = len(dataset)
    num_shards = (n + shard_size - 1) // shard_size
    todo = [k for k in range(num_shards) if not (out / f"{_shard_name(k)}.safetensors").exists()]

    null_emb, null_mask = encode_text([""])
    save_file(
        {"emb": null_emb[0].float().cpu().contiguous(), "mask": null_mask[0].cpu().contiguous()},
        str(out / NULL_TEXT),
    )
    code_dtype = torch.int16 if codebook_size <= 2**15 else torch.int32
    codes_shape: list[int] | None = None
    carries_context = bool(old and old.get("context_frames"))  # stays True once any shard carried it
    with Progress() as progress:
        task = progress.add_task(
            "tokenizing", total=n, completed=n - sum(min(shard_size, n - k * shard_size) for k in todo)
        )
        for k in todo:
            indices = list(range(k * shard_size, min(n, (k + 1) * shard_size)))
            loader = DataLoader(
                torch.utils.data.Subset(dataset, indices), batch_size=batch_size, num_workers=num_workers
            )
            codes, embs, masks, captions, context = [], [], [], [], []
            for batch in loader:
                with torch.inference_mode():
                    codes.append(encode_video(batch["video"]).cpu().to(code_dtype))
                    emb, mask = encode_text(list(batch["caption"]))
                embs += list(emb.cpu().half().unbind(0))
                masks += list(mask.cpu().unbind(0))
                captions += list(batch["caption"])
                if "context_frames" in batch:
                    context.append(torch.as_tensor(batch["context_frames"]).to(torch.int16))
                elif "change_at" in batch:
                    context.append(_context_before(batch["change_at"], temporal_patch).to(torch.int16))
                progress.advance(task, len(batch["caption"]))
            length = max(m.shape[0] for m in masks)  # pad text to the shard's longest prompt
            text_emb = torch.stack([torch.nn.functional.pad(e, (0, 0, 0, length - e.shape[0])) for e in embs])
            text_mask = torch.stack([torch.nn.functional.pad(m, (0, length - m.shape[0])) for m in masks])
            all_codes = torch.cat(codes)
            codes_shape = list(all_codes.shape[1:])
            with atomic_output(out / f"{_shard_name(k)}.json", overwrite=True) as tmp:
                tmp.write_text(json.dumps(captions))
            with atomic_output(out / f"{_shard_name(k)}.safetensors", overwrite=True) as tmp:
                tensors = {"codes": all_codes, "text_emb": text_emb, "text_mask": text_mask}
                if context:  # latent frames given in training (the caption describes what follows them)
                    tensors["context_frames"], carries_context = torch.cat(context), True
                save_file(tensors, str(tmp))
    if codes_shape is None:  # nothing left to do: read the shape back from shard 0
        with safe_open(str(out / f"{_shard_name(0)}.safetensors"), "pt") as f:
            codes_shape = list(f.get_slice("codes").get_shape()[1:])
    index = {
        "format": FORMAT_VERSION,
        "num_clips": n,
        "shard_size": shard_size,
        "num_shards": num_shards,
        "codes_shape": codes_shape,
        "codebook_size": codebook_size,
        "text_dim": int(null_emb.shape[-1]),
        "context_frames": carries_context,
        "sources": sources,
    }
    with atomic_output(index_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    return out


class TokenShardDataset(Dataset):
    """Clips from a shard folder: ``{"codes": (t, h, w) long, "text_emb": (l, d), "text_mask": (l,), "caption"}``.

    Text is padded to ``max_text_len`` so items of different shards batch together. Shards of clips
    that carried ``context_frames`` (latent frames given in training, whose caption describes what
    follows them: story-window clips) add it to every item.

    Args:
        root: the shard folder written by ``write_token_shards`` (``tokgen tokenize``).
        max_text_len: text positions per item (longer text embeddings are an error).
        limit: use only the first ``limit`` clips (e.g. a small validation split).
        offset: skip the first ``offset`` clips (held-out splits from one folder).
    """

    def __init__(self, root: str | Path, *, max_text_len: int = 32, limit: int | None = None, offset: int = 0) -> None:
        self.root = Path(root)
        index_path = self.root / INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"{self.root}: no {INDEX}; write shards with `tokgen tokenize` first")
        self.index = json.loads(index_path.read_text())
        if self.index.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"{index_path}: shard format {self.index.get('format')}, this tokgen reads {FORMAT_VERSION}"
            )
        total = self.index["num_clips"]
        if not 0 <= offset <= total:
            raise ValueError(f"offset {offset} outside the {total} clips of {self.root}")
        self.offset = offset
        self.length = total - offset if limit is None else min(limit, total - offset)
        self.max_text_len = max_text_len
        self._shard: tuple[int, dict, list[str]] | None = None  # the last shard read, per worker

    @property
    def codes_shape(self) -> tuple[int, int, int]:
        return tuple(self.index["codes_shape"])

    def null_text(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The text encoder's embedding of "" padded like items: ``(l, d)``, ``(l,)``."""
        with safe_open(str(self.root / NULL_TEXT), "pt") as f:
            return self._pad(f.get_tensor("emb"), f.get_tensor("mask"))

    def _pad(self, emb: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        extra = self.max_text_len - emb.shape[0]
        if extra < 0:
            mask_len = int(mask.sum())
            if mask_len > self.max_text_len:
                raise ValueError(f"{self.root}: text of {mask_len} tokens exceeds max_text_len={self.max_text_len}")
            emb, mask, extra = emb[: self.max_text_len], mask[: self.max_text_len], 0
        return torch.nn.functional.pad(emb.float(), (0, 0, 0, extra)), torch.nn.functional.pad(mask, (0, extra))

    def __len__(self) -> int:
        return self.length

    def _load(self, k: int) -> tuple[dict, list[str]]:
        if self._shard is None or self._shard[0] != k:
            path = self.root / f"{_shard_name(k)}.safetensors"
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: the shard folder is incomplete (re-run `tokgen tokenize`)")
            with safe_open(str(path), "pt") as f:
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
            captions = json.loads((self.root / f"{_shard_name(k)}.json").read_text())
            self._shard = (k, tensors, captions)
        return self._shard[1], self._shard[2]

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} clips")
        k, j = divmod(i + self.offset, self.index["shard_size"])
        tensors, captions = self._load(k)
        emb, mask = self._pad(tensors["text_emb"][j], tensors["text_mask"][j])
        item = {"codes": tensors["codes"][j].long(), "text_emb": emb, "text_mask": mask, "caption": captions[j]}
        if self.index.get("context_frames"):  # 0 in a shard written before its clips carried it
            item["context_frames"] = int(tensors["context_frames"][j]) if "context_frames" in tensors else 0
        return item
