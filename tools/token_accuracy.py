"""Where a Shapes generator goes wrong: teacher-forced accuracy on object tokens against background ones.

Encodes held-out Shapes clips (the evaluation seed, one object each) with the generator's own
tokenizer, masks a random share of each clip's codes, and lets the transformer fill them in one pass
(argmax, conditioned on the clip's caption, no guidance). Accuracy is split between *object*
tokens (whose patch shows any pixel of the object in the real clip) and *background* tokens (the
rest), and the filled-in clips are decoded and scored for shape (``tokgen.metrics.adherence``)
beside the plain reconstructions. Masked accuracy over all tokens hides the object: on Shapes ~94%
of the codes are background, which every model predicts early.

    .venv/bin/python tools/token_accuracy.py runs/demo/generator --out runs/token_accuracy.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from tokgen.demo import HELD_OUT_SEED  # Shapes' validation seed, as the adherence evaluation uses
from tokgen.evaluate import real_videos
from tokgen.generator import Generator
from tokgen.io.convert import tensor_to_frames
from tokgen.metrics.adherence import score_clip


def shape_kept(generator: Generator, codes: torch.Tensor, captions: list[str], batch: int) -> float:
    """Share of clips whose decoded ``codes`` show the caption's shape."""
    kept = []
    for start in range(0, len(captions), batch):
        video = generator.tokenizer.decode(codes[start : start + batch]).clamp(-1, 1)
        pairs = zip(tensor_to_frames(video), captions[start : start + batch], strict=True)
        kept += [score_clip(v, c).shape for v, c in pairs]
    return float(np.mean(kept))


def object_tokens(video: torch.Tensor, patch: int, temporal_patch: int) -> torch.Tensor:
    """``(b, t, h, w)`` bool: the tokens whose pixels show any object in ``(b, c, T, H, W)`` Shapes clips.

    Shapes draws bright objects on black; a pixel brighter than mid-grey in any channel is the object.
    Latent frame 0 covers pixel frame 0 alone, each later one ``temporal_patch`` frames.
    """
    bright = (video.amax(dim=1) > 0).float()  # (b, T, H, W)
    first = F.max_pool3d(bright[:, :1, None], (1, patch, patch))[:, :, 0]
    rest = F.max_pool3d(bright[:, None, 1:], (temporal_patch, patch, patch))[:, 0]
    return torch.cat([first, rest], dim=1).bool()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generator", type=Path, help="generator folder (tokgen export of a transformer checkpoint)")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.6, 0.9], help="masked shares")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="seeds the masks")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()
    if not all(0 < r <= 1 for r in args.ratios):
        parser.error(f"--ratios must lie in (0, 1], got {args.ratios}")

    torch.set_grad_enabled(False)
    gen = Generator.from_pretrained(args.generator)
    t, h, _ = gen.codes_shape
    config = gen.tokenizer.config
    videos, captions = real_videos(args.clips, HELD_OUT_SEED, h * config.patch_size, config.num_frames(t))
    codes = torch.cat([gen.tokenizer.encode(videos[i : i + args.batch]) for i in range(0, args.clips, args.batch)])
    on_object = object_tokens(videos, config.patch_size, config.temporal_patch)
    text = gen.text_encoder.encode(list(captions))
    generator = torch.Generator().manual_seed(args.seed)
    rows = []
    for ratio in args.ratios:
        masked = torch.rand(codes.shape, generator=generator) < ratio
        inputs = torch.where(masked, gen.transformer.mask_id, codes)
        predicted = torch.cat(
            [
                gen.transformer(
                    inputs[i : i + args.batch], text.emb[i : i + args.batch], text.mask[i : i + args.batch]
                ).argmax(-1)
                for i in range(0, args.clips, args.batch)
            ]
        )
        right = predicted == codes
        objects, backdrop = masked & on_object, masked & ~on_object
        rows.append(
            {
                "masked": ratio,
                "object_tokens": int(objects.sum()),
                "object_accuracy": float(right[objects].float().mean()),
                "background_accuracy": float(right[backdrop].float().mean()),
                "shape_kept": shape_kept(gen, torch.where(masked, predicted, codes), captions, args.batch),
            }
        )
    result = {
        "generator": str(args.generator),
        "clips": args.clips,
        "object_share": float(on_object.float().mean()),
        "reconstruction_shape_kept": shape_kept(gen, codes, captions, args.batch),
        "rows": rows,
    }

    table = Table(title=f"{args.generator}: {args.clips} held-out clips, teacher-forced, argmax")
    for name in ("masked", "object acc", "background acc", "shape kept after filling"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            f"{row['masked']:.0%}",
            f"{row['object_accuracy']:.1%} of {row['object_tokens']}",
            f"{row['background_accuracy']:.1%}",
            f"{row['shape_kept']:.0%}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"object tokens: {result['object_share']:.1%} of the codes; "
        f"reconstructions keep the shape in {result['reconstruction_shape_kept']:.0%} of clips"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
