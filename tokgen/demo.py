"""The demo behind ``tokgen demo``: train (or reuse) the small tokenizer on Shapes, show what it does.

The demo does not yet train the generator or run story mode; it runs the tokenizer and
says so. Its outputs live in one folder (``runs/demo`` by default); a second run reuses the
exported tokenizer there instead of training again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tokgen.data.shapes import ShapesDataset
from tokgen.export import export_checkpoint
from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.io.convert import tensor_to_frames
from tokgen.io.video_write import write_video
from tokgen.metrics.image import psnr, ssim
from tokgen.tokenizer.model import VideoTokenizer

HELD_OUT_SEED = 1000  # the Shapes seed of conf/data/shapes.yaml's validation split


def train_tokenizer(out: Path, minutes: float, compose: Callable, fit: Callable) -> Path:
    """Fit the small tokenizer on Shapes for ``minutes`` and export it to ``out/tokenizer``."""
    seconds = max(1, round(minutes * 60))
    run_dir = out / f"tokenizer-fit-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = compose(
        [
            "experiment=tokenizer_small_shapes",
            "name=demo",
            f"run_dir={run_dir}",
            f"trainer.max_time=00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
        ]
    )
    fit(cfg, "fit")
    return export_checkpoint(run_dir / "checkpoints" / "last.ckpt", out / "tokenizer")


def run_demo(out: Path, *, minutes: float, clips: int, compose: Callable, fit: Callable) -> Path:
    """Train or reuse the tokenizer, then reconstruct held-out Shapes clips; returns the output folder."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = out / "tokenizer"
    if (tokenizer_dir / "config.json").exists():
        print(f"reusing the trained tokenizer in {tokenizer_dir} (delete it to train again)")
    else:
        print(f"training the small tokenizer on Shapes for {minutes:g} minutes on this machine")
        train_tokenizer(out, minutes, compose, fit)
    tokenizer = VideoTokenizer.from_pretrained(tokenizer_dir).eval()

    dataset = ShapesDataset(length=clips, seed=HELD_OUT_SEED, resolution=64, num_frames=17)
    video = torch.stack([dataset[i]["video"] for i in range(clips)])
    with torch.inference_mode():
        codes = tokenizer.encode(video)
        recon = tokenizer.decode(codes)
    scores = psnr(recon, video), ssim(recon, video)
    inputs, outputs = tensor_to_frames(video), tensor_to_frames(recon)

    side_by_side = np.concatenate([np.concatenate([a, b], axis=2) for a, b in zip(inputs, outputs, strict=True)], 0)
    mp4 = write_video(out / "reconstructions.mp4", side_by_side, fps=8, overwrite=True)
    rows, labels = [], []
    for i in range(clips):
        rows += [inputs[i], outputs[i]]
        labels += [dataset[i]["caption"], f"reconstruction: {scores[0][i]:.1f} dB PSNR"]
    png = save_png(out / "reconstructions.png", contact_sheet(rows, labels=labels, scale=2), overwrite=True)

    t, h, w = codes.shape[1:]
    print(
        f"\ntokenizer: 17x64x64 clips -> {t}x{h}x{w} = {t * h * w} codes each "
        f"(codebook {tokenizer.config.codebook_size})\n"
        f"held-out reconstruction: PSNR {scores[0].mean():.2f} dB, SSIM {scores[1].mean():.3f}\n"
        f"outputs:\n  {mp4}  (input | reconstruction)\n  {png}  (contact sheet)\n"
        "This demo does not yet train the text-to-video generator or run story mode: it shows the tokenizer."
    )
    return out
