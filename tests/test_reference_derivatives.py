"""Every declared derivative agrees with numerical differentiation (mpmath.diff) of the formula.

The derivative formulas are written by hand in the spec files; mpmath.diff differentiates the
value formula numerically at 60 digits, so agreement checks the hand derivation.  Points are
drawn from a seeded generator, 50 or more per function, away from kinks.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from nnconform.reference import Reference
from nnconform.reference import evaluator as E
from nnconform.spec import Spec, load_all

SPECS = load_all(["activation"])   # losses: tests/test_loss_reference.py
REF = Reference()
POINTS = 50
PREC = 2000   # the numerical side evaluates cancelling formulas too: keep ~1,700 good bits


def _scalar_fn(spec: Spec, env: dict, var: str, tree=None):
    fn = E.compile_node(tree if tree is not None else spec.formula)

    def f(v: mpmath.mpf) -> mpmath.mpf:
        local = dict(env)
        local[var] = (mpmath.mpf(v)._mpf_, None)
        out, _ = fn(local, PREC)
        return mpmath.mpf(out)
    return f


def _param_env(spec: Spec) -> dict:
    return {k: E.constant(v, PREC) for k, v in spec.defaults.items() if spec.doc.params[k].kind == "real"}


def _kinks(spec: Spec) -> list[float]:
    env = _param_env(spec)
    return [float(mpmath.mpf(E.compile_node(at)(env, PREC)[0])) for _, at, _ in spec.kink_points]


def _points(spec: Spec, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xs = np.concatenate([rng.normal(0, 3, POINTS - 10), rng.uniform(-20, 20, 10)])
    kinks = _kinks(spec)
    return np.array([x for x in xs if all(abs(x - k) > 1e-3 for k in kinks)] + list(rng.normal(0, 2, 5)))[:POINTS]


ELEMENTWISE = sorted(n for n, s in SPECS.items() if s.shape == "elementwise" and len(s.tensor_inputs) == 1)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_of_x_matches_numerical_derivative(name: str) -> None:
    spec = SPECS[name]
    xs = _points(spec, seed=len(name))
    assert len(xs) >= POINTS
    exact = REF.vjp(spec, "x", {"x": xs}, np.ones_like(xs)).values
    f = _scalar_fn(spec, _param_env(spec), "x")
    with mpmath.workdps(60):
        numeric = [float(mpmath.diff(f, mpmath.mpf(float(x)))) for x in xs]
    np.testing.assert_allclose(exact, numeric, rtol=1e-13, atol=1e-300, err_msg=name)


PARAM_CASES = [(n, p) for n, s in sorted(SPECS.items()) if s.shape == "elementwise" for p in s.differentiable_params]


@pytest.mark.parametrize("name, param", PARAM_CASES)
def test_derivative_of_parameter_matches_numerical_derivative(name: str, param: str) -> None:
    spec = SPECS[name]
    xs = _points(spec, seed=7 * len(name))
    deriv = E.compile_node(spec.derivatives[param])
    yfn = E.compile_node(spec.formula)
    env = _param_env(spec)
    for x in xs:
        point = dict(env, x=(mpmath.mpf(float(x))._mpf_, None))
        point["y"] = yfn(point, PREC)
        declared = mpmath.mpf(deriv(point, PREC)[0])
        g = _scalar_fn(spec, dict(env, x=(mpmath.mpf(float(x))._mpf_, None)), param)
        with mpmath.workdps(60):
            numeric = mpmath.diff(g, mpmath.mpf(env[param][0]))
        assert abs(declared - numeric) <= 1e-13 * max(abs(numeric), mpmath.mpf(1e-300)), (name, param, x)


def test_prelu_derivatives() -> None:
    spec = SPECS["prelu"]
    rng = np.random.default_rng(3)
    x = rng.normal(0, 2, (POINTS, 2))
    w = np.array([0.25, -0.5])
    gx = REF.vjp(spec, "x", {"x": x, "weight": w}, np.ones_like(x)).values
    gw = REF.vjp(spec, "weight", {"x": x, "weight": w}, np.ones_like(x)).values
    fn = E.compile_node(spec.formula)
    with mpmath.workdps(60):
        for i in range(POINTS):
            for c in range(2):
                env = {"x": (mpmath.mpf(float(x[i, c]))._mpf_, None), "weight": (mpmath.mpf(w[c])._mpf_, None)}
                dfx = mpmath.diff(lambda v: mpmath.mpf(fn(dict(env, x=(mpmath.mpf(v)._mpf_, None)), PREC)[0]), x[i, c])
                assert abs(float(dfx) - gx[i, c]) <= 1e-13 * max(abs(gx[i, c]), 1e-300)
        for c in range(2):
            total = mpmath.fsum(mpmath.diff(lambda v: mpmath.mpf(fn({"x": (mpmath.mpf(float(x[i, c]))._mpf_, None),
                                                                       "weight": (mpmath.mpf(v)._mpf_, None)}, PREC)[0]), w[c])
                                for i in range(POINTS))
            assert abs(float(total) - gw[c]) <= 1e-12 * max(abs(gw[c]), 1e-300)


VECTOR = sorted(n for n, s in SPECS.items() if s.shape != "elementwise")


@pytest.mark.parametrize("name", VECTOR)
def test_vector_jacobian_product_matches_numerical_derivative(name: str) -> None:
    # d/dx_i of sum_j g_j y_j(x), numerically, against the spec's VJP formula.
    spec = SPECS[name]
    rng = np.random.default_rng(11)
    rows, width = POINTS, 4
    x = rng.normal(0, 3, (rows, width))
    out_width = width if spec.doc.output == "same" else width // (2 if spec.shape == "grouped" else width)
    g = rng.normal(0, 1, (rows, out_width))
    exact = REF.vjp(spec, "x", {"x": x}, g).values
    fn = E.compile_node(spec.formula)
    for r in range(rows):
        for i in range(width):
            def objective(v: mpmath.mpf, r: int = r, i: int = i) -> mpmath.mpf:
                row = [(mpmath.mpf(float(t))._mpf_, None) for t in x[r]]
                row[i] = (mpmath.mpf(v)._mpf_, None)
                if spec.shape == "grouped":
                    outs = [fn({"x": row[j:j + 2]}, PREC) for j in range(0, width, 2)]
                else:
                    out = fn({"x": row}, PREC)
                    outs = out if isinstance(out, list) else [out]
                return mpmath.fsum(mpmath.mpf(gj) * mpmath.mpf(o[0]) for gj, o in zip(g[r], outs))
            with mpmath.workdps(60):
                numeric = float(mpmath.diff(objective, mpmath.mpf(float(x[r, i]))))
            assert abs(numeric - exact[r, i]) <= 1e-13 * max(abs(numeric), 1e-12), (name, r, i, numeric, exact[r, i])
