"""The optimizer family: its cases and its checks, generated from spec/optimizers/*.yaml.

A check runs a backend's optimizer for N steps and compares every step's parameters with the
exact trajectory.  The tolerance accumulates over the steps, and is derived, not guessed: the
reference computes the first-order running error bound of the spec's own evaluation order in
the dtype (every operation's rounding, propagated through the later steps, including the
rounding of hyperparameters the dtype cannot hold), and the spec allows a small factor on it
for a backend's different but equally good order.  Where the exact trajectory is
ill-conditioned (1 - beta^t for beta near 1, cancelling moments under sign-changing gradients)
the bound grows with it.  See docs/optimizers.md.

Each trajectory check runs twice where the framework's API fixes one of the spec's convention
flags to the other value: once as the spec defines it (the difference is the finding, kept as a
strict xfail with the reason) and once "under its own conventions", which checks the
framework's arithmetic apart from its choice of convention.  Ids read as sentences:
``adam[float32] schedule 12 steps, the learning rate changing every step under
keras.optimizers.Adam's own eps_hat=1``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis import target
from hypothesis.control import currently_in_test_context

from nnconform.adapters.base import NotProvided, Optimizer, Session
from nnconform.reference import Problem, Trajectory, running_error_bound
from nnconform.reference.dtypes import cast, info, representable
from nnconform.spec import OptimizerSpec
from nnconform.spec.schema import number, parse_interval

from .. import kinds
from ..compare import fmt
from ..core import (
    Build,
    CallTimeout,
    Case,
    CheckFailure,
    Context,
    Worst,
    run_search,
    show,
    time_limit,
)
from . import defaults

NAME = "optimizer"

STEPS = 12          # the issue asks for at least 10
SIZE = 4            # parameters per trajectory: fixed, so jitted backends compile once
DTYPES = ("float64", "float32")
HYPER_IN_FLOAT32 = "hyperparameters exact in float32"

LABELS = {
    "trajectory": f"{STEPS} steps, constant learning rate",
    "schedule": f"{STEPS} steps, the learning rate changing every step",
    "weight_decay": f"{STEPS} steps with weight_decay > 0",
    "objective": f"{STEPS} steps on a quadratic, each gradient from the current parameters",
}


def own_conventions(spec: OptimizerSpec, op: Optimizer) -> dict[str, Any]:
    """The spec flags this API fixes to a value other than the canonical one."""
    return {k: f.value for k, f in op.fixed.items()
            if k in spec.doc.params and float(f.value) != float(spec.defaults[k])}


def _suffix(op: Optimizer, flags: dict[str, Any]) -> str:
    return f" under {op.api}'s own " + ", ".join(f"{k}={v}" for k, v in flags.items()) if flags else ""


def stability_problem(spec: OptimizerSpec, entry: Any, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    initial = cast([number(v) for v in entry.initial], dtype).astype(np.float64)
    grads = cast([[number(v) for v in row] for row in entry.grads], dtype).astype(np.float64)
    return initial, grads


def cases(build: Build, spec: OptimizerSpec) -> list[Case]:
    try:
        op = build.adapter.op(spec.name)
    except NotProvided as exc:
        return [Case(spec, None, kinds.PROVIDED, skip=f"not provided: {exc}")]
    if not isinstance(op, Optimizer):
        return [Case(spec, None, kinds.PROVIDED, skip=f"not provided: {op.api} is not an optimizer")]
    out = [Case(spec, None, kinds.DEFAULTS, nd.framework_name, extra=nd) for nd in op.native]
    own = own_conventions(spec, op)
    variants = [{}] + ([own] if own else [])
    for dtype in build.dtypes:
        if dtype not in DTYPES:
            continue        # optimizers keep float32 or float64 master weights; 16-bit state is out of scope
        reason = build.adapter.supports(spec.name, dtype)
        if reason:
            out.append(Case(spec, dtype, kinds.PROVIDED, skip=f"not provided: {reason}"))
            continue
        for flags in variants:
            for check, label in LABELS.items():
                if check == "weight_decay" and "weight_decay" not in spec.doc.params:
                    continue
                out.append(Case(spec, dtype, check, label + _suffix(op, flags), params=flags))
            if dtype == "float64":
                # Separates "computes in float64" from "keeps its hyperparameters in float64".
                out.append(Case(spec, dtype, "trajectory", LABELS["trajectory"] + ", hyperparameters exact in float32"
                                + _suffix(op, flags), params=flags, extra=HYPER_IN_FLOAT32))
            for i, entry in enumerate(spec.doc.stability):
                initial, grads = stability_problem(spec, entry, dtype)
                shown = f"{len(grads)} steps grads={show(grads[0])}, ..." if len(grads) > 1 else f"grads={show(grads)}"
                changed = " ".join(f"{k}={v}" for k, v in entry.params.items())
                label = " ".join(p for p in (changed, f"p0={show(initial)}", shown) if p) + _suffix(op, flags)
                out.append(Case(spec, dtype, "stability", label,
                                params={**{k: number(v) for k, v in entry.params.items()}, **flags},
                                extra=(initial, grads, entry.why)))
    return out


# ---------------------------------------------------------------- strategies

def _signed(lo: float, hi: float, dtype: str) -> st.SearchStrategy[float]:
    """Magnitudes log-uniform in [lo, hi], either sign."""
    return st.tuples(st.floats(math.log(lo), math.log(hi)), st.booleans()).map(
        lambda p: representable(math.copysign(math.exp(p[0]), -1.0 if p[1] else 1.0), dtype))


def gradient_value(dtype: str) -> st.SearchStrategy[float]:
    """Tiny (~1e-6), zero, ordinary, and large gradients (to 1e4: their squares stay finite in float32)."""
    return st.one_of(_signed(1e-7, 1e-5, dtype), st.just(0.0), _signed(1e-2, 10.0, dtype), _signed(1e2, 1e4, dtype))


def gradients(dtype: str) -> st.SearchStrategy[np.ndarray]:
    """Independent draws (signs change at random), or one row flipping sign every step."""
    independent = st.lists(st.lists(gradient_value(dtype), min_size=SIZE, max_size=SIZE), min_size=STEPS, max_size=STEPS)
    row = st.lists(gradient_value(dtype), min_size=SIZE, max_size=SIZE)
    alternating = row.map(lambda r: [[v if t % 2 == 0 else -v for v in r] for t in range(STEPS)])
    return st.one_of(independent, alternating).map(lambda g: np.asarray(g, dtype=np.float64))


def initial_params(dtype: str) -> st.SearchStrategy[np.ndarray]:
    """Normal numbers only: what a subnormal parameter or an underflowing square does is a
    stability input of the specs (the same verdict under every seed), not a chance draw."""
    value = st.one_of(_signed(1e-2, 100.0, dtype), st.just(0.0), _signed(1e-6, 1e-2, dtype))
    return st.lists(value, min_size=SIZE, max_size=SIZE).map(lambda v: np.asarray(v, dtype=np.float64))


def _typical(spec: OptimizerSpec, name: str) -> st.SearchStrategy[float]:
    p = spec.doc.params[name]
    rng = parse_interval(p.typical or p.domain)
    lo, hi = rng.lo, rng.hi
    if lo > 0 and hi / lo >= 100:
        return st.floats(math.log(lo), math.log(hi)).map(math.exp)
    # No values near the bottom of the range's floats (momentum 1e-255 is 0 in all but name).
    return st.floats(lo, hi).map(lambda v: v if v == lo or abs(v) >= 1e-3 * (hi - lo) else lo)


def hyperparameters(spec: OptimizerSpec, decay: bool) -> st.SearchStrategy[dict[str, float]]:
    """Real hyperparameters from their typical ranges (or the canonical default); weight decay only when asked for."""
    parts: dict[str, st.SearchStrategy[float]] = {}
    for name, p in spec.doc.params.items():
        if p.kind != "real":
            continue
        if name == "weight_decay":
            if decay:
                hi = parse_interval(p.typical or "[0, 0.1]").hi
                parts[name] = st.floats(math.log(1e-3), math.log(hi)).map(math.exp)
            continue
        parts[name] = st.one_of(st.just(float(spec.defaults[name])), _typical(spec, name))
    return st.fixed_dictionaries(parts)


def schedule(lr: float) -> st.SearchStrategy[tuple[float, ...]]:
    """A learning rate for every step: lr times factors from 1/10 to 10 (warm-up, decay, restarts)."""
    factor = st.floats(math.log(0.1), math.log(10.0)).map(math.exp)
    return st.lists(factor, min_size=STEPS, max_size=STEPS).map(lambda fs: tuple(lr * f for f in fs))


# ---------------------------------------------------------------- running and comparing

def run_backend(ctx: Context, spec: OptimizerSpec, hyper: dict[str, Any], problem: Problem, dtype: str) -> np.ndarray:
    """(steps, n): the backend's parameters after each step; any error of the backend is a finding."""
    what = f"{spec.name} optimizer"
    try:
        with time_limit(ctx.call_timeout, f"{what} construction"):
            session: Session = ctx.adapter.start(spec.name, hyper, cast(problem.initial, dtype), dtype)
        rows = []
        param = cast(problem.initial, dtype)
        for t, lr in enumerate(problem.lrs):
            grad = cast(problem.grads[t], dtype) if problem.grads is not None else problem.objective_gradient(param)
            with time_limit(ctx.call_timeout, f"{what} step {t + 1}"):
                out = session.step(grad, float(lr))
            if not isinstance(out, np.ndarray):
                raise CheckFailure(f"{what} step {t + 1} returned {type(out).__name__}, not an array")
            if out.shape != param.shape or out.dtype != info(dtype).np_dtype:
                raise CheckFailure(f"{what} step {t + 1} returned {out.dtype}{list(out.shape)}; expected "
                                   f"{dtype}{list(param.shape)}")
            param = out
            rows.append(out.astype(np.float64))
    except NotProvided as exc:
        pytest.skip(f"not provided: {exc}")
    except CallTimeout as exc:
        raise CheckFailure(f"{ctx.adapter.name}: {exc}") from None
    except CheckFailure:
        raise
    except Exception as exc:   # noqa: BLE001 - any error of the backend is a finding about it
        raise CheckFailure(f"{ctx.adapter.name} raised {type(exc).__name__} in {what}: {exc}") from exc
    return np.asarray(rows)


def compare(ctx: Context, case: Case, hyper: dict[str, Any], problem: Problem, what: str = "") -> None:
    spec, dtype = case.spec, case.dtype or "float64"
    assert isinstance(spec, OptimizerSpec)
    full = {**spec.default_params(), **hyper, **case.params}
    got = run_backend(ctx, spec, full, problem, dtype)
    ref = ctx.optimizers.trajectory(spec, full, problem, dtype)
    if ref.any_uncertain and ref.uncertain.all():
        pytest.skip("reference uncertain: no step of this trajectory could be certified")
    factor = spec.budget(dtype).factor
    bound = running_error_bound(spec, full, problem, dtype)
    _judge(ctx, case, got, ref, bound, factor, full, problem, what)


def _ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """The spacing of the dtype at each value (the subnormal spacing near 0)."""
    dt = info(dtype).np_dtype
    return np.spacing(np.abs(values).astype(dt)).astype(np.float64)


def _judge(ctx: Context, case: Case, got: np.ndarray, ref: Trajectory, bound: np.ndarray, factor: float,
           hyper: dict[str, Any], problem: Problem, what: str) -> None:
    dtype = case.dtype or "float64"
    certain = ~ref.uncertain
    expected = ref.values
    finite = np.isfinite(expected)
    with np.errstate(all="ignore"):
        err = np.where(finite, np.abs(got - expected), np.where(np.isnan(expected) & np.isnan(got), 0.0, np.inf))
        err = np.where(np.isnan(err), np.inf, err)       # nan where the exact step is finite
        ulps = np.where(finite, _ulp(expected, dtype), 1.0)
        allowed = factor * bound + 0.5 * ulps             # the reference is rounded to the dtype: half an ULP more
        ratio = np.where(certain & (err > 0), err / allowed, 0.0)   # half of the smallest subnormal is 0
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    w = ctx.results.setdefault(case.id, Worst())
    r = float(ratio[worst])
    with np.errstate(all="ignore"):
        ulp_err = float(np.max(np.where(certain, err / ulps, 0.0)))
        rel = float(np.max(np.where(certain & (expected != 0), err / np.abs(np.where(expected != 0, expected, 1)), 0.0)))
    if currently_in_test_context():
        target(min(r, 1e30), label="error / allowed")
    w.max_ulp, w.max_relative = max(w.max_ulp, ulp_err), max(w.max_relative, rel)
    if r > w.ratio:
        w.ratio = r
        t, i = int(worst[0]), int(worst[1])
        w.detail = {"input": f"step {t + 1}, parameter {i}", "expected": float(expected[worst]), "got": float(got[worst]),
                    "ulp": float(err[worst] / ulps[worst]), "allowed": float(allowed[worst] / ulps[worst]),
                    "params": {k: v for k, v in hyper.items()}}
    if r <= 1:
        return
    bad = np.argwhere(ratio > 1)
    t, i = (int(v) for v in bad[0])            # the first step where the trajectory leaves the budget
    raise CheckFailure(_message(ctx, case, got, expected, ulps, allowed, hyper, problem, t, i, what))


def _message(ctx: Context, case: Case, got: np.ndarray, expected: np.ndarray, ulps: np.ndarray, allowed: np.ndarray,
             hyper: dict[str, Any], problem: Problem, t: int, i: int, what: str) -> str:
    spec = case.spec
    op = ctx.adapter.op(spec.name)
    err_ulp = abs(got[t, i] - expected[t, i]) / ulps[t, i] if math.isfinite(got[t, i]) else math.inf
    shown = "wrong NaN/inf" if not math.isfinite(err_ulp) else f"{err_ulp:,.1f} ULP"
    lines = [f"{case.id}: the trajectory leaves the budget at step {t + 1} of {problem.steps}, parameter {i}: "
             f"{shown} > {allowed[t, i] / ulps[t, i]:,.1f} ULP allowed",
             f"  input: step {t + 1}, parameter {i}",
             f"  expected: {fmt(expected[t, i])}", f"  got: {fmt(got[t, i])}",
             f"  last step: expected {fmt(expected[-1, i])}, got {fmt(got[-1, i])}"]
    fixed = {k: f for k, f in op.fixed.items() if k in hyper and float(f.value) != float(hyper[k])}
    for k, f in fixed.items():
        lines.append(f"  convention: the spec asks {k}={hyper[k]}, and {op.api} always uses {k}={f.value}: {f.why}")
    if what:
        lines.append(f"  {what}")
    lines.append("  hyperparameters: " + ", ".join(f"{k}={v!r}" for k, v in hyper.items()))
    lines.append(_repro(spec.name, op.api, hyper, problem, case.dtype or "float64", t))
    return "\n".join(lines)


def _repro(name: str, api: str, hyper: dict[str, Any], problem: Problem, dtype: str, upto: int) -> str:
    def hexes(a: np.ndarray) -> str:
        return "[" + ", ".join(f"float.fromhex('{float(v).hex()}')" for v in np.ravel(a)) + "]"
    lines = [f"  repro ({api}, {dtype}; nnconform adapter call, exact inputs):",
             "    from nnconform.adapters.registry import load",
             f"    s = load(BACKEND).start({name!r}, {hyper!r}, numpy.array({hexes(problem.initial)}, '{dtype}'), '{dtype}')"]
    if problem.grads is not None:
        for t in range(upto + 1):
            lines.append(f"    s.step(numpy.array({hexes(problem.grads[t])}, '{dtype}'), {problem.lrs[t]!r})")
    else:
        assert problem.curvature is not None and problem.center is not None
        lines.append(f"    # gradient of sum(h (p - c)^2) / 2 at the current parameters: h={hexes(problem.curvature)}, "
                     f"c={hexes(problem.center)}, lrs={list(problem.lrs[:upto + 1])!r}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the checks

def _search(ctx: Context, case: Case, strategy: st.SearchStrategy[Any], body: Callable[[Any], None],
            explicit: Sequence[Any] = ()) -> None:
    """Half the examples of an activation check: each example is a whole trajectory."""
    run_search(ctx, case, strategy, body, max_examples=max(1, ctx.max_examples // 2), explicit=explicit)


def check_trajectory(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype or "float64"
    assert isinstance(spec, OptimizerSpec)
    hyper = hyperparameters(spec, decay=False)
    if case.extra == HYPER_IN_FLOAT32:
        hyper = hyper.map(lambda h: {k: representable(v, "float32") for k, v in h.items()})
    _search(ctx, case, st.tuples(hyper, initial_params(dtype), gradients(dtype)), _constant_lr(ctx, case))


def _constant_lr(ctx: Context, case: Case) -> Callable[[tuple], None]:
    """The body of a trajectory at a constant learning rate: (hyperparameters, p0, gradients)."""
    def body(ex: tuple) -> None:
        hyper, p0, grads = ex
        compare(ctx, case, hyper, Problem(p0, (hyper["lr"],) * STEPS, grads=grads))
    return body


def check_schedule(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype or "float64"
    assert isinstance(spec, OptimizerSpec)
    strategy = hyperparameters(spec, decay=False).flatmap(
        lambda h: st.tuples(st.just(h), schedule(h["lr"]), initial_params(dtype), gradients(dtype)))

    def body(ex: tuple) -> None:
        hyper, lrs, p0, grads = ex
        compare(ctx, case, hyper, Problem(p0, lrs, grads=grads), "the learning rate changes every step")
    _search(ctx, case, strategy, body)


def check_weight_decay(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype or "float64"
    assert isinstance(spec, OptimizerSpec)
    _search(ctx, case, st.tuples(hyperparameters(spec, decay=True), initial_params(dtype), gradients(dtype)),
            _constant_lr(ctx, case))


def check_objective(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype or "float64"
    assert isinstance(spec, OptimizerSpec)
    coords = st.lists(st.floats(0.1, 10.0), min_size=SIZE, max_size=SIZE)
    centers = st.lists(st.one_of(st.just(0.0), _signed(1e-3, 5.0, dtype)), min_size=SIZE, max_size=SIZE)
    start = st.lists(st.one_of(st.just(0.0), _signed(1e-3, 10.0, dtype)), min_size=SIZE, max_size=SIZE)
    strategy = st.tuples(hyperparameters(spec, decay=False), coords, centers, start)

    def body(ex: tuple) -> None:
        hyper, h, c, p0 = ex
        arr = [cast(v, dtype).astype(np.float64) for v in (h, c, p0)]
        problem = Problem(arr[2], (hyper["lr"],) * STEPS, curvature=arr[0], center=arr[1])
        compare(ctx, case, hyper, problem, "each gradient is h (p - c) at the backend's own current parameters")
    _search(ctx, case, strategy, body, explicit=[objective_corner(spec)])


# Near the optimum: every gradient h (p - c) starts at about 1e-3, the size of eps at the top of its range.
CORNER_PROBLEM = ([1.0, 1.0, 0.1, 10.0], [0.0, 0.0, 0.0, 0.0], [1e-3, -1e-3, 1e-2, 1e-4])


def objective_corner(spec: OptimizerSpec) -> tuple[dict[str, float], list[float], list[float], list[float]]:
    """The objective check's example under every seed: defaults, eps at the top of its typical range.

    Where eps sits (added to the corrected or the uncorrected root, inside or outside the square
    root) shows only when the gradients are as small as eps.  Drawn quadratics reached that under
    some seeds only, and TensorFlow's Adam verdict moved with the seed.
    """
    hyper = {name: float(spec.defaults[name]) for name, p in spec.doc.params.items()
             if p.kind == "real" and name != "weight_decay"}
    if "eps" in hyper:
        p = spec.doc.params["eps"]
        hyper["eps"] = parse_interval(p.typical or p.domain).hi
    h, c, p0 = CORNER_PROBLEM
    return hyper, h, c, p0


def check_stability(ctx: Context, case: Case) -> None:
    spec = case.spec
    assert isinstance(spec, OptimizerSpec)
    initial, grads, why = case.extra
    hyper = spec.default_params()
    lr = float(case.params.get("lr", hyper["lr"]))
    compare(ctx, case, hyper, Problem(initial, (lr,) * len(grads), grads=grads), f"why this sequence: {why}")


RUNNERS: dict[str, Callable[[Context, Case], None]] = {
    "trajectory": check_trajectory, "schedule": check_schedule, "weight_decay": check_weight_decay,
    "objective": check_objective, "stability": check_stability, **defaults.RUNNERS,
}
