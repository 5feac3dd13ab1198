"""An implementation of correct rounding that shares no code with the reference.

It works on exact rationals (fractions.Fraction) and Python's round(), which
rounds a Fraction half to even; the reference rounds mpmath mantissas with
libmp.normalize.  Agreement of the two is evidence for both.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath

FORMATS = {  # name: (significand bits, exponent of the smallest normal)
    "float64": (53, -1022),
    "float32": (24, -126),
    "float16": (11, -14),
    "bfloat16": (8, -126),
}
MAX_EXP = {"float64": 1023, "float32": 127, "float16": 15, "bfloat16": 127}


def exact_fraction(v: mpmath.mpf) -> Fraction:
    man, exp = mpmath.mpf(abs(v)).man_exp
    f = Fraction(int(man)) * Fraction(2) ** int(exp)
    return -f if v < 0 else f


def round_to(v: mpmath.mpf, dtype: str) -> float:
    f = exact_fraction(v)
    return round_fraction(f, dtype) if f != 0 else 0.0


def round_fraction(f: Fraction, dtype: str) -> float:
    """The dtype number nearest the rational f (ties to even), as a Python float."""
    p, emin = FORMATS[dtype]
    if f == 0:
        return 0.0
    e = abs(f).numerator.bit_length() - abs(f).denominator.bit_length()   # within one of floor(log2 |f|)
    while Fraction(2) ** e > abs(f):
        e -= 1
    while Fraction(2) ** (e + 1) <= abs(f):
        e += 1
    q = max(e, emin) - p + 1
    n = round(f / Fraction(2) ** q)
    r = n * Fraction(2) ** q
    if abs(r) >= Fraction(2) ** (MAX_EXP[dtype] + 1):
        return float("inf") if r > 0 else float("-inf")
    out = float(r)
    return out if out != 0 or f > 0 else -0.0
