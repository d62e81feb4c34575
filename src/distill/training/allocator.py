"""Keep glibc from returning large buffers to the OS every step.

glibc serves allocations above its mmap threshold with fresh mmap()s and unmaps them on free, so a training
step that allocates the same 25 MB loss chunks each time page-faults them back in every step (measured: tens of
seconds of system time per 20 steps for a naive [B·T, V] loss). Pinning the threshold at its 32 MB maximum and
disabling heap trimming keeps freed chunks in the heap for reuse. Together with chunk buffers kept under 32 MB
(loss.chunk_size × vocab × 4 bytes), the loss reuses memory instead of faulting it in. No-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def tune_glibc_malloc() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
        ok &= libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
        return bool(ok)
    except (OSError, AttributeError, ctypes.ArgumentError):
        log.debug("mallopt unavailable; allocator left as is")
        return False
