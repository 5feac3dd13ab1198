"""The activation family: its cases and its checks, one function per check kind, each one claim.

Cases are generated from spec/activations/*.yaml: nothing here names a function.  Ids read as
sentences, e.g. ``softplus[float64] stability x=20.5 -> 20.500000001250153``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis import target

from nnconform.reference.dtypes import cast, info, ulp_of
from nnconform.spec import Spec
from nnconform.spec.schema import parse_interval

from ..compare import fmt, near_underflow, near_underflow_bound
from ..core import (
    Build,
    Case,
    CheckFailure,
    Context,
    Worst,
    call_backend,
    failure,
    function_cases,
    measure_case,
    measure_widened,
    needs_certain,
    run_search,
    short,
    show,
)
from ..inputs import grids as G
from ..inputs import strategies as S
from ..kinds import GRADIENT, VALUE
from . import defaults

NAME = "activation"


# ---------------------------------------------------------------- cases

def cases(build: Build, spec: Spec) -> list[Case]:
    return function_cases(build, spec, for_dtype)


def for_dtype(build: Build, spec: Spec, dtype: str, differentiable: bool, why_not: str) -> list[Case]:
    out: list[Case] = []
    if spec.is_stochastic:
        return [Case(spec, dtype, "statistics", "zero fraction and kept values")]
    out.append(Case(spec, dtype, "value"))
    for wrt in spec.differentiable_inputs:
        label = f"d/d{wrt}"
        if differentiable:
            out.append(Case(spec, dtype, "gradient", label, wrt=wrt))
        else:
            out.append(Case(spec, dtype, "gradient", label, wrt=wrt, skip=f"not provided: {why_not}"))
    out.extend(stability_cases(build, spec, dtype))
    out.append(Case(spec, dtype, "extremes", "huge, tiny and either side of every kink"))
    out.append(Case(spec, dtype, "subnormal", "inputs and results below the smallest normal"))
    out.extend(special_cases(build, spec, dtype))
    out.append(Case(spec, dtype, "dtype", "output dtype and shape"))
    props = spec.doc.properties
    for name in ("range", "monotone", "symmetry", "rows_sum_to", "idempotent"):
        if getattr(props, name) not in (None, False):
            out.append(Case(spec, dtype, "properties", name, extra=name))
    if props.convex and G.fixed_grid(spec, dtype) is not None:
        out.append(Case(spec, dtype, "convexity", "f at every grid point below the chord of its neighbours"))
    if differentiable:
        out.extend(kink_cases(build, spec, dtype))
    return out


def _expected(build: Build, spec: Spec, x: np.ndarray, params: dict[str, Any], dtype: str) -> str:
    try:
        inputs = G.fixed_inputs(spec, x, dtype)
        res = build.reference.value(spec, inputs, params, dtype)
    except Exception:   # noqa: BLE001 - an id must never stop collection; the test itself will report it
        return "?"
    return "uncertain" if res.any_uncertain else show(res.values)


def stability_cases(build: Build, spec: Spec, dtype: str) -> list[Case]:
    out = []
    for params, x, why in G.stability_points(spec, dtype):
        label = " ".join(p for p in (_params_label(spec, params), f"x={show(x)}") if p)
        label += f" -> {_expected(build, spec, x, params, dtype)}"
        out.append(Case(spec, dtype, "stability", label, inputs=x, params=params, extra=why))
    return out


def special_cases(build: Build, spec: Spec, dtype: str) -> list[Case]:
    params = spec.default_params()
    if spec.shape == "elementwise":
        points = [math.nan, math.inf, -math.inf, -0.0]
        shaped = [G.shape_point(spec, np.asarray([p])) for p in points]
    else:
        width = 2 * int(params.get(spec.doc.group_param or "", 1)) if spec.shape == "grouped" else 3
        base = np.linspace(-1.0, 1.0, width)
        shaped = []
        for special in (math.nan, math.inf, -math.inf):
            row = base.copy()
            row[0] = special
            shaped.append(row.reshape(1, -1))
        shaped.append(np.full((1, width), -math.inf))
    out = []
    for x in shaped:
        label = f"x={show(x)} -> {_expected(build, spec, x, params, dtype)}"
        out.append(Case(spec, dtype, "special", label, inputs=x, params=params))
    return out


def kink_cases(build: Build, spec: Spec, dtype: str) -> list[Case]:
    out = []
    params = spec.default_params()
    for i, (name, at, _) in enumerate(spec.kink_points):
        where = build.reference.evaluate_params(spec, at, params)
        x = cast([where], dtype).astype(np.float64)
        if float(x[0]) != where:
            continue     # the kink is not representable in this dtype: no input lands on it
        why = spec.doc.kinks[i].why
        label = f"d/d{name} at x={short(where)} (convention)"
        out.append(Case(spec, dtype, "kink", label, wrt=name, inputs=G.shape_point(spec, x), params=params, extra=why))
    return out


def _params_label(spec: Spec, params: dict[str, Any]) -> str:
    changed = {k: v for k, v in params.items() if k in spec.defaults and float(v) != float(spec.defaults[k])}
    return " ".join(f"{k}={short(float(v))}" for k, v in changed.items())


# ---------------------------------------------------------------- calling the backend

def backend_value(ctx: Context, spec: Spec, inputs: dict[str, np.ndarray], params: dict[str, Any], dtype: str) -> np.ndarray:
    return call_backend(ctx, f"{spec.name} value", lambda: ctx.adapter.value(spec.name, inputs, params, dtype))


def backend_vjp(ctx: Context, spec: Spec, wrt: str, inputs: dict[str, np.ndarray], g: np.ndarray,
                params: dict[str, Any], dtype: str) -> np.ndarray:
    return call_backend(ctx, f"{spec.name} gradient", lambda: ctx.adapter.vjp(spec.name, wrt, inputs, g, params, dtype))


# ---------------------------------------------------------------- the checks

def check_value(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    budget = spec.budget(dtype, VALUE).ulp
    worst = ctx.results.setdefault(case.id, Worst())

    def body(example: tuple) -> None:
        params, inputs = example
        got = backend_value(ctx, spec, inputs, params, dtype)
        ref = ctx.reference.value(spec, inputs, params, dtype)
        m = measure_widened(got, ref, dtype, budget, case, list(inputs.values()),
                             lambda only: ctx.reference.condition(spec, "value", inputs, params, dtype=dtype, only=only)
                             if spec.budget(dtype, VALUE).condition is not None else None)
        worst.update(m, inputs, params)
        target(min(m.max_ratio, 1e9), label="error / allowed")
        if not m.ok:
            raise failure(ctx, case, m, inputs, params, "value against the exact reference", budget)
    fixed = [(p, {spec.tensor_inputs[0]: x}) for p, x in G.fixed_grid_examples(spec, dtype)]
    run_search(ctx, case, S.with_params(spec, dtype, lambda p: S.input_strategy(spec, dtype, p)), body,
               explicit=G.corner_examples(spec, dtype) + fixed + G.stability_rows(spec, dtype))


def check_gradient(ctx: Context, case: Case) -> None:
    spec, dtype, wrt = case.spec, case.dtype, case.wrt
    budget = spec.budget(dtype, GRADIENT, wrt).ulp
    worst = ctx.results.setdefault(case.id, Worst())

    def with_cotangent(p: dict) -> st.SearchStrategy[Any]:
        return S.input_strategy(spec, dtype, p).flatmap(
            lambda inputs: st.tuples(st.just(inputs), S.cotangent(ctx.reference.output_shape(spec, inputs, p), dtype)))

    def body(example: tuple) -> None:
        params, (inputs, g) = example
        got = backend_vjp(ctx, spec, wrt, inputs, g, params, dtype)
        ref = ctx.reference.vjp(spec, wrt, inputs, g, params, dtype)
        left_out = near_underflow(g, ref.values.shape, dtype)
        kinks = _at_kinks(ctx, spec, wrt, inputs, params)
        if kinks is not None:
            left_out = left_out | kinks
        m = measure_widened(got, ref, dtype, budget, case, [*inputs.values(), g],
                             lambda only: _gradient_condition(ctx, spec, wrt, inputs, g, params, dtype, only=only), left_out)
        worst.update(m, inputs, params)
        target(min(m.max_ratio, 1e9), label="error / allowed")
        if not m.ok:
            raise failure(ctx, case, m, {**inputs, "g": g}, params, f"vector-Jacobian product with cotangent g = {show(g)}", budget)
    explicit = [(p, (inputs, G.fixed_cotangent(ctx.reference.output_shape(spec, inputs, p), dtype)))
                for p, inputs in G.gradient_corner_examples(spec, dtype)]
    if wrt == spec.tensor_inputs[0]:          # cotangent 1, as the sweeps use (and the shipped tables hold)
        explicit += [(p, ({wrt: x}, cast(np.ones(x.shape), dtype))) for p, x in G.fixed_grid_examples(spec, dtype)]
    if spec.shape == "vector":
        explicit.append((spec.default_params(), G.sample_rows(spec, dtype)))
    run_search(ctx, case, S.with_params(spec, dtype, with_cotangent), body, explicit=explicit)


def _at_kinks(ctx: Context, spec: Spec, wrt: str, inputs: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray | None:
    """Elements sitting exactly on a kink: their derivative is a convention, checked by the kink check."""
    x = np.asarray(inputs[spec.tensor_inputs[0]], dtype=np.float64)
    if np.asarray(inputs[wrt]).shape != x.shape:
        return None
    mask = np.zeros(x.shape, dtype=bool)
    for name, at, _ in spec.kink_points:
        mask |= np.asarray(inputs[name], dtype=np.float64) == ctx.reference.evaluate_params(spec, at, params)
    return mask


def _gradient_condition(ctx: Context, spec: Spec, wrt: str, inputs: dict[str, np.ndarray], g: np.ndarray,
                        params: dict[str, Any], dtype: str, only: np.ndarray | None = None) -> np.ndarray | None:
    target_shape = np.asarray(inputs[wrt]).shape
    full_shape = np.asarray(inputs[spec.tensor_inputs[0]]).shape
    if target_shape != full_shape:
        # A broadcast input (a per-channel weight) sums its terms: condition = sum|t| / |sum t|.
        expanded = dict(inputs)
        expanded[wrt] = _expand(spec, wrt, inputs[wrt], full_shape)
        terms = ctx.reference.vjp(spec, wrt, expanded, g, params, "float64").values.astype(np.float64)
        axes = tuple(i for i in range(len(full_shape)) if i != spec.doc.inputs[wrt].channel_axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.abs(terms).sum(axis=axes) / np.abs(terms.sum(axis=axes))
    if spec.budget(dtype, GRADIENT, wrt).condition is None:
        return None
    return ctx.reference.condition(spec, "gradient", inputs, params, cotangent=g, dtype=dtype, only=only)


def _expand(spec: Spec, name: str, a: np.ndarray, full_shape: tuple) -> np.ndarray:
    shape = [1] * len(full_shape)
    shape[spec.doc.inputs[name].channel_axis] = a.size
    return np.broadcast_to(np.asarray(a).reshape(shape), full_shape).copy()


def _fixed_point(ctx: Context, case: Case, inputs: dict[str, np.ndarray], what: str, extra: str = "",
                 subnormals: str = "exclude") -> np.ndarray:
    """Measure the backend at fixed inputs; returns what it gave."""
    spec, dtype = case.spec, case.dtype
    budget = spec.budget(dtype, VALUE).ulp
    got = backend_value(ctx, spec, inputs, case.params, dtype)
    ref = ctx.reference.value(spec, inputs, case.params, dtype)
    cond = ctx.reference.condition(spec, VALUE, inputs, case.params, dtype=dtype) \
        if spec.budget(dtype, VALUE).condition is not None else None
    m = measure_case(got, ref, dtype, budget, cond, case, list(inputs.values()), subnormals)
    if not m.any_certain:
        if subnormals == "only":
            pytest.skip("no input here gives a subnormal input or result")
        if ref.uncertain.all():
            pytest.skip("reference uncertain for every input of this example")
        return got      # every element is subnormal: measured by the subnormal check
    ctx.results.setdefault(case.id, Worst()).update(m, inputs, case.params)
    if not m.ok:
        raise failure(ctx, case, m, inputs, case.params, what, budget, extra)
    return got


def check_stability(ctx: Context, case: Case) -> None:
    inputs = G.fixed_inputs(case.spec, np.asarray(case.inputs), case.dtype)
    _fixed_point(ctx, case, inputs, "a stability input named in the spec", case.extra)


def check_subnormal(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    case = Case(spec, dtype, case.check, case.label, params=spec.default_params())
    _fixed_point(ctx, case, G.extreme_inputs(spec, dtype), "gradual underflow: subnormal inputs and results",
                 "IEEE 754 gradual underflow; a backend that flushes subnormals to zero fails here", subnormals="only")


def check_extremes(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    inputs = G.extreme_inputs(spec, dtype)
    case = Case(spec, dtype, case.check, case.label, params=spec.default_params())
    _fixed_point(ctx, case, inputs, "generated extremes of the dtype and points either side of each kink")


def check_special(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    inputs = G.fixed_inputs(spec, np.asarray(case.inputs), dtype)
    ref = ctx.reference.value(spec, inputs, case.params, dtype)
    if ref.any_uncertain:
        pytest.skip("the spec declares no value here (no limit or convention): reference uncertain")
    out = _fixed_point(ctx, case, inputs, "special values: NaN propagates, limits at +-inf, masked rows")
    x = np.asarray(inputs[spec.tensor_inputs[0]], dtype=np.float64)
    if spec.doc.zero_sign == "preserve" and x.size == 1 and x.ravel()[0] == 0 and np.signbit(x.ravel()[0]):
        got = out.astype(np.float64).ravel()[0]
        if got == 0 and not np.signbit(got):
            raise CheckFailure(f"{case.id}: got +0.0 for input -0.0; the spec's zero_sign is 'preserve' "
                               f"(an odd function keeps the sign of zero)\n  repro: "
                               f"{ctx.adapter.repro(spec.name, inputs, case.params, dtype)}")


def check_dtype(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    params = spec.default_params()
    if spec.shape == "elementwise":
        lo, hi = G.finite_bounds(spec.domain(spec.tensor_inputs[0]), dtype)
        x = G.shape_point(spec, np.linspace(max(lo, -2.0), min(hi, 2.0), 6))
    else:
        x = np.linspace(-2, 2, 12).reshape(3, 4)
    inputs = G.fixed_inputs(spec, x, dtype)
    got = backend_value(ctx, spec, inputs, params, dtype)
    expected_shape = ctx.reference.value(spec, inputs, params, dtype).values.shape
    want = info(dtype).np_dtype
    problems = []
    if got.dtype != want:
        problems.append(f"output dtype {got.dtype} for {dtype} input")
    if got.shape != expected_shape:
        problems.append(f"output shape {got.shape}, expected {expected_shape}")
    if problems:
        raise CheckFailure(f"{case.id}: " + "; ".join(problems) + f"\n  repro: {ctx.adapter.repro(spec.name, inputs, params, dtype)}")


def check_properties(ctx: Context, case: Case) -> None:
    spec, dtype, prop = case.spec, case.dtype, case.extra
    props = spec.doc.properties
    budget = spec.budget(dtype, VALUE).ulp

    def body(example: tuple) -> None:
        params, inputs = example
        first = spec.tensor_inputs[0]
        if spec.shape == "elementwise":
            # subnormal inputs belong to the subnormal check (a flushing backend fails there, once)
            flat = inputs[first].ravel()
            tiny = (np.abs(flat.astype(np.float64)) < 2.0 ** info(dtype).emin) & (flat != 0)
            inputs = {**inputs, first: flat[~tiny] if (~tiny).any() else cast([1.0], dtype)}
        x = inputs[first]
        got = backend_value(ctx, spec, inputs, params, dtype).astype(np.float64)

        def repro(*at: float) -> str:
            """The backend call at the offending inputs only (an example may hold every 16-bit number)."""
            shown = {first: cast(list(at), dtype)} if spec.shape == "elementwise" else inputs
            return ctx.adapter.repro(spec.name, shown, params, dtype)
        if prop == "range":
            rng = parse_interval(props.range)
            bad = np.nonzero(~rng.mask(got.ravel()))[0]
            if bad.size:
                i = bad[0]
                raise CheckFailure(f"{case.id}: output {short(got.ravel()[i])} at x = {short(float(x.ravel()[i]))} outside "
                                   f"the range {props.range}\n  repro: {repro(float(x.ravel()[i]))}")
        elif prop == "monotone":
            order = np.argsort(x.astype(np.float64).ravel(), kind="stable")
            ys = got.ravel()[order]
            xs = x.astype(np.float64).ravel()[order]
            distinct = np.diff(xs) > 0
            decreasing = (ys[1:] < ys[:-1]) | np.isnan(ys[1:]) | np.isnan(ys[:-1])   # inf, inf is not a decrease
            bad = np.nonzero(decreasing & distinct)[0]
            if bad.size:
                i = bad[0]
                raise CheckFailure(f"{case.id}: not {props.monotone}: f({fmt(xs[i])}) = {fmt(ys[i])} > "
                                   f"f({fmt(xs[i + 1])}) = {fmt(ys[i + 1])}\n  repro: {repro(xs[i], xs[i + 1])}")
        elif prop == "symmetry":
            # f(-x) + s f(x) = c, measured against the size of the terms: 1 - sigmoid(40) cancels,
            # so a ULP of the tiny f(-x) would accuse a correct backend.
            mirrored = backend_value(ctx, spec, {spec.tensor_inputs[0]: -x}, params, dtype).astype(np.float64)
            sym = props.symmetry
            sign, c = {"odd": (1.0, 0.0), "even": (-1.0, 0.0)}.get(sym.kind, (1.0, sym.value))
            with np.errstate(over="ignore", invalid="ignore"):
                residual = np.abs(mirrored + sign * got - c)
                scale = np.maximum(np.maximum(np.abs(mirrored), np.abs(got)), abs(c))
                spacing = np.spacing(cast(scale, dtype)).astype(np.float64)
            bad = np.nonzero(~(residual <= (2 * budget + 1) * spacing))[0]
            if bad.size:
                i = bad[0]
                raise CheckFailure(f"{case.id}: f(-x) = {short(mirrored.ravel()[i])} and f(x) = {short(got.ravel()[i])} "
                                   f"at x = {short(float(x.ravel()[i]))} break the {sym.kind} symmetry by "
                                   f"{residual.ravel()[i]:.3g}\n  repro: {repro(float(x.ravel()[i]), -float(x.ravel()[i]))}")
        elif prop == "rows_sum_to":
            sums = got.sum(axis=-1)
            n = got.shape[-1]
            eps = 2.0 ** (1 - info(dtype).precision)
            bad = np.nonzero(np.abs(sums - props.rows_sum_to) > budget * n * eps)[0]
            if bad.size:
                raise CheckFailure(f"{case.id}: a row sums to {sums[bad[0]]!r}, not {props.rows_sum_to} "
                                   f"(allowed {budget} x {n} x eps)\n  repro: {repro()}")
        elif prop == "idempotent":
            # f(f(x)) = f(x): each is within budget of its exact value, and the exact values are equal.
            again = backend_value(ctx, spec, {first: cast(got, dtype)}, params, dtype).astype(np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                bad = np.nonzero(~(np.abs(again - got) <= 2 * budget * ulp_of(got, info(dtype))) & np.isfinite(got))[0]
            if bad.size:
                i = bad[0]
                raise CheckFailure(f"{case.id}: f(f(x)) = {fmt(again.ravel()[i])} but f(x) = {fmt(got.ravel()[i])} at "
                                   f"x = {fmt(float(x.ravel()[i]))}\n  repro: {repro(float(got.ravel()[i]))}")
    fixed = [(p, {spec.tensor_inputs[0]: G.with_neighbours(spec, x, dtype)}) for p, x in G.fixed_grid_examples(spec, dtype)]
    run_search(ctx, case, S.with_params(spec, dtype, lambda p: S.input_strategy(spec, dtype, p)), body, explicit=fixed)


def check_convexity(ctx: Context, case: Case) -> None:
    """f(x1) at most the chord of f(x0) and f(x2), for every three neighbours of the fixed grid.

    The exact values satisfy it exactly, and each returned value may be `budget` ULPs off, so the
    allowance is budget x (ulp(f1) + max(ulp(f0), ulp(f2))), plus the float64 rounding of the chord
    itself: a convex function computed within its budget never fails here, and a threshold that
    jumps (a cut-over to x that drops the log1p(exp(-x)) term) does.  Subnormal inputs are left
    out, and so are triples with a nonzero value within `precision` binades of underflow, where a
    neighbour whose exact value is subnormal comes back flushed to 0 (the subnormal check's
    subject: TensorFlow's and JAX's float32 softplus(-87.34)).
    """
    spec, dtype = case.spec, case.dtype
    first = spec.tensor_inputs[0]
    budget = spec.budget(dtype, VALUE).ulp
    params = spec.default_params()
    x = G.with_neighbours(spec, G.fixed_grid(spec, dtype), dtype)
    got = backend_value(ctx, spec, {first: x}, params, dtype).astype(np.float64)
    d = info(dtype)
    xs = x.astype(np.float64)
    keep = np.isfinite(xs) & np.isfinite(got) & ~((np.abs(xs) < 2.0 ** d.emin) & (xs != 0))
    order = np.argsort(xs[keep], kind="stable")
    xs, ys = xs[keep][order], got[keep][order]
    x0, x1, x2 = xs[:-2], xs[1:-1], xs[2:]
    f0, f1, f2 = ys[:-2], ys[1:-1], ys[2:]
    low = near_underflow_bound(dtype)
    clear = ~(((f0 != 0) & (np.abs(f0) < low)) | ((f1 != 0) & (np.abs(f1) < low)) | ((f2 != 0) & (np.abs(f2) < low)))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        chord = f0 + (x1 - x0) / (x2 - x0) * (f2 - f0)
        u = lambda v: ulp_of(v, d)   # noqa: E731
        allowed = budget * (u(f1) + np.maximum(u(f0), u(f2))) + 8 * 2.0 ** -52 * (np.abs(f0) + np.abs(f1) + np.abs(f2))
        bad = np.nonzero(clear & (x0 < x1) & (x1 < x2) & (f1 - chord > allowed))[0]
    if bad.size:
        i = bad[np.argmax(((f1 - chord) / allowed)[bad])]
        raise CheckFailure(
            f"{case.id}: not convex: f({fmt(x1[i])}) = {fmt(f1[i])} lies {(f1[i] - chord[i]) / u(f1[i:i + 1])[0]:.3g} ULP "
            f"above the chord of f({fmt(x0[i])}) = {fmt(f0[i])} and f({fmt(x2[i])}) = {fmt(f2[i])} "
            f"({allowed[i] / u(f1[i:i + 1])[0]:.3g} ULP allowed: the value budget {budget:g} on each)\n"
            f"  repro: {ctx.adapter.repro(spec.name, {first: cast([x0[i], x1[i], x2[i]], dtype)}, params, dtype)}")


def check_kink(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    budget = spec.budget(dtype, GRADIENT, case.wrt).ulp
    inputs = G.fixed_inputs(spec, np.asarray(case.inputs), dtype)
    g = cast(np.ones(np.asarray(case.inputs).shape), dtype)
    got = backend_vjp(ctx, spec, case.wrt, inputs, g, case.params, dtype)
    ref = ctx.reference.vjp(spec, case.wrt, inputs, g, case.params, dtype)
    m = measure_case(got, ref, dtype, budget, None, case)
    needs_certain(m)
    if not m.ok:
        raise failure(ctx, case, m, inputs, case.params, "convention difference: the derivative at a kink", budget,
                      f"the spec's convention: {case.extra}")


def check_statistics(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    p = 0.3
    params = {**spec.default_params(), "p": p}
    n = 4096
    rng = np.random.default_rng(ctx.case_seed(case))
    x = cast(rng.uniform(0.5, 2.0, n), dtype)
    got = backend_value(ctx, spec, {"x": x}, params, dtype).astype(np.float64)
    zeros = float((got == 0).mean())
    sigma = math.sqrt(p * (1 - p) / n)
    if abs(zeros - p) > 5 * sigma:
        raise CheckFailure(f"{case.id}: {zeros:.4f} of {n} entries are zero with p={p}; expected {p} +- {5 * sigma:.4f} (5 sigma)")
    kept = got != 0
    ref = ctx.reference.value(spec, {"x": x[kept]}, params, dtype)
    budget = spec.budget(dtype, VALUE).ulp
    m = measure_case(cast(got[kept], dtype), ref, dtype, budget, None, case)
    ctx.results.setdefault(case.id, Worst()).update(m, {"x": x[kept]}, params)
    if not m.ok:
        raise failure(ctx, case, m, {"x": x[kept]}, params, "kept entries must be x / (1 - p)", budget)
    try:
        same = backend_value(ctx, spec, {"x": x}, {**params, "training": False}, dtype)
    except pytest.skip.Exception:
        return
    if not np.array_equal(same.astype(np.float64), x.astype(np.float64)):
        raise CheckFailure(f"{case.id}: in evaluation mode (training=False) dropout changed its input")


RUNNERS: dict[str, Callable[[Context, Case], None]] = {
    "value": check_value, "gradient": check_gradient, "subnormal": check_subnormal, "stability": check_stability,
    "extremes": check_extremes, "special": check_special, "dtype": check_dtype, "properties": check_properties,
    "kink": check_kink, "statistics": check_statistics, "convexity": check_convexity, **defaults.RUNNERS,
}
