"""`Generator`: the one composition object, tokenizer + transformer + text encoder + sampler.

A generator folder holds ``tokenizer/`` and ``transformer/`` exports (each ``config.json`` +
``model.safetensors``); ``tokgen export`` writes it from a transformer checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tokgen.generator_folder import check_generator_parts, generator_folder, tokenizer_geometry
from tokgen.io.checkpoint import check_writable, load_pretrained, save_pretrained
from tokgen.io.convert import frames_to_tensor, tensor_to_frames
from tokgen.io.story import StorySegment
from tokgen.io.video import read_video
from tokgen.sampling.maskgit import sample_from_prompts, text_logits_fn
from tokgen.sampling.prompts import PromptSpec
from tokgen.sampling.story import Segment, plan_windows, story_sample
from tokgen.story import Story, window_progress
from tokgen.text import TextEncoderConfig, build_text_encoder
from tokgen.tokenizer.model import VideoTokenizer
from tokgen.transformer.config import (
    DEFAULT_FIRST_FRAME,
    DEFAULT_GUIDANCE,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_K,
    TransformerConfig,
)
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
        transformer.check_tokenizer(tokenizer.config.codebook_size, tuple(codes_shape), tokenizer.config.code_levels)
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
        directory = generator_folder(directory)  # clear errors for a file (a .ckpt) or a missing folder
        tokenizer = VideoTokenizer.from_pretrained(directory / "tokenizer")
        config, state = load_pretrained(directory / "transformer", kind="transformer")
        transformer = MaskedTransformer(TransformerConfig.from_dict(config["transformer"]))
        text_encoder = build_text_encoder(TextEncoderConfig(**config["text"]))
        check_generator_parts(directory, config, state, tokenizer, transformer, text_encoder)
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
        check_writable(directory / "tokenizer", directory / "transformer", overwrite=overwrite)  # both, first
        self.tokenizer.save_pretrained(directory / "tokenizer", overwrite=overwrite)
        state = {f"model.{k}": v for k, v in self.transformer.state_dict().items()}
        if self.text_config.get("kind") == "learned":
            state.update({f"text_encoder.{k}": v for k, v in self.text_encoder.state_dict().items()})
        config = {
            "transformer": self.transformer.config.to_dict(),
            "text": self.text_config,
            "codes_shape": list(self.codes_shape),
            "schedule": self.schedule,
            "tokenizer": tokenizer_geometry(self.tokenizer.config.to_dict()),
        }
        save_pretrained(directory / "transformer", config, state, kind="transformer", overwrite=overwrite)
        return directory

    def sample_codes(
        self,
        prompts: list[str],
        codes_shape: tuple[int, int, int],
        *,
        steps: int = 12,
        guidance: float = DEFAULT_GUIDANCE,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int | None = DEFAULT_TOP_K,
        seed: int = 0,
        known: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
        first_frame: bool = DEFAULT_FIRST_FRAME,
    ) -> torch.Tensor:
        """Codes ``(b, t, h, w)`` for ``prompts``; ``known``/``known_mask`` fix given codes (continuation);
        ``first_frame``: decode the first latent frame before the rest where it is not given."""
        self.transformer.check_tokenizer(
            self.tokenizer.config.codebook_size, tuple(codes_shape), self.tokenizer.config.code_levels
        )
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
            first_frame=first_frame,
        )

    def generate(
        self,
        prompts: str | list[str],
        *,
        num_frames: int | None = None,
        steps: int = 12,
        guidance: float = DEFAULT_GUIDANCE,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int | None = DEFAULT_TOP_K,
        seed: int = 0,
        first_frame: bool = DEFAULT_FIRST_FRAME,
    ) -> np.ndarray | list[np.ndarray]:
        """Generate uint8 frames ``(T, H, W, 3)`` for a prompt (a list of them for a list of prompts).

        Args:
            prompts: one prompt or a list.
            num_frames: clip length ``1 + k * temporal_patch``; default: the length trained on.
            steps: MaskGIT decoding steps (forward passes).
            guidance: classifier-free guidance scale (1 = none; conditional and null share one forward).
            temperature: sampling temperature (0 = greedy; the default is
                ``tokgen.transformer.config.DEFAULT_TEMPERATURE``).
            top_k: sample only among the k most likely codes (None: all; the default is
                ``tokgen.transformer.config.DEFAULT_TOP_K``).
            seed: random seed; prompt ``i`` uses ``seed + i``.
            first_frame: decode the first latent frame (an image) before the rest (see ``maskgit_sample``).
        """
        single = isinstance(prompts, str)
        prompt_list = [prompts] if single else list(prompts)
        t, h, w = self.codes_shape
        if num_frames is not None:
            t, most = self.tokenizer.config.latent_frames(num_frames), self.transformer.config.max_t
            if t > most:
                raise ValueError(
                    f"num_frames={num_frames} is {t} latent frames; this transformer samples at most {most} "
                    f"({self.tokenizer.config.num_frames(most)} frames) at once: story mode makes longer videos"
                )
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
                first_frame=first_frame,
            )
            with torch.no_grad():
                clips.append(tensor_to_frames(self.tokenizer.decode(codes))[0])
        return clips[0] if single else clips

    # ----------------------------------------------------------------------- known-token patterns
    @property
    def frame_size(self) -> tuple[int, int]:
        """``(H, W)`` pixels of the frames this generator makes (its latent grid times the patch size)."""
        p = self.tokenizer.config.patch_size
        return self.codes_shape[1] * p, self.codes_shape[2] * p

    def _frames(self, frames: np.ndarray | str | Path, what: str) -> tuple[np.ndarray, str]:
        """Frames as given, or read from a video/image file and resized to this generator's; and their name."""
        if isinstance(frames, (str, Path)):
            return read_video(frames, size=self.frame_size), str(frames)
        return np.asarray(frames), what

    def _encode(self, frames: np.ndarray | str | Path, what: str) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)``, one ``(H, W, 3)`` frame, or a video/image file -> codes ``(1, t, h, w)``."""
        size = self.frame_size
        frames, what = self._frames(frames, what)
        video = frames_to_tensor(frames[None] if frames.ndim == 3 else frames).to(self.device)  # (1, 3, T, H, W)
        if tuple(video.shape[-2:]) != size:
            raise ValueError(f"{what} frames are {tuple(video.shape[-2:])} pixels; this generator makes {size}")
        try:
            return self.tokenizer.encode(video, chunk_frames=self.codes_shape[0])
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None

    def _decode(self, codes: torch.Tensor, chunk_frames: int | None) -> np.ndarray:
        # Causal tokenizer, decoded a few latent frames at a time: activations do not grow with length.
        with torch.no_grad():
            return tensor_to_frames(self.tokenizer.decode(codes, chunk_frames=chunk_frames or self.codes_shape[0]))[0]

    def story(
        self,
        prompts: Sequence[str | PromptSpec],
        *,
        frames_per_prompt: int | None = None,
        context: int | None = None,
        window: int | None = None,
        steps: int = 12,
        guidance: float = DEFAULT_GUIDANCE,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int | None = DEFAULT_TOP_K,
        seed: int = 0,
        init: np.ndarray | str | Path | None = None,
        fps: float = 8.0,
        chunk_frames: int | None = None,
        progress: bool = False,
        first_frame: bool = DEFAULT_FIRST_FRAME,
    ) -> Story:
        """A video that follows ``prompts`` in turn, sampled window by window with carried codes.

        The story has ``1 + sum(frames)`` frames (the lone first frame, then each prompt's frames), or
        ``len(init) + sum(frames)`` when it continues ``init``.

        Args:
            prompts: strings or ``PromptSpec``s (per-prompt frames/seconds, guidance, temperature, seed).
            frames_per_prompt: pixel frames per prompt, a multiple of ``temporal_patch``; default: the
                trained clip length minus its first frame (16 for 17-frame clips).
            context: latent frames carried into each window as known codes; default ``window // 2``.
            window: latent frames per sampler call; default the trained length (``codes_shape[0]``).
            steps, guidance, temperature, top_k: MaskGIT settings (a prompt's own override these).
            seed: prompt ``i`` samples with ``seed + i`` unless it has its own.
            init: uint8 frames ``(T, H, W, 3)`` to continue (``T = 1 + k * temporal_patch``), one
                ``(H, W, 3)`` frame (image-to-video), or a video/image file (resized to fit); their
                codes are kept as they are.
            fps: converts a prompt's ``seconds`` to frames.
            chunk_frames: latent frames decoded at a time (default ``window``).
            progress: show a progress bar over the windows.
            first_frame: without ``init``, decode the story's first latent frame before the rest of
                its first window (see ``maskgit_sample``).
        """
        specs = [p if isinstance(p, PromptSpec) else PromptSpec(p) for p in prompts]
        if not specs:
            raise ValueError("story needs at least one prompt")
        config = self.tokenizer.config
        window = window or self.codes_shape[0]
        context = context or max(1, window // 2)
        default = frames_per_prompt or config.num_frames(self.codes_shape[0]) - 1
        init_codes = None if init is None else self._encode(init, "init")
        t0 = 0 if init_codes is None else init_codes.shape[1]
        pt, segments = config.temporal_patch, []
        for i, spec in enumerate(specs):
            latent = spec.num_frames(default, fps=fps, multiple=pt) // pt + (1 if i == 0 and t0 == 0 else 0)
            gs = guidance if spec.guidance is None else spec.guidance  # + 1: the story's lone first frame
            temp = temperature if spec.temperature is None else spec.temperature
            segments.append(
                Segment(latent, guidance=gs, temperature=temp, seed=seed + i if spec.seed is None else spec.seed)
            )
        planned = plan_windows([s.frames for s in segments], window=window, context=context, init=t0)
        self.transformer.check_tokenizer(config.codebook_size, (window, *self.codes_shape[1:]), config.code_levels)
        text, null = self.text_encoder.encode([s.prompt for s in specs]), self.text_encoder.encode([""])

        def logits_for(i: int):
            return text_logits_fn(self.transformer, text.emb[i : i + 1], text.mask[i : i + 1], null.emb, null.mask)

        with window_progress(progress, len(planned)) as advance:
            result = story_sample(
                logits_for,
                segments,
                grid=self.codes_shape[1:],
                window=window,
                context=context,
                mask_id=self.transformer.mask_id,
                generator=torch.Generator(device=self.device).manual_seed(seed),
                init=init_codes,
                steps=steps,
                top_k=top_k,
                schedule=self.schedule,
                on_window=advance,
                first_frame=first_frame,
            )
        bounds = np.cumsum([t0] + [s.frames for s in segments]).tolist()  # latent frame where each segment starts
        pixel = [0 if k == 0 else config.num_frames(k) for k in bounds]  # ... and its first pixel frame
        records = tuple(
            StorySegment(spec.prompt, a, b, seg.seed, seg.guidance, seg.temperature, spec.source)
            for spec, seg, a, b in zip(specs, segments, pixel, pixel[1:], strict=False)
        )
        seams = tuple(config.num_frames(w.new[0]) for w in result.windows if w.context)
        settings = dict(frames_per_prompt=default, window=window, context=context, steps=steps, guidance=guidance)
        settings |= dict(temperature=temperature, top_k=top_k, seed=seed, schedule=self.schedule, fps=fps)
        settings |= dict(first_frame=first_frame and init_codes is None)
        frames = self._decode(result.codes, chunk_frames)
        return Story(frames, result.codes, records, result.windows, seams, pixel[0], settings)

    def interpolate(
        self,
        prompt: str,
        start: np.ndarray | str | Path,
        end: np.ndarray | str | Path,
        *,
        num_frames: int | None = None,
        steps: int = 12,
        guidance: float = DEFAULT_GUIDANCE,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int | None = DEFAULT_TOP_K,
        seed: int = 0,
    ) -> np.ndarray:
        """Frames between ``start`` and ``end`` (CogVideo's interpolation): both ends' codes known, the middle sampled.

        Args:
            prompt: what happens in between.
            start: uint8 ``(H, W, 3)`` frame or ``(T, H, W, 3)`` clip (``T = 1 + k * temporal_patch``), or
                an image/video file (resized to this generator's frames).
            end: one frame (repeated ``temporal_patch`` times) or a clip of a multiple of ``temporal_patch``
                frames (or such a file), encoded after a copy of its first frame: its codes are then
                tubelets, as at the end of a clip, not a lone first frame's.
            num_frames: total length ``1 + k * temporal_patch`` (default: the trained length), at most
                the transformer's ``max_t`` latent frames: one sampler call sees both ends.

        Returns:
            uint8 ``(num_frames, H, W, 3)``, starting with ``start`` and ending with ``end`` (as decoded).
        """
        config = self.tokenizer.config
        end, name = self._frames(end, "end")
        end = end[0] if end.ndim == 4 and len(end) == 1 else end  # an image file reads as a one-frame clip
        end = np.repeat(end[None], config.temporal_patch, axis=0) if end.ndim == 3 else end
        if end.shape[0] % config.temporal_patch:
            raise ValueError(
                f"{name} has {end.shape[0]} frames; it must be one frame or a multiple of {config.temporal_patch}"
            )
        head = self._encode(start, "start")  # (1, ta, h, w)
        tail = self._encode(np.concatenate([end[:1], end]), name)[:, 1:]  # (1, tb, h, w): tubelets only
        t = config.latent_frames(num_frames) if num_frames else self.codes_shape[0]
        if t < head.shape[1] + tail.shape[1] + 1:
            raise ValueError(
                f"interpolate: num_frames={config.num_frames(t)} leaves no frame between start "
                f"({config.num_frames(head.shape[1])} frames) and end ({end.shape[0]} frames)"
            )
        known = torch.zeros((1, t, *self.codes_shape[1:]), dtype=torch.long, device=self.device)
        known[:, : head.shape[1]], known[:, t - tail.shape[1] :] = head, tail
        known_mask = torch.zeros_like(known, dtype=torch.bool)
        known_mask[:, : head.shape[1]] = known_mask[:, t - tail.shape[1] :] = True
        codes = self.sample_codes(
            [prompt],
            known.shape[1:],
            steps=steps,
            guidance=guidance,
            temperature=temperature,
            top_k=top_k,
            seed=seed,
            known=known,
            known_mask=known_mask,
        )
        return self._decode(codes, None)
