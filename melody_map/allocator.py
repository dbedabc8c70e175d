"""Keep freed memory in the process while a loop reallocates the same large tensors.

A training step allocates and frees tensors of hundreds of MB. glibc's malloc serves each
block above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and unmaps it on
free, so every step pays the kernel to map and zero the same memory again. Inside
``reuse_freed_memory()`` large blocks come from the heap instead and freed ones stay there
for the next step; on leaving, the free memory goes back to the system (``malloc_trim``).
The heap settles within a few steps, and it can hold more than one step's live tensors
(blocks of other sizes fill the holes): ``bench/memory.py`` measures the peak with it.
Elsewhere than glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import platform
from contextlib import contextmanager
from typing import Iterator

# mallopt's parameters (malloc.h) and glibc's defaults for the ones set here.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEEP_FREE_BYTES = 1 << 30  # free memory at the heap's top kept for the next step, at most


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextmanager
def reuse_freed_memory(keep_bytes: int = KEEP_FREE_BYTES) -> Iterator[bool]:
    """Serve large blocks from the heap and keep up to ``keep_bytes`` of freed memory in it.

    Yields whether the allocator was changed (glibc only). On leaving, the defaults come
    back and the heap's free memory is returned to the system.
    """
    libc = _glibc()
    if libc is None:
        yield False
        return
    changed = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, keep_bytes))
    try:
        yield changed
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
