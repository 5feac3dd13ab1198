"""What each kind of check does.  One function per check kind; each makes one claim.

A backend that raises, returns the wrong type or shape, or returns NaN where the
exact result is finite fails the check with a message; the run goes on.  A
backend that does not provide something is skipped with the reason.  An input
where the reference is uncertain is left out; a check with nothing certain left
is skipped as "reference uncertain", never passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, seed, settings, target
from hypothesis import strategies as st

from nnconform.adapters.base import REQUIRED, Adapter, NotProvided
from nnconform.reference import Reference, RefResult
from nnconform.reference.dtypes import all_bit_patterns, info
from nnconform.spec import Spec

from . import strategies as S
from .cases import Case, fixed_inputs, shape_point, show, short, stability_points
from .compare import Measurement, ShapeMismatch, describe_ulp, fmt, measure, near_underflow


class CheckFailure(AssertionError):
    """A check found a difference; the message is the report."""


@dataclass
class Worst:
    """The largest error a check saw, kept for the report whether the check passed or not."""

    ratio: float = -1.0
    max_ulp: float = 0.0
    max_relative: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def update(self, m: Measurement, inputs: dict[str, np.ndarray], params: dict[str, Any]) -> None:
        if not m.any_certain or m.max_ratio <= self.ratio:
            self.max_relative = max(self.max_relative, m.max_relative if m.any_certain else 0.0)
            return
        w = m.worst
        self.ratio, self.max_ulp = m.max_ratio, max(self.max_ulp, m.max_ulp)
        self.max_relative = max(self.max_relative, m.max_relative)
        first = next(iter(inputs))
        x = np.asarray(inputs[first], dtype=np.float64).ravel()
        self.detail = {"input": float(x[w]) if x.size == m.got.size else [float(v) for v in x[:64]],
                       "expected": float(m.expected.astype(np.float64).ravel()[w]),
                       "got": float(m.got.astype(np.float64).ravel()[w]) if m.got.size else None,
                       "ulp": float(m.ulp.ravel()[w]), "allowed": float(m.allowed.ravel()[w]),
                       "params": {k: v for k, v in params.items()}}


@dataclass
class Context:
    adapter: Adapter
    reference: Reference
    max_examples: int = 25
    seed: int = 0
    phases: tuple = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target)
    results: dict[str, Worst] = field(default_factory=dict)
    call_timeout: float = 60.0     # seconds one backend call may take (first calls compile: XLA, tf.function)

    def case_seed(self, case: Case) -> int:
        return int(hashlib.sha256(f"{self.seed}:{case.id}".encode()).hexdigest()[:8], 16)


# ---------------------------------------------------------------- calling the backend

class CallTimeout(Exception):
    """A backend call ran past the per-call time limit."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Interrupt a backend call that runs longer than `seconds` (SIGALRM; main thread, POSIX).

    Python code is interrupted at once; a call stuck inside C code is interrupted when it next
    returns to Python.  Elsewhere (a worker thread, Windows) there is no limit.
    """
    usable = (seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise CallTimeout(f"{what} ran past the per-call time limit of {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call_backend(ctx: Context, what: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
    try:
        with time_limit(ctx.call_timeout, what):
            out = fn()
    except CallTimeout as exc:
        raise CheckFailure(f"{ctx.adapter.name}: {exc}") from None
    except NotProvided as exc:
        pytest.skip(f"not provided: {exc}")
    except Exception as exc:   # noqa: BLE001 - any error of the backend is a finding about it
        raise CheckFailure(f"{ctx.adapter.name} raised {type(exc).__name__} in {what}: {exc}") from exc
    if not isinstance(out, np.ndarray):
        raise CheckFailure(f"{what} returned {type(out).__name__}, not an array")
    return out


def backend_value(ctx: Context, spec: Spec, inputs: dict[str, np.ndarray], params: dict[str, Any], dtype: str) -> np.ndarray:
    return call_backend(ctx, f"{spec.name} value", lambda: ctx.adapter.value(spec.name, inputs, params, dtype))


def backend_vjp(ctx: Context, spec: Spec, wrt: str, inputs: dict[str, np.ndarray], g: np.ndarray,
                params: dict[str, Any], dtype: str) -> np.ndarray:
    return call_backend(ctx, f"{spec.name} gradient", lambda: ctx.adapter.vjp(spec.name, wrt, inputs, g, params, dtype))


# ---------------------------------------------------------------- messages

def worst_inputs(spec: Spec, inputs: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    """The smallest input that shows the failure: one element, or one row for vector functions."""
    first = spec.tensor_inputs[0]
    x = np.asarray(inputs[first])
    if x.ndim == 0:
        return inputs
    if spec.family == "activation" and spec.shape == "elementwise" and all(np.asarray(a).shape == x.shape for a in inputs.values()):
        return {k: np.asarray(a).ravel()[index:index + 1] for k, a in inputs.items()}     # x, and a cotangent g
    if len(inputs) > 1:
        return inputs
    if x.ndim == 2 and spec.doc.output == "same":
        return {first: x[index // x.shape[1]][None, :]}
    return inputs


def failure(ctx: Context, case: Case, m: Measurement, inputs: dict[str, np.ndarray], params: dict[str, Any],
            what: str, budget: float, extra: str = "") -> CheckFailure:
    spec, dtype = case.spec, case.dtype or "float64"
    w = m.worst
    first = spec.tensor_inputs[0]
    x = np.asarray(inputs[first]).astype(np.float64)
    xin = x.ravel()[w] if spec.shape == "elementwise" and x.size == m.got.size else None
    cond = m.allowed.ravel()[w] / budget
    lines = [f"{case.id}: {describe_ulp(m.ulp.ravel()[w])} > {m.allowed.ravel()[w]:.3g} ULP allowed "
             f"({ctx.adapter.name} {ctx.adapter.version}, {ctx.adapter.device})"]
    if params:
        lines.append("  params:   " + ", ".join(f"{k}={v!r}" for k, v in params.items()))
    if xin is not None:
        lines.append(f"  input:    x = {fmt(xin)}")
    else:
        lines.append(f"  input:    {first} = {show(x)}")
    lines.append(f"  expected: {fmt(m.expected.astype(np.float64).ravel()[w])}  (exact, correctly rounded to {dtype})")
    lines.append(f"  got:      {fmt(m.got.astype(np.float64).ravel()[w])}")
    lines.append(f"  error:    {describe_ulp(m.ulp.ravel()[w])}; max relative error {m.max_relative:.3g}; "
                 f"budget {budget:g} ULP x condition {cond:.3g}")
    for note in m.notes:
        lines.append(f"  note:     {note}")
    if extra:
        lines.append(f"  why it matters: {extra}")
    try:
        small = worst_inputs(spec, inputs, w)
        lines.append(f"  repro:    {ctx.adapter.repro(spec.name, small, params, dtype)}")
    except Exception:   # noqa: BLE001 - a repro is a courtesy; the failure stands without it
        pass
    lines.append(f"  ({what})")
    return CheckFailure("\n".join(lines))


# ---------------------------------------------------------------- hypothesis plumbing

def run_search(ctx: Context, case: Case, strategy: st.SearchStrategy[Any], body: Callable[[Any], None],
               max_examples: int | None = None, explicit: Sequence[Any] = ()) -> None:
    """Hypothesis over `strategy`; `explicit` examples run first, under every seed (Phase.explicit)."""
    def search(example: Any) -> None:
        body(example)
    for ex in reversed(list(explicit)):
        search = example(ex)(search)
    search = given(strategy)(search)
    search = settings(max_examples=max_examples or ctx.max_examples, deadline=None, database=None, phases=ctx.phases,
                      derandomize=False, suppress_health_check=list(HealthCheck), print_blob=False)(search)
    seed(ctx.case_seed(case))(search)()


def input_strategy(spec: Spec, dtype: str, params: dict[str, Any]) -> st.SearchStrategy[dict[str, np.ndarray]]:
    first = spec.tensor_inputs[0]
    if spec.shape == "grouped":
        return S.rows(spec, dtype, params, int(params[spec.doc.group_param])).map(lambda a: {first: a})
    if spec.shape == "vector":
        return S.rows(spec, dtype, params).map(lambda a: {first: a})
    if len(spec.tensor_inputs) == 1:
        return S.batch(spec, first, dtype, params).map(lambda a: {first: a})
    # x with a per-channel weight: x is (batch, channels), the weight (channels,)
    weight = spec.tensor_inputs[1]
    return st.integers(1, 3).flatmap(lambda c: st.tuples(
        st.lists(S.element(spec, first, dtype, params), min_size=c, max_size=4 * c).map(
            lambda v, c=c: S.cast(v[: len(v) // c * c], dtype).reshape(-1, c)),
        st.lists(S.element(spec, weight, dtype, params), min_size=c, max_size=c).map(lambda v: S.cast(v, dtype)),
    )).map(lambda t: {first: t[0], weight: t[1]})


def with_params(spec: Spec, dtype: str, inputs: Callable[[dict], st.SearchStrategy[Any]]) -> st.SearchStrategy[tuple]:
    return S.param_values(spec, dtype).flatmap(lambda p: st.tuples(st.just(p), inputs(p)))


def needs_certain(m: Measurement) -> None:
    if not m.any_certain:
        pytest.skip("reference uncertain for every input of this example")


# ---------------------------------------------------------------- the checks

def check_value(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    budget = spec.doc.tolerance.for_dtype(dtype).ulp
    worst = ctx.results.setdefault(case.id, Worst())

    def body(example: tuple) -> None:
        params, inputs = example
        got = backend_value(ctx, spec, inputs, params, dtype)
        ref = ctx.reference.value(spec, inputs, params, dtype)
        m = _measure_widened(got, ref, dtype, budget, case, list(inputs.values()),
                             lambda only: ctx.reference.condition(spec, "value", inputs, params, dtype=dtype, only=only)
                             if spec.condition is not None else None)
        worst.update(m, inputs, params)
        target(min(m.max_ratio, 1e9), label="error / allowed")
        if not m.ok:
            raise failure(ctx, case, m, inputs, params, "value against the exact reference", budget)
    fixed = [(p, {spec.tensor_inputs[0]: x}) for p, x in fixed_grid_examples(spec, dtype)]
    run_search(ctx, case, with_params(spec, dtype, lambda p: input_strategy(spec, dtype, p)), body,
               explicit=corner_examples(spec, dtype) + fixed + stability_rows(spec, dtype))


def stability_rows(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """A vector function's stability rows, for its value check.

    The value check's draws hold -inf and huge entries, so they reach the rows the spec names as
    hard, but under some seeds only: ONNX Runtime's ReduceLogSumExp fails a drawn row like
    [-inf, -8172.8] and passes the others, and the value verdict moved with the seed.  With the
    spec's rows run under every seed, it does not.
    """
    if spec.shape != "vector":
        return []
    return [(params, {spec.tensor_inputs[0]: S.cast(x, dtype)}) for params, x, _ in stability_points(spec, dtype)]


# Log-spaced magnitudes of the fixed grid: every binade in float32, every 4th in float64 (2,100 binades).
GRID_BINADE_STEP = {"float32": 1, "float64": 4}


def fixed_grid(spec: Spec, dtype: str) -> np.ndarray | None:
    """Inputs that every seed runs, for an elementwise function of one input (None otherwise).

    Every finite float16 and bfloat16 number; in float32 and float64, both signs of log-spaced
    magnitudes from the smallest subnormal to the largest float, a 1/8 grid over [-40, 40], and
    the extreme points.  A backend off by a few ULP at scattered inputs was found by 25 draws
    under some seeds only, and the verdict moved with the seed (docs/NOTES.md, "Determinism").
    In 16 bits this is exhaustive, so the verdict is exact; the 16-bit references ship with the
    package (reference/shipped.py), so it costs milliseconds.
    """
    if spec.shape != "elementwise" or len(spec.tensor_inputs) != 1:
        return None
    first = spec.tensor_inputs[0]
    domain = spec.domain(first)
    if dtype in ("float16", "bfloat16"):
        with np.errstate(invalid="ignore"):
            x = all_bit_patterns(dtype).astype(np.float64)
        pts = x[np.isfinite(x)]
    else:
        d = info(dtype)
        mags = [math.ldexp(1.0, e) for e in range(d.min_subnormal_exp, d.emax + 1, GRID_BINADE_STEP[dtype])]
        pts = np.concatenate([mags, np.negative(mags), BEND_GRID, extreme_points(spec, dtype, spec.default_params())])
    bits = np.unique(S.cast(pts, dtype).astype(np.float64).view(np.uint64))       # by bits: -0.0 stays beside 0.0
    kept = np.sort(bits.view(np.float64))
    return S.cast(kept[domain.mask(kept)], dtype)


def fixed_grid_examples(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], np.ndarray]]:
    grid = fixed_grid(spec, dtype)
    return [] if grid is None else [(spec.default_params(), grid)]


def corner_examples(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """The dtype's extreme points at the defaults and at each end of every drawn parameter's range.

    Run under every seed, so that a finding in a corner (beta * x overflowing for beta > 1 and x
    near the largest float) is the same verdict whatever the draws; a corner reached only by
    some seeds made the verdict depend on the seed.
    """
    if spec.shape != "elementwise" or len(spec.tensor_inputs) != 1:
        return []
    defaults = spec.default_params()
    settings_ = [defaults]
    for name, (lo, hi) in S.param_ranges(spec).items():
        for v in (lo, hi):
            settings_.append({**defaults, name: S.representable(v, dtype)})
    first = spec.tensor_inputs[0]
    out = []
    for p in settings_:
        x = S.cast(extreme_points(spec, dtype, p), dtype)
        out.append((p, {first: x}))
    return out


def _measure(got: np.ndarray, ref: RefResult, dtype: str, budget: float, cond: np.ndarray | None, case: Case,
             inputs: list[np.ndarray] | None = None, subnormals: str = "exclude",
             exclude: np.ndarray | None = None) -> Measurement:
    try:
        return measure(got, ref, dtype, budget, cond, inputs, subnormals, exclude)
    except ShapeMismatch as exc:
        raise CheckFailure(f"{case.id}: {exc}") from None


def _measure_widened(got: np.ndarray, ref: RefResult, dtype: str, budget: float, case: Case, inputs: list[np.ndarray],
                     condition: Callable[[np.ndarray], np.ndarray | None], exclude: np.ndarray | None = None) -> Measurement:
    """The measurement against budget x condition, with the condition evaluated only where the bare
    budget is exceeded (it only ever widens the budget, and 65,536 conditions take mpmath a minute)."""
    m = _measure(got, ref, dtype, budget, None, case, inputs, exclude=exclude)
    if m.ok:
        return m
    cond = condition(~(m.ratio <= 1))
    return m if cond is None else _measure(got, ref, dtype, budget, cond, case, inputs, exclude=exclude)


def check_gradient(ctx: Context, case: Case) -> None:
    spec, dtype, wrt = case.spec, case.dtype, case.wrt
    budget = spec.doc.tolerance.for_dtype(dtype).gradient_ulp
    worst = ctx.results.setdefault(case.id, Worst())

    def with_cotangent(p: dict) -> st.SearchStrategy[Any]:
        return input_strategy(spec, dtype, p).flatmap(
            lambda inputs: st.tuples(st.just(inputs), S.cotangent(ctx.reference.value(spec, inputs, p, dtype).values.shape, dtype)))

    def body(example: tuple) -> None:
        params, (inputs, g) = example
        got = backend_vjp(ctx, spec, wrt, inputs, g, params, dtype)
        ref = ctx.reference.vjp(spec, wrt, inputs, g, params, dtype)
        left_out = near_underflow(g, ref.values.shape, dtype)
        kinks = _at_kinks(ctx, spec, wrt, inputs, params)
        if kinks is not None:
            left_out = left_out | kinks
        m = _measure_widened(got, ref, dtype, budget, case, [*inputs.values(), g],
                             lambda only: _gradient_condition(ctx, spec, wrt, inputs, g, params, dtype, only=only), left_out)
        worst.update(m, inputs, params)
        target(min(m.max_ratio, 1e9), label="error / allowed")
        if not m.ok:
            raise failure(ctx, case, m, {**inputs, "g": g}, params, f"vector-Jacobian product with cotangent g = {show(g)}", budget)
    explicit = [(p, (inputs, S.fixed_cotangent(ctx.reference.value(spec, inputs, p, dtype).values.shape, dtype)))
                for p, inputs in gradient_corner_examples(spec, dtype)]
    if wrt == spec.tensor_inputs[0]:          # cotangent 1, as the sweeps use (and the shipped tables hold)
        explicit += [(p, ({wrt: x}, S.cast(np.ones(x.shape), dtype))) for p, x in fixed_grid_examples(spec, dtype)]
    if spec.shape == "vector":
        explicit.append((spec.default_params(), sample_rows(spec, dtype)))
    run_search(ctx, case, with_params(spec, dtype, with_cotangent), body, explicit=explicit)


BEND_GRID = np.linspace(-40.0, 40.0, 641)     # steps of 1/8 across the region where activations bend


def gradient_corner_examples(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """The value check's corner examples, plus a fixed grid over the bend region at the defaults.

    Gradients lose accuracy in the middle of the range too (sigmoid' in float16 near x = 2.7,
    mish' in float64 near x = 15): 25 draws reach such a region under some seeds only, and the
    verdict then depended on the seed.  A grid with cotangent 1 reaches it under every seed.
    """
    if spec.shape == "vector":
        return [(spec.default_params(), {spec.tensor_inputs[0]: S.cast(_gradient_rows(dtype), dtype)})]
    corners = corner_examples(spec, dtype)
    if not corners:
        return []
    first = spec.tensor_inputs[0]
    defaults, x = corners[0]
    grid = np.unique(np.concatenate([x[first].astype(np.float64), S.cast(BEND_GRID, dtype).astype(np.float64)]))
    domain = spec.domain(first)
    grid = np.asarray([v for v in grid if v in domain])
    return [(defaults, {first: S.cast(grid, dtype)})] + corners[1:]


SAMPLE_ROWS = 1024


def sample_rows(spec: Spec, dtype: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(inputs, cotangent): 1,024 rows of 3 from the draws' own mixtures (|x| < 40, |x| < 1e4, -inf;
    cotangents uniform, simple or tiny), the same under every seed.

    A finding in a few rows of a thousand is then the same verdict whatever the seed.
    """
    rng = S.fixed_rng(spec.name, dtype, "rows")
    x = S.mixture(rng, [*S.ROW_RANGES, -math.inf], 3 * SAMPLE_ROWS)
    rows = S.rows_without_all_masked(S.cast(x, dtype).reshape(SAMPLE_ROWS, 3))
    width = 1 if spec.doc.output == "reduced" else 3                       # logsumexp: one value a row
    return {spec.tensor_inputs[0]: rows}, S.cotangent_sample(rng, (SAMPLE_ROWS, width), dtype)


def _gradient_rows(dtype: str) -> np.ndarray:
    """Rows led by entries of growing magnitude, with neighbours 1/2 to 16 below and a -inf.

    Backward passes form exp(x - y) from the rounded output y (logsumexp, log_softmax), which
    costs a relative error of about |y| eps; rows with a large maximum show it under every seed.
    """
    d = info(dtype)
    big = 2.0 ** d.emax
    rows = []
    for m in (0.0, 3.0, 40.0, 1000.0, 8000.0, 60000.0, 1e6, 1e30):
        if m + 16 < big:
            for s in (1.0, -1.0):
                rows += [[s * m, s * m - 0.5, s * m - 3.0], [s * m, s * m - 16.0, -math.inf]]
    return np.asarray(rows)


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
    if spec.gradient_condition is None:
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
    budget = spec.doc.tolerance.for_dtype(dtype).ulp
    got = backend_value(ctx, spec, inputs, case.params, dtype)
    ref = ctx.reference.value(spec, inputs, case.params, dtype)
    cond = ctx.reference.condition(spec, "value", inputs, case.params, dtype=dtype) if spec.condition is not None else None
    m = _measure(got, ref, dtype, budget, cond, case, list(inputs.values()), subnormals)
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
    inputs = fixed_inputs(case.spec, np.asarray(case.inputs), case.dtype)
    _fixed_point(ctx, case, inputs, "a stability input named in the spec", case.extra)


def extreme_points(spec: Spec, dtype: str, params: dict[str, Any]) -> np.ndarray:
    d = info(dtype)
    big = float(S.cast([2.0 ** d.emax * (2 - 2.0 ** (1 - d.precision))], dtype)[0])
    sub = 2.0 ** d.min_subnormal_exp
    tiny = 2.0 ** d.emin
    eps = 2.0 ** (1 - d.precision)
    base = [0.0, sub, 2 * sub, tiny / 2, tiny, eps, 1 - eps / 2, 1.0, 2.0, 10.0, 30.0, big ** 0.5, big / 2, big,
            math.log(big), math.log(tiny), -math.log(tiny), -math.log(sub)]
    pts = set()
    for v in base:
        for s in (1.0, -1.0):
            pts.add(S.representable(s * v, dtype))
    for a in S.anchors(spec, spec.tensor_inputs[0], params):
        for k in (-2, -1, 1, 2):
            pts.add(S.nudge(a, k, dtype))
    domain = spec.domain(spec.tensor_inputs[0])
    return S.cast(sorted(p for p in pts if math.isfinite(p) and p in domain), dtype).astype(np.float64)


def _extreme_inputs(spec: Spec, dtype: str) -> dict[str, np.ndarray]:
    params = spec.default_params()
    pts = extreme_points(spec, dtype, params)
    if spec.shape == "elementwise":
        x = shape_point(spec, pts)
    else:
        group = int(params[spec.doc.group_param]) if spec.shape == "grouped" else 1
        chosen = [p for p in pts if abs(p) > 1 or p == 0][:12]
        pairs = [[a, b] for a in chosen for b in chosen]
        x = np.asarray([(row * group)[: 2 * group] if group > 1 else row + [0.0] for row in pairs])
    return fixed_inputs(spec, x, dtype)


def check_subnormal(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    case = Case(spec, dtype, case.check, case.label, params=spec.default_params())
    _fixed_point(ctx, case, _extreme_inputs(spec, dtype), "gradual underflow: subnormal inputs and results",
                 "IEEE 754 gradual underflow; a backend that flushes subnormals to zero fails here", subnormals="only")


def check_extremes(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    inputs = _extreme_inputs(spec, dtype)
    case = Case(spec, dtype, case.check, case.label, params=spec.default_params())
    _fixed_point(ctx, case, inputs, "generated extremes of the dtype and points either side of each kink")


def check_special(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    inputs = fixed_inputs(spec, np.asarray(case.inputs), dtype)
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
        lo, hi = S.finite_bounds(spec.domain(spec.tensor_inputs[0]), dtype)
        x = shape_point(spec, np.linspace(max(lo, -2.0), min(hi, 2.0), 6))
    else:
        x = np.linspace(-2, 2, 12).reshape(3, 4)
    inputs = fixed_inputs(spec, x, dtype)
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
    budget = spec.doc.tolerance.for_dtype(dtype).ulp

    def body(example: tuple) -> None:
        params, inputs = example
        first = spec.tensor_inputs[0]
        if spec.shape == "elementwise":
            # subnormal inputs belong to the subnormal check (a flushing backend fails there, once)
            flat = inputs[first].ravel()
            tiny = (np.abs(flat.astype(np.float64)) < 2.0 ** info(dtype).emin) & (flat != 0)
            inputs = {**inputs, first: flat[~tiny] if (~tiny).any() else S.cast([1.0], dtype)}
        x = inputs[first]
        got = backend_value(ctx, spec, inputs, params, dtype).astype(np.float64)

        def repro(*at: float) -> str:
            """The backend call at the offending inputs only (an example may hold every 16-bit number)."""
            shown = {first: S.cast(list(at), dtype)} if spec.shape == "elementwise" else inputs
            return ctx.adapter.repro(spec.name, shown, params, dtype)
        if prop == "range":
            from nnconform.spec.schema import parse_interval
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
                spacing = np.spacing(S.cast(scale, dtype)).astype(np.float64)
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
    fixed = [(p, {spec.tensor_inputs[0]: _with_neighbours(spec, x, dtype)}) for p, x in fixed_grid_examples(spec, dtype)]
    run_search(ctx, case, with_params(spec, dtype, lambda p: input_strategy(spec, dtype, p)), body, explicit=fixed)


# The property grid's mantissas per binade: dense where activations bend (|x| in [2^-16, 2^16]), sparse
# elsewhere.  A property check never calls the reference, so a point costs only the backend's call.
PROPERTY_MANTISSAS = {"bend": 256, "elsewhere": 8}
PROPERTY_BEND_BINADES = 16
PROPERTY_NEIGHBOURS = 3


def _with_neighbours(spec: Spec, grid: np.ndarray, dtype: str) -> np.ndarray:
    """The fixed grid plus, in float32 and float64, runs of neighbouring numbers.

    A monotonicity break, or a result a ULP outside the range, is a pair of neighbours or a
    scattered point that 25 draws reach under some seeds only (ONNX Runtime's float32 Celu
    steps down at about 1% of neighbouring pairs near x = -0.1; its Softsign exceeds 1 at 16%
    of inputs above 8.5e37, never at a power of two).  So every normal binade holds evenly
    spaced mantissas (256 where |x| is in [2^-16, 2^16], 8 elsewhere), and each point of those
    and of the 1/8 grid over [-40, 40] comes with the next 3 numbers above it.  The 16-bit grid
    has every pair already.
    """
    if dtype in ("float16", "bfloat16"):
        return grid
    d = info(dtype)
    starts = [S.cast(BEND_GRID, dtype)]
    for e in range(d.emin, d.emax + 1):
        dense = abs(e) <= PROPERTY_BEND_BINADES
        m = PROPERTY_MANTISSAS["bend" if dense else "elsewhere"]
        mags = np.ldexp(1.0 + np.arange(m) / m, e)
        starts += [S.cast(mags, dtype), S.cast(-mags, dtype)]
    start = np.concatenate(starts)
    up = np.asarray(np.inf, dtype=start.dtype)
    runs = [start]
    for _ in range(PROPERTY_NEIGHBOURS):
        runs.append(np.nextafter(runs[-1], up))
    pts = np.concatenate([grid.astype(np.float64)] + [r.astype(np.float64) for r in runs])
    domain = spec.domain(spec.tensor_inputs[0])
    pts = np.unique(pts[np.isfinite(pts)])
    return S.cast(pts[domain.mask(pts)], dtype)


def check_kink(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    budget = spec.doc.tolerance.for_dtype(dtype).gradient_ulp
    inputs = fixed_inputs(spec, np.asarray(case.inputs), dtype)
    g = S.cast(np.ones(np.asarray(case.inputs).shape), dtype)
    got = backend_vjp(ctx, spec, case.wrt, inputs, g, case.params, dtype)
    ref = ctx.reference.vjp(spec, case.wrt, inputs, g, case.params, dtype)
    m = _measure(got, ref, dtype, budget, None, case)
    needs_certain(m)
    if not m.ok:
        raise failure(ctx, case, m, inputs, case.params, "convention difference: the derivative at a kink", budget,
                      f"the spec's convention: {case.extra}")


def check_defaults(ctx: Context, case: Case) -> None:
    nd = case.extra
    spec = case.spec
    try:
        native = nd.value()
    except Exception as exc:   # noqa: BLE001
        raise CheckFailure(f"{case.id}: could not read the default: {type(exc).__name__}: {exc}") from exc
    canonical = nd.canonical
    if canonical is None:
        canonical = spec.canonical(nd.spec_name)
    if native is REQUIRED:
        return     # the API makes the caller choose: no silent default to differ
    same = _same(native, canonical)
    if not same:
        where = "parameter" if nd.spec_name in spec.doc.params else "convention"
        note = f" ({nd.note})" if nd.note else ""
        raise CheckFailure(f"{case.id}: {ctx.adapter.op(spec.name).api} defaults {nd.framework_name}={native!r}{note}; "
                           f"the canonical {where} {nd.spec_name} is {canonical!r}. A model ported without passing "
                           f"{nd.framework_name} explicitly computes something else.")


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).lower() == str(b).lower()


def check_statistics(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    p = 0.3
    params = {**spec.default_params(), "p": p}
    n = 4096
    rng = np.random.default_rng(ctx.case_seed(case))
    x = S.cast(rng.uniform(0.5, 2.0, n), dtype)
    got = backend_value(ctx, spec, {"x": x}, params, dtype).astype(np.float64)
    zeros = float((got == 0).mean())
    sigma = math.sqrt(p * (1 - p) / n)
    if abs(zeros - p) > 5 * sigma:
        raise CheckFailure(f"{case.id}: {zeros:.4f} of {n} entries are zero with p={p}; expected {p} +- {5 * sigma:.4f} (5 sigma)")
    kept = got != 0
    ref = ctx.reference.value(spec, {"x": x[kept]}, params, dtype)
    budget = spec.doc.tolerance.for_dtype(dtype).ulp
    m = _measure(S.cast(got[kept], dtype), ref, dtype, budget, None, case)
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
    "value": check_value, "gradient": check_gradient, "subnormal": check_subnormal, "stability": check_stability, "extremes": check_extremes,
    "special": check_special, "dtype": check_dtype, "properties": check_properties, "kink": check_kink,
    "defaults": check_defaults, "statistics": check_statistics,
}


def run(ctx: Context, case: Case) -> None:
    if case.skip:
        pytest.skip(case.skip)
    if case.spec.family == "optimizer" and case.check != "defaults":
        from . import optimizer_checks
        optimizer_checks.RUNNERS[case.check](ctx, case)
        return
    if case.spec.family == "loss" and case.check != "defaults":
        from . import loss_checks
        loss_checks.RUNNERS[case.check](ctx, case)
        return
    RUNNERS[case.check](ctx, case)
