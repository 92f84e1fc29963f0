"""What the CPU can do, as ``lscpu`` reports it: its model name and flags, and whether it computes bfloat16 in
hardware (``avx512_bf16``, or Intel AMX: ``amx_bf16`` with ``amx_tile``). Mixed precision on a CPU means bfloat16;
without those instructions TensorFlow emulates it and it runs slower than float32, which the training log says."""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclasses.dataclass(frozen=True)
class CPUFeatures:
    model: str
    flags: tuple[str, ...]

    @property
    def bfloat16(self) -> bool:
        """True when the CPU has bfloat16 arithmetic (AVX512-BF16, or AMX tiles with AMX-BF16)."""
        return "avx512_bf16" in self.flags or {"amx_bf16", "amx_tile"} <= set(self.flags)


def cpu_features(cpuinfo: str | None = None) -> CPUFeatures:
    """The model name and flags of the first CPU in ``/proc/cpuinfo`` (or the text given); elsewhere the platform's
    processor name and no flags."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first CPU's
    model = fields.get("model name") or platform.processor() or platform.machine()
    return CPUFeatures(model, tuple(sorted(fields.get("flags", "").split())))


def precision_note(mixed: bool, gpus: int, cpu: CPUFeatures | None = None) -> str:
    """One line for the training log: which precision runs and why (``cpu``: this machine's by default)."""
    off = "precision: float32 (mixed precision is off; --mixed-precision turns it on)"
    if gpus:
        return f"precision: mixed float16 on {gpus} GPU(s), float32 variables and loss scaling" if mixed else off
    cpu = cpu or cpu_features()
    if not mixed:
        return ("precision: float32; this CPU computes bfloat16 in hardware, where --mixed-precision trained dcnv2, "
                "apg_dcnv2, xdeepfm and xdeepint 1.7-2.0x faster (README, \"Distributed training and mixed "
                "precision\")") if cpu.bfloat16 else off
    if cpu.bfloat16:
        have = ", ".join(f for f in BFLOAT16_FLAGS + ("amx_tile",) if f in cpu.flags)
        return f"precision: mixed bfloat16 on the CPU, which computes it in hardware ({have}; {cpu.model})"
    return (f"precision: mixed bfloat16 on a CPU without bfloat16 instructions ({cpu.model}: no avx512_bf16 or "
            "amx_bf16): emulated, slower than float32 here; leave --mixed-precision off on this machine")
