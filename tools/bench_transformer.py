"""Benchmark MaskGIT sampling with the masked transformer on the reference workload; write JSON.

Reference workload: one 17-frame 64x64 clip = 9 x 8 x 8 = 576 codes, codebook 8192, the TransformerConfig
defaults (dim 512, depth 6, 8 heads of 64, ff_mult 4), a 16-token prompt of random 384-wide embeddings,
12 MaskGIT steps with guidance 3 (cond + null in one doubled batch per step) and without guidance.

    .venv/bin/python tools/bench_transformer.py --out bench_transformer.json
    python tools/bench_transformer.py --compile --train-batch 32 --out tools/results/bench_transformer_gpu.json  # GPU

A training step is timed too (masked cross-entropy on half the codes, backward, fused AdamW; compiled, the
loss is compiled with the model as training does, ``--loss``), and ``--sdpa`` pins the self-attention kernel
for comparisons: clips/s,
tokens/s, utilization and, on a GPU with a known datasheet peak (or ``--peak-tflops``), MFU = model
FLOP/s / dense peak. With CUDA present the defaults switch to the GPU workload: the ``base`` transformer
(the TransformerConfig defaults) on the base tokenizer's 128x128 grid (9 x 16 x 16 = 2304 codes), training
batch 16, bf16 autocast only, an 8192^3 baseline matmul; explicit options override them.

Each ``--dtype`` (default: fp32 and bf16 autocast) is timed in the same process. FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` on the real model; attention runs on SDPA's math backend
while counting (its CPU flash kernel is not counted), and elementwise work counts zero. Utilization =
achieved FLOP/s / the FLOP/s of a 2048^3 matmul in the same precision, timed in the same run.

Token-by-token comparison: autoregressive decoding of 576 codes needs 576 sequential forward passes,
MaskGIT needs 12 (48x fewer). Two estimates for the same model: without a KV cache every pass is a
full 576-token forward (576 x the measured forward); with a KV cache every pass processes one new token,
bounded below by a measured one-token forward (weights are read once per pass), ignoring the attention
over the cache.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from bench_common import datasheet_peak, load_preset, peak_rss_mb, profile_table, run_times
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from tokgen.memory import retain_freed_memory
from tokgen.sampling import maskgit_sample, text_logits_fn
from tokgen.transformer import MaskedTransformer, TransformerConfig
from tokgen.transformer.model import masked_token_loss

# phenaki-pytorch MaskGit at this size on a 2-core CPU (the lead's measurement): seconds per clip.
PEER_SECONDS = {"guided": 14.6, "unguided": 7.6}


def timed(fn: Callable[[], object], **timing: object) -> tuple[float, float]:
    """(median, min) seconds of the timed calls; the min shows the uncontended cost."""
    times = run_times(fn, **timing)
    return statistics.median(times), min(times)


def train_step_figures(
    config: TransformerConfig, grid: tuple[int, int, int], text: torch.Tensor, text_mask: torch.Tensor, *,
    batch: int, autocast: Callable, peak: float, datasheet: float | None, compile: bool, checkpointing: bool,
    timing: dict, profile: Path | None = None, loss: str = "masked", sdpa: str = "auto",
) -> dict:  # fmt: skip
    """Seconds, clips/s, tokens/s, utilization (and MFU) of one training step of a fresh model."""
    device = text.device
    model = restrict_sdpa(MaskedTransformer(config).to(device).train(), sdpa)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    gen = torch.Generator(device).manual_seed(2)
    codes = torch.randint(0, config.codebook_size, (batch, *grid), device=device, generator=gen)
    mask = torch.rand(codes.shape, device=device, generator=gen) < 0.5  # the schedule's mean ratio, about
    inputs = codes.masked_fill(mask, config.mask_id)
    emb, emb_mask = text.expand(batch, -1, -1), text_mask.expand(batch, -1)

    def forward_loss() -> torch.Tensor:
        if loss == "masked":  # the head scores the masked positions only, as eager training does
            logits = model(inputs, emb, emb_mask, select=mask)
            return torch.nn.functional.cross_entropy(logits.float(), codes[mask])
        return masked_token_loss(model(inputs, emb, emb_mask), codes, mask)[0]  # weighted: no sync, static shapes

    def step() -> None:
        with autocast():
            value = forward_loss_fn()
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    forward_loss_fn = forward_loss
    flops = count_flops(step)  # model FLOPs: before checkpointing's recomputation
    if checkpointing:
        model.enable_checkpointing()
    if compile and loss == "fused":
        forward_loss_fn = torch.compile(forward_loss)  # the model and its loss in one graph
    elif compile:
        model.compile()  # compiled on its first call, inside the untimed warmup
    seconds, fastest = timed(step, **timing)
    if profile:
        print(profile_table(step, profile, cuda=device.type == "cuda", rows=40))
    row = {
        "batch": batch,
        "seconds": seconds,
        "seconds_min": fastest,
        "flops": flops,
        "flops_per_s": flops / seconds,
        "utilization": flops / seconds / peak,
        "samples_per_s": batch / seconds,
        "tokens_per_s": batch * grid[0] * grid[1] * grid[2] / seconds,
        "compile": compile,
        "checkpointing": checkpointing,
        "loss": loss,
    }
    if compile:
        from torch._dynamo.utils import counters

        row["graph_breaks"] = {str(k): v for k, v in counters["graph_break"].items()}
    if datasheet:
        row.update(
            mfu=flops / seconds / datasheet, mfu_min=flops / fastest / datasheet, datasheet_flops_per_s=datasheet
        )
    return row


SDPA_BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}


def restrict_sdpa(model: MaskedTransformer, sdpa: str) -> MaskedTransformer:
    """Self-attention on one SDPA kernel (and math for what it cannot run); "auto": the model's choice."""
    if sdpa != "auto":
        for attend in model._attends:
            attend.sdp_context_manager = functools.partial(sdpa_kernel, [SDPA_BACKENDS[sdpa], SDPBackend.MATH])
    return model


def count_flops(fn: Callable[[], object]) -> int:
    # The math backend decomposes attention into counted matmuls.
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument(
        "--dtype",
        nargs="+",
        choices=["fp32", "bf16"],
        default=None,
        help="precisions to time; bf16 = bf16 autocast (CPU: fp32 bf16, GPU: bf16)",
    )
    parser.add_argument(
        "--grid", type=int, nargs=3, default=None, metavar=("T", "H", "W"), help="CPU 9 8 8, GPU 9 16 16"
    )
    parser.add_argument("--train-batch", type=int, default=None, help="clips per training step (CPU: 2, GPU: 16)")
    parser.add_argument("--matmul-size", type=int, default=None, help="baseline matmul (CPU: 2048, GPU: 8192)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the trained model (train.compile)")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing (train.checkpointing)")
    parser.add_argument(
        "--loss",
        choices=["masked", "fused"],
        default=None,
        help="masked: cross-entropy of the selected masked positions; fused: masked_token_loss (weights, no "
        "selection), compiled with the model into one graph under --compile. Default: as training does "
        "(fused when compiled, else masked)",
    )
    parser.add_argument(
        "--sdpa",
        choices=["auto", "flash", "cudnn", "efficient"],
        default="auto",
        help="self-attention kernel: auto = PyTorch's choice among all; else that one (and math where it cannot run)",
    )
    parser.add_argument("--preset", help="a conf/transformer/*.yaml preset (default: TransformerConfig's defaults)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, values in YAML")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense peak for MFU (default: datasheet)")
    parser.add_argument("--text-len", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--malloc-default",
        action="store_true",
        help="keep glibc's malloc thresholds (default: tokgen.memory.retain_freed_memory, as training does)",
    )
    parser.add_argument("--profile", type=Path, default=None, help="write the training step's profiler table here")
    args = parser.parse_args(argv)
    retained = False if args.malloc_default else retain_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    args.loss = args.loss or ("fused" if args.compile else "masked")
    for name, cpu_default, gpu_default in (
        ("dtype", ["fp32", "bf16"], ["bf16"]),
        ("grid", [9, 8, 8], [9, 16, 16]),
        ("train_batch", 2, 16),
        ("matmul_size", 2048, 8192),
    ):
        if getattr(args, name) is None:
            setattr(args, name, gpu_default if cuda else cpu_default)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    timing = dict(repeats=args.repeats, warmup=args.warmup, sync=sync)
    torch.manual_seed(0)
    load_before = os.getloadavg()

    config = load_preset(TransformerConfig, "transformer", args.preset, args.set)  # no preset: the defaults
    model = restrict_sdpa(MaskedTransformer(config).to(device).eval(), args.sdpa)
    params = sum(p.numel() for p in model.parameters())
    grid = tuple(args.grid)
    model.check_tokenizer(config.codebook_size, grid)
    tokens = grid[0] * grid[1] * grid[2]
    gen = torch.Generator(device).manual_seed(0)
    text = torch.randn(1, args.text_len, config.text_dim, device=device, generator=gen)
    text_mask = torch.ones(1, args.text_len, dtype=torch.bool, device=device)
    null = torch.randn(1, 2, config.text_dim, device=device, generator=gen)  # stands in for embed("")
    null_mask = torch.ones(1, 2, dtype=torch.bool, device=device)
    logits_fn = text_logits_fn(model, text, text_mask, null, null_mask)
    masked = torch.full((1, *grid), config.mask_id, dtype=torch.long, device=device)
    one_token = torch.full((1, 1, 1, 1), config.mask_id, dtype=torch.long, device=device)
    result: dict = {"runs": {}}

    for dtype_name in args.dtype:
        dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
        autocast = (
            (lambda dtype=dtype: torch.autocast(device_type=device.type, dtype=dtype))
            if dtype_name == "bf16"
            else contextlib.nullcontext
        )

        # The large-matmul baseline, in the same process and precision as the model runs in.
        n = args.matmul_size
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        matmul_s, matmul_min = timed(lambda a=a, b=b: a @ b, repeats=10, warmup=3, sync=sync)
        peak, best_peak = 2 * n**3 / matmul_s, 2 * n**3 / matmul_min
        del a, b

        def run(fn: Callable[[], object], autocast: Callable = autocast) -> Callable[[], object]:
            def call() -> object:
                with torch.inference_mode(), autocast():
                    return fn()

            return call

        def sampler(guidance: float) -> Callable[[], object]:
            return run(
                lambda: maskgit_sample(
                    logits_fn,
                    shape=(1, *grid),
                    mask_id=config.mask_id,
                    steps=args.steps,
                    guidance=guidance,
                    generator=torch.Generator(device).manual_seed(1),
                )
            )

        row: dict = {"matmul": {"size": n, "seconds": matmul_s, "seconds_min": matmul_min, "flops_per_s": peak}}
        row["train_step"] = train_step_figures(
            config, grid, text, text_mask, batch=args.train_batch, autocast=autocast, peak=peak,
            datasheet=args.peak_tflops * 1e12 if args.peak_tflops else (
                datasheet_peak(torch.cuda.get_device_name(device), dtype_name) if cuda else None
            ),
            compile=args.compile, checkpointing=args.checkpointing, timing=timing, loss=args.loss, sdpa=args.sdpa,
            profile=args.profile and args.profile.with_suffix(f".{dtype_name}.txt"),
        )  # fmt: skip
        forwards = {
            "forward_batch1": run(lambda: logits_fn(masked, guided=False)),
            "forward_batch2": run(lambda: logits_fn(torch.cat([masked, masked]), guided=True)),
            "forward_one_token": run(lambda: model(one_token, text, text_mask)),
        }
        for name, fn in forwards.items():
            seconds, fastest = timed(fn, repeats=max(args.repeats, 5), warmup=2, sync=sync)
            flops = count_flops(fn)
            row[name] = {
                "seconds": seconds,
                "seconds_min": fastest,
                "utilization_min": flops / fastest / best_peak,
                "flops": flops,
                "flops_per_s": flops / seconds,
                "utilization": flops / seconds / peak,
            }
        for name, guidance, fwd in (
            ("guided", args.guidance, "forward_batch2"),
            ("unguided", 1.0, "forward_batch1"),
        ):
            seconds, fastest = timed(sampler(guidance), **timing)
            flops = args.steps * row[fwd]["flops"]  # one forward per step (the sampler's own work is tiny)
            row[f"sample_{name}"] = {
                "seconds_per_clip": seconds,
                "seconds_per_clip_min": fastest,
                "utilization_min": flops / fastest / best_peak,
                "forward_passes": args.steps,
                "flops_per_clip": flops,
                "flops_per_s": flops / seconds,
                "utilization": flops / seconds / peak,
                "peer_seconds": PEER_SECONDS[name],
                "speedup_vs_peer": PEER_SECONDS[name] / seconds,
                "meets_half_of_peer": seconds <= PEER_SECONDS[name] / 2,
            }
        full, single = row["forward_batch1"]["seconds"], row["forward_one_token"]["seconds"]
        row["token_by_token"] = {
            "forward_passes": tokens,
            "maskgit_forward_passes": args.steps,
            "fewer_passes": tokens / args.steps,
            "no_kv_cache_seconds_est": tokens * full,
            "kv_cache_seconds_lower_bound_est": tokens * single,
            "maskgit_unguided_seconds": row["sample_unguided"]["seconds_per_clip"],
            "speedup_vs_no_kv_cache": tokens * full / row["sample_unguided"]["seconds_per_clip"],
            "speedup_vs_kv_cache_lower_bound": tokens * single / row["sample_unguided"]["seconds_per_clip"],
            "assumption": "no cache: 576 full-sequence forwards; KV cache: 576 one-token forwards "
            "(measured), attention over the cache ignored",
        }
        row["peak_rss_mb"] = peak_rss_mb()
        result["runs"][dtype_name] = row

    result.update(
        workload={
            "grid": list(grid),
            "codes_per_clip": tokens,
            "text_len": args.text_len,
            "steps": args.steps,
            "guidance": args.guidance,
            "preset": args.preset,
            "config": config.to_dict(),
            "sdpa": args.sdpa,
        },
        device=str(device) if not cuda else torch.cuda.get_device_name(device),
        torch=torch.__version__,
        cpu=platform.processor() or platform.machine(),
        threads=torch.get_num_threads(),
        retain_freed_memory=retained,
        parameters=params,
        peak_rss_mb={"end": peak_rss_mb(), "note": "ru_maxrss: peak of the whole process, monotonic"},
        # Other work on the machine inflates the timings: compare the load with the core count.
        load_average={"before": load_before, "after": os.getloadavg(), "cpus": os.cpu_count()},
    )
    if cuda:
        result["cuda_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20

    print(
        f"MaskedTransformer {params / 1e6:.1f} M parameters, {'x'.join(map(str, grid))} = {tokens} codes, "
        f"{args.steps} steps, {torch.get_num_threads()} threads, {device}"
    )
    print(f"{'':8}{'':20}{'median s':>10}{'min s':>10}{'GFLOP':>10}{'GFLOP/s':>10}{'util':>7}{'peer s':>8}")
    for dtype_name, row in result["runs"].items():
        mm = row["matmul"]
        label = f"matmul {mm['size']}^3"
        print(
            f"{dtype_name:8}{label:20}{mm['seconds']:10.4f}{mm['seconds_min']:10.4f}{'':10}"
            f"{mm['flops_per_s'] / 1e9:10.1f}"
        )
        for name in ("forward_batch1", "forward_batch2", "forward_one_token"):
            r = row[name]
            print(
                f"{'':8}{name:20}{r['seconds']:10.4f}{r['seconds_min']:10.4f}{r['flops'] / 1e9:10.2f}"
                f"{r['flops_per_s'] / 1e9:10.1f}{r['utilization']:7.0%}"
            )
        for name in ("sample_guided", "sample_unguided"):
            r = row[name]
            print(
                f"{'':8}{name + ' (clip)':20}{r['seconds_per_clip']:10.3f}{r['seconds_per_clip_min']:10.3f}"
                f"{r['flops_per_clip'] / 1e9:10.1f}{r['flops_per_s'] / 1e9:10.1f}{r['utilization']:7.0%}"
                f"{r['peer_seconds']:8.1f}"
            )
        r = row["train_step"]
        mfu = f", MFU {r['mfu']:.0%} of the datasheet peak" if "mfu" in r else ""
        print(
            f"{'':8}{'train_step':20}{r['seconds']:10.4f}{r['seconds_min']:10.4f}{r['flops'] / 1e9:10.2f}"
            f"{r['flops_per_s'] / 1e9:10.1f}{r['utilization']:7.0%}   {r['samples_per_s']:.1f} clips/s, "
            f"{r['tokens_per_s']:.0f} tokens/s{mfu}"
        )
        r = row["token_by_token"]
        print(
            f"{'':8}token-by-token: {r['forward_passes']} passes vs {r['maskgit_forward_passes']} "
            f"({r['fewer_passes']:.0f}x fewer); est. {r['no_kv_cache_seconds_est']:.0f} s without KV cache "
            f"({r['speedup_vs_no_kv_cache']:.0f}x slower than MaskGIT), >= "
            f"{r['kv_cache_seconds_lower_bound_est']:.1f} s with one "
            f"({r['speedup_vs_kv_cache_lower_bound']:.1f}x)"
        )
    print(f"peak RSS {result['peak_rss_mb']['end']:.0f} MiB")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
