"""The loss reference: values from independent derivations, reductions, and every declared
derivative against a numerical derivative of the loss formula."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from mpmath.libmp import from_float, from_int

from nnconform.reference import LossReference, Reference, ReferenceCache
from nnconform.reference import evaluator as E
from nnconform.reference.losses import split
from nnconform.spec import load_all

SPECS = load_all(["loss"])
LOSSES = LossReference(Reference(ReferenceCache(persistent=False)))
ONES3 = np.ones(3)


def value(name: str, reduction: str = "none", dtype: str = "float64", params: dict | None = None, **inputs: object) -> np.ndarray:
    return LOSSES.value(SPECS[name], {k: np.asarray(v) for k, v in inputs.items()}, params, reduction, dtype).values


def test_cross_entropy_is_logsumexp_minus_target_logit() -> None:
    # log(e + e^2 + e^3) - 3 = log1p(e^-1 + e^-2), computed with mpmath at 60 digits.
    mpmath.mp.dps = 60
    exact = float(mpmath.log1p(mpmath.e ** -1 + mpmath.e ** -2))
    got = value("cross_entropy", input=[[1.0, 2.0, 3.0]], target=np.array([2]), weight=ONES3)
    assert got.tolist() == [exact]


def test_weighted_mean_divides_by_the_weights_of_the_targets() -> None:
    # Uniform logits: each sample's loss is w[t] log 3; the mean divides by sum w[t] = 2 + 0.5,
    # so it is log 3 whatever the weights (torch's definition).
    got = value("cross_entropy", "mean", input=np.zeros((2, 3)), target=np.array([0, 2]), weight=np.array([2.0, 1.0, 0.5]))
    assert float(got) == math.log(3)
    summed = value("cross_entropy", "sum", input=np.zeros((2, 3)), target=np.array([0, 2]), weight=np.array([2.0, 1.0, 0.5]))
    assert float(summed) == float(mpmath.mpf(2.5) * mpmath.log(3))


def test_ignored_samples_leave_sum_mean_and_count() -> None:
    # Sample 1 is ignored: none gives 0 there; mean = loss of sample 0 alone = log(3).
    inputs = dict(input=np.zeros((2, 3)), target=np.array([0, 1]), weight=ONES3)
    assert value("cross_entropy", "none", params={"ignore_index": 1}, **inputs).tolist() == [math.log(3), 0.0]
    assert float(value("cross_entropy", "mean", params={"ignore_index": 1}, **inputs)) == math.log(3)
    # every sample ignored: the mean is 0/0
    assert math.isnan(float(value("cross_entropy", "mean", params={"ignore_index": 0},
                                  input=np.zeros((1, 3)), target=np.array([0]), weight=ONES3)))


def test_label_smoothing_of_uniform_logits_changes_nothing() -> None:
    # every class has log-probability -log 3, so any target distribution costs log 3
    got = value("cross_entropy", params={"label_smoothing": 0.25}, input=np.zeros((1, 3)), target=np.array([1]), weight=ONES3)
    assert got.tolist() == [math.log(3)]


def test_reductions_of_mse_are_exact_sums() -> None:
    # (1 - 0)^2 + (2 - 0)^2 = 5; mean over 2 elements 2.5; nothing is rounded
    assert value("mse", "none", input=[1.0, 2.0], target=[0.0, 0.0]).tolist() == [1.0, 4.0]
    assert float(value("mse", "sum", input=[1.0, 2.0], target=[0.0, 0.0])) == 5.0
    assert float(value("mse", "mean", input=[1.0, 2.0], target=[0.0, 0.0])) == 2.5


def test_empty_batch_sum_is_zero_and_mean_is_nan() -> None:
    assert float(value("mse", "sum", input=np.zeros(0), target=np.zeros(0))) == 0.0
    assert math.isnan(float(value("mse", "mean", input=np.zeros(0), target=np.zeros(0))))


def test_bce_with_logits_keeps_the_tiny_loss() -> None:
    # t = 1, x = 40: loss = softplus(-40) = log1p(exp(-40)); mpmath at 60 digits: 4.248354255291589e-18
    mpmath.mp.dps = 60
    exact = float(mpmath.log1p(mpmath.exp(-40)))
    assert value("binary_cross_entropy_with_logits", input=[40.0], target=[1.0]).tolist() == [exact]


def test_bce_conventions_at_zero_and_one() -> None:
    # 0 log 0 = 0 (confident and right); log 0 = -inf (confident and wrong)
    got = value("binary_cross_entropy", input=[0.0, 1.0, 0.0, 1.0], target=[0.0, 1.0, 1.0, 0.0])
    assert got.tolist() == [0.0, 0.0, math.inf, math.inf]


def test_kl_div_zero_target_contributes_nothing() -> None:
    # t = (0, 1), log q = (-inf, 0): 0 * (log 0 - (-inf)) is taken as 0; 1 * (0 - 0) = 0
    assert value("kl_div", input=[[-math.inf, 0.0]], target=[[0.0, 1.0]]).tolist() == [0.0]


def test_float32_rounding_of_a_reduced_loss_is_correct() -> None:
    # sum of (0.1 - 0)^2 three times with inputs exactly float32(0.1) = 13421773 * 2**-27:
    # 3 * 13421773**2 * 2**-54, rounded once to float32 (Fraction arithmetic, not the reference).
    from fractions import Fraction
    x = float(np.float32(0.1))
    exact = 3 * Fraction(x) ** 2
    assert float(value("mse", "sum", "float32", input=np.full(3, x), target=np.zeros(3))) == float(np.float32(float(exact)))


# ---------------------------------------------------------------- derivatives

def _per_sample(spec_name: str, item: dict, params: dict, wrt: str, j: int | None) -> object:
    """The loss of one sample as a function of one entry, evaluated by the formula (not the derivative)."""
    spec = SPECS[spec_name]
    fn = E.compile_node(spec.formula)
    width = len(item[spec.tensor_inputs[0]]) if spec.shape == "vector" else 1

    def f(v: mpmath.mpf) -> mpmath.mpf:
        prec = 2000                     # far above the perturbation mpmath.diff makes at 200 bits
        env = {}
        for name, val in item.items():
            if isinstance(val, int):
                env[name] = (from_int(val), None)
            elif isinstance(val, (list, np.ndarray)):
                env[name] = [(from_float(float(e)), None) for e in val]
            else:
                env[name] = (from_float(float(val)), None)
        if j is None:
            env[wrt] = (mpmath.mpf(v)._mpf_, None)
        else:
            env[wrt][j] = (mpmath.mpf(v)._mpf_, None)
        for k, p in params.items():
            env[k] = (from_float(float(p)), None) if spec.doc.params[k].kind == "real" else (from_int(int(p)), None)
        env["width"] = (from_int(width), None)
        return mpmath.mpf(fn(env, prec)[0])
    return f


def _sample_inputs(name: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    spec = SPECS[name]
    out: dict[str, np.ndarray] = {}
    for n, s in spec.doc.inputs.items():
        dom = spec.domain(n)
        if s.kind == "class_index":
            out[n] = rng.integers(0, 4, 3)
        elif s.kind == "class_weight":
            out[n] = rng.uniform(0.5, 2.0, 4)
        else:
            lo, hi = max(dom.lo, -3.0), min(dom.hi, 3.0)
            shape = (3, 4) if spec.shape == "vector" else (6,)
            out[n] = rng.uniform(lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo), shape)
    return out


DERIVS = [(name, wrt) for name, spec in sorted(SPECS.items()) for wrt in spec.differentiable_inputs]


@pytest.mark.parametrize("name, wrt", DERIVS, ids=[f"{n} d/d{w}" for n, w in DERIVS])
def test_declared_derivative_matches_numerical_derivative(name: str, wrt: str) -> None:
    spec = SPECS[name]
    rng = np.random.default_rng(abs(hash((name, wrt))) % 2**32)
    params = {k: v for k, v in spec.default_params().items()}
    if "label_smoothing" in params:
        params["label_smoothing"] = 0.2
    if "pos_weight" in params:
        params["pos_weight"] = 1.5
    inputs = _sample_inputs(name, rng)
    g = np.ones(split(spec, inputs, params).out_shape)
    got = LOSSES.vjp(spec, wrt, inputs, g, params, "none", "float64").values
    samples = split(spec, inputs, params)
    mpmath.mp.prec = 200
    for i, item in enumerate(samples.items):
        entries = range(len(item[wrt])) if isinstance(item[wrt], (list, np.ndarray)) else [None]
        for j in entries:
            x0 = item[wrt][j] if j is not None else item[wrt]
            numeric = mpmath.diff(_per_sample(name, item, params, wrt, j), mpmath.mpf(float(x0)))
            mine = got.reshape(len(samples.items), -1)[i, 0 if j is None else j]
            assert float(numeric) == pytest.approx(float(mine), rel=1e-12, abs=1e-300), (name, wrt, i, j)
