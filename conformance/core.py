"""What every family's checks share: the case, the context, calling a backend, measuring, failing.

A backend that raises, returns the wrong type or shape, or returns NaN where the exact result is
finite fails its check with a message; the run goes on.  A backend that does not provide
something is skipped with the reason.  An input where the reference is uncertain is left out; a
check with nothing certain left is skipped as "reference uncertain", never passed.  This module
imports no family: the families (families/) import it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st

from nnconform.adapters.base import Adapter, NotProvided
from nnconform.reference import LossReference, OptimizerReference, Reference, RefResult
from nnconform.reference.tiers import losses_for
from nnconform.spec import OptimizerSpec, Spec

if sys.version_info < (3, 11):     # pragma: no cover - Hypothesis depends on the backport there
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

from . import kinds
from .compare import Measurement, ShapeMismatch, describe_ulp, fmt, measure


@dataclass(frozen=True)
class Case:
    spec: Spec | OptimizerSpec
    dtype: str | None           # None for dtype-independent checks (defaults)
    check: str
    label: str = ""
    wrt: str | None = None      # gradient: the input differentiated
    inputs: Any = None          # fixed-point checks: {input: array}
    params: dict[str, Any] = field(default_factory=dict)
    extra: Any = None           # check-specific payload (a NativeDefault, a property name, ...)
    skip: str | None = None     # set when the backend does not provide this

    @property
    def function(self) -> str:
        return self.spec.name

    @property
    def id(self) -> str:
        head = f"{self.spec.name}[{self.dtype}]" if self.dtype else self.spec.name
        return f"{head} {self.check}" + (f" {self.label}" if self.label else "")


def short(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "-0.0" if math.copysign(1, v) < 0 else "0"
    return repr(float(v)) if abs(v) < 1e-4 or abs(v) >= 1e6 else f"{float(v):.12g}"


def show(a: np.ndarray) -> str:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0 or a.size == 1:
        return short(float(a.ravel()[0]))
    if a.ndim == 1:
        return "[" + ", ".join(short(v) for v in a) + "]"
    return "[" + ", ".join(show(r) for r in a) + "]"


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
    losses: LossReference = field(init=False)           # the same reference, applied to losses' reductions
    optimizers: OptimizerReference = field(init=False, default_factory=OptimizerReference)

    def __post_init__(self) -> None:
        self.losses = losses_for(self.reference)

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
    with np.errstate(invalid="ignore"):
        beyond = int(np.sum(~(m.ulp <= m.allowed)))
    lines.append(f"  beyond:   {beyond} of {m.ulp.size} elements over their allowance")
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

_providers: Any = None
try:       # Hypothesis's private internals: where they are missing, the draws keep what Hypothesis does
    from hypothesis.internal.conjecture import providers as _providers
    from hypothesis.internal.constants_ast import Constants as _Constants
except ImportError:    # pragma: no cover - another Hypothesis
    pass


@contextlib.contextmanager
def own_constants_only() -> Iterator[None]:
    """Hypothesis draws one value in twenty from the constants it finds in the *local* modules loaded
    (here: the suite's own source, when installed in editable mode), so the examples would change
    with any edit of the suite and differ between an editable and a wheel install.  During a
    check's search it draws from its own constants only: the examples depend on the seed and the
    Hypothesis version alone (docs/design.md).
    """
    get = getattr(_providers, "_get_local_constants", None)
    cache = getattr(_providers, "CONSTANTS_CACHE", None)
    if get is None or cache is None:
        yield
        return
    empty = _Constants()
    cache.cache.clear()
    _providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        _providers._get_local_constants = get
        cache.cache.clear()


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
    with own_constants_only():
        try:
            seed(ctx.case_seed(case))(search)()
        except ExceptionGroup as group:
            raise first_failure(group) from None


def first_failure(group: BaseExceptionGroup[Any]) -> BaseException:
    """Hypothesis groups the distinct failures of a search: one check, one verdict, so the first is the report
    (an ExceptionGroup is no AssertionError: a known entry would not absorb it, the run would show a traceback).
    A group with anything but check failures in it is a crash, and stays one."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        e = pending.pop(0)
        if isinstance(e, BaseExceptionGroup):
            pending[:0] = list(e.exceptions)
        else:
            leaves.append(e)
    if not leaves or not all(isinstance(e, CheckFailure) for e in leaves):
        return group
    return CheckFailure(f"{leaves[0]}\n  (the first of {len(leaves)} distinct failures Hypothesis found in this check)")


def needs_certain(m: Measurement) -> None:
    if not m.any_certain:
        pytest.skip("reference uncertain for every input of this example")


def measure_case(got: np.ndarray, ref: RefResult, dtype: str, budget: float, cond: np.ndarray | None, case: Case,
             inputs: list[np.ndarray] | None = None, subnormals: str = "exclude",
             exclude: np.ndarray | None = None) -> Measurement:
    try:
        return measure(got, ref, dtype, budget, cond, inputs, subnormals, exclude)
    except ShapeMismatch as exc:
        raise CheckFailure(f"{case.id}: {exc}") from None


def measure_widened(got: np.ndarray, ref: RefResult, dtype: str, budget: float, case: Case, inputs: list[np.ndarray],
                     condition: Callable[[np.ndarray], np.ndarray | None], exclude: np.ndarray | None = None) -> Measurement:
    """The measurement against budget x condition, with the condition evaluated only where the bare
    budget is exceeded (it only ever widens the budget, and 65,536 conditions take mpmath a minute)."""
    m = measure_case(got, ref, dtype, budget, None, case, inputs, exclude=exclude)
    if m.ok:
        return m
    cond = condition(~(m.ratio <= 1))
    return m if cond is None else measure_case(got, ref, dtype, budget, cond, case, inputs, exclude=exclude)


# ---------------------------------------------------------------- building cases

@dataclass
class Build:
    """What a family's case builder needs: the backend, the reference, the dtypes the run asked for."""

    adapter: Adapter
    reference: Reference
    dtypes: list[str]

    @property
    def losses(self) -> LossReference:
        return losses_for(self.reference)


ForDtype = Callable[[Build, Spec, str, bool, str], list[Case]]


def function_cases(build: Build, spec: Spec, for_dtype: ForDtype) -> list[Case]:
    """The cases of a function (an activation or a loss): provided, its native defaults, then per dtype."""
    out: list[Case] = []
    try:
        op = build.adapter.op(spec.name)
    except NotProvided as exc:
        return [Case(spec, None, kinds.PROVIDED, skip=f"not provided: {exc}")]
    for nd in op.native:
        out.append(Case(spec, None, kinds.DEFAULTS, f"{nd.framework_name}", extra=nd))
    for dtype in build.dtypes:
        reason = build.adapter.supports(spec.name, dtype)
        if reason:
            out.append(Case(spec, dtype, kinds.PROVIDED, skip=f"not provided: {reason}"))
            continue
        out.extend(for_dtype(build, spec, dtype, op.differentiable and not build.adapter.gradient_reason,
                             op.why or build.adapter.gradient_reason))
    return out
