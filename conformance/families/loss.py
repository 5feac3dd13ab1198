"""The loss family: its cases and its checks, generated from spec/losses/*.yaml; nothing here names a loss.

A loss is checked in *configurations*: the plain loss (default parameters, no class weights)
under each reduction, and then each option the spec declares (a real parameter such as
label_smoothing, class weights, ignore_index) under "mean", where the options and the reduction
interact (what a weighted mean divides by).  An option a backend's API lacks is reported "not
provided" for that configuration only.  Ids read as sentences:
``cross_entropy[float32] value reduction=mean with class weights``.

The tolerance of a reduced loss (sum or mean) is derived, not guessed: each sample may be off
by the spec's per-sample budget times its condition number, and a pairwise (or better)
summation of n terms adds at most about log2(n) eps sum|l_i| (Higham, Accuracy and Stability of
Numerical Algorithms, 2nd ed., section 4.2); "mean" adds one rounding for its division.  A
backend that sums naively in low precision exceeds this on large batches, which is the point of
the large_batch check.  See docs/losses.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis import target

from nnconform.adapters.base import NotProvided
from nnconform.reference import RefResult
from nnconform.reference.dtypes import cast, info, representable
from nnconform.spec import Spec
from nnconform.spec.schema import number

from ..compare import Measurement
from ..core import (
    Build,
    CallTimeout,
    Case,
    CheckFailure,
    Context,
    Worst,
    call_backend,
    failure,
    function_cases,
    measure_case,
    show,
    time_limit,
)
from ..core import run_search as _run_search
from ..inputs import grids as G
from ..inputs import strategies as S
from ..inputs.strategies import WIDTH
from ..kinds import GRADIENT, VALUE
from . import defaults

NAME = "loss"


def cases(build: Build, spec: Spec) -> list[Case]:
    return function_cases(build, spec, for_dtype)


ROWS, CLASSES = 4, 5           # vector losses: fixed shapes (jitted backends compile once per shape)
ELEMENTS = (4, 3)              # elementwise losses
LARGE_ROWS = 2048              # the large-batch check: float16 accumulation and naive sums become visible
PLAIN = "plain"


@dataclass(frozen=True)
class Config:
    name: str                  # "plain", a parameter name, "weight" or "ignore_index"
    reduction: str

    @property
    def label(self) -> str:
        what = {PLAIN: "", "weight": " with class weights", "ignore_index": " with ignore_index"}.get(
            self.name, f" with {self.name}")
        return f"reduction={self.reduction}{what}"


def configs(spec: Spec) -> list[Config]:
    out = [Config(PLAIN, r) for r in ("none", "sum", "mean")]
    out += [Config(n, "mean") for n, p in spec.doc.params.items() if p.kind == "real"]
    if any(s.kind == "class_weight" for s in spec.doc.inputs.values()):
        out.append(Config("weight", "mean"))
    if spec.ignore is not None:
        out.append(Config("ignore_index", "mean"))
    return out


def weight_name(spec: Spec) -> str | None:
    return next((n for n, s in spec.doc.inputs.items() if s.kind == "class_weight"), None)


def for_backend(spec: Spec, inputs: dict[str, np.ndarray], weighted: bool) -> dict[str, np.ndarray]:
    """The backend gets class weights only where the check is about them; the reference always has them (ones)."""
    w = weight_name(spec)
    return {k: v for k, v in inputs.items() if k != w or weighted}


def fixed_loss_inputs(spec: Spec, dtype: str, rows: int = ROWS, classes: int = CLASSES,
                      axis_shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """Deterministic, documented inputs: predictions spread over the domain, targets cycling through the classes."""
    out: dict[str, np.ndarray] = {}
    if spec.shape == "elementwise":
        shape = (rows, ELEMENTS[1]) if axis_shape is None else axis_shape
        n = int(np.prod(shape))
        for k, (name, s) in enumerate(spec.doc.inputs.items()):
            dom = spec.domain(name)
            lo, hi = max(dom.lo, -3.0), min(dom.hi, 3.0)
            v = np.linspace(lo, hi, n + 2)[1:-1]
            out[name] = cast((v if k == 0 else v[::-1]).reshape(shape), dtype)
        return out
    shape = (rows, classes) if axis_shape is None else axis_shape
    axis = 1 if axis_shape is not None else -1
    lead = tuple(d for i, d in enumerate(shape) if i != axis % len(shape))
    for name, s in spec.doc.inputs.items():
        if s.kind == "class_index":
            out[name] = (np.arange(int(np.prod(lead))) % classes).reshape(lead).astype(np.int64)
        elif s.kind == "class_weight":
            out[name] = cast(np.ones(classes), dtype)
        elif name == spec.tensor_inputs[0]:
            dom = spec.domain(name)
            lo, hi = max(dom.lo, -3.0), min(dom.hi, 3.0)
            out[name] = cast(np.linspace(lo, hi, int(np.prod(shape))).reshape(shape), dtype)
        else:                                            # probability targets: rows of a distribution
            p = np.moveaxis(np.zeros(shape), axis, -1)
            p[..., :] = np.arange(1, classes + 1) / (classes * (classes + 1) / 2)
            out[name] = cast(np.moveaxis(p, -1, axis), dtype)
    return out


def stability_inputs(spec: Spec, entry: Any, dtype: str) -> dict[str, np.ndarray]:
    def arr(items: list) -> np.ndarray:
        return np.asarray([[number(v) for v in i] if isinstance(i, list) else number(i) for i in items], dtype=np.float64)
    with np.errstate(over="ignore"):
        x = cast(arr(entry.x), dtype)
    out: dict[str, np.ndarray] = {spec.tensor_inputs[0]: x}
    classes = x.shape[-1] if x.ndim > 1 else 1
    for name, s in list(spec.doc.inputs.items())[1:]:
        if s.kind == "class_index":
            out[name] = arr(entry.target).astype(np.int64)
        elif s.kind == "class_weight":
            out[name] = cast(arr(entry.weight) if entry.weight is not None else np.ones(classes), dtype)
        else:
            with np.errstate(over="ignore"):
                out[name] = cast(arr(entry.target), dtype)
    return out


def for_dtype(build: Build, spec: Spec, dtype: str, differentiable: bool, why_not: str) -> list[Case]:
    out: list[Case] = []
    for cfg in configs(spec):
        out.append(Case(spec, dtype, "value", cfg.label, extra=cfg))
        for i, wrt in enumerate(spec.differentiable_inputs):
            # The gradient of a sum is the per-sample gradient times a constant ("none" covers it);
            # a target's gradient is checked plain, the options belong to the predictions.
            if cfg.reduction == "sum" or (i > 0 and cfg.name != PLAIN):
                continue
            label = f"d/d{wrt} {cfg.label}"
            skip = None if differentiable else f"not provided: {why_not}"
            out.append(Case(spec, dtype, "gradient", label, wrt=wrt, extra=cfg, skip=skip))
    losses = build.losses
    for entry in spec.doc.stability:
        params = {**spec.default_params(), **{k: number(v) for k, v in entry.params.items()}}
        inputs = stability_inputs(spec, entry, dtype)
        try:
            res = losses.value(spec, inputs, params, entry.reduction, dtype)
            expected = "uncertain" if res.any_uncertain else show(res.values)
        except Exception:   # noqa: BLE001 - an id must never stop collection; the test itself reports it
            expected = "?"
        shown = " ".join(f"{k}={show(v)}" for k, v in inputs.items() if k != weight_name(spec) or entry.weight)
        label = f"reduction={entry.reduction} {shown} -> {expected}"
        out.append(Case(spec, dtype, "stability", label, inputs=inputs, params=params,
                        extra=(Config(PLAIN if entry.weight is None else "weight", entry.reduction), entry.why)))
    for r in ("none", "mean"):
        out.append(Case(spec, dtype, "special", f"nan in the predictions propagates reduction={r}", extra=Config(PLAIN, r)))
    out.append(Case(spec, dtype, "dtype", "output dtype and shape for every reduction"))
    out.append(Case(spec, dtype, "shapes", "batch of one reduction=mean", extra=("one", Config(PLAIN, "mean"))))
    for r in ("none", "sum", "mean"):
        out.append(Case(spec, dtype, "shapes", f"empty batch reduction={r}", extra=("empty", Config(PLAIN, r))))
    if spec.shape == "vector":
        for r in ("none", "mean"):
            out.append(Case(spec, dtype, "shapes", f"class axis 1 of 3 reduction={r}", extra=("axis", Config(PLAIN, r))))
    if dtype != "float64":    # float64 summation error stays far below any budget at this size
        for r in ("sum", "mean"):
            out.append(Case(spec, dtype, "large_batch", f"{LARGE_ROWS} samples reduction={r}", extra=Config(PLAIN, r)))
    return out


def run_search(ctx: Context, case: Case, strategy: st.SearchStrategy[Any], body: Any, explicit: list[Any] = ()) -> None:
    """As for activations, with 2/5 of the examples: each example is a whole batch (12 or 20 values)."""
    _run_search(ctx, case, strategy, body, max_examples=max(1, ctx.max_examples * 2 // 5), explicit=explicit)


# ---------------------------------------------------------------- inputs

def _element_parts(spec: Spec, name: str, dtype: str, tiny: bool) -> tuple[list[tuple[float, float]], list[float]]:
    """The ranges (clipped to the domain's finite bounds) and special values of `_element`'s mixture,
    shared with the fixed sample so that the sample stands for the draws."""
    lo, hi = G.finite_bounds(spec.domain(name), dtype)
    ranges = [(-40.0, 40.0), (-8192.0, 8192.0)] + ([(-2.0 ** -10, 2.0 ** -10)] if tiny else [])
    return [(max(lo, a), min(hi, b)) for a, b in ranges if max(lo, a) < min(hi, b)], [0.0, 1.0, -1.0, 0.5]


def _element(spec: Spec, name: str, dtype: str, tiny: bool = True) -> st.SearchStrategy[float]:
    """Values up to 8192 in size: where losses bend, large, and (elementwise) tiny or subnormal.

    Not the dtype's whole range, unlike activations: a batch of values near the largest float
    overflows any sum-then-divide mean, in every framework, and that one finding would hide
    every other.  Overflow, -inf masks and exact 0/1 probabilities are the spec's stability
    inputs, checked one by one.
    """
    dom = spec.domain(name)
    ranges, specials = _element_parts(spec, name, dtype, tiny)
    parts = [st.floats(a, b, width=WIDTH[dtype], allow_nan=False, allow_subnormal=True) for a, b in ranges]
    parts.append(st.sampled_from(specials))
    return st.one_of(parts).map(lambda v: representable(v, dtype)).filter(lambda v: math.isfinite(v) and v in dom)


def _distribution(classes: int, dtype: str) -> st.SearchStrategy[list[float]]:
    part = st.one_of(st.just(0.0), st.floats(0, 1, allow_nan=False), st.floats(1e-6, 1e-2))
    def normalise(v: list[float]) -> list[float]:
        total = sum(v)
        return [x / total for x in v] if total > 0 else [1.0] + [0.0] * (classes - 1)
    return st.lists(part, min_size=classes, max_size=classes).map(normalise)


def _param(spec: Spec, name: str, dtype: str) -> st.SearchStrategy[float]:
    dom = spec.param_domain(name)
    lo, hi = max(dom.lo, -5.0), min(dom.hi, 5.0)
    if lo == 0 and not dom.lo_closed:
        lo = 0.05
    return st.floats(lo, hi, allow_nan=False).map(lambda v: representable(v, dtype)).filter(lambda v: v in dom)


def draws(spec: Spec, dtype: str, cfg: Config) -> st.SearchStrategy[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """(params, inputs) for one configuration."""
    defaults = spec.default_params()
    if cfg.name in spec.doc.params and cfg.name != "ignore_index":
        params_st = _param(spec, cfg.name, dtype).map(lambda v: {**defaults, cfg.name: v})
    elif cfg.name == "ignore_index":
        params_st = st.integers(0, CLASSES - 1).map(lambda k: {**defaults, "ignore_index": k})
    else:
        params_st = st.just(defaults)
    return params_st.flatmap(lambda p: st.tuples(st.just(p), _inputs(spec, dtype, p, cfg)))


def _inputs(spec: Spec, dtype: str, params: dict[str, Any], cfg: Config) -> st.SearchStrategy[dict[str, np.ndarray]]:
    return S.built_once(("loss inputs", id(spec), dtype, S.params_key(params), cfg), spec,
                        lambda: _build_inputs(spec, dtype, params, cfg))


def _build_inputs(spec: Spec, dtype: str, params: dict[str, Any], cfg: Config) -> st.SearchStrategy[dict[str, np.ndarray]]:
    parts: dict[str, st.SearchStrategy[np.ndarray]] = {}
    if spec.shape == "elementwise":
        n = int(np.prod(ELEMENTS))
        for name in spec.tensor_inputs:
            parts[name] = st.lists(_element(spec, name, dtype), min_size=n, max_size=n).map(
                lambda v: cast(v, dtype).reshape(ELEMENTS))
        return st.fixed_dictionaries(parts)
    n = ROWS * CLASSES
    for i, (name, s) in enumerate(spec.doc.inputs.items()):
        if i == 0:
            parts[name] = st.lists(_element(spec, name, dtype, tiny=False), min_size=n, max_size=n).map(
                lambda v: cast(v, dtype).reshape(ROWS, CLASSES))
        elif s.kind == "class_index":
            ignore = int(params.get("ignore_index", -100))
            first = st.just(ignore) if cfg.name == "ignore_index" else st.integers(0, CLASSES - 1)
            parts[name] = st.tuples(first, st.lists(st.integers(0, CLASSES - 1), min_size=ROWS - 1, max_size=ROWS - 1)).map(
                lambda t: np.asarray([t[0], *t[1]], dtype=np.int64))
        elif s.kind == "class_weight":
            # class weights as people set them: 0 (a class switched off) or 1/16 to 4, never so small
            # that weight * loss underflows (that would measure gradual underflow, not the loss)
            one = st.one_of(st.just(0.0), st.floats(0.0625, 4.0))
            weights = st.lists(one, min_size=CLASSES, max_size=CLASSES).map(
                lambda v: cast(v, dtype)) if cfg.name == "weight" else st.just(cast(np.ones(CLASSES), dtype))
            parts[name] = weights
        else:
            parts[name] = st.lists(_distribution(CLASSES, dtype), min_size=ROWS, max_size=ROWS).map(
                lambda v: cast(v, dtype))
    return st.fixed_dictionaries(parts)


def _cotangent(shape: tuple[int, ...], dtype: str) -> st.SearchStrategy[np.ndarray]:
    """Cotangents of the size training uses (loss.backward() passes 1): a tiny one would make
    g / N subnormal in float16 and measure gradual underflow instead of the loss."""
    n = int(np.prod(shape))

    def build() -> st.SearchStrategy[np.ndarray]:
        size = st.one_of(st.sampled_from([1.0, 0.5, 2.0]), st.floats(0.25, 2.0))
        signed = st.tuples(size, st.booleans()).map(lambda t: -t[0] if t[1] else t[0])
        return st.lists(signed, min_size=n, max_size=n).map(lambda vs: cast(vs, dtype).reshape(shape))
    return S.built_once(("loss cotangent", tuple(shape), dtype), None, build)


# ---------------------------------------------------------------- backend and tolerance

def backend_loss(ctx: Context, spec: Spec, inputs: dict[str, np.ndarray], params: dict[str, Any], cfg: Config,
                 dtype: str) -> np.ndarray:
    call = for_backend(spec, inputs, cfg.name == "weight")
    return call_backend(ctx, f"{spec.name} value", lambda: ctx.adapter.value(spec.name, call, {**params, "reduction": cfg.reduction}, dtype))


def mean_rounding(reduction: str) -> float:
    """The one ULP a mean adds for its division."""
    return 1.0 if reduction == "mean" else 0.0


def reduced_budget(ctx: Context, spec: Spec, inputs: dict[str, np.ndarray], params: dict[str, Any], reduction: str,
                   dtype: str, budget: float, exact: RefResult) -> float:
    """The ULPs a reduced loss may be off by: per-sample budgets plus summation (see the module docstring)."""
    L = ctx.losses
    per = L.approximate(spec, inputs, params).ravel()       # sizes of the terms: float64 is plenty
    cond = np.ones_like(per)
    if spec.budget(dtype, VALUE).condition is not None:
        cond = np.maximum(1.0, L.condition(spec, "value", inputs, params, dtype).ravel())
    eps = 2.0 ** (1 - info(dtype).precision)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        spacing = np.spacing(np.abs(cast(per, dtype))).astype(np.float64)
        n = max(per.size, 2)
        err = np.nansum(budget * cond * spacing) + math.ceil(math.log2(n)) * eps * np.nansum(np.abs(per))
        if reduction == "mean":
            err /= np.nansum(L.counts(spec, inputs, params))
        total = abs(float(exact.values.astype(np.float64).ravel()[0])) if exact.values.size else 0.0
        unit = float(np.spacing(cast([total], dtype)).astype(np.float64)[0])
    allowed = max(budget, err / unit) if math.isfinite(unit) and unit > 0 else budget
    return allowed + mean_rounding(reduction)


def _compare(ctx: Context, case: Case, got: np.ndarray, inputs: dict[str, np.ndarray], params: dict[str, Any],
             cfg: Config, what: str, extra: str = "") -> Measurement:
    spec, dtype = case.spec, case.dtype
    budget = spec.budget(dtype, VALUE).ulp
    ref = ctx.losses.value(spec, inputs, params, cfg.reduction, dtype)
    if cfg.reduction == "none":
        cond = ctx.losses.condition(spec, VALUE, inputs, params, dtype) if spec.budget(dtype, VALUE).condition is not None \
            else None
        allowed, shown = budget, budget
    else:
        cond, allowed = None, reduced_budget(ctx, spec, inputs, params, cfg.reduction, dtype, budget, ref)
        shown = allowed
    same = [a for a in inputs.values() if np.asarray(a).shape == ref.values.shape]
    m = measure_case(got, ref, dtype, allowed, cond, case, same or None)
    ctx.results.setdefault(case.id, Worst()).update(m, inputs, params)
    if m.any_certain and not m.ok:
        raise failure(ctx, case, m, for_backend(spec, inputs, cfg.name == "weight"),
                      {**params, "reduction": cfg.reduction}, what, shown, extra)
    return m


# ---------------------------------------------------------------- the checks

def check_value(ctx: Context, case: Case) -> None:
    spec, dtype, cfg = case.spec, case.dtype, case.extra

    def body(ex: tuple) -> None:
        params, inputs = ex
        got = backend_loss(ctx, spec, inputs, params, cfg, dtype)
        m = _compare(ctx, case, got, inputs, params, cfg, "value against the exact reference")
        target(min(m.max_ratio, 1e9), label="error / allowed")
    run_search(ctx, case, draws(spec, dtype, cfg), body,
               explicit=corner_examples(spec, dtype, cfg) + sample_examples(spec, dtype, cfg))


SAMPLE_ELEMENTS, SAMPLE_ROWS = 512, 128


def sample_examples(spec: Spec, dtype: str, cfg: Config) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """A fixed sample from the draws' own mixtures, at the defaults, the same under every seed.

    512 elements (elementwise losses) or 128 rows, where 25 draws hold about 150 and 50.  JAX's
    float64 binary cross-entropy is 20 ULP off at scattered probabilities (p = 0.378; the budget
    is 4), its logits variant's gradient 15-19 ULP near x = 20 to 33, and its float32 kl_div
    gradient in the target loses 4,096 ULP for log-probabilities below -1000: the draws reached
    each under some seeds only, and the verdicts moved with the seed.
    """
    if cfg.name in ("ignore_index", "weight"):      # their configurations need drawn labels and weights
        return []
    rng = G.fixed_rng(spec.name, dtype, cfg.name, cfg.reduction)
    inputs: dict[str, np.ndarray] = {}
    if spec.shape == "elementwise":
        for name in spec.tensor_inputs:
            inputs[name] = _sample_values(spec, name, dtype, rng, SAMPLE_ELEMENTS, tiny=True).reshape(-1, 4)
        return [(spec.default_params(), inputs)]
    for i, (name, s) in enumerate(spec.doc.inputs.items()):
        if i == 0:
            inputs[name] = _sample_values(spec, name, dtype, rng, SAMPLE_ROWS * CLASSES, tiny=False).reshape(
                SAMPLE_ROWS, CLASSES)
        elif s.kind == "class_index":
            inputs[name] = rng.integers(0, CLASSES, SAMPLE_ROWS).astype(np.int64)
        elif s.kind == "class_weight":
            inputs[name] = cast(np.ones(CLASSES), dtype)
        else:
            parts = G.mixture(rng, [0.0, (0.0, 1.0), (1e-6, 1e-2)], SAMPLE_ROWS * CLASSES).reshape(SAMPLE_ROWS, CLASSES)
            parts[parts.sum(axis=1) == 0, 0] = 1.0
            dist = parts / parts.sum(axis=1, keepdims=True)
            # Hypothesis's floats also give entries at the bottom of the normal range (JAX's float32
            # kl_div target gradient drops the cotangent's term for a target of 1.18e-38): one row in 4
            # holds one, and is normalised again, as every drawn row is (a target summing to less
            # than 1 would accuse TensorFlow's softmax - t of a convention no framework keeps).
            tiny = 2.0 ** info(dtype).emin * np.asarray([1.0, 1.0 + 2.0 ** -8, 2.0])
            rows = np.nonzero(rng.random(SAMPLE_ROWS) < 0.25)[0]
            dist[rows, rng.integers(0, CLASSES, rows.size)] = rng.choice(tiny, rows.size)
            inputs[name] = cast(dist / dist.sum(axis=1, keepdims=True), dtype)
    return [(spec.default_params(), inputs)]


def _sample_values(spec: Spec, name: str, dtype: str, rng: np.random.Generator, n: int, tiny: bool) -> np.ndarray:
    """n values of `_element`'s mixture, drawn with `rng`: in the domain, finite in the dtype."""
    dom = spec.domain(name)
    ranges, specials = _element_parts(spec, name, dtype, tiny)
    inside = [v for v in specials if v in dom]
    parts: list[tuple[float, float] | list[float]] = [*ranges, *([inside] if inside else [])]
    x = cast(G.mixture(rng, parts, 2 * n), dtype)
    wide = x.astype(np.float64)
    kept = x[np.isfinite(wide) & dom.mask(wide)]
    return kept[:n] if kept.size >= n else np.resize(kept, n)


def corner_examples(spec: Spec, dtype: str, cfg: Config) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Predictions of +-6000 (large, but a single loss stays finite in float16), or probabilities at
    the ends of the dtype, with the drawn parameter at the top of its range, under every seed:
    whether a reduction's own sum overflows where the exact mean is finite must not depend on the
    draws reaching two such samples."""
    first = spec.tensor_inputs[0]
    dom = spec.domain(first)
    if cfg.name == "ignore_index":
        return []
    params = spec.default_params()
    if cfg.name in spec.doc.params:
        hi = min(spec.param_domain(cfg.name).hi, 5.0)
        params = {**params, cfg.name: representable(hi, dtype)}
    inputs = fixed_loss_inputs(spec, dtype)
    n = inputs[first].size
    if math.isinf(dom.lo) and math.isinf(dom.hi):
        corner = np.where(np.arange(n) % 2 == 0, 6000.0, -6000.0)
    elif math.isfinite(dom.lo) and math.isfinite(dom.hi):
        # Probabilities at the ends of the dtype: the smallest subnormal and normal above the
        # lower end, 1/2 ulp below the upper (torch clamps log(p) at -100, which only
        # probabilities below e^-100 = 3.7e-44 show; 25 draws reached one under some seeds only).
        d = info(dtype)
        ends = [dom.lo + 2.0 ** d.min_subnormal_exp, dom.lo + 2.0 ** d.emin, (dom.lo + dom.hi) / 2,
                dom.hi - 2.0 ** -d.precision]
        corner = np.resize(np.asarray([v for v in ends if v in dom]), n)
    else:
        return []
    return [(params, {**inputs, first: cast(corner.reshape(inputs[first].shape), dtype)})]


def check_gradient(ctx: Context, case: Case) -> None:
    spec, dtype, cfg, wrt = case.spec, case.dtype, case.extra, case.wrt
    budget = spec.budget(dtype, GRADIENT, wrt).ulp + mean_rounding(cfg.reduction)
    L = ctx.losses

    def with_g(ex: tuple) -> st.SearchStrategy[tuple]:
        params, inputs = ex
        shape = L.output_shape(spec, inputs, params, cfg.reduction)
        return _cotangent(shape, dtype).map(lambda g: (params, inputs, g))

    def body(ex: tuple) -> None:
        params, inputs, g = ex
        call = for_backend(spec, inputs, cfg.name == "weight")
        full = {**params, "reduction": cfg.reduction}
        got = call_backend(ctx, f"{spec.name} gradient", lambda: ctx.adapter.vjp(spec.name, wrt, call, g, full, dtype))
        ref = L.vjp(spec, wrt, inputs, g, params, cfg.reduction, dtype)
        cond = L.condition(spec, "gradient", inputs, params, dtype, wrt) \
            if spec.budget(dtype, GRADIENT, wrt).condition is not None else None
        # Where the derivative does not exist or is infinite (a probability of exactly 0 or 1, a
        # target of 0 in kl_div) the value and stability checks judge the convention.
        undefined = ~np.isfinite(ref.values.astype(np.float64)) & ~ref.uncertain
        same = [a for a in inputs.values() if np.asarray(a).shape == ref.values.shape]   # subnormal operands
        m = measure_case(got, ref, dtype, budget, cond, case, same, exclude=undefined)
        ctx.results.setdefault(case.id, Worst()).update(m, inputs, params)
        target(min(m.max_ratio, 1e9), label="error / allowed")
        if m.any_certain and not m.ok:
            raise failure(ctx, case, m, {**call, "g": g}, full, f"vector-Jacobian product with cotangent g = {show(g)}",
                          budget)
    fixed = gradient_corner_examples(spec, dtype, cfg) + sample_examples(spec, dtype, cfg)
    run_search(ctx, case, draws(spec, dtype, cfg).flatmap(with_g), body,
               explicit=[(p, x, G.fixed_cotangent(L.output_shape(spec, x, p, cfg.reduction), dtype))
                         for p, x in fixed])


def gradient_corner_examples(spec: Spec, dtype: str, cfg: Config) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """The value check's probabilities at the ends of the dtype, for the gradient too.

    torch clamps the denominator of binary cross-entropy's gradient at 1e-12, which only
    probabilities below 1e-12 show; 25 draws reached one under some seeds only.
    """
    dom = spec.domain(spec.tensor_inputs[0])
    if not (math.isfinite(dom.lo) and math.isfinite(dom.hi)):
        return []
    return corner_examples(spec, dtype, cfg)


def check_stability(ctx: Context, case: Case) -> None:
    cfg, why = case.extra
    inputs = {k: np.asarray(v) for k, v in case.inputs.items()}
    got = backend_loss(ctx, case.spec, inputs, case.params, cfg, case.dtype)
    m = _compare(ctx, case, got, inputs, case.params, cfg, "a stability input named in the spec", why)
    if not m.any_certain:
        pytest.skip("reference uncertain for every input of this example")


def check_special(ctx: Context, case: Case) -> None:
    spec, dtype, cfg = case.spec, case.dtype, case.extra
    inputs = fixed_loss_inputs(spec, dtype)
    first = spec.tensor_inputs[0]
    x = inputs[first].astype(np.float64).copy()
    x.reshape(-1)[0] = math.nan
    inputs[first] = cast(x, dtype)
    params = spec.default_params()
    got = backend_loss(ctx, spec, inputs, params, cfg, dtype)
    _compare(ctx, case, got, inputs, params, cfg, "special values: a NaN prediction makes its sample (and any reduction) NaN")


def check_dtype(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    inputs = fixed_loss_inputs(spec, dtype)
    params = spec.default_params()
    want = info(dtype).np_dtype
    problems = []
    for r in ("none", "sum", "mean"):
        got = backend_loss(ctx, spec, inputs, params, Config(PLAIN, r), dtype)
        shape = ctx.losses.value(spec, inputs, params, r, dtype).values.shape
        if got.dtype != want:
            problems.append(f"reduction={r}: output dtype {got.dtype} for {dtype} input")
        if got.shape != shape:
            problems.append(f"reduction={r}: output shape {got.shape}, expected {shape}")
    if problems:
        repro = ctx.adapter.repro(spec.name, for_backend(spec, inputs, False), {**params, "reduction": "none"}, dtype)
        raise CheckFailure(f"{case.id}: " + "; ".join(problems) + f"\n  repro: {repro}")


def check_shapes(ctx: Context, case: Case) -> None:
    spec, dtype = case.spec, case.dtype
    kind, cfg = case.extra
    params = spec.default_params()
    if kind == "one":
        inputs = fixed_loss_inputs(spec, dtype, rows=1)
    elif kind == "empty":
        inputs = fixed_loss_inputs(spec, dtype, rows=0)
    else:
        inputs = fixed_loss_inputs(spec, dtype, axis_shape=(2, CLASSES, 3))
        params = {**params, spec.doc.axis_param: 1}
    call = for_backend(spec, inputs, False)
    try:
        with time_limit(ctx.call_timeout, f"{spec.name} value"):
            got = ctx.adapter.value(spec.name, call, {**params, "reduction": cfg.reduction}, dtype)
    except CallTimeout as exc:
        raise CheckFailure(f"{case.id}: {ctx.adapter.name}: {exc}") from None
    except Exception as exc:   # noqa: BLE001
        if kind == "empty" or isinstance(exc, NotProvided):
            pytest.skip(f"not provided: {ctx.adapter.name} does not take this shape ({type(exc).__name__}: {exc})")
        raise CheckFailure(f"{case.id}: {ctx.adapter.name} raised {type(exc).__name__}: {exc}") from exc
    got = np.asarray(got)
    ref = ctx.losses.value(spec, inputs, params, cfg.reduction, dtype)
    if got.shape != ref.values.shape:
        raise CheckFailure(f"{case.id}: output shape {got.shape}, expected {ref.values.shape}\n  repro: "
                           f"{ctx.adapter.repro(spec.name, call, {**params, 'reduction': cfg.reduction}, dtype)}")
    if got.size:
        _compare(ctx, case, got, inputs, params, cfg, f"shape: {case.label}")


def check_large_batch(ctx: Context, case: Case) -> None:
    spec, dtype, cfg = case.spec, case.dtype, case.extra
    rng = np.random.default_rng(ctx.case_seed(case))
    inputs = fixed_loss_inputs(spec, dtype, rows=LARGE_ROWS, classes=4)
    for name, a in inputs.items():
        if a.dtype.kind in "iu":
            inputs[name] = rng.integers(0, 4, a.shape).astype(np.int64)
        elif name != weight_name(spec):
            dom = spec.domain(name)
            lo, hi = max(dom.lo, -4.0), min(dom.hi, 4.0)
            v = rng.uniform(lo + (hi - lo) / 64, hi - (hi - lo) / 64, a.shape)   # clear of 0 and 1 probabilities
            if spec.shape == "vector" and name != spec.tensor_inputs[0]:
                v = v / v.sum(axis=-1, keepdims=True)
            inputs[name] = cast(v, dtype)
    params = spec.default_params()
    got = backend_loss(ctx, spec, inputs, params, cfg, dtype)
    _compare(ctx, case, got, inputs, params, cfg, f"{LARGE_ROWS} samples: the reduction's own rounding error",
             "a naive running sum in the input's precision loses about sqrt(n) ULPs; pairwise summation log2(n)")


RUNNERS: dict[str, Callable[[Context, Case], None]] = {
    "value": check_value, "gradient": check_gradient, "stability": check_stability, "special": check_special,
    "dtype": check_dtype, "shapes": check_shapes, "large_batch": check_large_batch, **defaults.RUNNERS,
}
