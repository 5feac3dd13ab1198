"""The convexity check and the idempotent property: each fails on a planted wrong twin and passes on a correct one.

The expected outcomes follow from the mathematics, not from the code under test: softplus is
convex (its second derivative sigmoid(x) (1 - sigmoid(x)) is positive), so scipy's correctly
rounded-to-within-a-ULP float64 evaluation passes; a threshold at x = 20 that returns x drops
log1p(exp(-20)) = 2.06e-9, about 290,000 ULP of 20 in float64, so it is not convex there (the
same cut-over torch makes).  relu(relu(x)) = relu(x) exactly; a relu that scales x > 0 by 1 + 2^-20
is not idempotent (f(f(x)) - f(x) = 2^-20 x, thousands of ULP).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnconform.adapters.base import Op

from .test_checks_catch_broken_adapters import HandAdapter
from .test_fixed_grids import outcome


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x.astype(np.float64)).astype(x.dtype)


def softplus_with_threshold(x: np.ndarray) -> np.ndarray:
    return np.where(x > 20, x, softplus(x)).astype(x.dtype)


def test_a_convex_function_computed_within_its_budget_is_convex(tmp_path: Path) -> None:
    adapter = HandAdapter({"softplus": Op(softplus, "np.logaddexp", "np.logaddexp(0, {x})")})
    assert outcome(adapter, "softplus", "float64", "convexity", 0, tmp_path) == "pass"


def test_a_threshold_that_steps_down_is_not_convex(tmp_path: Path) -> None:
    adapter = HandAdapter({"softplus": Op(softplus_with_threshold, "thresholded", "t({x})")})
    got = outcome(adapter, "softplus", "float64", "convexity", 0, tmp_path)
    assert got.startswith("softplus[float64] convexity") and "not convex: f(20.0" in got


def test_flushed_results_near_underflow_are_the_subnormal_checks_subject(tmp_path: Path) -> None:
    # float32 softplus(x) = e^x below x = -87.3 is subnormal; flushed to 0, the neighbours of
    # -87.25 are 0 and 1.28e-38, a kink no convex function has.  The subnormal check reports it.
    def flushing(x: np.ndarray) -> np.ndarray:
        y = softplus(x)
        return np.where(np.abs(y) < np.finfo(np.float32).tiny, 0, y).astype(x.dtype)
    adapter = HandAdapter({"softplus": Op(flushing, "flushing", "f({x})")})
    assert outcome(adapter, "softplus", "float32", "convexity", 0, tmp_path) == "pass"


def test_relu_is_idempotent_and_a_scaled_relu_is_not(tmp_path: Path) -> None:
    exact = HandAdapter({"relu": Op(lambda x: np.maximum(x, 0).astype(x.dtype), "np.maximum", "np.maximum({x}, 0)")})
    assert outcome(exact, "relu", "float64", "properties", 0, tmp_path, prop="idempotent") == "pass"

    def nudged(x: np.ndarray) -> np.ndarray:
        y = np.maximum(x, 0).astype(x.dtype)
        return np.where(y > 0, y * (1 + 2.0 ** -20), y).astype(x.dtype)
    wrong = HandAdapter({"relu": Op(nudged, "nudged", "n({x})")})
    got = outcome(wrong, "relu", "float64", "properties", 0, tmp_path, prop="idempotent")
    assert got.startswith("relu[float64] properties idempotent: f(f(x))"), got
