"""Target floating-point formats and correct rounding of mpmath values to them.

mpmath's own float conversion rounds twice for subnormal results (first to 53
bits, then again by ldexp), so rounding is done here on the integer mantissa
with round-half-to-even at the precision the target format has at that
magnitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np
from mpmath.libmp import finf, fnan, fninf, fzero, normalize, to_float

MpfTuple = tuple  # mpmath's raw (sign, mantissa, exponent, bitcount)
# Stored in place of a result the reference could not certify ("reference uncertain"): a NaN payload.
UNCERTAIN_BITS = 0x7FF4_4E43_554E_4345


@dataclass(frozen=True)
class DtypeInfo:
    name: str
    precision: int      # significand bits, hidden bit included
    emin: int           # exponent of the smallest normal number
    emax: int           # exponent of the largest finite number
    np_dtype: np.dtype

    @property
    def min_subnormal_exp(self) -> int:
        return self.emin - self.precision + 1


DTYPE_INFO: dict[str, DtypeInfo] = {
    "float64": DtypeInfo("float64", 53, -1022, 1023, np.dtype(np.float64)),
    "float32": DtypeInfo("float32", 24, -126, 127, np.dtype(np.float32)),
    "float16": DtypeInfo("float16", 11, -14, 15, np.dtype(np.float16)),
    "bfloat16": DtypeInfo("bfloat16", 8, -126, 127, np.dtype(ml_dtypes.bfloat16)),
}


def info(dtype: str | np.dtype) -> DtypeInfo:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    try:
        return DTYPE_INFO[name]
    except KeyError:
        raise ValueError(f"unsupported dtype {name!r}; supported: {', '.join(DTYPE_INFO)}") from None


def all_bit_patterns(dtype: str) -> np.ndarray:
    """Every number of a 16-bit dtype, NaNs and infinities included, in bit order."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(info(dtype).np_dtype)


def round_mpf(value: MpfTuple, dtype: DtypeInfo) -> float:
    """Round an exact mpmath value to the nearest `dtype` number (ties to even); returns it as a Python float."""
    if value == fzero:
        return 0.0
    if value in (finf, fninf):
        return float("inf") if value == finf else float("-inf")
    if value == fnan:                           # 0 * inf inside a formula: no number, as IEEE says
        return float("nan")
    sign, man, exp, bc = value
    top = exp + bc - 1                      # value lies in [2**top, 2**(top+1))
    prec = dtype.precision
    if top < dtype.emin:
        prec -= dtype.emin - top
        if prec <= 0:
            # Below half the smallest subnormal rounds to zero; from half (exclusive) upward to it.
            half = dtype.min_subnormal_exp - 1
            is_exact_half = top == half and man == 1 << (bc - 1)
            if prec == 0 and not is_exact_half:
                return -(2.0 ** dtype.min_subnormal_exp) if sign else 2.0 ** dtype.min_subnormal_exp
            return -0.0 if sign else 0.0
    rounded = normalize(sign, man, exp, bc, prec, "n")
    if rounded[2] + rounded[3] - 1 > dtype.emax:
        return float("-inf") if sign else float("inf")
    return to_float(rounded)   # exact: at most 53 bits and within float64 range


def ulp_of(values: np.ndarray, dtype: DtypeInfo) -> np.ndarray:
    """The spacing of `dtype` at |values| (its ULP there); the smallest subnormal at zero."""
    v = np.abs(np.asarray(values, dtype=np.float64))
    _, k = np.frexp(v)                     # v = m * 2**k with m in [0.5, 1)
    top = np.where(v > 0, k - 1, dtype.emin)
    return np.ldexp(1.0, np.maximum(top, dtype.emin) - dtype.precision + 1)


def ulp_error(got: np.ndarray, expected: np.ndarray, dtype: DtypeInfo) -> np.ndarray:
    """|got - expected| / ulp(expected): the design's error measure (docs/design.md) (expected correctly rounded, finite)."""
    with np.errstate(over="ignore", invalid="ignore"):     # a huge error is inf ULP, not a warning
        diff = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
        return diff / ulp_of(expected, dtype)


def cast(values: object, dtype: str) -> np.ndarray:
    """Round to the dtype (nearest even), as the array a backend receives; overflow gives +-inf."""
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float64).astype(info(dtype).np_dtype)


def representable(v: float, dtype: str) -> float:
    return float(cast([v], dtype)[0])


_UINT = {16: np.uint16, 32: np.uint32, 64: np.uint64}


def nudge(v: float, steps: int, dtype: str) -> float:
    """The value `steps` representable numbers away from v in the dtype (through the integer ordering)."""
    a = cast([v], dtype)
    width = a.dtype.itemsize * 8
    sign = 1 << (width - 1)
    i = int(a.view(_UINT[width])[0])
    o = -(i & (sign - 1)) if i & sign else i
    o += steps
    bits = (sign | -o) if o < 0 else o
    if bits >= (1 << width):
        return math.nan
    return float(np.array([bits], dtype=_UINT[width]).view(a.dtype)[0])
