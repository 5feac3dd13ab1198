"""Exact optimizer trajectories: N steps of a spec's update equations in mpmath.

The steps are driven either by a given sequence of gradients or by a quadratic
objective ``sum(curvature * (param - center)**2) / 2``, whose gradient comes
from the current (exact) parameters.  Every value carries the evaluator's
rigorous error bound through all steps; the parameters after each step are
certified to the target dtype, at doubled precision until they are, and left
uncertain (never guessed) where the precision cap is reached.

Beside the exact values, `running_error_bound` gives what a backend computing
in the dtype may legitimately be off by: the first-order running error bound
of the spec's own evaluation order (Higham, Accuracy and Stability of Numerical
Algorithms, 2002, section 3.3), accumulated over the steps.  The spec's
tolerance is a factor on it (see docs/optimizers.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping

import numpy as np
from mpmath.libmp import from_float, from_int

from nnconform.spec import OptimizerSpec
from nnconform.spec import formula as F

from . import evaluator as E
from .dtypes import info, round_mpf
from .engine import MAX_PRECISION, certify, with_defaults

ParamValue = float | int | str
UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24}
# The smallest subnormal: with gradual underflow a rounded result is off by at most u |result|
# plus half of it (Higham 2002, section 2.1), and dividing by a small eps amplifies that.  (Half
# of float64's is not a float64, so the whole one stands for it.)
UNDERFLOW = {"float64": 2.0 ** -1074, "float32": 2.0 ** -149}


@dataclass(frozen=True)
class Problem:
    """What drives the steps.  Exactly one of `grads` and (`curvature`, `center`) is set."""

    initial: np.ndarray                     # (n,) values representable in the dtype
    lrs: tuple[float, ...]                  # one learning rate per step
    grads: np.ndarray | None = None         # (steps, n)
    curvature: np.ndarray | None = None     # (n,) > 0
    center: np.ndarray | None = None        # (n,)

    @property
    def steps(self) -> int:
        return len(self.lrs)

    def objective_gradient(self, param: np.ndarray) -> np.ndarray:
        """The gradient a backend gets, computed in the parameters' own dtype."""
        assert self.curvature is not None and self.center is not None
        dt = param.dtype
        return (self.curvature.astype(dt) * (param - self.center.astype(dt))).astype(dt)


@dataclass(frozen=True)
class Trajectory:
    values: np.ndarray       # (steps, n): the parameters after each step, rounded to the dtype; NaN where uncertain
    uncertain: np.ndarray    # (steps, n) bool
    nearest: np.ndarray      # (steps, n): the exact values rounded to float64 (for error measures)

    @property
    def any_uncertain(self) -> bool:
        return bool(self.uncertain.any())


def hyperparameters(spec: OptimizerSpec, params: Mapping[str, ParamValue] | None) -> dict[str, ParamValue]:
    return with_defaults(spec, params)


def _scalar(value: ParamValue, prec: int) -> E.Scalar:
    if isinstance(value, str):
        return E.constant(value.strip(), prec)
    return from_float(float(value)), None


class OptimizerReference:
    def __init__(self, max_precision: int = MAX_PRECISION) -> None:
        self.max_precision = max_precision
        self._compiled: dict[tuple[str, str], tuple[list[tuple[str, E.Compiled]], dict[str, E.Compiled]]] = {}

    def _program(self, spec: OptimizerSpec) -> tuple[list[tuple[str, E.Compiled]], dict[str, E.Compiled]]:
        key = (spec.name, spec.fingerprint)
        if key not in self._compiled:
            self._compiled[key] = ([(t, E.compile_node(n)) for t, n in spec.step],
                                   {s: E.compile_node(n) for s, n in spec.initial.items()})
        return self._compiled[key]

    def trajectory(self, spec: OptimizerSpec, params: Mapping[str, ParamValue] | None, problem: Problem,
                   dtype: str) -> Trajectory:
        dt, f64 = info(dtype), info("float64")
        hyper = hyperparameters(spec, params)
        prec = dt.precision + 40
        while True:
            try:
                outs = self._run(spec, hyper, problem, prec)
                certified = [[certify(v, e, dt, final=prec >= self.max_precision) for v, e in row] for row in outs]
                done = all(c is not None for row in certified for c in row)
            except E.NeedPrecision:
                outs, certified, done = None, None, False
            except E.DomainError:
                shape = (problem.steps, len(problem.initial))
                nan = np.full(shape, math.nan)
                return Trajectory(nan, np.zeros(shape, bool), nan)
            if done or prec >= self.max_precision:
                break
            prec *= 2
        shape = (problem.steps, len(problem.initial))
        if certified is None or outs is None:
            return Trajectory(np.full(shape, math.nan), np.ones(shape, bool), np.full(shape, math.nan))
        values = np.array([[math.nan if c is None else c for c in row] for row in certified], dtype=np.float64)
        uncertain = np.array([[c is None for c in row] for row in certified])
        nearest = np.array([[round_mpf(v, f64) for v, _ in row] for row in outs], dtype=np.float64)
        return Trajectory(values, uncertain, nearest)

    def _run(self, spec: OptimizerSpec, hyper: Mapping[str, ParamValue], problem: Problem,
             prec: int) -> list[list[E.Scalar]]:
        program, initial = self._program(spec)
        base: dict[str, E.Scalar] = {k: _scalar(v, prec) for k, v in hyper.items()}
        n = len(problem.initial)
        coords: list[dict[str, E.Scalar]] = []
        for i in range(n):
            env = dict(base)
            for s, fn in initial.items():
                env[s] = fn(env, prec)
            env["param"] = (from_float(float(problem.initial[i])), None)
            coords.append(env)
        rows: list[list[E.Scalar]] = []
        for step, lr in enumerate(problem.lrs):
            row = []
            for i, env in enumerate(coords):
                env["t"] = (from_int(step + 1), None)
                env["lr"] = _scalar(lr, prec)
                if problem.grads is not None:
                    env["grad"] = (from_float(float(problem.grads[step][i])), None)
                else:
                    assert problem.curvature is not None and problem.center is not None
                    h = (from_float(float(problem.curvature[i])), None)
                    c = (from_float(float(problem.center[i])), None)
                    env["grad"] = E.mul(h, E.sub(env["param"], c, prec), prec)
                for target, fn in program:
                    env[target] = fn(env, prec)
                row.append(env["param"])
            rows.append(row)
        return rows


# ---------------------------------------------------------------- the tolerance model

def _exact_in(value: float, text: str | None, dtype: str) -> bool:
    """Whether a constant reaches a backend unrounded: exact in binary and in the dtype."""
    if text is not None and Fraction(text) != Fraction(value):
        return False
    # float(...) first: NumPy 2 compares a float32 with a Python float in float32 (NEP 50).
    return float(np.float32(value)) == value if dtype == "float32" else math.isfinite(value)


class _Bound:
    """Values (float64, along the trajectory) and first-order bounds on their rounding error."""

    def __init__(self, u: float, dtype: str) -> None:
        self.u, self.dtype, self.eta = u, dtype, UNDERFLOW[dtype]

    def rnd(self, v: np.ndarray, k: float = 1.0) -> np.ndarray:
        """The rounding error of one operation with result v (k ULPs for a function like pow)."""
        return k * self.u * abs(v) + self.eta

    def bound(self, node: F.Node, val: dict[str, np.ndarray], err: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        u = self.u
        if isinstance(node, F.Num):
            v = float(node.text)
            return np.asarray(v), np.asarray(0.0 if _exact_in(v, node.text, self.dtype) else u * abs(v))
        if isinstance(node, F.Name):
            if node.id == "pi":
                return np.asarray(math.pi), np.asarray(u * math.pi)
            return val[node.id], err[node.id]
        if isinstance(node, F.Neg):
            a, ea = self.bound(node.operand, val, err)
            return -a, ea
        if isinstance(node, F.BinOp):
            (a, ea), (b, eb) = self.bound(node.left, val, err), self.bound(node.right, val, err)
            with np.errstate(all="ignore"):
                if node.op in "+-":
                    v = a + b if node.op == "+" else a - b
                    return v, ea + eb + self.rnd(v)
                if node.op == "*":
                    v = a * b
                    return v, abs(a) * eb + abs(b) * ea + self.rnd(v)
                v = a / b
                return v, (ea + abs(v) * eb) / abs(b) + self.rnd(v)
        if isinstance(node, F.Pow):
            a, ea = self.bound(node.base, val, err)
            e = node.exponent
            n = val[e.id] if isinstance(e, F.Name) else np.asarray(float(Fraction(e.text)))
            with np.errstate(all="ignore"):
                v = np.power(a, n)
                # pow is correctly rounded or nearly (2 u); the base's error is amplified by |n|.
                return v, abs(n) * abs(np.power(a, n - 1)) * ea + self.rnd(v, 2)
        if isinstance(node, F.Call):
            return self.call(node, val, err)
        if isinstance(node, (F.Compare, F.BoolOp)):
            return self.condition(node, val, err), np.asarray(0.0)
        raise TypeError(f"no error bound for {type(node).__name__} in an optimizer step")

    def condition(self, node: F.Node, val: dict[str, np.ndarray], err: dict[str, np.ndarray]) -> np.ndarray:
        if isinstance(node, F.BoolOp):
            parts = [self.condition(p, val, err) for p in node.operands]
            out = parts[0]
            for p in parts[1:]:
                out = np.logical_and(out, p) if node.op == "and" else np.logical_or(out, p)
            return out
        assert isinstance(node, F.Compare)
        a, _ = self.bound(node.left, val, err)
        b, _ = self.bound(node.right, val, err)
        return {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                "==": np.equal, "!=": np.not_equal}[node.op](a, b)

    def call(self, node: F.Call, val: dict[str, np.ndarray], err: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if node.func == "where":
            c = self.condition(node.args[0], val, err)
            (a, ea), (b, eb) = self.bound(node.args[1], val, err), self.bound(node.args[2], val, err)
            return np.where(c, a, b), np.where(c, ea, eb)
        if node.func in ("max", "min") and len(node.args) == 2:
            (a, ea), (b, eb) = self.bound(node.args[0], val, err), self.bound(node.args[1], val, err)
            return (np.maximum(a, b) if node.func == "max" else np.minimum(a, b)), np.maximum(ea, eb)
        (a, ea), = [self.bound(x, val, err) for x in node.args]
        with np.errstate(all="ignore"):
            if node.func == "sqrt":
                v = np.sqrt(np.maximum(a, 0.0))
                # sqrt(a + d) - sqrt(a) <= min(d / (2 sqrt a), sqrt d): the second where a is near 0.
                prop = np.where(v > 0, np.minimum(ea / (2 * np.where(v > 0, v, 1.0)), np.sqrt(ea)), np.sqrt(ea))
                return v, prop + self.rnd(v)
            if node.func == "abs":
                return abs(a), ea
            if node.func == "exp":
                v = np.exp(a)
                return v, v * ea + self.rnd(v, 2)
            if node.func == "log":
                v = np.log(a)
                return v, ea / abs(a) + self.rnd(v, 2)
        raise TypeError(f"no error bound for {node.func}() in an optimizer step")


def running_error_bound(spec: OptimizerSpec, params: Mapping[str, ParamValue] | None, problem: Problem,
                        dtype: str) -> np.ndarray:
    """(steps, n): a first-order bound on how far the spec's own evaluation order, run in `dtype`,
    drifts from the exact parameters after each step.

    Values are followed in float64 (close to exact, which is all a bound needs); every operation
    contributes u |result| and passes its operands' bounds on through its derivative.
    Hyperparameters and constants that the dtype cannot hold exactly start with u |value|.
    """
    u = UNIT_ROUNDOFF[dtype]
    b = _Bound(u, dtype)
    hyper = hyperparameters(spec, params)
    n = len(problem.initial)
    val: dict[str, np.ndarray] = {}
    err: dict[str, np.ndarray] = {}
    for k, v in hyper.items():
        x = float(v)
        val[k] = np.full(n, x)
        err[k] = np.full(n, 0.0 if _exact_in(x, v if isinstance(v, str) else None, dtype) else u * abs(x))
    for s, node in spec.initial.items():
        v0, e0 = b.bound(node, val, err)
        val[s], err[s] = np.broadcast_to(v0, (n,)).astype(float), np.broadcast_to(e0, (n,)).astype(float)
    val["param"], err["param"] = problem.initial.astype(np.float64), np.zeros(n)
    out = np.zeros((problem.steps, n))
    for step, lr in enumerate(problem.lrs):
        val["t"], err["t"] = np.full(n, float(step + 1)), np.zeros(n)
        val["lr"] = np.full(n, float(lr))
        err["lr"] = np.full(n, 0.0 if _exact_in(float(lr), None, dtype) else u * abs(lr))
        if problem.grads is not None:
            val["grad"], err["grad"] = problem.grads[step].astype(np.float64), np.zeros(n)
        else:
            assert problem.curvature is not None and problem.center is not None
            d = val["param"] - problem.center
            ed = err["param"] + b.rnd(d)
            val["grad"] = problem.curvature * d
            err["grad"] = problem.curvature * ed + b.rnd(val["grad"])
        for target, node in spec.step:
            v, e = b.bound(node, val, err)
            val[target], err[target] = np.broadcast_to(v, (n,)).astype(float), np.broadcast_to(e, (n,)).astype(float)
        out[step] = err["param"]
    return out
