"""Does a VQ codebook stay alive? Train a tokenizer preset briefly on Shapes and count its codes in use.

Trains ``--steps`` plain steps (L1 reconstruction + the quantizer's loss, AdamW, linear warm-up) on
Shapes clips, counting the vector quantizer's dead-code restarts, then encodes held-out clips and
reports the share of the codebook they use, its perplexity and the reconstruction PSNR. Written when
vector-quantize-pytorch 1.34 changed what its dead-code threshold means and the reference tokenizer
collapsed to 15 of 8192 codes in 400 steps: run it after upgrading the library.

    .venv/bin/python tools/codebook_health.py --steps 400
    .venv/bin/python tools/codebook_health.py --steps 400 --set dead_code_ratio=0.1
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from bench_common import load_preset
from rich.progress import track

from tokgen.data.shapes import ShapesDataset
from tokgen.demo import HELD_OUT_SEED
from tokgen.lr_schedule import lr_factor
from tokgen.metrics.codebook import code_histogram, codebook_perplexity, codebook_usage
from tokgen.metrics.image import psnr
from tokgen.tokenizer import TokenizerConfig, VideoTokenizer


def clips(dataset: ShapesDataset, start: int, count: int) -> torch.Tensor:
    return torch.stack([dataset[i]["video"] for i in range(start, start + count)])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="reference", help="a conf/tokenizer/*.yaml preset (default: reference)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, values in YAML")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--held-out", type=int, default=32, help="held-out clips to count codes on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    config = load_preset(TokenizerConfig, "tokenizer", args.preset, args.set)
    if config.quantizer != "vq":
        raise SystemExit(f"tokenizer preset {args.preset!r} uses {config.quantizer}: dead-code restarts are VQ's")
    model = VideoTokenizer(config).train()
    codebook = model.quantizer.impl._codebook  # the library's EMA codebook: count what it restarts
    restarts, replace = [0], codebook.replace

    def counting_replace(samples: torch.Tensor, batch_mask: torch.Tensor, **kwargs: object) -> None:
        restarts[0] += int(batch_mask.sum())
        replace(samples, batch_mask=batch_mask, **kwargs)

    codebook.replace = counting_replace
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    shape = dict(resolution=args.resolution, num_frames=args.frames)
    train = ShapesDataset(length=args.steps * args.batch, seed=args.seed, **shape)
    held_out = ShapesDataset(length=args.held_out, seed=HELD_OUT_SEED, **shape)
    start = time.monotonic()
    for step in track(range(args.steps), description="training"):
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * lr_factor(step, 0.0, warmup_steps=100, cooldown=0.0)
        video = clips(train, step * args.batch, args.batch)
        out = model(video)
        loss = (out.recon - video).abs().mean() + out.quantizer_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    counts, scores = torch.zeros(config.codebook_size), []
    with torch.inference_mode():
        for first in range(0, args.held_out, args.batch):
            video = clips(held_out, first, min(args.batch, args.held_out - first))
            codes = model.encode(video)
            counts += code_histogram(codes, config.codebook_size).float()
            scores.append(psnr(model.decode(codes), video))
    result = {
        "preset": args.preset,
        "overrides": args.set,
        "dead_code_ratio": config.dead_code_ratio,
        "steps": args.steps,
        "restarts_per_step": restarts[0] / max(1, args.steps),
        "held_out_usage": codebook_usage(counts),
        "codes_used": int((counts > 0).sum()),
        "perplexity": codebook_perplexity(counts),
        "psnr_db": float(torch.cat(scores).mean()),
        "seconds": time.monotonic() - start,
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
