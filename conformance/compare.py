"""Measuring a backend's output against the exact reference.

The error is |got - exact| / ulp(exact), in ULPs of the dtype at the exact
value (correctly rounded), with the relative error beside it.  Not the count of
representable numbers between the two: across binades that count overstates
(0 against 1e-17 would be 4e18 "ULPs").  The allowed error is the spec's budget for the
dtype times max(1, condition), where the spec declares a condition number.
Elements the reference could not certify are left out, never counted as a pass
of anything: if nothing is left, the check reports "reference uncertain".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnconform.reference import RefResult
from nnconform.reference.dtypes import info, ulp_error


@dataclass
class Measurement:
    dtype: str
    got: np.ndarray            # as returned (cast to dtype for measuring)
    expected: np.ndarray
    ulp: np.ndarray            # per element; inf where a NaN/inf is wrong
    allowed: np.ndarray
    certain: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(self.certain, self.ulp / self.allowed, 0.0)
        return np.nan_to_num(r, nan=np.inf, posinf=np.inf)

    @property
    def ok(self) -> bool:
        return bool((self.ratio <= 1.0).all())

    @property
    def worst(self) -> int:
        return int(np.argmax(self.ratio)) if self.ratio.size else 0

    @property
    def max_ulp(self) -> float:
        c = self.ulp[self.certain]
        return float(c.max()) if c.size else 0.0

    @property
    def max_ratio(self) -> float:
        r = self.ratio
        return float(r.max()) if r.size else 0.0

    @property
    def max_relative(self) -> float:
        g = self.got.astype(np.float64)[self.certain]
        e = self.expected.astype(np.float64)[self.certain]
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(g - e) / np.abs(e)
        rel = np.where((g == e) | (np.isnan(g) & np.isnan(e)), 0.0, rel)
        rel = rel[np.isfinite(rel)]
        return float(rel.max()) if rel.size else (0.0 if np.array_equal(g, e, equal_nan=True) else float("inf"))

    @property
    def any_certain(self) -> bool:
        return bool(self.certain.any())


def subnormal_mask(expected: np.ndarray, inputs: list[np.ndarray], dtype: str) -> np.ndarray:
    """Elements whose exact output, or an input they depend on, is subnormal in `dtype`.

    Gradual underflow is its own IEEE feature, which some backends turn off (flush to zero)
    for speed; the `subnormal` check measures these elements and every other check leaves
    them out, so one finding does not hide all others.
    """
    tiny = 2.0 ** info(dtype).emin
    e = np.abs(expected.astype(np.float64))
    mask = (e > 0) & (e < tiny)
    for a in inputs:
        a = np.abs(np.asarray(a, dtype=np.float64))
        mask |= spread((a > 0) & (a < tiny), mask.shape)
    return mask


def near_underflow(cotangent: np.ndarray, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Elements of a vector-Jacobian product whose cotangent is within `precision` binades of underflow.

    The backward pass multiplies such a cotangent by factors below 1, and a product below the
    smallest normal number is a subnormal intermediate: XLA's CPU backend flushes it to zero
    (JAX's tanh'(-0.334) in bfloat16 with g = 2.7e-38 forms e = g (1 - y), then e y = -1.2e-38,
    flushes that and returns 47% too much; https://github.com/jax-ml/jax/issues/16200).  That is
    gradual underflow, the subnormal check's subject, not the gradient's accuracy; above the
    threshold a flushed product is below one ULP of the result's cotangent term.
    """
    a = np.abs(np.asarray(cotangent, dtype=np.float64))
    return spread((a > 0) & (a < near_underflow_bound(dtype)), shape)


def near_underflow_bound(dtype: str) -> float:
    """2^(emin + precision): 2e-31 in float32, 3.4e-36 in bfloat16, 0.125 in float16."""
    d = info(dtype)
    return 2.0 ** (d.emin + d.precision)


def spread(sub: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An operand's per-element mask onto the output's elements."""
    if sub.shape == shape:
        return sub
    if sub.ndim == len(shape) and sub.ndim >= 1 and sub.shape[:-1] == shape[:-1]:
        return np.broadcast_to(sub.any(axis=-1, keepdims=True), shape)       # a row with a subnormal entry
    return np.full(shape, bool(sub.size and sub.any()))


def measure(got: Any, ref: RefResult, dtype: str, budget: float, condition: np.ndarray | None = None,
            inputs: list[np.ndarray] | None = None, subnormals: str = "exclude",
            exclude: np.ndarray | None = None) -> Measurement:
    """`subnormals`: "exclude" leaves out subnormal elements (see subnormal_mask), "only" measures just them."""
    target = info(dtype).np_dtype
    got = np.asarray(got)
    expected = ref.values
    if got.shape != expected.shape:
        raise ShapeMismatch(f"output shape {got.shape}, expected {expected.shape}")
    notes = []
    if got.dtype != target:
        notes.append(f"output dtype {got.dtype}, expected {target} (measured after casting)")
    with np.errstate(over="ignore", invalid="ignore"):
        g = got.astype(np.float64).astype(target)
    e = expected.astype(target)
    g64, e64 = g.astype(np.float64), e.astype(np.float64)
    with np.errstate(invalid="ignore"):
        ulp = ulp_error(g, e, info(dtype))
    both_nan = np.isnan(g64) & np.isnan(e64)
    same_inf = np.isinf(e64) & (g64 == e64)
    wrong_special = (np.isnan(g64) != np.isnan(e64)) | ((np.isinf(g64) | np.isinf(e64)) & ~same_inf & ~both_nan)
    ulp = np.where(both_nan | same_inf, 0.0, np.where(wrong_special, np.inf, ulp))
    cond = np.ones(expected.shape) if condition is None else np.maximum(1.0, np.nan_to_num(condition, nan=np.inf))
    with np.errstate(over="ignore"):
        allowed = budget * cond
    certain = ~ref.uncertain
    if inputs is not None:
        sub = subnormal_mask(e, inputs, dtype)
        certain &= sub if subnormals == "only" else ~sub
    if exclude is not None:
        certain &= ~np.broadcast_to(exclude, certain.shape)
    return Measurement(dtype, got, e, ulp, allowed, certain, notes)


class ShapeMismatch(AssertionError):
    pass


def fmt(v: float) -> str:
    """A number as 'decimal (hex)': the hex is exact, the decimal is for reading."""
    v = float(v)
    return f"{v!r} ({v.hex()})"


def describe_ulp(u: float) -> str:
    if u == np.inf:
        return "wrong NaN/inf"
    return f"{u:,.0f} ULP" if u >= 10 else f"{u:.3g} ULP"
