"""retain_freed_memory: a buffer allocated and freed over and over stops faulting pages in (glibc)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

from tokgen.memory import retain_freed_memory

# Allocates, writes and frees a 40 MiB block 30 times (above the 32 MiB that glibc's adaptive threshold
# reaches by itself) and prints the minor page faults that took.
_CHILD = textwrap.dedent(
    """
    import ctypes, resource, sys
    from tokgen.memory import retain_freed_memory

    print(retain_freed_memory() if sys.argv[1] == "retain" else False)
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes, libc.free.argtypes = [ctypes.c_size_t], [ctypes.c_void_p]
    size = 40 << 20

    def churn():
        for _ in range(30):
            block = libc.malloc(size)
            ctypes.memset(block, 1, size)
            libc.free(block)

    churn()  # the first block is new either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    churn()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _glibc() -> bool:
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


def _faults(mode: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, env=env, check=True)
    retained, faults = out.stdout.split()
    return retained == "True", int(faults)


@pytest.mark.skipif(not _glibc(), reason="mallopt thresholds are glibc's")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    _, default_faults = _faults("default")
    retained, faults = _faults("retain")
    assert retained
    # 30 blocks of 10240 pages each fault in afresh by default; retained, they are written in place
    assert default_faults > 30 * 10240 * 0.9, default_faults
    assert faults < 0.05 * default_faults, (faults, default_faults)


def test_user_malloc_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert retain_freed_memory() is False
