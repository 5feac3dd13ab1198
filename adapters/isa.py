"""A run's environment fingerprint: what the records show and known entries' `where:` conditions read.

Versions of the numerics packages (read from their metadata, no import), the platform, the
instruction-set level each library dispatches to (oneDNN, XLA:CPU, NumPy; torch's own is in its
adapter), the CPU's vector flags, whether subnormals survive on the calling thread, and threads.

Why: torch 2.13.0's bfloat16 gelu is wrong on this project's AVX-512 machine and right on an
AVX2 one with the same wheel (the review's newcomer run; `ONEDNN_MAX_CPU_ISA=AVX2` reproduces it
here). The difference is oneDNN's dispatch, which the CPU model name does not tell.
"""

from __future__ import annotations

import os
import platform
import re
from functools import cache
from importlib import metadata
from typing import Any

import numpy as np

try:                     # NumPy's run-time dispatch tables (NumPy >= 2: numpy._core)
    from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
except ImportError:      # pragma: no cover - another NumPy layout: the level is "unknown"
    __cpu_baseline__, __cpu_dispatch__, __cpu_features__ = [], [], {}

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


# XLA:CPU's --xla_cpu_max_isa names (jaxlib's DebugOptions help text), lowest first, and the flag each needs.
XLA_LEVELS = (("SSE4_2", "sse4_2"), ("AVX", "avx"), ("AVX2", "avx2"), ("AVX512", "avx512f"),
              ("AVX512_VNNI", "avx512_vnni"), ("AVX512_BF16", "avx512_bf16"), ("AMX", "amx_bf16"))
# The distributions whose versions decide numerics; their versions are read without importing them.
PACKAGES = ("numpy", "torch", "tensorflow", "jax", "jaxlib", "keras", "onnxruntime", "ml_dtypes")


def xla_cpu_isa() -> str:
    """The level XLA:CPU generates code for: the CPU's best, capped by --xla_cpu_max_isa in XLA_FLAGS."""
    have = [name for name, flag in XLA_LEVELS if flag in cpu_flags()]
    if not have:
        return "unknown"
    found = re.search(r"--xla_cpu_max_isa=(\w+)", os.environ.get("XLA_FLAGS", ""))
    names = [name for name, _ in XLA_LEVELS]
    cap = found.group(1).upper() if found else ""
    if cap in names:
        have = [h for h in have if names.index(h) <= names.index(cap)]
    return have[-1] if have else "unknown"


def numpy_simd() -> str:
    """The highest SIMD target NumPy dispatches to at run time (NPY_DISABLE_CPU_FEATURES lowers it)."""
    if not __cpu_features__:
        return "unknown"
    on = [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]
    return on[-1] if on else (list(__cpu_baseline__)[-1] if __cpu_baseline__ else "none")


def denormals() -> str:
    """Whether subnormals survive arithmetic on the calling thread ("flushed" under FTZ/DAZ)."""
    tiny = np.array([2.0 ** -140], dtype=np.float32)
    return "kept" if float((tiny * np.float32(1.0))[0]) != 0.0 else "flushed"


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def environment() -> dict[str, str]:
    """What the records and `where:` conditions read: versions, platform, the instruction-set level each
    library dispatches to, the vector flags present, subnormal handling and threads."""
    return {**versions(), "platform": f"{platform.system().lower()}-{platform.machine()}",
            "onednn_isa": onednn_isa(), "xla_cpu_isa": xla_cpu_isa(), "numpy_simd": numpy_simd(),
            "cpu_flags": ",".join(f for f in SHOWN_FLAGS if f in cpu_flags()) or "none", "denormals": denormals(),
            **({"OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]} if "OMP_NUM_THREADS" in os.environ else {})}


ISA_KEYS = ("cpu_capability", "onednn_isa", "xla_cpu_isa", "numpy_simd", "cpu_flags")


def isa_text(environment: dict[str, Any]) -> str:
    """The dispatch levels a run's kernels were chosen by: what makes two machines' verdicts differ."""
    return ", ".join(f"{k}={environment[k]}" for k in ISA_KEYS if k in environment) or "not recorded"


def environment_of(adapter: object) -> dict[str, str]:
    """A run's environment: the machine's (above), the device, and the adapter's own settings (threads, libraries)."""
    own: dict[str, str] = getattr(adapter, "environment", lambda: {})()
    return {**environment(), "device": str(getattr(adapter, "device", "cpu")).split(":")[0], **own}
