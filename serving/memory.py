"""Give freed request memory back to the operating system, so that the server's resident memory returns near its
baseline after a burst of large requests.

A request's tensors are freed when it is answered, but glibc's ``malloc`` keeps freed blocks in its heaps: it
raises its mmap threshold dynamically up to 32 MB after the first large free, and only trims a heap's top. With
many gRPC threads (one heap each), 20 requests at the 4,096-row limit left a dcnv2 server about 95 MB above its
baseline for good (745 → 840 MB). Fixing the mmap and trim thresholds at 128 KiB (glibc's initial value, made
static) serves every larger buffer from its own mapping, unmapped on free, and trims heap tops above that size:
the same burst then leaves RSS within ≈ 20 MB of the baseline (measured in ``bench/serving_faults.py``).

On a C library other than glibc (musl, macOS) this does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
RELEASE_THRESHOLD_BYTES = 128 * 1024


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None  # only glibc has it


def release_freed_memory(threshold_bytes: int = RELEASE_THRESHOLD_BYTES) -> bool:
    """Fixes glibc's mmap and trim thresholds at ``threshold_bytes`` for this process. True when it took effect
    (glibc), False on other C libraries."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes))) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, int(threshold_bytes)))

