"""Story mode's memory and time against story length: peak RSS and seconds, one process per length.

Tells a story of ``--frames`` pixel frames (default 33, 65, 129, 257; 16 frames per prompt,
the demo's three prompts in turn) with ``Generator.story`` and writes it (mp4, contact sheet, sidecar), each
length in a fresh process so its peak RSS is its own. Reports per length: peak RSS, RSS after loading
(the models and libraries: what every length pays), seconds for sampling + decoding and for writing,
windows, seconds per window; then what issue 5 targets: peak RSS of the longest over the shortest
(target <= 1.2), and time linear in length (seconds per window of each length over the shortest's,
~1, and a least-squares line seconds = a + b * windows whose intercept a is small).

    .venv/bin/python tools/bench_story.py --generator runs/demo/generator --out tools/results/bench_story_cpu.json

Without ``--generator`` the story comes from untrained ``small`` presets (the demo's tokenizer and
transformer shapes, MiniLM text): memory and time do not depend on what the weights learned, so the
benchmark runs on a fresh clone; the stories themselves are then noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import cpu_name, peak_rss_mb, preset_fields


def untrained_generator(codes_shape: tuple[int, int, int]):
    """A `Generator` from the ``small`` tokenizer and transformer presets, freshly initialised (seed 0)."""
    import torch

    from tokgen.generator import Generator
    from tokgen.text import TextEncoderConfig, build_text_encoder
    from tokgen.tokenizer.config import TokenizerConfig
    from tokgen.tokenizer.model import VideoTokenizer
    from tokgen.transformer.config import TransformerConfig
    from tokgen.transformer.model import MaskedTransformer

    torch.manual_seed(0)
    tokenizer = VideoTokenizer(TokenizerConfig.from_dict(preset_fields("tokenizer", "small")))
    transformer = MaskedTransformer(TransformerConfig.from_dict(preset_fields("transformer", "small")))
    text = TextEncoderConfig(kind="minilm")
    text_encoder = build_text_encoder(text)
    return Generator(tokenizer, transformer, text_encoder, codes_shape=codes_shape, text_config=vars(text))


def measure(frames: int, generator_dir: Path | None, frames_per_prompt: int, seed: int) -> dict:
    """One length, in this process: load, tell the story, write it; the figures as a dict."""
    import torch

    from tokgen.demo import STORY
    from tokgen.generator import Generator

    torch.set_grad_enabled(False)
    if (frames - 1) % frames_per_prompt:
        raise SystemExit(f"--frames {frames}: must be 1 + a multiple of --frames-per-prompt {frames_per_prompt}")
    start = time.perf_counter()
    gen = Generator.from_pretrained(generator_dir) if generator_dir else untrained_generator((5, 8, 8))
    loaded_rss, load_s = peak_rss_mb(), time.perf_counter() - start
    prompts = [STORY[i % len(STORY)] for i in range((frames - 1) // frames_per_prompt)]
    gen.story(prompts[:1], frames_per_prompt=frames_per_prompt, seed=seed)  # warm-up: first calls cost more
    start = time.perf_counter()
    story = gen.story(prompts, frames_per_prompt=frames_per_prompt, seed=seed)
    story_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        story.write(Path(tmp) / "story.mp4")
        write_s = time.perf_counter() - start
    if len(story.frames) != frames:
        raise RuntimeError(f"asked for {frames} frames, the story has {len(story.frames)}")
    return {
        "frames": frames,
        "prompts": len(prompts),
        "windows": len(story.windows),
        "load_s": load_s,
        "story_s": story_s,
        "write_s": write_s,
        "story_s_per_window": story_s / len(story.windows),
        "rss_after_load_mb": loaded_rss,
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", type=Path, default=None, help="generator folder; default: untrained presets")
    parser.add_argument("--frames", type=int, nargs="+", default=[33, 65, 129, 257], help="story lengths, frames")
    parser.add_argument("--frames-per-prompt", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # the child process: one length
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.generator, args.frames_per_prompt, args.seed)))
        return

    runs = []
    for frames in args.frames:
        command = [sys.executable, __file__, "--one", str(frames), "--frames-per-prompt", str(args.frames_per_prompt)]
        command += ["--seed", str(args.seed)] + (["--generator", str(args.generator)] if args.generator else [])
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the {frames}-frame story failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = runs[0]
    for run in runs:
        run["peak_rss_vs_first"] = run["peak_rss_mb"] / base["peak_rss_mb"]
        run["s_per_window_vs_first"] = run["story_s_per_window"] / base["story_s_per_window"]
    # Time against length: a least-squares line through (windows, seconds); linear when the
    # intercept is small and each run sits on it.
    slope, intercept = statistics.linear_regression([r["windows"] for r in runs], [r["story_s"] for r in runs])
    for run in runs:
        run["story_s_fit"] = intercept + slope * run["windows"]
    result = {
        "generator": str(args.generator) if args.generator else "untrained small presets (5x8x8 codes)",
        "frames_per_prompt": args.frames_per_prompt,
        "cpu": cpu_name(),
        "load_average": os.getloadavg(),
        "runs": runs,
        "peak_rss_ratio": runs[-1]["peak_rss_mb"] / base["peak_rss_mb"],
        "target_peak_rss_ratio": 1.2,
        "seconds_per_window_fit": slope,
        "seconds_intercept_fit": intercept,
    }
    header = ("frames", 7), ("windows", 8), ("story s", 8), ("s/window", 9), ("write s", 8), ("loaded MiB", 11)
    print(" ".join(f"{name:>{width}}" for name, width in header), f"{'peak MiB':>9}")
    for run in runs:
        print(
            f"{run['frames']:>7} {run['windows']:>8} {run['story_s']:>8.2f} {run['story_s_per_window']:>9.3f} "
            f"{run['write_s']:>8.2f} {run['rss_after_load_mb']:>11.0f} {run['peak_rss_mb']:>9.0f}"
        )
    print(
        f"peak RSS {runs[-1]['frames']} vs {base['frames']} frames: {result['peak_rss_ratio']:.3f}x (target <= 1.2); "
        f"seconds per window {runs[-1]['s_per_window_vs_first']:.3f}x; "
        f"fit: {slope:.3f} s per window + {result['seconds_intercept_fit']:.2f} s"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
