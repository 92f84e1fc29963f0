"""Peak resident memory of this process, for benchmark children started from a parent that is itself large.

``getrusage(RUSAGE_SELF).ru_maxrss`` is wrong there: Linux carries the high-water mark of the memory image an
``execve`` replaced into the new program's figure, so a child started by a parent holding TensorFlow and the
encoded data reports at least the parent's peak. ``VmHWM`` in ``/proc/self/status`` belongs to the current
memory image only. No imports beyond the standard library: every benchmark venv (DeepCTR, FuxiCTR) uses it.
"""

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident set since its last ``execve``, in MiB (``ru_maxrss`` where there is no
    ``/proc``, e.g. macOS, whose figure is per image anyway, in bytes)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
