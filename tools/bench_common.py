"""Helpers the benchmarks in `tools/` share: timing, the same-run matmul baseline, memory, machine facts.

Imported by the benchmark scripts (``tools/`` is on their path when run as ``python tools/bench_*.py``).
"""

from __future__ import annotations

import contextlib
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

# Dense (no sparsity) datasheet peaks in TFLOP/s, by a substring of torch.cuda.get_device_name.
DATASHEET_TFLOPS = {
    "H200": {"bf16": 989.4, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.0, "fp32": 51.2},
    "H100": {"bf16": 989.4, "fp32": 66.9},  # SXM
    "A100": {"bf16": 312.0, "fp32": 19.5},
}


def datasheet_peak(device_name: str, dtype: str) -> float | None:
    """The datasheet's dense FLOP/s for this GPU and precision, or None for a device not in the table."""
    for name, peaks in DATASHEET_TFLOPS.items():  # ordered: "H100 PCIe" is tried before "H100"
        if name in device_name:
            return peaks[dtype] * 1e12
    return None


CONF = Path(__file__).resolve().parents[1] / "conf"


def preset_fields(group: str, name: str) -> dict:
    """The fields ``conf/<group>/<name>.yaml`` sets (its Hydra ``defaults`` list dropped)."""
    import yaml  # comes with Hydra

    data = yaml.safe_load((CONF / group / f"{name}.yaml").read_text()) or {}
    data.pop("defaults", None)
    return data


def parse_overrides(items: Sequence[str]) -> dict:
    """``KEY=VALUE`` command-line overrides as a dict, values parsed as YAML."""
    import yaml

    fields = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        fields[key] = yaml.safe_load(value)
    return fields


def load_preset(config_cls, group: str, name: str | None, overrides: Sequence[str] = ()):
    """``config_cls`` built from a ``conf/<group>/<name>.yaml`` preset (the fields it sets over the
    dataclass defaults; none for ``name=None``), with ``KEY=VALUE`` overrides (values parsed as YAML)."""
    return config_cls.from_dict({**(preset_fields(group, name) if name else {}), **parse_overrides(overrides)})


def peak_rss_mb() -> float:
    """Peak resident memory of this whole process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one (Linux), else what platform knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_times(fn: Callable[[], object], *, repeats: int, warmup: int, sync: Callable[[], None]) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def matmul_seconds(device: torch.device, dtype: torch.dtype, size: int = 2048, **timing: object) -> float:
    """Median seconds of one ``size x size @ size x size`` matmul."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    return statistics.median(run_times(lambda: a @ b, **timing))


# Kernel kinds by a substring of the kernel's name, tried in order (cuBLAS / CUTLASS / cuDNN names vary by
# version; SDPA's flash and memory-efficient kernels name themselves).
KERNEL_KINDS = (
    ("attention", ("flash", "fmha", "attention", "cudnn")),
    ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "wgmma")),
    ("fused (triton)", ("triton",)),
    ("copy / fill", ("memcpy", "memset")),
)


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, keys in KERNEL_KINDS if any(k in lowered for k in keys)), "other (eager aten)")


def profile_table(fn: Callable[[], object], path: Path, *, cuda: bool, steps: int = 3, rows: int = 30) -> str:
    """Profile ``steps`` calls of ``fn`` (already warmed up) and write the operator table to ``path``.

    Returns the table. With ``cuda`` (the step runs on a GPU) its rows are sorted by their own GPU time,
    so kernels head it, and a summary follows: wall milliseconds per step, the GPU's busy milliseconds
    (kernel time; wall minus busy is idle GPU: launch gaps, host syncs, Python) and the busy time split
    into matmul, attention, fused Triton, copies and eager ATen kernels. Without, sorted by own CPU time.
    Where the step spends its time, to count the work before optimizing it.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities) as prof:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        if cuda:
            torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - start) * 1e3 / steps
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=70)
    if cuda:
        kinds: dict[str, float] = {}
        for event in prof.events():
            if event.device_type == DeviceType.CUDA:
                kind = kernel_kind(event.name)
                kinds[kind] = kinds.get(kind, 0.0) + event.time_range.elapsed_us() / 1e3 / steps
        busy = sum(kinds.values())
        lines = [f"per step: wall {wall_ms:.1f} ms, GPU busy {busy:.1f} ms ({busy / wall_ms:.0%})"]
        for kind, ms in sorted(kinds.items(), key=lambda item: -item[1]):
            lines.append(f"  {kind:20}{ms:8.1f} ms {ms / busy:6.0%}")
        table += "\n" + "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table)
    return table
