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
from collections.abc import Callable
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


def profile_table(fn: Callable[[], object], path: Path, *, cuda: bool, steps: int = 3, rows: int = 30) -> str:
    """Profile ``steps`` calls of ``fn`` (already warmed up) and write the operator table, by device time, to ``path``.

    Returns the table. With ``cuda`` (the step runs on a GPU) it is sorted by CUDA time, else by CPU
    time: where the step spends its time, to count the work before optimizing it.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        if cuda:
            torch.cuda.synchronize()
    sort = "cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=60)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table)
    return table
