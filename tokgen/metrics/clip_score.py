"""CLIP score of generated clips against their prompts, from a CLIP model on local disk.

The score of a clip is ``100 * max(cos(image, text), 0)`` averaged over its frames (CLIPSIM, as used
for text-to-video by GODIVA and Phenaki). The model is a Hugging Face CLIP folder (``config.json``,
weights, tokenizer files, optionally ``preprocessor_config.json``); nothing is downloaded.

Axis legend: b batch, c channels, t frames, h height, w width.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

# OpenAI CLIP's normalisation, used when the folder has no preprocessor_config.json.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
EXPECTED = (
    "a local Hugging Face CLIP folder (config.json, model weights, tokenizer files), "
    "e.g. openai/clip-vit-base-patch32 saved with save_pretrained"
)


class ClipScorer:
    """CLIP score: videos ``(b, 3, t, h, w)`` in [-1, 1] and one prompt each -> scores ``(b,)`` in [0, 100]."""

    def __init__(self, model, tokenizer, *, mean: Sequence[float], std: Sequence[float], image_size: int) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.image_size = image_size

    @classmethod
    def from_pretrained(cls, path: str | Path | None) -> ClipScorer:
        """Load CLIP from ``path`` (local files only).

        Raises:
            FileNotFoundError: no path given, or no ``config.json`` there.
        """
        from transformers import AutoTokenizer, CLIPModel

        if not path:
            raise FileNotFoundError(f"CLIP score needs clip=PATH: {EXPECTED}")
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no CLIP model at '{path}' (no config.json): expected {EXPECTED}")
        model = CLIPModel.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        mean, std = OPENAI_MEAN, OPENAI_STD
        if (path / "preprocessor_config.json").is_file():
            pre = json.loads((path / "preprocessor_config.json").read_text())
            mean, std = pre.get("image_mean", mean), pre.get("image_std", std)
        return cls(model, tokenizer, mean=mean, std=std, image_size=model.config.vision_config.image_size)

    def pixel_values(self, video: Tensor) -> Tensor:
        """Frames ``(b * t, 3, S, S)``, resized to the model's image size and normalised as in its training."""
        frames = rearrange((video.float().clamp(-1, 1) + 1) / 2, "b c t h w -> (b t) c h w")
        size = (self.image_size, self.image_size)
        frames = F.interpolate(frames, size=size, mode="bicubic", antialias=True).clamp(0, 1)
        return (frames - self.mean) / self.std

    @torch.no_grad()
    def score(self, videos: Tensor, prompts: Sequence[str]) -> Tensor:
        if videos.ndim != 5 or videos.shape[1] != 3 or len(videos) != len(prompts):
            raise ValueError(
                f"CLIP score expects videos (b, 3, t, h, w) and b prompts, got {tuple(videos.shape)}, {len(prompts)}"
            )
        b, t = videos.shape[0], videos.shape[2]
        text = self.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt")
        text_emb = self._tensor(self.model.get_text_features(**text))
        image_emb = self._tensor(self.model.get_image_features(pixel_values=self.pixel_values(videos)))
        image_emb = rearrange(image_emb, "(b t) d -> b t d", b=b, t=t)
        cos = F.cosine_similarity(image_emb, text_emb[:, None], dim=-1)  # (b, t)
        return 100 * cos.clamp_min(0).mean(1)

    @staticmethod
    def _tensor(output) -> Tensor:
        # transformers 5 may wrap projected embeddings in a ModelOutput; older versions return the tensor.
        return output if isinstance(output, Tensor) else output.pooler_output
