"""`Generator`: the one composition object, tokenizer + transformer + text encoder + sampler.

A generator folder holds ``tokenizer/`` and ``transformer/`` exports (each ``config.json`` +
``model.safetensors``); ``tokgen export`` writes it from a transformer checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tokgen.io.checkpoint import load_pretrained, save_pretrained
from tokgen.io.convert import tensor_to_frames
from tokgen.sampling.maskgit import sample_from_prompts
from tokgen.text import TextEncoderConfig, build_text_encoder
from tokgen.tokenizer.model import VideoTokenizer
from tokgen.transformer.config import TransformerConfig
from tokgen.transformer.model import MaskedTransformer


class Generator:
    """Text -> video: MaskGIT-sample codes with the transformer, decode them with the tokenizer.

    Args:
        tokenizer: the C-ViViT tokenizer whose codes the transformer was trained on.
        transformer: the masked transformer.
        text_encoder: the text encoder the transformer was trained with.
        codes_shape: the latent grid ``(t, h, w)`` it was trained on (the default clip size).
        schedule: mask schedule used in training (sampling follows the same one).
    """

    def __init__(
        self,
        tokenizer: VideoTokenizer,
        transformer: MaskedTransformer,
        text_encoder: torch.nn.Module,
        *,
        codes_shape: tuple[int, int, int],
        schedule: str = "cosine",
        text_config: dict | None = None,
    ) -> None:
        transformer.check_tokenizer(tokenizer.config.codebook_size, tuple(codes_shape))
        if text_encoder.dim != transformer.config.text_dim:
            raise ValueError(
                f"text encoder width {text_encoder.dim} does not match transformer text_dim "
                f"{transformer.config.text_dim}"
            )
        self.tokenizer, self.transformer, self.text_encoder = (
            tokenizer.eval(),
            transformer.eval(),
            text_encoder.eval(),
        )
        self.codes_shape, self.schedule = tuple(codes_shape), schedule
        self.text_config = text_config or {}

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def to(self, device: str | torch.device) -> Generator:
        for part in (self.tokenizer, self.transformer, self.text_encoder):
            part.to(device)
        return self

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Generator:
        """Load ``directory/tokenizer`` and ``directory/transformer`` (no pickle anywhere)."""
        directory = Path(directory)
        tokenizer = VideoTokenizer.from_pretrained(directory / "tokenizer")
        config, state = load_pretrained(directory / "transformer", kind="transformer")
        transformer = MaskedTransformer(TransformerConfig.from_dict(config["transformer"]))
        text_encoder = build_text_encoder(TextEncoderConfig(**config["text"]))
        model_state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        text_state = {k.removeprefix("text_encoder."): v for k, v in state.items() if k.startswith("text_encoder.")}
        try:
            transformer.load_state_dict(model_state)
            if text_state:
                text_encoder.load_state_dict(text_state)
        except RuntimeError as err:
            raise ValueError(f"{directory / 'transformer'}: weights do not match its config.json: {err}") from err
        return cls(
            tokenizer,
            transformer,
            text_encoder,
            codes_shape=tuple(config["codes_shape"]),
            schedule=config.get("schedule", "cosine"),
            text_config=config["text"],
        )

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        directory = Path(directory)
        self.tokenizer.save_pretrained(directory / "tokenizer", overwrite=overwrite)
        state = {f"model.{k}": v for k, v in self.transformer.state_dict().items()}
        if self.text_config.get("kind") == "learned":
            state.update({f"text_encoder.{k}": v for k, v in self.text_encoder.state_dict().items()})
        config = {
            "transformer": self.transformer.config.to_dict(),
            "text": self.text_config,
            "codes_shape": list(self.codes_shape),
            "schedule": self.schedule,
        }
        save_pretrained(directory / "transformer", config, state, kind="transformer", overwrite=overwrite)
        return directory

    def sample_codes(
        self,
        prompts: list[str],
        codes_shape: tuple[int, int, int],
        *,
        steps: int = 12,
        guidance: float = 3.0,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
        known: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Codes ``(b, t, h, w)`` for ``prompts``; ``known``/``known_mask`` fix given codes (continuation)."""
        self.transformer.check_tokenizer(self.tokenizer.config.codebook_size, tuple(codes_shape))
        return sample_from_prompts(
            self.transformer,
            self.text_encoder,
            list(prompts),
            tuple(codes_shape),
            mask_id=self.transformer.mask_id,
            seed=seed,
            known=known,
            known_mask=known_mask,
            steps=steps,
            guidance=guidance,
            temperature=temperature,
            top_k=top_k,
            schedule=self.schedule,
        )

    def generate(
        self,
        prompts: str | list[str],
        *,
        num_frames: int | None = None,
        steps: int = 12,
        guidance: float = 3.0,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
    ) -> np.ndarray | list[np.ndarray]:
        """Generate uint8 frames ``(T, H, W, 3)`` for a prompt (a list of them for a list of prompts).

        Args:
            prompts: one prompt or a list.
            num_frames: clip length ``1 + k * temporal_patch``; default: the length trained on.
            steps: MaskGIT decoding steps (forward passes).
            guidance: classifier-free guidance scale (1 = none; conditional and null share one forward).
            temperature: sampling temperature (0 = greedy).
            top_k: sample only among the k most likely codes.
            seed: random seed; prompt ``i`` uses ``seed + i``.
        """
        single = isinstance(prompts, str)
        prompt_list = [prompts] if single else list(prompts)
        t, h, w = self.codes_shape
        if num_frames is not None:
            t = self.tokenizer.config.latent_frames(num_frames)
        clips = []
        for i, prompt in enumerate(prompt_list):
            codes = self.sample_codes(
                [prompt],
                (t, h, w),
                steps=steps,
                guidance=guidance,
                temperature=temperature,
                top_k=top_k,
                seed=seed + i,
            )
            with torch.no_grad():
                clips.append(tensor_to_frames(self.tokenizer.decode(codes))[0])
        return clips[0] if single else clips
