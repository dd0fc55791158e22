"""Benchmark the video tokenizer on the reference workload and write the figures as JSON.

Reference workload: 17-frame 64x64 RGB clips (9 x 8 x 8 = 576 codes each), the ``reference`` preset
(the TokenizerConfig defaults: p=8, pt=2, dim 256, 2 + 2 layers, 8 heads of 32, VQ codebook 8192),
no GAN or perceptual loss.

    .venv/bin/python tools/bench_tokenizer.py --out bench.json
    python tools/bench_tokenizer.py --compile --batch 32 --out tools/results/bench_tokenizer_gpu.json   # on a GPU

With CUDA present the defaults switch to the GPU workload: the ``base`` preset on 17-frame 128x128
clips (9 x 16 x 16 codes), batch 8, bf16 autocast, an 8192^3 baseline matmul; ``--device cpu`` or any
explicit option overrides them.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on the real model (matmuls and
attention; elementwise work counts zero), without gradient checkpointing's recomputation (model
FLOPs). Utilization = achieved FLOP/s divided by the FLOP/s of a large matmul (2048^3 on CPU,
8192^3 on GPU, in the run's precision) timed in the same process. On a GPU whose datasheet peak is
known (or given with ``--peak-tflops``) the training step also reports MFU: achieved model FLOP/s over
that dense peak, the figure papers quote.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_common import (
    cpu_name,
    datasheet_peak,
    load_preset,
    matmul_seconds,
    peak_rss_mb,
    profile_table,
    run_times,
)
from torch.utils.flop_counter import FlopCounterMode

from tokgen.memory import retain_freed_memory
from tokgen.tokenizer.blocks import Transformer
from tokgen.tokenizer.config import TokenizerConfig
from tokgen.tokenizer.model import VideoTokenizer


def count_flops(fn: Callable[[], object]) -> tuple[int, int]:
    """FLOPs of one call of ``fn``: in total, and in the quantizer alone."""
    with FlopCounterMode(display=False) as counter:
        fn()
    per_module = counter.get_flop_counts()
    quantizer = sum(sum(ops.values()) for name, ops in per_module.items() if name.endswith(".quantizer"))
    return counter.get_total_flops(), quantizer


def figures(times: list[float], flops: int, peak: float, *, items: int) -> dict[str, float]:
    """Median (and fastest) seconds per item, FLOPs per item, achieved FLOP/s and utilization."""
    seconds = statistics.median(times)
    return {
        "seconds": seconds / items,
        "seconds_min": min(times) / items,
        "flops": flops / items,
        "flops_per_s": flops / seconds,
        "utilization": flops / seconds / peak,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default=None, help="bf16 = bf16 autocast (GPU default)")
    parser.add_argument("--preset", default=None, help="a conf/tokenizer/*.yaml preset (CPU: reference, GPU: base)")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=None, help="frame size (CPU: 64, GPU: 128)")
    parser.add_argument("--batch", type=int, default=None, help="batch of the training step (CPU: 2, GPU: 8)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=None, help="baseline matmul (CPU: 2048, GPU: 8192)")
    parser.add_argument("--compile", action="store_true", help="torch.compile each block (train.compile)")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing (train.checkpointing)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense peak for MFU (default: datasheet)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--malloc-default",
        action="store_true",
        help="keep glibc's malloc thresholds (default: tokgen.memory.retain_freed_memory, as training does)",
    )
    parser.add_argument("--profile", type=Path, default=None, help="write the training step's profiler table here")
    parser.add_argument(
        "--matmul-precision",
        choices=["highest", "high", "medium"],
        default=None,
        help="torch.set_float32_matmul_precision (CPU: highest, GPU: high = TF32 for the quantizer's fp32 "
        "matmuls, as training's matmul_precision)",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override preset fields, values in YAML (e.g. quantizer=fsq temporal_window=null)",
    )
    args = parser.parse_args(argv)
    retained = False if args.malloc_default else retain_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    for name, cpu_default, gpu_default in (
        ("dtype", "fp32", "bf16"),
        ("preset", "reference", "base"),
        ("size", 64, 128),
        ("batch", 2, 8),
        ("matmul_size", 2048, 8192),
        ("matmul_precision", "highest", "high"),
    ):
        if getattr(args, name) is None:
            setattr(args, name, gpu_default if cuda else cpu_default)
    torch.set_float32_matmul_precision(args.matmul_precision)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    autocast = (
        (lambda: torch.autocast(device_type=device.type, dtype=dtype))
        if args.dtype == "bf16"
        else contextlib.nullcontext
    )
    timing = dict(repeats=args.repeats, warmup=args.warmup, sync=sync)
    torch.manual_seed(0)

    # The large-matmul baseline, in the same process and precision as the model runs in; timed again
    # at the end, and the faster of the two taken (the conservative choice on a shared machine).
    load_before = os.getloadavg()
    matmul_s = [matmul_seconds(device, dtype, args.matmul_size, **timing)]
    peak = 2 * args.matmul_size**3 / matmul_s[0]

    config = load_preset(TokenizerConfig, "tokenizer", args.preset, args.set)
    model = VideoTokenizer(config).to(device)
    params = sum(p.numel() for p in model.parameters())
    clips = {
        n: torch.rand(n, config.channels, args.frames, args.size, args.size, device=device) * 2 - 1
        for n in sorted({1, 2, args.batch})
    }
    codes = {n: model.eval().encode(clip) for n, clip in clips.items()}

    # Inference: encode and decode at batch 1 and 2.
    model.eval()
    result: dict = {"inference": {}}
    for n in sorted({1, 2}):
        for name, fn in (
            ("encode", lambda n=n: model.encode(clips[n])),
            ("decode", lambda n=n: model.decode(codes[n])),
        ):

            def call(fn: Callable[[], object] = fn) -> object:
                with torch.inference_mode(), autocast():
                    return fn()

            flops, _ = count_flops(call)
            result["inference"][f"{name}_batch{n}"] = figures(run_times(call, **timing), flops, peak, items=n)
    inference_rss = peak_rss_mb()

    # Training step: forward, L1 reconstruction + quantizer loss, backward, AdamW.
    model.train()
    # fused: one kernel for all parameters (the default for-loop costs ~3% of a CPU step)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    clip = clips[args.batch]

    def step() -> None:
        with autocast():
            out = model(clip)
            loss = F.l1_loss(out.recon.float(), clip) + out.quantizer_loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    train_flops, quantizer_flops = count_flops(step)  # model FLOPs: before checkpointing's recomputation
    for module in model.modules():
        if isinstance(module, Transformer):
            module.checkpointing = args.checkpointing
    if args.compile:
        model.compile_blocks()  # compiled on their first call, inside the untimed warmup
    result["train_step"] = figures(run_times(step, **timing), train_flops, peak, items=1)
    if args.profile:
        print(profile_table(step, args.profile, cuda=cuda, rows=40))
    # The library's VQ training path multiplies dense one-hot matrices (distances, code lookup, EMA
    # sums); those FLOPs are real work done but would be a gather or a scatter in a leaner design.
    t, h, w = model.codes_shape(args.frames, args.size, args.size)
    train_seconds = result["train_step"]["seconds"]
    result["train_step"].update(
        batch=args.batch,
        quantizer_flops=quantizer_flops,
        samples_per_s=args.batch / train_seconds,
        tokens_per_s=args.batch * t * h * w / train_seconds,  # tokens = codes (latent patches) per clip
        compile=args.compile,
        checkpointing=args.checkpointing,
        overrides=args.set,
        matmul_precision=args.matmul_precision,
    )
    if args.compile:
        from torch._dynamo.utils import counters

        result["train_step"]["graph_breaks"] = {str(k): v for k, v in counters["graph_break"].items()}
    datasheet = (
        args.peak_tflops * 1e12
        if args.peak_tflops
        else (datasheet_peak(torch.cuda.get_device_name(device), args.dtype) if cuda else None)
    )
    if datasheet:
        result["train_step"].update(
            mfu=train_flops / train_seconds / datasheet,
            # the stricter figure: the quantizer's one-hot matmuls (see above) left out of the useful work
            mfu_without_quantizer=(train_flops - quantizer_flops) / train_seconds / datasheet,
            datasheet_flops_per_s=datasheet,
        )

    matmul_s.append(matmul_seconds(device, dtype, args.matmul_size, **timing))
    if min(matmul_s) < matmul_s[0]:  # the machine was busier at the start: rescale to the faster one
        scale = matmul_s[0] / min(matmul_s)
        for row in [*result["inference"].values(), result["train_step"]]:
            row["utilization"] /= scale
        peak *= scale

    result.update(
        workload={
            "preset": args.preset,
            "frames": args.frames,
            "size": args.size,
            "codes_per_clip": t * h * w,
            "config": config.to_dict(),
        },
        device=str(device) if not cuda else torch.cuda.get_device_name(device),
        dtype=args.dtype,
        torch=torch.__version__,
        cpu=cpu_name(),
        threads=torch.get_num_threads(),
        retain_freed_memory=retained,
        parameters=params,
        matmul={"size": args.matmul_size, "seconds_start_end": matmul_s, "flops_per_s": peak, "dtype": args.dtype},
        load_average={
            "before": load_before,
            "after": os.getloadavg(),
            "note": "other processes skew timings",
        },
        peak_rss_mb={
            "after_inference": inference_rss,
            "after_train": peak_rss_mb(),
            "note": "ru_maxrss: peak of the whole process (baseline matmul included), monotonic",
        },
    )
    if cuda:
        result["cuda_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20

    print(
        f"{args.preset} tokenizer, {params / 1e6:.2f} M parameters, {t}x{h}x{w} codes per clip, "
        f"{torch.get_num_threads()} threads, {device} {args.dtype}"
    )
    print(f"matmul {args.matmul_size}^3: {peak / 1e9:.1f} GFLOP/s")
    print(f"{'':16}{'seconds':>10}{'GFLOP':>10}{'GFLOP/s':>10}{'util':>8}")
    rows = {**{f"{k} /clip": v for k, v in result["inference"].items()}, "train_step": result["train_step"]}
    for name, row in rows.items():
        print(
            f"{name:16}{row['seconds']:10.4f}{row['flops'] / 1e9:10.2f}"
            f"{row['flops_per_s'] / 1e9:10.1f}{row['utilization']:8.0%}"
        )
    row = result["train_step"]
    mfu = f", MFU {row['mfu']:.0%} of the datasheet peak" if "mfu" in row else ""
    print(f"training: {row['samples_per_s']:.2f} clips/s, {row['tokens_per_s']:.0f} tokens/s{mfu}")
    print(f"peak RSS {result['peak_rss_mb']['after_train']:.0f} MiB")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
