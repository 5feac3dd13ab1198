"""The optimizer reference against independent sources: closed forms derived by hand, and
plain mpmath transcriptions of each paper's algorithm that share no code with the
spec files or the formula evaluator."""

from __future__ import annotations

from typing import Callable

import mpmath
import numpy as np
import pytest

from nnconform.reference import OptimizerReference, Problem, running_error_bound
from nnconform.spec import load_all

from .independent import round_to

SPECS = load_all(["optimizer"])
REF = OptimizerReference()
mp = mpmath.mp
Step = Callable[[mpmath.mpf, mpmath.mpf, mpmath.mpf, int, dict], mpmath.mpf]


# ---------------------------------------------------------------- closed forms, by hand

def test_sgd_on_a_quadratic_is_a_geometric_sequence() -> None:
    # Gradient h (p - c): p_t - c = (1 - lr h)^t (p_0 - c).  With lr = 0.25, h = 2, c = 1, p_0 = 3:
    # p_t = 1 + 2 * 0.5^t, exactly representable, so every step is exact.
    problem = Problem(np.array([3.0]), (0.25,) * 10, curvature=np.array([2.0]), center=np.array([1.0]))
    traj = REF.trajectory(SPECS["sgd"], {"lr": 0.25}, problem, "float64")
    assert traj.values[:, 0].tolist() == [1 + 2 * 0.5 ** t for t in range(1, 11)]


def test_first_adam_step_is_lr_times_the_sign_of_the_gradient_damped_by_eps() -> None:
    # Step 1: m_hat = g, v_hat = g^2, so p_1 = p_0 - lr g / (|g| + eps) (Kingma and Ba, section 3).
    # With g = 1e-6, eps = 1e-8, lr = 1e-3: p_1 = 1 - 1e-3 / 1.01, computed with mpmath at 60 digits.
    problem = Problem(np.array([1.0]), (1e-3,), grads=np.array([[1e-6]]))
    traj = REF.trajectory(SPECS["adam"], {"lr": 1e-3}, problem, "float64")
    with mpmath.workdps(60):
        g = mpmath.mpf(1e-6)
        expected = 1 - mpmath.mpf(1e-3) * g / (abs(g) + mpmath.mpf("1e-8"))
    assert traj.values[0, 0] == round_to(expected, "float64")


def test_momentum_conventions_agree_under_a_constant_learning_rate() -> None:
    # v' = mu v - lr g, p' = p + v'  and  b' = mu b + g, p' = p - lr b'  are the same sequence when
    # lr is constant (v = -lr b by induction); they part as soon as lr changes.
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(12, 3))
    p0 = np.array([1.0, -2.0, 0.5])
    for name in ("sgd_momentum", "sgd_nesterov"):
        same = [REF.trajectory(SPECS[name], {"lr_in_velocity": f}, Problem(p0, (0.01,) * 12, grads=grads), "float64")
                for f in (0, 1)]
        np.testing.assert_array_equal(same[0].values, same[1].values)
        lrs = tuple(0.01 * (1 + t) for t in range(12))
        apart = [REF.trajectory(SPECS[name], {"lr_in_velocity": f}, Problem(p0, lrs, grads=grads), "float64")
                 for f in (0, 1)]
        assert not np.array_equal(apart[0].values, apart[1].values)


def test_zero_gradients_leave_every_optimizer_at_rest() -> None:
    # With g = 0 from the start every moment stays 0 and every step is 0 / (0 + eps) = 0 (adagrad's
    # accumulator starts at 0 too); only decoupled decay (adamw, weight_decay 0.01) moves p, by the
    # factor (1 - lr weight_decay) per step.
    problem = Problem(np.array([1.0, -3.0]), (1e-3,) * 5, grads=np.zeros((5, 2)))
    for name, spec in SPECS.items():
        traj = REF.trajectory(spec, None, problem, "float64")
        if name == "adamw":
            with mpmath.workdps(50):
                shrink = (1 - mpmath.mpf(1e-3) * mpmath.mpf(0.01)) ** 5
                assert traj.values[-1, 0] == round_to(shrink, "float64")
        else:
            assert traj.values[-1].tolist() == [1.0, -3.0], name


# ---------------------------------------------------------------- the papers' algorithms, transcribed

def sgd(p, g, lr, t, s, *, weight_decay):  # noqa: ANN001, ANN202 - mpmath scalars throughout
    return p - lr * (g + weight_decay * p)


def heavy_ball(nesterov: bool) -> Step:
    def step(p, g, lr, t, s, *, momentum, weight_decay, **_):  # noqa: ANN001, ANN202
        g = g + weight_decay * p
        s["v"] = momentum * s.get("v", 0) - lr * g               # Sutskever et al. 2013, eq. 1
        return p + momentum * s["v"] - lr * g if nesterov else p + s["v"]
    return step


def adagrad(p, g, lr, t, s, *, eps, initial_accumulator, weight_decay, **_):  # noqa: ANN001, ANN202
    g = g + weight_decay * p
    s["G"] = s.get("G", initial_accumulator) + g * g             # Duchi et al. 2011: diag(G)^(1/2) + delta
    return p - lr * g / (mpmath.sqrt(s["G"]) + eps)


def rmsprop(centered: bool) -> Step:
    def step(p, g, lr, t, s, *, rho, eps, weight_decay, **_):  # noqa: ANN001, ANN202
        g = g + weight_decay * p
        s["ms"] = rho * s.get("ms", 0) + (1 - rho) * g ** 2      # Tieleman and Hinton, lecture 6e
        s["mg"] = rho * s.get("mg", 0) + (1 - rho) * g           # Graves 2013, eq. 39
        var = s["ms"] - s["mg"] ** 2 if centered else s["ms"]
        return p - lr * g / (mpmath.sqrt(var) + eps)
    return step


def adam(amsgrad: bool, decoupled: bool) -> Step:
    def step(p, g, lr, t, s, *, beta1, beta2, eps, weight_decay, **_):  # noqa: ANN001, ANN202
        if not decoupled:
            g = g + weight_decay * p
        s["m"] = beta1 * s.get("m", 0) + (1 - beta1) * g         # Kingma and Ba 2015, Algorithm 1
        s["v"] = beta2 * s.get("v", 0) + (1 - beta2) * g ** 2
        s["vmax"] = max(s.get("vmax", 0), s["v"])               # Reddi et al. 2018, Algorithm 2
        v = s["vmax"] if amsgrad else s["v"]
        update = (s["m"] / (1 - beta1 ** t)) / (mpmath.sqrt(v / (1 - beta2 ** t)) + eps)
        return p - lr * (update + weight_decay * p) if decoupled else p - lr * update   # Loshchilov and Hutter
    return step


TRANSCRIPTIONS: dict[str, Step] = {
    "sgd": sgd, "sgd_momentum": heavy_ball(False), "sgd_nesterov": heavy_ball(True), "adagrad": adagrad,
    "rmsprop": rmsprop(False), "rmsprop_centered": rmsprop(True), "adam": adam(False, False),
    "amsgrad": adam(True, False), "adamw": adam(False, True),
}


def transcribed(name: str, hyper: dict, problem: Problem, dps: int = 80) -> list[list[mpmath.mpf]]:
    with mpmath.workdps(dps):
        # A hyperparameter at its default is the spec's decimal, exactly (beta1 = 0.9, not float64(0.9)).
        spec = SPECS[name]
        h = {k: mpmath.mpf(spec.defaults[k] if float(v) == float(spec.defaults[k]) else v) for k, v in hyper.items()
             if spec.doc.params[k].kind == "real" and k != "lr"}
        rows, states = [], [dict() for _ in problem.initial]
        p = [mpmath.mpf(float(x)) for x in problem.initial]
        for t, lr in enumerate(problem.lrs, start=1):
            p = [TRANSCRIPTIONS[name](p[i], mpmath.mpf(float(problem.grads[t - 1][i])), mpmath.mpf(lr), t, states[i], **h)
                 for i in range(len(p))]
            rows.append(list(p))
        return rows


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(TRANSCRIPTIONS))
def test_reference_follows_the_papers_over_twelve_steps(name: str, dtype: str) -> None:
    rng = np.random.default_rng(sorted(TRANSCRIPTIONS).index(name))
    # Gradients of every size and sign, including exact zeros, from the dtype's own numbers.
    grads = rng.choice([1e-6, 1e-3, 1.0, 10.0, 3e3], size=(12, 4)) * rng.choice([-1.0, 0.0, 1.0], size=(12, 4))
    grads = grads.astype(dtype).astype(np.float64)
    problem = Problem(np.array([1.0, -0.5, 2.0, 0.0]), tuple(0.01 * (1 + 0.5 * np.sin(t)) for t in range(12)), grads=grads)
    spec = SPECS[name]
    hyper = {**spec.default_params(), "weight_decay": 0.01}
    traj = REF.trajectory(spec, hyper, problem, dtype)
    expected = [[round_to(v, dtype) for v in row] for row in transcribed(name, hyper, problem)]
    assert not traj.any_uncertain
    np.testing.assert_array_equal(traj.values, np.asarray(expected))


# ---------------------------------------------------------------- the tolerance model

def faithful_float32_adam(problem: Problem, lr: float, beta1: float, beta2: float, eps: float) -> np.ndarray:
    """Adam evaluated in float32 in exactly the spec's order, hyperparameters rounded to float32."""
    f = np.float32
    b1, b2, e = f(beta1), f(beta2), f(eps)
    p = problem.initial.astype(f)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    rows = []
    for t, g in enumerate(problem.grads.astype(f), start=1):
        m = b1 * m + (f(1) - b1) * g
        v = b2 * v + (f(1) - b2) * g * g
        p = p - f(lr) * (m / (f(1) - b1 ** f(t))) / (np.sqrt(v / (f(1) - b2 ** f(t))) + e)
        rows.append(p.astype(np.float64))
    return np.asarray(rows)


@pytest.mark.parametrize("seed", range(6))
def test_running_bound_covers_a_faithful_float32_evaluation(seed: int) -> None:
    # The bound is of the spec's own order in the dtype: that order, run in float32, must stay
    # inside it (factor 1) at every step, or the bound is not a bound.
    rng = np.random.default_rng(seed)
    grads = (rng.normal(size=(12, 4)) * 10.0 ** rng.integers(-6, 4, size=(12, 4))).astype(np.float32).astype(float)
    beta2 = float(rng.choice([0.999, 0.9999, 0.5]))
    problem = Problem(rng.normal(size=4).astype(np.float32).astype(float), (0.01,) * 12, grads=grads)
    hyper = {"lr": 0.01, "beta1": 0.9, "beta2": beta2, "eps": 1e-8}
    exact = REF.trajectory(SPECS["adam"], hyper, problem, "float64").nearest
    bound = running_error_bound(SPECS["adam"], hyper, problem, "float32")
    got = faithful_float32_adam(problem, **hyper)
    assert np.all(np.abs(got - exact) <= bound)


def test_running_bound_grows_with_the_steps_and_with_the_dtype() -> None:
    problem = Problem(np.array([1.0, -1.0]), (0.01,) * 12, grads=np.tile([[0.3, -0.7]], (12, 1)))
    b64 = running_error_bound(SPECS["adam"], None, problem, "float64")
    b32 = running_error_bound(SPECS["adam"], None, problem, "float32")
    assert np.all(np.diff(b64, axis=0) >= 0)
    assert np.all(b32 > b64 * 2.0 ** 28)      # float32's unit roundoff is 2^29 times float64's
