"""Give freed request memory back to the operating system, so that the server's resident memory returns near its
baseline after a burst of large requests.

A request's buffers are freed when it is answered, but glibc's ``malloc`` keeps freed blocks in its heaps: it
raises its mmap threshold dynamically (up to 32 MB) after the first large free, and gives back only free memory
at a heap's top. A dcnv2 server that had answered 20 requests at the 4,096-row limit stayed 95 MB above its
baseline for good (745 → 840 MB), 120 MB after earlier load from 32 clients had spread its allocations over
many per-thread heaps. Two measures, both taken by ``tfctr serve``:

- ``release_freed_memory``: the mmap and trim thresholds fixed at 128 KiB (glibc's initial value, made static),
  so every larger buffer has its own mapping, unmapped when freed;
- ``start_trimming``: after a request of ``TRIM_AFTER_ROWS`` rows or more, a thread calls ``malloc_trim``, which
  hands back the free pages inside every heap, at most once a second (≈ 10 ms each time).

With both, RSS is back within a few MB of the baseline seconds after the burst (``bench/serving_faults.py``).
On a C library other than glibc (musl, macOS) they do nothing and say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
RELEASE_THRESHOLD_BYTES = 128 * 1024
# a request of this many rows or more is followed by a trim, at most one per interval
TRIM_AFTER_ROWS = 1024
TRIM_INTERVAL_SECONDS = 1.0
_large_request_answered = threading.Event()


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




def note_rows(rows: int) -> None:
    """Called after a signature ran on ``rows`` rows: a request of ``TRIM_AFTER_ROWS`` or more leaves enough
    freed memory behind to be worth a trim."""
    if rows >= TRIM_AFTER_ROWS:
        _large_request_answered.set()


def start_trimming(interval_seconds: float = TRIM_INTERVAL_SECONDS) -> threading.Thread | None:
    """A daemon thread that, after every ``interval_seconds`` in which a large request was answered, hands the
    free pages in the middle of every glibc heap back to the system (``malloc_trim``, about 10 ms on a serving
    process). None on other C libraries."""
    libc = _glibc()
    if libc is None:
        return None

    def trim_after_large_requests():
        while True:
            _large_request_answered.wait()
            time.sleep(interval_seconds)  # requests arriving together are trimmed after once
            _large_request_answered.clear()
            libc.malloc_trim(0)

    thread = threading.Thread(target=trim_after_large_requests, name="tfctr-memory-trim", daemon=True)
    thread.start()
    return thread
