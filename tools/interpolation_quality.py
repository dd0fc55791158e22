"""How well a Shapes generator fills the frames between two given ones (``Generator.interpolate``).

For held-out Shapes clips of the generator's trained length (one object each), the first frame and
the last ``temporal_patch`` frames are given and the frames between are sampled under the clip's
caption. They are compared with the real frames between, beside two references:

- *reconstruction*: the whole real clip through the tokenizer (what perfect codes would give);
- *cross-fade*: the two ends blended, and *hold*: the nearer end repeated (for the object's position),
  the two things a method that does not know the motion can do. On Shapes the cross-fade's two
  still, half-bright ghosts score the highest PSNR of all (README, "Interpolation"): read the
  object's position, not PSNR, to rank interpolations.

Scores: PSNR of the frames between; the object's position (the brightness-weighted centre of the
pixels brighter than a quarter of full scale: Shapes draws bright objects on black) against the
real one, as the mean distance and the share of frames within 2 pixels; and the share of whole clips
whose colour, shape and motion all read as the caption (``tokgen.metrics.adherence``).

``--given first`` measures image-to-video the same way: frame 0 alone is given (``Generator.story``
with ``init=`` that frame), the other frames are sampled, and *hold* repeats frame 0.

    .venv/bin/python tools/interpolation_quality.py runs/demo/generator --out runs/interpolation.json
    .venv/bin/python tools/interpolation_quality.py runs/demo/generator --given first --out runs/animate.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table

from tokgen.demo import HELD_OUT_SEED  # Shapes' validation seed, as the adherence evaluation uses
from tokgen.evaluate import real_videos
from tokgen.generator import Generator
from tokgen.io.convert import frames_to_tensor, tensor_to_frames
from tokgen.metrics.adherence import score_clip
from tokgen.metrics.image import psnr


def centres(frames: np.ndarray) -> np.ndarray:
    """``(T, 2)`` (row, column) of the bright pixels' weighted centre per frame; NaN where none is bright."""
    brightness = frames.max(axis=-1).astype(np.float64)
    weight = np.where(brightness > 64, brightness, 0.0)
    total = weight.sum(axis=(1, 2))
    rows, cols = np.indices(frames.shape[1:3])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([(weight * rows).sum(axis=(1, 2)) / total, (weight * cols).sum(axis=(1, 2)) / total], -1)


def clip_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) between two uint8 ``(T, H, W, 3)`` clips."""
    return float(psnr(frames_to_tensor(a), frames_to_tensor(b))[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generator", type=Path, help="generator folder (tokgen export of a transformer checkpoint)")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    parser.add_argument(
        "--given",
        choices=("ends", "first"),
        default="ends",
        help="ends: interpolation (frame 0 and the last temporal_patch frames); first: image-to-video (frame 0 alone)",
    )
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    gen = Generator.from_pretrained(args.generator)
    config = gen.tokenizer.config
    pt, num_frames = config.temporal_patch, config.num_frames(gen.codes_shape[0])
    videos, captions = real_videos(args.clips, HELD_OUT_SEED, gen.frame_size[0], num_frames)
    ends = args.given == "ends"
    middle = slice(1, num_frames - pt if ends else num_frames)  # the frames nobody gives
    alpha = (np.arange(num_frames)[middle] / (num_frames - 1))[:, None, None, None]
    sampled = "interpolated" if ends else "animated"
    rows = {name: {"psnr": [], "error": [], "all_right": []} for name in (sampled, "reconstruction")}
    rows |= {name: {"psnr": [], "error": []} for name in (("cross-fade", "hold") if ends else ("hold",))}
    for i in track(range(args.clips), description="clips"):
        real = tensor_to_frames(videos[i : i + 1])[0]
        made = {"reconstruction": tensor_to_frames(gen.tokenizer.decode(gen.tokenizer.encode(videos[i : i + 1])))[0]}
        if ends:
            made[sampled] = gen.interpolate(captions[i], real[0], real[-pt:], steps=args.steps, seed=i)
            made["cross-fade"] = ((1 - alpha) * real[0] + alpha * real[-1]).round().astype(np.uint8)
        else:  # the first frame's codes kept, the rest of the clip sampled under the caption
            story = gen.story([captions[i]], init=real[0], frames_per_prompt=num_frames - 1, steps=args.steps, seed=i)
            made[sampled] = story.frames
        truth = centres(real[middle])
        for name, clip in made.items():
            between = clip[middle] if len(clip) == num_frames else clip  # the cross-fade is only the frames between
            rows[name]["psnr"].append(clip_psnr(between, real[middle]))
            if name != "cross-fade":  # two half-bright ghosts: their joint centre says nothing of where an object is
                rows[name]["error"] += np.linalg.norm(centres(between) - truth, axis=-1).tolist()
            if "all_right" in rows[name]:
                rows[name]["all_right"].append(score_clip(clip, captions[i]).all)
        near_end = (alpha[:, 0, 0, 0] >= 0.5) & ends  # (frames between,)
        held = np.where(near_end[:, None], centres(real[-1:]), centres(real[:1]))  # the nearer given frame
        rows["hold"]["error"] += np.linalg.norm(held - truth, axis=-1).tolist()

    results = {"generator": str(args.generator), "given": args.given, "clips": args.clips, "frames": num_frames}
    results["between"] = middle.stop - 1
    table = Table(title=f"{args.clips} held-out Shapes clips, frames 1-{middle.stop - 1} of {num_frames} filled in")
    for column in ("", "PSNR between (dB)", "object off by (px)", "within 2 px", "no object", "clips all right"):
        table.add_column(column)
    for name, row in rows.items():
        error = np.asarray(row["error"])
        found = error[~np.isnan(error)]
        summary = {
            "psnr": float(np.mean(row["psnr"])) if row["psnr"] else None,
            "object_error_px": float(found.mean()) if found.size else None,
            "within_2px": float((found <= 2).sum() / error.size) if error.size else None,
            "no_object": float(np.isnan(error).mean()) if error.size else None,
            "all_right": float(np.mean(row["all_right"])) if "all_right" in row else None,
        }
        results[name] = summary
        cells = [summary[k] for k in ("psnr", "object_error_px", "within_2px", "no_object", "all_right")]
        formats = ("{:.2f}", "{:.2f}", "{:.0%}", "{:.0%}", "{:.0%}")
        table.add_row(name, *("-" if v is None else f.format(v) for f, v in zip(formats, cells, strict=True)))
    Console(width=120).print(table)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
