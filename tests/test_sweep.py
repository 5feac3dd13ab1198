"""Measurement sweeps: the inputs they cover, and that they measure a planted error exactly where it is."""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import mpmath
import numpy as np
import pytest

from nnconform.adapters.base import Adapter, NotProvided, Op
from nnconform.conformance.report import records
from nnconform.conformance.sweeps import float32 as sweep_float32
from nnconform.conformance.sweeps import sweep
from nnconform.reference import Reference, ReferenceCache
from nnconform.reference.dtypes import nudge
from nnconform.spec import load_all

SPECS = load_all(["activation"])
REFERENCE = Reference(ReferenceCache(persistent=False))


class Planted(Adapter):
    """relu and sigmoid in NumPy, with one planted error: 1 ULP too large at x = 2 (relu) or x = 1 (sigmoid)."""

    name = "planted"
    version = "test"

    def __init__(self, raise_for: str = "") -> None:
        super().__init__("cpu")
        self.raise_for = raise_for
        self.ops = {"relu": Op(self._relu, "relu"), "sigmoid": Op(self._sigmoid, "sigmoid"),
                    "tanh": Op(self._broken, "tanh"), "softsign": Op(self._missing, "softsign"),
                    "elu": Op(lambda x, alpha: x[:1], "elu")}

    def to_backend(self, a: np.ndarray, dtype: str) -> np.ndarray:
        return np.asarray(a).astype({"bfloat16": ml_dtypes.bfloat16}.get(dtype, dtype))

    def to_numpy(self, t: Any) -> np.ndarray:
        return np.asarray(t)

    @staticmethod
    def _relu(x: np.ndarray) -> np.ndarray:
        y = np.maximum(x, np.zeros_like(x))
        with np.errstate(all="ignore"):
            return np.where(x == 2, np.nextafter(y, np.array(np.inf, dtype=y.dtype)), y) if x.dtype != ml_dtypes.bfloat16 else y

    @staticmethod
    def _sigmoid(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            y = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)
        with np.errstate(all="ignore"):
            return np.where(x == 1, np.nextafter(y, np.array(np.inf, dtype=y.dtype)), y)

    @staticmethod
    def _broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("kernel crashed")

    @staticmethod
    def _missing(x: np.ndarray) -> np.ndarray:
        raise NotProvided("softsign is not offered in this dtype")


def planted() -> Planted:
    return Planted()


def measured(function: str, dtype: str, quantity: str = "value") -> dict[str, Any]:
    return sweep.Sweeper(Planted(), REFERENCE).run(SPECS[function], dtype, quantity).record()


# ---------------------------------------------------------------- what is swept

@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_unary_sweeps_take_every_one_of_the_65536_inputs(dtype: str) -> None:
    _, inputs, grid = sweep.Sweeper(Planted(), REFERENCE).inputs(SPECS["relu"], dtype)
    bits = np.sort(inputs["x"].view(np.uint16))
    assert grid == "exhaustive" and np.array_equal(bits, np.arange(1 << 16))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_grid_spans_subnormal_to_overflow_both_signs_and_the_specials(dtype: str) -> None:
    x = sweep.grid_points(SPECS["softplus"], dtype).astype(np.float64)
    smallest = {"float64": 5e-324, "float32": 2.0**-149}[dtype]
    largest = {"float64": np.finfo(np.float64).max, "float32": float(np.finfo(np.float32).max)}[dtype]
    for v in (smallest, -smallest, largest, -largest, math.inf, -math.inf, 1.0, -1.0):
        assert v in x, v
    assert np.isnan(x).any() and any(v == 0 and math.copysign(1, v) < 0 for v in x)    # NaN and -0.0
    assert np.array_equal(x, sweep.grid_points(SPECS["softplus"], dtype).astype(np.float64), equal_nan=True)


def test_the_grid_holds_every_stability_input_with_three_neighbours_each_side() -> None:
    x = set(sweep.grid_points(SPECS["softplus"], "float32").astype(np.float64).tolist())
    # softplus.yaml names x = 20.5 (torch's threshold region); its float32 neighbours are 20.5 +- k * 2**-19.
    assert {20.5 + k * 2.0**-19 for k in range(-3, 4)} <= x
    assert {nudge(88.8, k, "float32") for k in range(-3, 4)} <= x


def test_losses_optimizers_and_dropout_say_why_they_are_not_swept() -> None:
    everything = load_all()
    assert "measured by the checks' records" in sweep.sweepable(everything["mse"])
    assert "measured by the checks' records" in sweep.sweepable(everything["adam"])
    assert "statistical" in sweep.sweepable(everything["dropout"])
    assert sweep.sweepable(everything["softmax"]) == ""


# ---------------------------------------------------------------- what is measured

def test_a_planted_one_ulp_error_is_found_at_its_input_and_nowhere_else() -> None:
    r = measured("relu", "float16")
    # relu is exact everywhere else; at x = 2 the adapter returns the next float16 above 2, 2 + 2**-9: 1 ULP.
    assert r["max_ulp"] == 1.0 and r["worst"][0]["input_hex"] == (2.0).hex()
    assert r["worst"][0]["got_hex"] == (2.0 + 2.0**-9).hex()
    assert r["histogram"][2] == 1 and sum(r["histogram"][3:]) == 0       # one error in (0.5, 1], none larger
    assert r["points"] == 65536 and r["over_allowance"] == 1             # relu.yaml: 0.5 ULP, i.e. exact
    assert records.validate({**records.run_header(Planted(), ["float16"], "sweeps"), "sweeps": [r]}, "t") is not None


def test_a_smooth_function_is_measured_against_the_exact_value() -> None:
    r = measured("sigmoid", "float32")
    # sigmoid(1) = 1/(1 + e^-1) = 0.7310585786300049 (mpmath, dps=30: 0.731058578630004879251159261327);
    # float32 rounds it to 0x1.7650cc...; the plant returns the next float32: at least 0.5 ULP, at most 1.5.
    at_one = [w for w in r["worst"] if w["input_hex"] == (1.0).hex()]
    assert at_one and 0.5 <= at_one[0]["ulp"] <= 1.5
    exact = float(mpmath.mpf(1) / (1 + mpmath.exp(-1)))
    assert float.fromhex(at_one[0]["expected_hex"]) == float(np.float32(exact))


@pytest.mark.parametrize("function, status, says", [
    ("tanh", "failed", "RuntimeError: kernel crashed"),
    ("softsign", "not provided", "not offered in this dtype"),
    ("elu", "failed", "returned (1,), expected an array of shape"),
])
def test_a_backend_that_raises_or_returns_the_wrong_shape_is_a_result_not_a_crash(function: str, status: str,
                                                                                  says: str) -> None:
    r = measured(function, "float32")
    assert r["status"] == status and says in r["message"]


# ---------------------------------------------------------------- the exhaustive float32 sweep

def test_the_float32_screen_rewrites_what_overflows_or_cancels_in_float64() -> None:
    x = np.array([1000.0, -40.0, 0.5])
    softplus = sweep_float32.screen(SPECS["softplus"], x)
    # softplus(1000) = 1000 + log1p(e^-1000) = 1000 to float64; log1p(exp(1000)) would overflow.
    assert softplus[0] == 1000.0
    gelu = sweep_float32.screen(SPECS["gelu"], np.array([-10.0]))
    # gelu(-10) = -10 * erfc(10/sqrt 2)/2 = -7.619853024160526e-23 (mpmath, dps=50); 1 + erf(-7.07) is 0 in float64.
    assert gelu[0] == pytest.approx(-7.619853024160526e-23, rel=1e-12)


def test_the_float32_sweep_finds_a_planted_error_among_all_inputs_of_its_range() -> None:
    first = int(np.float32(0.875).view(np.uint32))
    r = sweep_float32.run(planted, "sigmoid", jobs=1, first=first, count=1 << 22, progress=False)
    # 2**22 consecutive float32 values from 0.875 (2**21 up to 1, 2**21 from 1 to 1.25) hold x = 1, where the plant is 1 ULP off (or 1.5/0.5:
    # the plant moves the adapter's own rounding of a float64 sigmoid, within 0.5 ULP of exact, by one step).
    assert r["points"] == 1 << 22 and r["unmeasured"] == 0
    assert r["worst"][0]["input_hex"] == (1.0).hex() and 0.5 <= r["max_ulp"] <= 1.5
    assert r["max_ulp_finite"] == r["max_ulp"]                  # no NaN/inf anywhere in this range
    assert r["screen_check"]["screen_differs_from_mpmath"] == 0 and r["screen_check"]["sample"] == 64
    assert sum(r["histogram"]) == 1 << 22


def test_a_range_where_the_adapter_is_exact_shows_no_error() -> None:
    first = int(np.float32(-3.0).view(np.uint32))
    r = sweep_float32.run(planted, "relu", jobs=1, first=first, count=1 << 16, progress=False)
    # relu of a negative float32 is +0 exactly; the plant (x == 2) is not in this range.
    assert r["max_ulp"] == 0.0 and r["histogram"][0] == 1 << 16


def test_monotonicity_is_counted_over_every_pair_of_neighbouring_inputs() -> None:
    # sigmoid.yaml: monotone nondecreasing.  The plant raises f(1) by one float16 step; whether that passes
    # f(next float16 after 1) is worked out here with NumPy (it ties: a tie is not a violation).
    r = measured("sigmoid", "float16")
    x = np.float16(1.0)
    after = np.nextafter(x, np.float16(2))
    f1 = np.nextafter(np.float16(1 / (1 + np.exp(-1.0))), np.float16(1))
    f_after = np.float16(1 / (1 + np.exp(-float(after))))
    assert r["monotone"]["violations"] == int(f1 > f_after)
    assert r["monotone"]["pairs"] == 65536 - 2046 - 2 - 1       # finite inputs (NaNs and +-inf left out), minus one


def test_monotonicity_counts_pairs_against_the_direction_and_skips_ties_and_nonfinite_inputs() -> None:
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, np.nan, np.inf])
    y = np.array([0.0, 0.5, 0.5, 0.25, 1.0, 7.0, -5.0])       # one decrease (0.5 -> 0.25); 0.5, 0.5 is a tie
    r = sweep.monotone_violations(x, y, "nondecreasing")
    assert (r["pairs"], r["violations"]) == (4, 1) and r["first"]["x_hex"] == [(0.0).hex(), (1.0).hex()]
    assert sweep.monotone_violations(x, -y, "nonincreasing")["violations"] == 1


def test_errors_the_spec_condition_number_allows_are_not_counted_beyond_the_allowance() -> None:
    """log_softmax's dominant entry cancels (log_softmax.yaml declares the condition): NumPy returns 0 where the
    exact value is a tiny negative number, far beyond the bare 4-ULP budget, yet within budget x condition."""
    from nnconform.adapters.registry import load
    r = sweep.Sweeper(load("numpy"), REFERENCE).run(SPECS["log_softmax"], "float32", "value").record()
    beyond_budget = sum(r["histogram"][5:9])              # errors above 4 ULP (finite)
    assert r["max_ulp"] > r["budget_ulp"] and beyond_budget > 0
    assert r["over_allowance"] == 0
