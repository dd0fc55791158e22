"""`HFTextEncoder`: a frozen Hugging Face text encoder, read from local files only.

Axis legend: b prompts, l tokens (longest prompt of the batch, at most ``max_length``), d width.

T5 checkpoints load their encoder alone (``T5EncoderModel``), CLIP checkpoints their text tower
(``CLIPTextModel``), anything else goes through ``AutoModel`` and must be an encoder-only model
(BERT, MiniLM, ...). The embedding is the last hidden state per token, not a pooled vector: the
transformer cross-attends to every token (Phenaki, section 2.2). Every ``from_pretrained`` call
passes ``local_files_only=True``, so a missing model is an error, never a download.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tokgen.text.cache import PromptCache, weights_stamp
from tokgen.text.embedding import TextEmbedding, check_prompts, warn_truncated

KINDS = ("auto", "t5", "clip", "bert")
_T5_TYPES = ("t5", "mt5", "umt5")
_CLIP_TYPES = ("clip", "clip_text_model")


def resolve_kind(kind: str, model_type: str) -> str:
    """The loader for a checkpoint whose ``config.json`` says ``model_type``; ``kind`` wins unless "auto"."""
    if kind != "auto":
        return kind
    if model_type in _T5_TYPES:
        return "t5"
    return "clip" if model_type in _CLIP_TYPES else "bert"


class HFTextEncoder(nn.Module):
    """Frozen Hugging Face encoder: prompts -> per-token ``last_hidden_state`` as a `TextEmbedding`.

    The module stays in eval mode (dropout off) even inside a parent that trains, its parameters
    never require grad, and embeddings are cached per prompt (`PromptCache`). A blank prompt ``""``
    (the unconditional prompt of classifier-free guidance) embeds the tokenizer's special tokens
    (``[CLS] [SEP]``, ``</s>``, ...); with a tokenizer that adds none it embeds one pad token.

    Args:
        name_or_path: a folder with ``config.json``, the weights and the tokenizer files, or a hub
            name already in the local Hugging Face cache.
        max_length: most tokens per prompt, special tokens included; longer prompts are truncated
            with a warning.
        kind: "t5", "clip", "bert" (any ``AutoModel`` encoder) or "auto" (from ``config.json``).
        cache_size: most prompts whose embeddings are kept; 0 disables the cache.

    Raises:
        FileNotFoundError: the model is neither a local folder nor in the local cache.
    """

    def __init__(
        self, name_or_path: str | Path, *, max_length: int = 32, kind: str = "auto", cache_size: int = 256
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"HFTextEncoder kind must be one of {KINDS}, got {kind!r}")
        if max_length < 1:
            raise ValueError(f"HFTextEncoder max_length must be >= 1, got {max_length}")
        # Imported here: transformers takes about a second to import, and `import tokgen.text` must not.
        from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModel, T5EncoderModel

        source = str(name_or_path)
        try:
            config = AutoConfig.from_pretrained(source, local_files_only=True)
            self.kind = resolve_kind(kind, config.model_type)
            loader = {"t5": T5EncoderModel, "clip": CLIPTextModel, "bert": AutoModel}[self.kind]
            self.model = loader.from_pretrained(source, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        except OSError as err:
            raise FileNotFoundError(
                f"text encoder {source!r} is neither a local model folder nor in the local Hugging Face "
                f"cache, and nothing is downloaded (local_files_only=True). Pass a folder holding "
                f"config.json, the weights and the tokenizer files, or fetch the model yourself first "
                f"(`hf download {source}`)."
            ) from err
        self.model.eval().requires_grad_(False)
        # Real tokens first: `TextEmbedding.rows` and the cache rely on right padding.
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        if self.tokenizer.pad_token is None:
            raise ValueError(f"the tokenizer of {source!r} has no pad, eos or unk token to pad batches with")
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions is not None and max_length > positions:
            raise ValueError(f"max_length={max_length} exceeds the {positions} positions of {source!r}")
        self.name_or_path = source
        self.dim: int = self.model.config.hidden_size
        self.max_length = max_length
        self.cache = PromptCache(cache_size)

    def extra_repr(self) -> str:
        return f"{self.name_or_path!r}, kind={self.kind!r}, dim={self.dim}, max_length={self.max_length}"

    def train(self, mode: bool = True) -> HFTextEncoder:
        """Ignore ``mode``: a frozen encoder keeps dropout off while its parent trains."""
        return super().train(False)

    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Embed ``prompts``: ``emb (b, l, dim)`` float32 on the module's device, no grad; ``mask (b, l)``."""
        check_prompts(prompts)
        return self.cache.encode(list(prompts), self._embed, weights_stamp(self))

    @torch.no_grad()  # no_grad rather than inference_mode: cached rows may later feed a training graph
    def _embed(self, prompts: list[str]) -> TextEmbedding:
        """Tokenize and run the model on distinct, uncached prompts."""
        device = next(self.parameters()).device
        full = self.tokenizer(prompts, truncation=False, verbose=False)["input_ids"]
        for prompt, ids in zip(prompts, full, strict=True):
            if len(ids) > self.max_length:
                warn_truncated(prompt, len(ids), self.max_length)
        tokens = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        ids, mask = tokens["input_ids"], tokens["attention_mask"].bool()  # (b, l), (b, l)
        if ids.shape[1] == 0:  # only blank prompts and a tokenizer that adds no special tokens
            ids = ids.new_full((len(prompts), 1), self.tokenizer.pad_token_id)
            mask = torch.zeros_like(ids, dtype=torch.bool)
        # A prompt without any token still needs one key to attend to: it reads a single pad token.
        mask[:, 0] |= ~mask.any(1)
        ids, mask = ids.to(device), mask.to(device)
        hidden = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (b, l, d)
        return TextEmbedding(emb=hidden.float() * mask[..., None], mask=mask)
