"""The reference's defects found against arb (../shared/reviews/reference.md), each as its reproducer.

Expected values are the review's, settled there with python-flint's arb at 1,024 to 2,048 bits
or by the exact limit plus the sign of the first-order term; each derivation is repeated in a
comment.  The reference must return the correctly rounded value, or say "uncertain": never the
neighbour on the wrong side of a midpoint, and never the sign of its noise for a zero.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mpmath.libmp import from_man_exp, mpf_cmp, mpf_sub

from nnconform.reference import LossReference, Reference, ReferenceCache
from nnconform.reference import evaluator as E
from nnconform.spec import load_all, parse_document

SPECS = load_all()
REF = Reference(ReferenceCache(persistent=False))     # no cache, no shipped tables: the evaluator itself


def hexes(a: np.ndarray) -> list[str]:
    return [float(v).hex() for v in np.asarray(a, dtype=np.float64).ravel()]


# ---------------------------------------------------------------- D1: outward rounding that was not outward

def test_radd_rounds_down_below_a_small_negative_term_above_the_big_operands_last_bit() -> None:
    # 1 + 2^-250 - 2^-200 lies below 1; its floor at 112 bits is 1 - 2^-112.  The old stand-in
    # replaced -2^-200 by a term below 2^-250 and rounded down to 1, above the exact sum.
    big, small = from_man_exp((1 << 250) + 1, -250), from_man_exp(-1, -200)
    floor = E.radd(big, small, 112, "f")
    assert mpf_cmp(floor, from_man_exp(1, 0)) < 0
    assert floor == mpf_sub(from_man_exp(1, 0), from_man_exp(1, -112))


@pytest.mark.parametrize("function, x, g, expected", [
    # limit 2 - 2^-53 (a midpoint), first-order term (sum g / 4) e^-500 < 0: the lower neighbour
    ("log_softmax", [500.0, 500.0, 0.0], [1.0, -3.0, 2.0 ** -52], "0x1.fffffffffffffp+0"),
    # limit 1/4 + 2^-55 (a midpoint), first-order term e^-1000 (g_1 - g_2) / 4 > 0: the upper neighbour
    ("softmax", [1000.0, 1000.0, 0.0], [1.0, -2.0 ** -53, -1.0], "0x1.0000000000001p-2"),
    # g s_0 with g = 3 x 2^-1074 and s_0 = 1/2 - e^-500/4: below 1.5 subnormal units, so 1 unit
    ("logsumexp", [500.0, 500.0, 0.0], [3 * 2.0 ** -1074], "0x0.0000000000001p-1022"),
])
def test_a_row_vjp_an_exponentially_small_term_from_a_midpoint_is_decided(function: str, x: list[float], g: list[float],
                                                                          expected: str) -> None:
    got = REF.vjp(SPECS[function], "x", {"x": np.array([x])}, np.array([g]))
    assert not got.uncertain[0, 0] and hexes(got.values)[0] == expected


# ---------------------------------------------------------------- part 4: ties and midpoints, generated

def midpoint_cases() -> list[tuple[float, list[float], str]]:
    """Rows [M, M, M - G] and cotangents whose log_softmax VJP at entry 0 tends to the midpoint
    2 - 2^-53, with a first-order term (sum g / 4) e^-G of either sign.

    VJP_0 = g_0 - s_0 sum(g), s_0 = 1 / (2 + e^-G) = 1/2 - e^-G / 4 + O(e^-2G), so
    VJP_0 = (g_0 - g_1 - g_2) / 2 + (sum g / 4) e^-G: with g = [1, -3, 2^-52] the limit is
    2 - 2^-53 and sum g < 0 (rounds to 0x1.fffffffffffffp+0); with g = [5, 1, 2^-52] the limit is
    the same and sum g > 0 (rounds to 0x1p+1).
    """
    out = []
    for gap in (60.0, 300.0, 1000.0, 3000.0, 1e5, 1e30):      # at 20 nats the first-order term is not small
        for g, expected in (([1.0, -3.0, 2.0 ** -52], "0x1.fffffffffffffp+0"), ([5.0, 1.0, 2.0 ** -52], "0x1.0000000000000p+1")):
            out.append((gap, g, expected))
    return out


@pytest.mark.parametrize("gap, g, expected", midpoint_cases())
def test_a_tied_row_never_rounds_to_the_wrong_side_of_a_midpoint(gap: float, g: list[float], expected: str) -> None:
    m = 700.0
    got = REF.vjp(SPECS["log_softmax"], "x", {"x": np.array([[m, m, m - gap]])}, np.array([g]))
    if gap <= 3000:        # e^-3000 is 4,329 bits below the midpoint: within the reference's precision
        assert not got.uncertain[0, 0] and hexes(got.values)[0] == expected
    else:                  # beyond it the reference may decline, but never guess
        assert got.uncertain[0, 0] or hexes(got.values)[0] == expected


# ---------------------------------------------------------------- D2: the sign of zero

@pytest.mark.parametrize("x, dtype", [(-41.3, "float64"), (-1e4, "float64"), (-1.7e308, "float64"), (-16.3, "float32"),
                                      (-18.875, "bfloat16"), (-9.8125, "float16"), (-830472192.0, "bfloat16")])
def test_gelu_far_left_is_negative_zero(x: float, dtype: str) -> None:
    # gelu(x) = x Phi(x) < 0 for every x < 0; here it is below half the smallest subnormal.
    got = REF.value(SPECS["gelu"], {"x": np.array([x])}, None, dtype)
    assert not got.uncertain[0] and got.values[0] == 0 and np.signbit(got.values[0])


@pytest.mark.parametrize("x, dtype", [(-830472192.0, "bfloat16"), (-1e4, "float64"), (-50.0, "float32")])
def test_gelu_derivative_far_left_is_negative_zero(x: float, dtype: str) -> None:
    # gelu'(x) = Phi(x) + x phi(x), and Phi(x) < phi(x) / |x| for x < 0, so gelu'(x) < 0 there.
    got = REF.vjp(SPECS["gelu"], "x", {"x": np.array([x])}, np.array([1.0]), None, dtype)
    assert not got.uncertain[0] and got.values[0] == 0 and np.signbit(got.values[0])


def test_the_dominant_log_softmax_entry_of_a_row_with_far_entries_is_negative_zero() -> None:
    # log_softmax_0 of [0, -1000] is -log1p(e^-1000) = -5.1e-435 < 0: -0.0 in float64.
    got = REF.value(SPECS["log_softmax"], {"x": np.array([[0.0, -1000.0]])})
    assert not got.uncertain[0, 0] and got.values[0, 0] == 0 and np.signbit(got.values[0, 0])


def test_an_exact_zero_is_positive_zero() -> None:
    # mse's derivative 2 (input - target) at input = target = 1.5 is 0 exactly: +0.0, as IEEE's x - x gives it.
    got = LossReference(REF).vjp(SPECS["mse"], "input", {"input": np.array([1.5]), "target": np.array([1.5])}, np.array([1.0]))
    assert not got.uncertain.any() and got.values[0] == 0 and not np.signbit(got.values[0])


def test_a_zero_only_an_identity_proves_is_uncertain_never_a_signed_guess() -> None:
    # softmax's VJP with a constant cotangent, s (g - <g, s>), is 0 because sum(s) = 1, which no
    # interval evaluation proves: s is inexact.  An earlier rule gave +0.0 to any straddle at the
    # last precision, and with it +0.0 to log_softmax's dominant entry of [1e308, -1e308], which
    # is -log1p(e^-2e308) < 0 (the arb tier found that; tests/test_reference_tiers.py).
    got = REF.vjp(SPECS["softmax"], "x", {"x": np.array([[0.5, -3.0, 2.0]])}, np.array([[0.75, 0.75, 0.75]]))
    assert got.uncertain.all()
    dominant = REF.value(SPECS["log_softmax"], {"x": np.array([[1e308, -1e308]])})
    assert dominant.uncertain[0, 0] or (dominant.values[0, 0] == 0 and np.signbit(dominant.values[0, 0]))


# ---------------------------------------------------------------- D3: decidable cases decided

@pytest.mark.parametrize("function", ["gelu", "silu"])
@pytest.mark.parametrize("dtype, unit", [("float64", 2.0 ** -1074), ("float32", 2.0 ** -149)])
def test_a_subnormal_input_whose_half_is_a_midpoint_is_decided(function: str, dtype: str, unit: float) -> None:
    # gelu(x) = x/2 + x^2/sqrt(2 pi) + ..., silu(x) = x/2 + x^2/4 + ...: at x = 3 units, x/2 = 1.5
    # units is a midpoint and the positive x^2 term puts the value above it: 2 units.
    got = REF.value(SPECS[function], {"x": np.array([3 * unit])}, None, dtype)
    assert not got.uncertain[0] and got.values[0] == 2 * unit


# ---------------------------------------------------------------- D4: a domain error, not a crash

def test_log1p_far_below_minus_one_is_nan_not_a_crash() -> None:
    # log1p(x) for x < -1 has no real value (IEEE: NaN); mpmath raised ComplexResult for x <= -2^92.
    spec = parse_document({"name": "log1p_only", "family": "activation", "summary": "log1p", "formula": "log1p(x)",
                           "inputs": {"x": {"kind": "tensor"}}, "derivatives": {"x": "1 / (1 + x)"},
                           "tolerance": {d: {"ulp": 1, "gradient_ulp": 1} for d in ("float64", "float32", "float16", "bfloat16")}
                           | {"why": "test"}, "sources": ["test"]}, "log1p_only.yaml")
    got = REF.value(spec, {"x": np.array([-np.finfo(np.float64).max, -(2.0 ** 93), -2.0, -0.5])})
    assert np.isnan(got.values[:3]).all() and got.values[3] == math.log1p(-0.5)


# ---------------------------------------------------------------- D5: constants are the spec's decimals

def test_selu_runs_with_the_specs_decimal_constants() -> None:
    # alpha and scale are 32-digit decimals in spec/activations/selu.yaml; with their float64
    # roundings the correctly rounded value at this input is -0x1.c212cc640f030p+0 instead.
    x = np.array([float.fromhex("-0x1.4b7b0cf216cbep+5")])
    for params in (None, SPECS["selu"].default_params()):
        got = REF.value(SPECS["selu"], {"x": x}, params, "float64")
        assert hexes(got.values) == ["-0x1.c212cc640f031p+0"]


def test_the_default_given_as_a_float_and_as_nothing_is_one_cache_key() -> None:
    ref = Reference(ReferenceCache(persistent=False))
    x = np.array([0.5, -0.25])
    ref.value(SPECS["softplus"], {"x": x}, None)
    ref.value(SPECS["softplus"], {"x": x}, SPECS["softplus"].default_params())
    assert len(ref.cache.tables) == 1


# ---------------------------------------------------------------- results of another evaluator are never read

def test_a_shipped_table_of_another_reference_version_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnconform.reference import shipped
    spec = SPECS["sigmoid"]
    ref = Reference(ReferenceCache(persistent=False))
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    ref.value(spec, {"x": x}, None, "float16")
    ((key, _),) = ref.cache.tables.items()
    assert shipped.load(key) is not None                  # this code's table
    monkeypatch.setattr(shipped, "code_version", lambda: "another-evaluator")
    assert shipped.load(key) is None


def test_the_cache_under_nnconform_cache_dir_is_keyed_by_the_code_version(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from nnconform.reference.cache import default_directory
    from nnconform.reference.version import code_version
    monkeypatch.setenv("NNCONFORM_CACHE_DIR", str(tmp_path))
    assert default_directory() == tmp_path / f"reference-{code_version()}"
