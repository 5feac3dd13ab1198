"""The two reference tiers agree bit for bit: mpmath with hand-carried bounds, and arb balls.

reference/arb_tier.py shares no arithmetic with the mpmath tier (its docstring lists what the
two do share: what the spec means).  So where they agree, both are right unless both are wrong
the same way; where they disagree, one has a bug.  Compared: values and VJPs of every
deterministic activation and loss, NaN equal to NaN, -0.0 distinct from +0.0, "uncertain"
never declined by mpmath where arb decides (arb works to 65,536 bits, twice mpmath's cap).

Inputs: the full float16 and bfloat16 sets (elementwise activations), and per function a
float32/float64 mixture: log-uniform magnitudes over the whole range, the bend region, signed
zeros, subnormals whose half is a midpoint, +-inf, NaN; rows with tied maxima, one far entry,
huge and infinite entries; cotangents that put the exact VJP at a midpoint plus an
exponentially small term (the review's reproducers, generated).  NNCONFORM_TIERS=full (CI)
compares the whole 16-bit sets and 20,000 inputs per function; the default is a twentieth of
that, the same generator.
"""

from __future__ import annotations

import math
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from nnconform.reference import LossReference, Reference, ReferenceCache
from nnconform.reference.dtypes import all_bit_patterns
from nnconform.spec import Spec, load_all

pytest.importorskip("flint", reason="python-flint is in the dev extra")
from nnconform.reference.arb_tier import ArbReference, round_exact  # noqa: E402

FULL = os.environ.get("NNCONFORM_TIERS") == "full"
MIXTURE = 20_000 if FULL else 1_000          # inputs per function, float32 and float64 together
SIXTEEN_STRIDE = 1 if FULL else 16           # every n-th 16-bit pattern
MPMATH = Reference(ReferenceCache(persistent=False))
# The 16-bit sets through the shipped tables (the mpmath tier's own results, keyed by its code version).
MPMATH16 = Reference(ReferenceCache(Path(tempfile.mkdtemp(prefix="nnconform-tiers-"))))
LOSSES = LossReference(MPMATH)
ARB = ArbReference()
ACTIVATIONS = {n: s for n, s in load_all(["activation"]).items() if not s.is_stochastic}
LOSS_SPECS = load_all(["loss"])
ELEMENTWISE = sorted(n for n, s in ACTIVATIONS.items() if s.shape == "elementwise")
ROWS = sorted(n for n, s in ACTIVATIONS.items() if s.shape != "elementwise")


def through(v: np.ndarray, np_dtype: type) -> np.ndarray:
    """v rounded to the dtype and back: what overflows becomes inf, on purpose."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(v).astype(np_dtype).astype(np.float64)


def rng_for(*parts: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def disagreements(a, b) -> list[int]:
    """Flat indices where mpmath (a) and arb (b) disagree: both decided and the bits differ (so -0.0 != +0.0;
    NaN equals NaN), or arb decided what mpmath declined.  Where arb declines (a row gap beyond its
    65,536 bits) it cannot check, and mpmath's decision there stands unchecked, as under --reference=both."""
    av = np.asarray(a.values, dtype=np.float64).ravel()
    bv = np.asarray(b.values, dtype=np.float64).ravel()
    au, bu = np.asarray(a.uncertain).ravel(), np.asarray(b.uncertain).ravel()
    same_bits = (av.view(np.uint64) == bv.view(np.uint64)) | (np.isnan(av) & np.isnan(bv))
    bad = (~au & ~bu & ~same_bits) | (au & ~bu)
    return np.nonzero(bad)[0].tolist()


def explain(what: str, bad: list[int], inputs: dict, a, b, rows: bool = False, per_row: bool = False) -> str:
    """per_row: one output per row (a loss per sample), else one per entry."""
    x = np.asarray(next(iter(inputs.values())))
    lines = [f"{what}: the tiers disagree at {len(bad)} outputs"]
    for i in bad[:5]:
        at = x.reshape(-1, x.shape[-1])[i if per_row else i // x.shape[-1]].tolist() if rows and x.ndim > 1 \
            else float(x.ravel()[i])
        lines.append(f"  input {at}: mpmath {float(np.ravel(a.values)[i]).hex()} (uncertain {bool(np.ravel(a.uncertain)[i])}),"
                     f" arb {float(np.ravel(b.values)[i]).hex()} (uncertain {bool(np.ravel(b.uncertain)[i])})")
    return "\n".join(lines)


# ---------------------------------------------------------------- the rounding the arb tier owns

@pytest.mark.parametrize("man, exp, dtype, expected", [
    (1, -1075, "float64", 0.0),                        # half the smallest subnormal: a tie, to even (0)
    (3, -1076, "float64", 5e-324),                     # three quarters of it: up
    ((1 << 53) + 1, -53, "float64", 1.0),              # 1 + 2^-53: a tie, to even (1)
    ((1 << 53) + 3, -53, "float64", 1.0 + 2 ** -51),   # 1 + 3 x 2^-53: a tie, to even (1 + 2^-51)
    ((1 << 25) - 1, 103, "float32", math.inf),         # 2^128 - 2^103, midway from FLT_MAX to 2^128: to even, inf
    ((1 << 26) - 3, 102, "float32", 3.4028234663852886e38),   # FLT_MAX = (2^26 - 4) 2^102, plus a quarter unit: down
    (-1, -25, "float16", -0.0),                        # a negative below half of 2^-24: -0.0
    (0x101, -8, "bfloat16", 1.0),                      # 1 + 2^-8: a tie in bfloat16's 8 bits, to even
])
def test_the_arb_tiers_rounding_is_nearest_even_with_signed_zeros_and_overflow(man: int, exp: int, dtype: str,
                                                                               expected: float) -> None:
    got = round_exact(man, exp, dtype)
    assert got == expected and math.copysign(1, got) == math.copysign(1, expected)


# ---------------------------------------------------------------- inputs

def elementwise_mixture(spec: Spec, dtype: str, n: int) -> np.ndarray:
    rng = rng_for(spec.name, dtype)
    info = np.finfo(np.float64 if dtype == "float64" else np.float32)
    tiny, big = math.log(float(info.smallest_subnormal)), math.log(float(info.max))
    k = n // 4
    spread = np.exp(rng.uniform(tiny, big, k)) * rng.choice([-1.0, 1.0], k)
    bend = rng.uniform(-45, 45, k)
    units = int(np.log2(float(info.smallest_normal))) - info.nmant
    sub = rng.integers(1, 64, k) * 2.0 ** units * rng.choice([-1.0, 1.0], k)     # x/2 a midpoint for odd multiples
    near = rng.normal(0, 3, n - 3 * k)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, float(info.max), -float(info.max), 1.0, -1.0])
    x = through(np.concatenate([spread, bend, sub, near, special]), info.dtype)
    domain = spec.domain(spec.tensor_inputs[0])
    return np.asarray([v for v in x if math.isnan(v) or math.isinf(v) or v in domain])


def cotangent_like(shape: tuple, dtype: str, rng: np.random.Generator) -> np.ndarray:
    g = rng.normal(size=shape) * np.exp2(rng.integers(-30, 30, size=shape))
    g.ravel()[::7] = 1.0
    return g.astype(np.float64 if dtype == "float64" else np.float32).astype(np.float64)


def rows_mixture(spec: Spec, dtype: str, n_entries: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of width 4 and their cotangents; a quarter constructed to sit at midpoints."""
    rng = rng_for(spec.name, dtype, "rows")
    np_dtype = np.float64 if dtype == "float64" else np.float32
    huge = float(np.finfo(np_dtype).max)
    unit = 2.0 ** -52 if dtype == "float64" else 2.0 ** -23
    rows, gs = [], []
    for i in range(max(n_entries // 4, 40)):
        kind = i % 8
        if kind == 0:
            r = rng.normal(0, 10, 4)
        elif kind == 1:                                       # tied maxima and one far entry
            m, gap = rng.uniform(-800, 800), float(rng.choice([20.0, 60.0, 300.0, 1000.0, 3000.0, 1e5]))
            r = np.array([m, m, m - gap, rng.normal(m - gap, 1)])
        elif kind == 2:                                       # all equal
            r = np.full(4, rng.normal(0, 100))
        elif kind == 3:                                       # huge entries
            r = np.array([huge, -huge, rng.normal(), huge / 2]) * rng.choice([1.0, -1.0])
        elif kind == 4:                                       # masked and infinite entries
            r = np.array([rng.normal(), -np.inf, rng.normal(), float(rng.choice([-np.inf, np.inf, 0.0]))])
        elif kind == 5:                                       # two tied maxima, the rest far below
            m = rng.uniform(-100, 100)
            r = np.array([m, m - float(rng.choice([50.0, 500.0])), m, m - 700.0])
        elif kind == 6:
            r = np.exp(rng.uniform(-700, 700, 4)) * rng.choice([-1.0, 1.0], 4)
        else:
            r = rng.integers(-3, 4, 4).astype(np.float64)
        r = through(r, np_dtype)
        if kind in (1, 5):                                    # VJP_0 at a midpoint plus (sum g / 4) e^-gap
            g = np.array([1.0, -3.0, unit, 0.0]) if rng.random() < 0.5 else np.array([5.0, 1.0, unit, 0.0])
        else:
            g = cotangent_like((4,), dtype, rng)
        rows.append(r)
        gs.append(g)
    return np.asarray(rows), np.asarray(gs)


# ---------------------------------------------------------------- activations

def compare_activation(spec: Spec, inputs: dict, dtype: str, g: np.ndarray, label: str, rows: bool = False,
                       mpmath: Reference = MPMATH) -> None:
    a, b = mpmath.value(spec, inputs, None, dtype), ARB.value(spec, inputs, None, dtype)
    bad = disagreements(a, b)
    assert not bad, explain(f"{label} value", bad, inputs, a, b, rows)
    for wrt in (w for w in spec.derivatives if w in spec.tensor_inputs):
        a, b = mpmath.vjp(spec, wrt, inputs, g, None, dtype), ARB.vjp(spec, wrt, inputs, g, None, dtype)
        bad = disagreements(a, b)
        assert not bad, explain(f"{label} vjp wrt {wrt}", bad, inputs, a, b, rows)


def activation_inputs(spec: Spec, x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    inputs = {spec.tensor_inputs[0]: x}
    for name in spec.tensor_inputs[1:]:         # prelu's weight: per element here, a slope in [0, 1]
        inputs[name] = rng.uniform(0, 1, x.shape).astype(np.float32).astype(np.float64)
    return inputs


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_tiers_agree_on_the_16_bit_set(name: str, dtype: str) -> None:
    spec = ACTIVATIONS[name]
    x = through(all_bit_patterns(dtype)[::SIXTEEN_STRIDE], np.float64)      # NaN patterns are inputs too
    domain = spec.domain(spec.tensor_inputs[0])
    x = np.asarray([v for v in x if math.isnan(v) or math.isinf(v) or v in domain])
    rng = rng_for(name, dtype, "16")
    # Cotangent 1: the derivative itself, as the shipped tables hold it; other cotangents are the mixture's.
    compare_activation(spec, activation_inputs(spec, x, rng), dtype, np.ones_like(x), f"{name}[{dtype}]", mpmath=MPMATH16)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_tiers_agree_on_the_elementwise_mixture(name: str, dtype: str) -> None:
    spec = ACTIVATIONS[name]
    x = elementwise_mixture(spec, dtype, MIXTURE // 2)
    rng = rng_for(name, dtype, "g")
    compare_activation(spec, activation_inputs(spec, x, rng), dtype, cotangent_like(x.shape, dtype, rng), f"{name}[{dtype}]")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ROWS)
def test_tiers_agree_on_rows_with_ties_far_and_infinite_entries(name: str, dtype: str) -> None:
    spec = ACTIVATIONS[name]
    x, g = rows_mixture(spec, dtype, MIXTURE // 2)
    if spec.doc.output != "same":
        g = g[:, :1] if spec.shape == "vector" else g[:, :2]
    compare_activation(spec, {spec.tensor_inputs[0]: x}, dtype, g, f"{name}[{dtype}]", rows=True)


# ---------------------------------------------------------------- losses

def loss_inputs(spec: Spec, dtype: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    np_dtype = np.float64 if dtype == "float64" else np.float32
    width = 4
    vector = spec.shape != "elementwise"
    shape = (n, width) if vector else (n,)
    out: dict[str, np.ndarray] = {}
    for name in spec.tensor_inputs:
        ispec = spec.doc.inputs[name]
        domain = spec.domain(name) if ispec.kind == "tensor" else None
        if ispec.kind == "class_index":
            t = rng.integers(0, width, n)
            t[::17] = -100                                   # the default ignore_index: left out
            out[name] = t
            continue
        if ispec.kind == "class_weight":
            out[name] = rng.uniform(0, 4, width).astype(np_dtype).astype(np.float64)
            continue
        lo, hi = domain.lo, domain.hi
        if lo == 0 and hi == 1:
            v = rng.uniform(0, 1, shape)
            flat = v.ravel()
            flat[::11] = 0.0
            flat[5::11] = 1.0
            flat[3::13] = np.exp(rng.uniform(-700, -1, flat[3::13].shape))
            flat[7::13] = 1 - np.exp(rng.uniform(-50, -1, flat[7::13].shape))
            if vector and name == "target":                  # soft labels: rows that sum to one, and some that do not
                v = v / v.sum(axis=-1, keepdims=True).clip(1e-300)
        elif hi == 0:
            v = -rng.exponential(5, shape)
            v.ravel()[::19] = -np.inf
        else:
            v = rng.normal(0, 3, shape) * np.exp2(rng.integers(-4, 8, shape))
            flat = v.ravel()
            flat[::23] = rng.choice([np.inf, -np.inf, 1e308, -1e308], flat[::23].shape)
        v = through(v, np_dtype)
        if domain is not None:
            v = np.where([(not math.isfinite(e)) or e in domain for e in v.ravel()], v.ravel(), 0.5).reshape(shape)
        out[name] = v
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LOSS_SPECS))
def test_tiers_agree_on_losses_per_sample_and_reduced(name: str, dtype: str) -> None:
    spec = LOSS_SPECS[name]
    rng = rng_for(name, dtype, "loss")
    width = 1 if spec.shape == "elementwise" else 4
    inputs = loss_inputs(spec, dtype, MIXTURE // 2 // width, rng)
    a, b = LOSSES.value(spec, inputs, None, "none", dtype), ARB.loss_value(spec, inputs, None, "none", dtype)
    bad = disagreements(a, b)
    assert not bad, explain(f"{name}[{dtype}] none", bad, inputs, a, b, rows=width > 1, per_row=True)
    g = cotangent_like(a.values.shape, dtype, rng)
    for wrt in (w for w in spec.derivatives if w in spec.tensor_inputs and spec.doc.inputs[w].differentiable):
        a, b = LOSSES.vjp(spec, wrt, inputs, g, None, "none", dtype), ARB.loss_vjp(spec, wrt, inputs, g, None, "none", dtype)
        bad = disagreements(a, b)
        assert not bad, explain(f"{name}[{dtype}] none vjp wrt {wrt}", bad, inputs, a, b, rows=width > 1)
    # Reductions over batches of 8 samples: the whole sum certified as one number.
    for reduction in ("sum", "mean"):
        for start in range(0, min(len(next(iter(inputs.values()))), 8 * 24), 8):
            batch = {k: (v if spec.doc.inputs[k].kind == "class_weight" else v[start:start + 8]) for k, v in inputs.items()}
            a, b = LOSSES.value(spec, batch, None, reduction, dtype), ARB.loss_value(spec, batch, None, reduction, dtype)
            bad = disagreements(a, b)
            assert not bad, explain(f"{name}[{dtype}] {reduction}", bad, batch, a, b, rows=width > 1)
            wrt = spec.tensor_inputs[0]
            a = LOSSES.vjp(spec, wrt, batch, np.asarray(1.5), None, reduction, dtype)
            b = ARB.loss_vjp(spec, wrt, batch, np.asarray(1.5), None, reduction, dtype)
            bad = disagreements(a, b)
            assert not bad, explain(f"{name}[{dtype}] {reduction} vjp", bad, batch, a, b, rows=width > 1)
