"""Benchmark ``tokgen compress`` + ``decompress`` of one 17x64x64 clip on the CPU; JSON out.

    .venv/bin/python tools/bench_codec.py --tokenizer runs/demo/tokenizer \\
        --out tools/results/bench_codec_cpu.json

Times the library calls the CLI verbs make (``tokgen.codec.compress`` / ``decompress``: mp4 read,
padding, encoder, entropy coder, ``.tok`` write; ``.tok`` read, decoder, mp4 write), and each stage
on its own. Without ``--tokenizer`` the ``small`` preset is built with random weights (the speed is
the architecture's; the entropy coder then sees near-random codes). The clip is a Shapes clip
(seed 4242) written as mp4 first. Process start-up and imports are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import cpu_name, load_preset, peak_rss_mb, run_times  # noqa: E402

from tokgen.codec import compress, decode_codes, decompress, encode_frames, load_tokenizer  # noqa: E402
from tokgen.data.shapes import ShapesDataset  # noqa: E402
from tokgen.io.tokfile import (  # noqa: E402
    TokenFile,
    decode_token_file,
    encode_token_file,
    fingerprint_of,
)
from tokgen.io.video import read_video  # noqa: E402
from tokgen.io.video_write import write_video  # noqa: E402
from tokgen.tokenizer.config import TokenizerConfig  # noqa: E402
from tokgen.tokenizer.model import VideoTokenizer  # noqa: E402


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    return run_times(fn, repeats=repeats, warmup=1, sync=lambda: None)


def stats(times: list[float]) -> dict[str, float]:
    return {"median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times), "repeats": len(times)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tokenizer", type=Path, default=None, help="exported tokenizer folder (default: small preset, random)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.tokenizer is not None:
        model, source = load_tokenizer(args.tokenizer), str(args.tokenizer)
    else:
        torch.manual_seed(0)
        model = VideoTokenizer(load_preset(TokenizerConfig, "tokenizer", "small")).eval()
        source = "small preset, random weights"

    with tempfile.TemporaryDirectory(prefix="bench_codec.") as tmp:
        work = Path(tmp)
        frames = ShapesDataset(length=1, seed=4242, resolution=64, num_frames=17).frames(0)
        clip = write_video(work / "clip.mp4", frames, 8.0)
        tok, back = work / "clip.tok", work / "back.mp4"
        folder = args.tokenizer if args.tokenizer is not None else model

        compress_s = timed(lambda: compress(clip, tok, folder, overwrite=True), args.repeats)
        decompress_s = timed(lambda: decompress(tok, back, folder, overwrite=True), args.repeats)
        both_s = [a + b for a, b in zip(compress_s, decompress_s, strict=True)]

        video = read_video(clip)
        codes = encode_frames(model, video)
        record = TokenFile(codes, model.config.codebook_size, fingerprint_of(model), 8.0, *video.shape[:3])
        data = encode_token_file(record)
        stages = {
            "read_mp4": stats(timed(lambda: read_video(clip), args.repeats)),
            "encode_model": stats(timed(lambda: encode_frames(model, video), args.repeats)),
            "fingerprint": stats(timed(lambda: fingerprint_of(model), args.repeats)),
            "entropy_code": stats(timed(lambda: encode_token_file(record), args.repeats)),
            "entropy_decode": stats(timed(lambda: decode_token_file(data), args.repeats)),
            "decode_model": stats(timed(lambda: decode_codes(model, codes, frames=17), args.repeats)),
            "write_mp4": stats(timed(lambda: write_video(back, video, 8.0, overwrite=True), args.repeats)),
        }
        stored = decode_token_file(tok.read_bytes())
        result = {
            "what": "tokgen.codec compress + decompress of one 17x64x64 Shapes clip (mp4 -> .tok -> mp4)",
            "tokenizer": source,
            "tokenizer_config": model.config.to_dict(),
            "codes_shape": list(codes.shape),
            "file_bytes": tok.stat().st_size,
            "bits_per_pixel": 8 * tok.stat().st_size / (frames.shape[0] * frames.shape[1] * frames.shape[2]),
            "coder": stored.coder,
            "compress": stats(compress_s),
            "decompress": stats(decompress_s),
            "compress_plus_decompress": stats(both_s),
            "stages": stages,
            "machine": {
                "cpu": cpu_name(),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                # Other work on the machine slows the medians; the minimums are the quiet figures.
                "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            },
        }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
