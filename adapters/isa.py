"""The CPU instruction set a framework's kernels are chosen by, for the records and for known entries' `where:`.

Why: torch 2.13.0's bfloat16 gelu is wrong on this project's AVX-512 machine and right on an
AVX2 one with the same wheel (the review's newcomer run; `ONEDNN_MAX_CPU_ISA=AVX2` reproduces it
here). The difference is oneDNN's dispatch, which the CPU model name does not tell.
"""

from __future__ import annotations

import os
from functools import cache

# oneDNN's levels, lowest first (its ONEDNN_MAX_CPU_ISA names, lower case), and the CPU flag each needs.
ONEDNN_LEVELS = (("sse41", "sse4_1"), ("avx", "avx"), ("avx2", "avx2"), ("avx512_core", "avx512f"),
                 ("avx512_core_vnni", "avx512_vnni"), ("avx512_core_bf16", "avx512_bf16"), ("avx512_core_amx", "amx_bf16"))
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "neon", "asimd", "sve")


@cache
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def onednn_isa() -> str:
    """The highest level the CPU has, capped by ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) where set; 'unknown' off x86 Linux."""
    flags = cpu_flags()
    have = [name for name, flag in ONEDNN_LEVELS if flag in flags]
    if not have:
        return "unknown"
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().lower()
    names = [name for name, _ in ONEDNN_LEVELS]
    if cap in names:
        have = [h for h in have if names.index(h) <= names.index(cap)]
    return have[-1] if have else "unknown"


def environment() -> dict[str, str]:
    """What the records and `where:` conditions read: the oneDNN level and the vector flags present."""
    return {"onednn_isa": onednn_isa(), "cpu_flags": ",".join(f for f in SHOWN_FLAGS if f in cpu_flags()) or "none"}


def environment_of(adapter: object) -> dict[str, str]:
    """A run's environment: the machine's (above) and the adapter's own settings (threads, libraries)."""
    own = getattr(adapter, "environment", lambda: {})()
    return {**environment(), **own}
