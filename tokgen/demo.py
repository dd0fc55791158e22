"""The demo behind ``tokgen demo``: train (or reuse) a small tokenizer and generator on Shapes, tell a story.

Four stages, each skipped when its output already exists in the demo folder (``runs/demo``):

1. the small C-ViViT tokenizer trained on Shapes (``tokenizer/``), checked on held-out clips
   (``reconstructions.mp4`` / ``.png``);
2. Shapes clips encoded once into token shards with their MiniLM caption embeddings (``tokens/``);
3. the small masked transformer trained on those shards and exported with the tokenizer (``generator/``);
4. a three-prompt story sampled window by window (``story.mp4``, ``story.png``, ``story.json``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from tokgen.data.shapes import ShapesDataset
from tokgen.export import export_checkpoint
from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.io.convert import tensor_to_frames
from tokgen.io.video_write import write_video
from tokgen.metrics.image import psnr, ssim
from tokgen.precision import slow_cpu_note
from tokgen.tokenizer.model import VideoTokenizer

HELD_OUT_SEED = 1000  # the Shapes seed of conf/data/shapes.yaml's validation split
STORY = ("a red circle moves right", "the red circle moves up", "the red circle moves left")
# One window's new frames plus its carried context per prompt, as the generator's clips and
# tools/story_adherence.py have them: with 16 (three windows a prompt) the 8-minute generator's errors
# compound (its third prompt filled with red blocks), with 8 the circle stays one object.
FRAMES_PER_PROMPT = 8
# A share of the generator's clips changes motion where a story window's carried context ends,
# captioned with the new motion: the transformer learns to follow a new prompt from given frames that
# moved otherwise.
CHANGE_SHARE = 0.3
# The small preset's pixel refinement pays at its 15-minute budget (28.1 vs 27.3 dB) but not at 6.
REFINE_PAYS_FROM_MINUTES = 15.0


def _max_time(minutes: float) -> str:
    seconds = max(1, round(minutes * 60))
    return f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_tokenizer(out: Path, minutes: float, compose: Callable, fit: Callable) -> Path:
    """Fit the small tokenizer on Shapes for ``minutes`` and export it to ``out/tokenizer``."""
    run_dir = out / f"tokenizer-fit-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides = ["experiment=tokenizer_small_shapes", "name=demo", f"run_dir={run_dir}"]
    if minutes < REFINE_PAYS_FROM_MINUTES:
        # The refine convolutions cost a third more per step; in 6 minutes the fewer steps cost more
        # than they mend (64 held-out clips: 24.0 vs 25.6 dB, colour kept 73% vs 88%).
        overrides.append("tokenizer.refine_channels=0")
    fit(compose([*overrides, f"trainer.max_time={_max_time(minutes)}"]), "fit")
    return export_checkpoint(run_dir / "checkpoints" / "last.ckpt", out / "tokenizer")


class _Captioned(Dataset):
    """Items reduced to ``video``, ``caption`` and ``context_frames``: ``context`` latent frames for a
    change clip (it carries ``caption_before``; its caption describes the motion after them), 0 else."""

    def __init__(self, dataset: Dataset, context: int) -> None:
        self.dataset, self.context = dataset, context

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = self.dataset[i]
        context = self.context if "caption_before" in item else 0
        return {
            "video": item["video"],
            "caption": item["caption"],
            "skipped": item["skipped"],
            "context_frames": context,
        }


def context_end(num_frames: int, temporal_patch: int = 2) -> int:
    """Last pixel frame of the context a story window carries (``window // 2`` latent frames)."""
    latent = 1 + (num_frames - 1) // temporal_patch
    return temporal_patch * (latent // 2 - 1)


def story_training_clips(count: int, resolution: int = 64, num_frames: int = 9, temporal_patch: int = 2) -> Dataset:
    """Shapes clips for the demo generator: plain clips and a share whose motion changes at `context_end`.

    The change clips train as story windows do: their context (the latent frames up to the change) is
    always given, so the transformer learns to turn to the caption's motion from frames that moved
    otherwise, and never to draw those frames under a caption that does not describe them.
    """
    changed = round(count * CHANGE_SHARE)
    size = {"resolution": resolution, "num_frames": num_frames}
    change_at = max(1, context_end(num_frames, temporal_patch))
    latent = 1 + (num_frames - 1) // temporal_patch
    return _Captioned(
        ConcatDataset(
            [
                ShapesDataset(length=count - changed, seed=0, **size),
                ShapesDataset(length=changed, seed=1, change_at=change_at, **size),
            ]
        ),
        context=latent // 2,
    )


def write_demo_tokens(out: Path, tokenizer_dir: Path, clips: int, compose: Callable, size: tuple[int, int]) -> Path:
    """Encode `story_training_clips` with the tokenizer into token shards ``out/tokens`` (resumable)."""
    from omegaconf import OmegaConf

    from tokgen.data.token_shards import write_token_shards
    from tokgen.text import TextEncoderConfig, build_text_encoder

    cfg = compose(["experiment=transformer_small_shapes"])
    text_config = OmegaConf.to_container(cfg.text, resolve=True)
    tokenizer = VideoTokenizer.from_pretrained(tokenizer_dir).eval()
    text_encoder = build_text_encoder(TextEncoderConfig(**text_config)).eval()

    def encode_text(prompts: list[str]):
        embedding = text_encoder.encode(prompts)
        return embedding.emb, embedding.mask

    sources = {
        "tokenizer": str(tokenizer_dir.resolve()),
        "tokenizer_config": tokenizer.config.to_dict(),
        "text": text_config,
        "data": {"demo": "shapes", "clips": clips, "size": list(size), "change_share": CHANGE_SHARE},
    }
    return write_token_shards(
        story_training_clips(clips, *size, temporal_patch=tokenizer.config.temporal_patch),
        out / "tokens",
        encode_video=tokenizer.encode,
        encode_text=encode_text,
        codebook_size=tokenizer.config.codebook_size,
        batch_size=32,
        sources=sources,
    )


def train_generator(out: Path, minutes: float, compose: Callable, fit: Callable) -> Path:
    """Fit the small transformer on ``out/tokens`` for ``minutes``; export the generator to ``out/generator``."""
    run_dir = out / f"transformer-fit-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides = [
        "experiment=transformer_small_shapes",
        "name=demo",
        f"run_dir={run_dir}",
        f"tokenize.out={out / 'tokens'}",
        f"tokenize.tokenizer={out / 'tokenizer'}",
        f"trainer.max_time={_max_time(minutes)}",
    ]
    fit(compose(overrides), "fit")
    return export_checkpoint(run_dir / "checkpoints" / "last.ckpt", out / "generator")


def show_reconstructions(
    out: Path, tokenizer: VideoTokenizer, clips: int, size: tuple[int, int]
) -> tuple[float, float]:
    """Held-out clips and their reconstructions side by side (mp4 + contact sheet); mean PSNR and SSIM."""
    dataset = ShapesDataset(length=clips, seed=HELD_OUT_SEED, resolution=size[0], num_frames=size[1])
    video = torch.stack([dataset[i]["video"] for i in range(clips)])
    with torch.inference_mode():
        recon = tokenizer.decode(tokenizer.encode(video))
    scores = psnr(recon, video), ssim(recon, video)
    inputs, outputs = tensor_to_frames(video), tensor_to_frames(recon)
    side_by_side = np.concatenate([np.concatenate([a, b], axis=2) for a, b in zip(inputs, outputs, strict=True)], 0)
    write_video(out / "reconstructions.mp4", side_by_side, fps=8, overwrite=True)
    rows, labels = [], []
    for i in range(clips):
        rows += [inputs[i], outputs[i]]
        labels += [dataset[i]["caption"], f"reconstruction: {scores[0][i]:.1f} dB PSNR"]
    save_png(out / "reconstructions.png", contact_sheet(rows, labels=labels, scale=2), overwrite=True)
    return float(scores[0].mean()), float(scores[1].mean())


def run_demo(
    out: Path,
    *,
    tokenizer_minutes: float,
    generator_minutes: float,
    clips: int,
    compose: Callable,
    fit: Callable,
    prompts: Sequence[str] = STORY,
    seed: int = 0,
    resolution: int = 64,
    num_frames: int = 17,
    generator_frames: int = 9,
    frames_per_prompt: int = FRAMES_PER_PROMPT,
) -> Path:
    """Train or reuse each stage, then write reconstructions and a story into ``out``; returns ``out``.

    ``compose(overrides)`` composes the Hydra config and ``fit(cfg, "fit")`` trains on it (the CLI's
    own functions); ``resolution`` and ``num_frames`` (tokenizer clips) must match the experiments
    they compose. The generator trains on shorter clips (``generator_frames``, 5 latent frames by
    default: a 2-core CPU gets through ~1000 steps of them in the demo's minutes) and tells the story
    window by window, ``frames_per_prompt`` frames per prompt.
    """
    size = (resolution, num_frames)
    from tokgen.generator import Generator

    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    tokenizer_dir, generator_dir = out / "tokenizer", out / "generator"

    if not (generator_dir / "transformer" / "config.json").exists() and (note := slow_cpu_note()):
        print(f"note: {note}")
    print("[1/4] tokenizer")
    if (tokenizer_dir / "config.json").exists():
        print(f"  reusing {tokenizer_dir} (delete it to train again)")
    else:
        print(f"  training the small tokenizer on Shapes for {tokenizer_minutes:g} minutes")
        train_tokenizer(out, tokenizer_minutes, compose, fit)
    tokenizer = VideoTokenizer.from_pretrained(tokenizer_dir).eval()
    scores = show_reconstructions(out, tokenizer, clips=4, size=size)
    print(f"  held-out reconstruction: PSNR {scores[0]:.2f} dB, SSIM {scores[1]:.3f}")

    print("[2/4] token shards")
    if (generator_dir / "transformer" / "config.json").exists():
        print(f"  skipped: the generator in {generator_dir} is already trained")
    else:
        print(f"  encoding {clips} Shapes clips and their captions into {out / 'tokens'}")
        write_demo_tokens(out, tokenizer_dir, clips, compose, (resolution, generator_frames))

    print("[3/4] generator")
    if (generator_dir / "transformer" / "config.json").exists():
        print(f"  reusing {generator_dir} (delete it to train again)")
    else:
        print(f"  training the small masked transformer for {generator_minutes:g} minutes")
        train_generator(out, generator_minutes, compose, fit)

    print("[4/4] story")
    generator = Generator.from_pretrained(generator_dir)
    story = generator.story(list(prompts), frames_per_prompt=frames_per_prompt, seed=seed, progress=True)
    paths = story.write(out / "story.mp4", overwrite=True)

    t, h, w = tokenizer.codes_shape(num_frames, resolution, resolution)
    print(
        f"\ntokenizer: {num_frames}x{resolution}x{resolution} clips -> {t}x{h}x{w} = {t * h * w} codes each "
        f"(codebook {tokenizer.config.codebook_size}); held-out PSNR {scores[0]:.2f} dB, SSIM {scores[1]:.3f}\n"
        f"story: {len(story.frames)} frames across {len(prompts)} prompts: {' -> '.join(prompts)}\n"
        f"outputs (in {time.monotonic() - start:.0f} s):\n"
        f"  {paths['video']}  (the story)\n"
        f"  {paths['sheet']}  (contact sheet, each prompt under its segment)\n"
        f"  {paths['json']}  (prompts, frame ranges, seeds, settings)\n"
        f"  {out / 'reconstructions.mp4'}, {out / 'reconstructions.png'}  (tokenizer: input | reconstruction)\n"
        f"your own prompt: tokgen generate generator={generator_dir} prompt='a green triangle moves down' "
        f"out={out / 'clips'} samples=4"
    )
    return out
