"""Hypothesis strategies derived from a spec's domains and a dtype; nothing else lives here.

Inputs mix three sources, because each finds different bugs: the full range of the dtype
(overflow, subnormals), the range where activations bend (|x| < 40), and a few ULPs either side
of every point the spec names (kinks, stability inputs), where branch and threshold errors live.
The deterministic sets every seed runs are in grids.py.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from nnconform.reference.dtypes import cast, nudge, representable
from nnconform.spec import Spec

from .grids import (
    COTANGENT_RANGE,
    ROW_RANGES,
    anchors,
    finite_bounds,
    param_ranges,
    rows_without_all_masked,
)

# Strategies built inside a flatmap (per drawn parameters, per drawn shape) are built once per
# distinct key: the same strategy draws the same examples, and Hypothesis's per-object work
# (validation, emptiness, recursion properties) was a tenth of a run's time, paid at every draw.
# Specs are keyed by identity and kept alive beside their strategy (an id is never reused).
_BUILT: dict[tuple, tuple[object, st.SearchStrategy[Any]]] = {}


def built_once(key: tuple, owner: object, build: Callable[[], st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    hit = _BUILT.get(key)
    if hit is None:
        hit = _BUILT[key] = (owner, build())
    return hit[1]


def params_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


WIDTH = {"float64": 64, "float32": 32, "float16": 16, "bfloat16": 32}
BATCH = 16                   # fixed sizes: jitted backends (JAX, XLA) compile once per shape
ROW_WIDTHS = (1, 2, 3, 5, 8)


def element(spec: Spec, input_name: str, dtype: str, params: dict[str, float]) -> st.SearchStrategy[float]:
    domain = spec.domain(input_name)
    lo, hi = finite_bounds(domain, dtype)
    width = WIDTH[dtype]
    full = st.floats(lo, hi, width=width, allow_nan=False, allow_infinity=False, allow_subnormal=True)
    bend = st.floats(max(lo, -40.0), min(hi, 40.0), width=width, allow_nan=False, allow_subnormal=True)
    near = st.tuples(st.sampled_from(anchors(spec, input_name, params)), st.integers(-3, 3)).map(
        lambda t: nudge(t[0], t[1], dtype))
    strategy = st.one_of(bend, full, near).map(lambda v: representable(v, dtype))
    return strategy.filter(lambda v: math.isfinite(v) and v in domain)


def batch(spec: Spec, input_name: str, dtype: str, params: dict[str, float]) -> st.SearchStrategy[np.ndarray]:
    return st.lists(element(spec, input_name, dtype, params), min_size=BATCH, max_size=BATCH).map(
        lambda xs: cast(xs, dtype))


def rows(spec: Spec, dtype: str, params: dict[str, float], group: int = 1) -> st.SearchStrategy[np.ndarray]:
    """2-D inputs for vector functions: each row is one application along the last axis."""
    value = st.one_of(
        *(st.floats(a, b, width=WIDTH[dtype], allow_nan=False) for a, b in ROW_RANGES),
        st.just(-math.inf),
    ).map(lambda v: representable(v, dtype))
    return st.tuples(st.just(4), st.sampled_from(ROW_WIDTHS)).flatmap(
        lambda shape: st.lists(value, min_size=shape[0] * shape[1] * group, max_size=shape[0] * shape[1] * group).map(
            lambda vs, shape=shape: rows_without_all_masked(cast(vs, dtype).reshape(shape[0], shape[1] * group))))


def cotangent(shape: tuple[int, ...], dtype: str) -> st.SearchStrategy[np.ndarray]:
    n = int(np.prod(shape))
    return built_once(("cotangent", tuple(shape), dtype), None, lambda: st.lists(
        st.floats(*COTANGENT_RANGE, width=WIDTH[dtype], allow_nan=False), min_size=n, max_size=n).map(
        lambda vs: cast(vs, dtype).reshape(shape)))


def param_values(spec: Spec, dtype: str) -> st.SearchStrategy[dict[str, float]]:
    """Defaults, or other values of the continuous parameters (beta other than 1, and so on)."""
    ranges = param_ranges(spec)
    defaults = spec.default_params()
    if not ranges:
        return st.just(defaults)

    def draw_one(name: str, lo: float, hi: float) -> st.SearchStrategy[float]:
        dom = spec.param_domain(name)
        return st.floats(lo, hi, allow_nan=False).map(lambda v: representable(v, dtype)).filter(lambda v: v in dom)

    custom = st.fixed_dictionaries({n: draw_one(n, lo, hi) for n, (lo, hi) in ranges.items()}).map(
        lambda c: {**defaults, **c})
    return st.one_of(st.just(defaults), custom)


def input_strategy(spec: Spec, dtype: str, params: dict[str, Any]) -> st.SearchStrategy[dict[str, np.ndarray]]:
    return built_once(("inputs", id(spec), dtype, params_key(params)), spec, lambda: _input_strategy(spec, dtype, params))


def _input_strategy(spec: Spec, dtype: str, params: dict[str, Any]) -> st.SearchStrategy[dict[str, np.ndarray]]:
    first = spec.tensor_inputs[0]
    if spec.shape == "grouped":
        return rows(spec, dtype, params, int(params[spec.doc.group_param])).map(lambda a: {first: a})
    if spec.shape == "vector":
        return rows(spec, dtype, params).map(lambda a: {first: a})
    if len(spec.tensor_inputs) == 1:
        return batch(spec, first, dtype, params).map(lambda a: {first: a})
    # x with a per-channel weight: x is (batch, channels), the weight (channels,)
    weight = spec.tensor_inputs[1]
    return st.integers(1, 3).flatmap(lambda c: st.tuples(
        st.lists(element(spec, first, dtype, params), min_size=c, max_size=4 * c).map(
            lambda v, c=c: cast(v[: len(v) // c * c], dtype).reshape(-1, c)),
        st.lists(element(spec, weight, dtype, params), min_size=c, max_size=c).map(lambda v: cast(v, dtype)),
    )).map(lambda t: {first: t[0], weight: t[1]})


def with_params(spec: Spec, dtype: str, inputs: Callable[[dict], st.SearchStrategy[Any]]) -> st.SearchStrategy[tuple]:
    return param_values(spec, dtype).flatmap(lambda p: st.tuples(st.just(p), inputs(p)))


