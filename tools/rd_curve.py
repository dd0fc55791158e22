"""Rate-distortion of the tokenizer as a codec against H.264 and VP9, over a folder of videos.

    tokgen make-shapes out=/tmp/shapes_heldout count=20 seed=4242      # a seed training never used
    .venv/bin/python tools/rd_curve.py --videos /tmp/shapes_heldout --tokenizer demo=runs/demo/tokenizer \\
        --out tools/results/rd_shapes [--tokenizer fsq=DIR_B ...] [--limit 20]
    .venv/bin/python tools/rd_curve.py --write-mfmnist /tmp/mfmnist_heldout --count 20 --seed 4242

Every video is read whole (uint8 RGB, as ``tokgen.io.video.read_video`` gives it) and is the reference.
Each method writes real files and the rate is their size on disk:

- tokgen: one point per exported tokenizer folder (``LABEL=DIR`` names it): ``tokgen.codec`` encodes
  the clip, writes the ``.tok`` file exactly as ``tokgen compress`` does (header with the tokenizer's
  folder as a hint, checksum), and decodes the codes back to pixels (no video codec in between).
- H.264 (libx264) and VP9 (libvpx-vp9) through PyAV (``tokgen.io.video_write.write_video``, yuv420p)
  at each CRF of ``--h264-crf`` / ``--vp9-crf``, read back with PyAV.

``bpp`` = 8 x file bytes / (frames x height x width); ``bpp_stream`` counts only the coded bits (the
``.tok`` payload; the codecs' packets, without the mp4 / webm container, which weighs a lot on tiny
clips). PSNR and SSIM (``tokgen.metrics.image``, per clip, SSIM averaged over frames) are means over
clips. Writes ``OUT.csv`` (one row per method and setting), ``OUT_clips.csv`` (per clip) and
``OUT.png`` (bpp against PSNR and SSIM, log rate axis).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import torch

from tokgen.codec import decode_codes, encode_frames, load_tokenizer
from tokgen.io.convert import frames_to_tensor
from tokgen.io.tokfile import TokenFile, decode_token_file, encode_token_file, fingerprint_of
from tokgen.io.video import VIDEO_EXTENSIONS, probe_video, read_video
from tokgen.io.video_write import write_video
from tokgen.metrics.image import psnr, ssim

H264_CRF = (12, 18, 24, 28, 32, 36, 40, 44, 48, 51)
VP9_CRF = (20, 30, 40, 45, 50, 55, 59, 63)
FIELDS = ("method", "setting", "clips", "bpp", "bpp_stream", "psnr", "ssim", "seconds")


def list_videos(folder: Path, limit: int | None) -> list[Path]:
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."))
    if not videos:
        raise SystemExit(f"rd_curve: no videos ({', '.join(VIDEO_EXTENSIONS)}) in {folder}")
    return videos[:limit] if limit else videos


def quality(reference: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM of uint8 ``(t, h, w, 3)`` frames against the reference."""
    if decoded.shape != reference.shape:
        raise ValueError(f"decoded frames {decoded.shape} differ from the reference {reference.shape}")
    a, b = frames_to_tensor(decoded), frames_to_tensor(reference)
    return float(psnr(a, b)[0]), float(ssim(a, b)[0])


def stream_bytes(path: Path) -> int:
    """Bytes of the video stream's packets: the coded bits without the container."""
    with av.open(str(path)) as container:
        return sum(packet.size for packet in container.demux(video=0) if packet.size)


def tokgen_row(tokenizer, hint: str, frames: np.ndarray, fps: float, work: Path) -> dict[str, float]:
    start = time.perf_counter()
    codes = encode_frames(tokenizer, frames)
    record = TokenFile(
        codes=codes,
        codebook_size=tokenizer.config.codebook_size,
        fingerprint=fingerprint_of(tokenizer),
        fps=fps,
        original_frames=frames.shape[0],
        original_height=frames.shape[1],
        original_width=frames.shape[2],
        tokenizer_hint=hint,
    )
    path = work / "clip.tok"
    path.write_bytes(encode_token_file(record))
    stored = decode_token_file(path.read_bytes())
    assert np.array_equal(stored.codes, codes)
    decoded = decode_codes(
        tokenizer, stored.codes, frames=frames.shape[0], height=frames.shape[1], width=frames.shape[2]
    )
    seconds = time.perf_counter() - start
    p, s = quality(frames, decoded)
    return {
        "bytes": path.stat().st_size,
        "stream_bytes": (stored.payload_bits + 7) // 8,
        "psnr": p,
        "ssim": s,
        "seconds": seconds,
        "coder": stored.coder,
        "bitpack_bytes": stored.header_bytes + (codes.size * max(1, (record.codebook_size - 1).bit_length()) + 7) // 8,
    }


def codec_row(suffix: str, crf: int, frames: np.ndarray, fps: float, work: Path) -> dict[str, float]:
    start = time.perf_counter()
    path = work / f"clip{suffix}"
    write_video(path, frames, fps, overwrite=True, quality=crf)
    decoded = read_video(path)[: frames.shape[0], : frames.shape[1], : frames.shape[2]]
    seconds = time.perf_counter() - start
    p, s = quality(frames, decoded)
    return {"bytes": path.stat().st_size, "stream_bytes": stream_bytes(path), "psnr": p, "ssim": s, "seconds": seconds}


def parse_tokenizers(specs: list[str]) -> list[tuple[str, Path]]:
    out = []
    for spec in specs:
        label, sep, folder = spec.partition("=")
        if not sep:
            label, folder = Path(spec).name if Path(spec).name != "tokenizer" else Path(spec).parent.name, spec
        out.append((f"tokgen:{label}", Path(folder)))
    return out


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["setting"])].append(row)
    summary = []
    for (method, setting), group in groups.items():
        summary.append(
            {
                "method": method,
                "setting": setting,
                "clips": len(group),
                "bpp": statistics.fmean(r["bpp"] for r in group),
                "bpp_stream": statistics.fmean(r["bpp_stream"] for r in group),
                "psnr": statistics.fmean(r["psnr"] for r in group),
                "ssim": statistics.fmean(r["ssim"] for r in group),
                "seconds": statistics.fmean(r["seconds"] for r in group),
            }
        )
    return summary


def interpolate_psnr_at(summary: list[dict], method: str, bpp: float, key: str = "bpp") -> float | None:
    """PSNR of a codec's curve at ``bpp`` (linear in log-rate between its two nearest CRFs), or None
    when ``bpp`` lies outside the rates the curve reaches (no extrapolation)."""
    points = sorted((r[key], r["psnr"]) for r in summary if r["method"] == method)
    for (r0, p0), (r1, p1) in zip(points, points[1:], strict=False):
        if r0 <= bpp <= r1:
            w = 0.0 if r1 == r0 else (np.log(bpp) - np.log(r0)) / (np.log(r1) - np.log(r0))
            return p0 + w * (p1 - p0)
    return None


def beats_at_equal_rate(summary: list[dict], method: str, bpp: float, psnr: float, key: str = "bpp") -> bool | None:
    """Whether ``psnr`` at ``bpp`` beats the codec's PSNR at the same rate; None where that cannot be told.

    Inside the codec's range of rates: against its interpolated curve. Below its lowest rate the codec
    cannot make a file that small at all; the point wins if it still beats the codec's cheapest file,
    which spends more bits. Above its highest rate (or below, losing to its cheapest file): None.
    """
    at_same = interpolate_psnr_at(summary, method, bpp, key=key)
    if at_same is not None:
        return bool(psnr > at_same)
    points = sorted((r[key], r["psnr"]) for r in summary if r["method"] == method)
    if points and bpp < points[0][0] and psnr > points[0][1]:
        return True
    return None


def plot(summary: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"h264": ("tab:blue", "o"), "vp9": ("tab:orange", "s")}
    for ax, metric in zip(axes, ("psnr", "ssim"), strict=True):
        for method, (color, marker) in styles.items():
            points = sorted((r for r in summary if r["method"] == method), key=lambda r: r["bpp"])
            if not points:
                continue
            ax.plot(
                [r["bpp"] for r in points],
                [r[metric] for r in points],
                f"-{marker}",
                color=color,
                label=f"{method.upper()} (file)",
            )
            ax.plot(
                [r["bpp_stream"] for r in points],
                [r[metric] for r in points],
                f":{marker}",
                color=color,
                alpha=0.55,
                markerfacecolor="none",
                label=f"{method.upper()} (stream only)",
            )
            if metric == "psnr":
                for r in points:
                    ax.annotate(
                        r["setting"],
                        (r["bpp"], r[metric]),
                        fontsize=6,
                        color=color,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        tokgen = [r for r in summary if r["method"].startswith("tokgen")]
        tokgen_colors = ["tab:red", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
        for r, color in zip(tokgen, itertools.cycle(tokgen_colors)):
            ax.plot(
                [r["bpp"]],
                [r[metric]],
                marker="*",
                markersize=15,
                color=color,
                linestyle="none",
                label=f"{r['method']} (file)",
            )
            ax.plot(
                [r["bpp_stream"]],
                [r[metric]],
                marker="*",
                markersize=12,
                color=color,
                alpha=0.5,
                markerfacecolor="none",
                linestyle="none",
                label=f"{r['method']} (payload only)",
            )
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (log scale)")
        ax.set_ylabel("PSNR (dB)" if metric == "psnr" else "SSIM")
        ax.grid(True, which="both", alpha=0.3)
    # One legend under both panels: inside either it covered the codecs' low-rate points.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    legend_rows = -(-len(labels) // 3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.02 + 0.035 * legend_rows, 1, 1))  # room for the legend's rows under the axes
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_mfmnist_folder(out: Path, count: int, seed: int) -> Path:
    """Held-out Moving Fashion-MNIST clips (test-split garments) as GIF files: grey frames have at most
    256 colours, so GIF stores them exactly and no codec's artefacts are in the references."""
    from tokgen.data.moving_fashion_mnist import MovingFashionMNIST

    out.mkdir(parents=True, exist_ok=True)
    dataset = MovingFashionMNIST(length=count, seed=seed, split="test")
    for i in range(count):
        write_video(out / f"clip_{i:05d}.gif", dataset.frames(i), 8.0)
    return out


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--write-mfmnist",
        type=Path,
        default=None,
        metavar="DIR",
        help="only write --count held-out Moving Fashion-MNIST clips (seed --seed) as GIF into DIR",
    )
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--videos", type=Path, help="folder of videos (the references)")
    parser.add_argument("--tokenizer", action="append", default=[], help="[LABEL=]DIR of an exported tokenizer")
    parser.add_argument("--out", type=Path, help="output prefix: OUT.csv, OUT_clips.csv, OUT.png")
    parser.add_argument("--h264-crf", type=int, nargs="*", default=list(H264_CRF))
    parser.add_argument("--vp9-crf", type=int, nargs="*", default=list(VP9_CRF))
    parser.add_argument("--limit", type=int, default=None, help="first N videos (sorted by name)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    if args.write_mfmnist is not None:
        print(f"wrote {args.count} clips to {write_mfmnist_folder(args.write_mfmnist, args.count, args.seed)}")
        return None
    if args.videos is None or args.out is None:
        parser.error("--videos and --out are required")

    torch.set_num_threads(args.threads)
    videos = list_videos(args.videos, args.limit)
    tokenizers = [
        (label, load_tokenizer(folder), str(folder.resolve())) for label, folder in parse_tokenizers(args.tokenizer)
    ]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rd_curve.") as tmp:
        work = Path(tmp)
        for index, video in enumerate(videos):
            frames = read_video(video)
            fps = probe_video(video).fps
            pixels = frames.shape[0] * frames.shape[1] * frames.shape[2]
            jobs = [(label, "-", tokgen_row, (tok, hint, frames, fps, work)) for label, tok, hint in tokenizers]
            jobs += [("h264", str(crf), codec_row, (".mp4", crf, frames, fps, work)) for crf in args.h264_crf]
            jobs += [("vp9", str(crf), codec_row, (".webm", crf, frames, fps, work)) for crf in args.vp9_crf]
            for method, setting, run, run_args in jobs:
                row = run(*run_args)
                rows.append(
                    {
                        "video": video.name,
                        "method": method,
                        "setting": setting,
                        "frames": frames.shape[0],
                        "height": frames.shape[1],
                        "width": frames.shape[2],
                        "bytes": row["bytes"],
                        "stream_bytes": row["stream_bytes"],
                        "bpp": 8 * row["bytes"] / pixels,
                        "bpp_stream": 8 * row["stream_bytes"] / pixels,
                        "psnr": row["psnr"],
                        "ssim": row["ssim"],
                        "seconds": row["seconds"],
                        "coder": row.get("coder", ""),
                        "bpp_bitpacked": 8 * row["bitpack_bytes"] / pixels if "bitpack_bytes" in row else "",
                    }
                )
            print(f"[{index + 1}/{len(videos)}] {video.name}", file=sys.stderr)

    summary = summarize(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{args.out}_clips.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(f"{args.out}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in r.items()} for r in summary)
    size = "x".join(str(n) for n in frames.shape[:3])
    title = args.title or f"{args.videos.name}: {len(videos)} clips, {size}"
    plot(summary, Path(f"{args.out}.png"), title)

    comparison = {}
    for r in (r for r in summary if r["method"].startswith("tokgen")):
        comparison[r["method"]] = {
            "bpp": r["bpp"],
            "psnr": r["psnr"],
            "h264_psnr_at_same_bpp": interpolate_psnr_at(summary, "h264", r["bpp"]),
            "vp9_psnr_at_same_bpp": interpolate_psnr_at(summary, "vp9", r["bpp"]),
            "h264_psnr_at_same_stream_bpp": interpolate_psnr_at(summary, "h264", r["bpp_stream"], key="bpp_stream"),
            "vp9_psnr_at_same_stream_bpp": interpolate_psnr_at(summary, "vp9", r["bpp_stream"], key="bpp_stream"),
            "h264_lowest_bpp": min(s["bpp"] for s in summary if s["method"] == "h264") if args.h264_crf else None,
            **{
                f"beats_{codec}_at_equal_{key}": beats_at_equal_rate(summary, codec, r[key], r["psnr"], key=key)
                for codec in ("h264", "vp9")
                for key in ("bpp", "bpp_stream")
            },
        }
    print(f"{'method':<24} {'setting':>7} {'bpp':>8} {'bpp_strm':>8} {'PSNR':>7} {'SSIM':>6}")
    for r in sorted(summary, key=lambda r: (r["method"], r["bpp"])):
        rates = f"{r['bpp']:8.4f} {r['bpp_stream']:8.4f}"
        print(f"{r['method']:<24} {r['setting']:>7} {rates} {r['psnr']:7.2f} {r['ssim']:6.3f}")
    print(json.dumps(comparison, indent=2))
    print(f"wrote {args.out}.csv, {args.out}_clips.csv, {args.out}.png")
    return {"summary": summary, "comparison": comparison}


if __name__ == "__main__":
    main()
