"""Keep freed memory in the process rather than handing it back to the OS after every free (glibc).

glibc serves an allocation larger than its mmap threshold (128 KiB, adapting up to 32 MiB) with a
fresh ``mmap`` and returns it with ``munmap`` when freed, so a buffer of that size allocated on every
step (attention scores, the quantizer's distance matrices, their gradients) starts zeroed and
unmapped each time, and the kernel takes one page fault per 4 KiB page the first time it is written.
On the CPU tokenizer's reference training step (batch 2, 17 frames of 64 x 64) those faults cost
about a tenth of the step. Raising the mmap and trim thresholds lets freed blocks stay in the heap for
the next step; the peak resident memory stays the same (the blocks are reused, not added), but memory
freed after the peak is not returned to the OS until the process ends.

Nothing changes where the C library is not glibc, or when the user set glibc's own ``MALLOC_*``
variables (their choice wins).
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt's parameter numbers (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
RETAIN_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap; up to 1 GiB of free top is kept
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def retain_freed_memory(threshold: int = RETAIN_BYTES) -> bool:
    """Set glibc's mmap and trim thresholds to ``threshold`` bytes; True when they were set.

    False, with nothing changed, off Linux, on a C library without ``mallopt`` or other than glibc
    (``gnu_get_libc_version`` is glibc's), or when the environment already sets glibc's thresholds.
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (raises AttributeError where the C library is not glibc)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    value = min(int(threshold), 2**31 - 1)
    return bool(mallopt(M_MMAP_THRESHOLD, value)) and bool(mallopt(M_TRIM_THRESHOLD, value))
