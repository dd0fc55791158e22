"""``trainer.precision=auto``: bf16 mixed precision where the hardware does bf16 matmuls natively.

A CPU with AVX-512 BF16 or AMX runs bf16 matmuls 2-3x faster than fp32 (2 EPYC cores: 406 against
135 GFLOP/s at 2048^3): in ``bf16-mixed`` the small tokenizer's training step is 1.7-2.2x faster and
the small transformer's (through ``tokgen fit``) 1.3x. Without those instructions bf16 is emulated and
slower than fp32, hence a choice made per machine. Also here: ``check_device``, the verbs' check that
a ``device=`` exists on this machine.
"""

from __future__ import annotations

import torch

AUTO = "auto"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX-512 BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's probes (private)
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """Lightning's ``precision`` for the Trainer: ``auto`` becomes ``bf16-mixed`` or ``32-true``.

    ``bf16-mixed`` on a CUDA GPU with bf16 (Ampere or newer) when the accelerator is ``auto``, ``gpu``
    or ``cuda``, and on a CPU with native bf16 when it is ``auto`` (no usable GPU) or ``cpu``;
    ``32-true`` everywhere else (other accelerators, older GPUs, CPUs that would emulate bf16).
    Any other value is returned unchanged.
    """
    if precision != AUTO:
        return precision
    accelerator = str(accelerator).lower()
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("auto", "cpu"):
        return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    return "32-true"


def slow_cpu_note() -> str | None:
    """A line for people training on a CPU that would emulate bf16 (None with a GPU or native bf16).

    Time-limited runs (the demo) then take fewer steps: the small tokenizer's step is ~2.2x and the
    small transformer's ~1.3x slower in fp32 than under bf16 autocast on the same CPU; an AVX2 AMD
    Zen 3 (2 cores) took 894 tokenizer and 1113 transformer steps in the demo's 6 + 11 minutes, about
    half of the 1733 and 2222 of the AVX-512 BF16 machines behind the README's figures; there the
    15 + 15 minute split (1725 tokenizer and ~1700 transformer steps) gave 43-45% of 256 clips all right
    (three transformer seeds), the demo 16-25%.
    """
    if torch.cuda.is_available() or cpu_has_native_bf16():
        return None
    return (
        "this CPU has no native bf16 (AVX-512 BF16 or AMX), so training runs in fp32: in the same minutes "
        "the tokenizer and the generator take about half the steps of a CPU with it (the README's figures), "
        "so expect weaker results (README: 'Where quality stands'); `tokgen demo tokenizer_minutes=15 "
        "generator_minutes=15 clips=20000` (about 33 minutes) gave such a CPU 43-45% of clips right against 16-25%"
    )


def check_device(name: str) -> torch.device:
    """``device=`` of a verb as a ``torch.device`` this machine has; a clear error otherwise.

    Without it ``device=cuda`` on a CPU-only PyTorch ends in an AssertionError from deep in torch.
    """
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name}: not a device name; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={name}: no CUDA GPU here (torch {torch.__version__}); use device=cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device={name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={name}: Apple's MPS is not available here; use device=cpu")
    return device
