"""The list of checks, generated from the specs: nothing here names a function.

Each `Case` is one pytest test.  Ids read as sentences, e.g.
``softplus[float64] stability x=20.5 -> 20.500000001250153`` or
``leaky_relu default negative_slope = 0.01``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from nnconform.adapters.base import Adapter, NotProvided
from nnconform.reference import Reference
from nnconform.spec import OptimizerSpec, Spec
from nnconform.spec.schema import number

from .strategies import cast

CHECKS = ("provided", "value", "gradient", "stability", "extremes", "subnormal", "special", "dtype", "properties", "defaults",
          "kink", "statistics", "shapes", "large_batch", "trajectory", "schedule", "weight_decay", "objective")


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


def _params_label(spec: Spec, params: dict[str, Any]) -> str:
    changed = {k: v for k, v in params.items() if k in spec.defaults and float(v) != float(spec.defaults[k])}
    return " ".join(f"{k}={short(float(v))}" for k, v in changed.items())


def fixed_inputs(spec: Spec, x: np.ndarray, dtype: str) -> dict[str, np.ndarray]:
    """Inputs for a fixed-point check: x, plus any other input at a fixed, documented value."""
    inputs = {spec.tensor_inputs[0]: cast(x, dtype)}
    for name in spec.tensor_inputs[1:]:
        ispec = spec.doc.inputs[name]
        channels = x.shape[ispec.channel_axis] if ispec.kind == "channel_weight" and x.ndim > ispec.channel_axis else 1
        inputs[name] = cast(np.full(channels, 0.25), dtype)   # PyTorch's initial prelu weight
    return inputs


def shape_point(spec: Spec, x: np.ndarray) -> np.ndarray:
    """Elementwise points as the function takes them: (1, 1, n) when a per-channel weight needs an axis 1."""
    if spec.shape == "elementwise" and any(s.kind == "channel_weight" for s in spec.doc.inputs.values()):
        return x.reshape(1, 1, -1)
    return x


def stability_points(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], np.ndarray, str]]:
    """The spec's stability inputs as (params, x in the dtype, why); a row of a vector function is (1, n)."""
    out = []
    defaults = spec.default_params()
    for entry in spec.doc.stability:
        params = {**defaults, **{k: number(v) for k, v in entry.params.items()}}
        for item in entry.x:
            raw = np.asarray([number(v) for v in item] if isinstance(item, list) else [number(item)], dtype=np.float64)
            with np.errstate(over="ignore"):
                x = shape_point(spec, cast(raw, dtype).astype(np.float64))
            if spec.shape != "elementwise":
                x = x.reshape(1, -1)
            out.append((params, x, entry.why))
    return out


class CaseBuilder:
    def __init__(self, adapter: Adapter, reference: Reference, dtypes: Iterable[str], checks: Iterable[str]) -> None:
        self.adapter = adapter
        self.reference = reference
        self.dtypes = [d for d in dtypes if d in adapter.dtypes]
        self.checks = set(checks)

    def build(self, specs: Iterable[Spec | OptimizerSpec]) -> list[Case]:
        cases: list[Case] = []
        for spec in specs:
            cases.extend(self.for_spec(spec))
        return [c for c in cases if c.check in self.checks]

    def for_spec(self, spec: Spec | OptimizerSpec) -> list[Case]:
        if isinstance(spec, OptimizerSpec):
            from . import optimizer_cases
            return optimizer_cases.for_spec(self, spec)
        out: list[Case] = []
        try:
            op = self.adapter.op(spec.name)
        except NotProvided as exc:
            return [Case(spec, None, "provided", skip=f"not provided: {exc}")]
        for nd in op.native:
            out.append(Case(spec, None, "defaults", f"{nd.framework_name}", extra=nd))
        for dtype in self.dtypes:
            reason = self.adapter.supports(spec.name, dtype)
            if reason:
                out.append(Case(spec, dtype, "provided", skip=f"not provided: {reason}"))
                continue
            out.extend(self.for_dtype(spec, dtype, op.differentiable and not self.adapter.gradient_reason,
                                      op.why or self.adapter.gradient_reason))
        return out

    def for_dtype(self, spec: Spec, dtype: str, differentiable: bool, why_not: str) -> list[Case]:
        if spec.family == "loss":
            from . import loss_cases
            return loss_cases.for_dtype(self, spec, dtype, differentiable, why_not)
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
        out.extend(self.stability(spec, dtype))
        out.append(Case(spec, dtype, "extremes", "huge, tiny and either side of every kink"))
        out.append(Case(spec, dtype, "subnormal", "inputs and results below the smallest normal"))
        out.extend(self.special(spec, dtype))
        out.append(Case(spec, dtype, "dtype", "output dtype and shape"))
        props = spec.doc.properties
        for name in ("range", "monotone", "symmetry", "rows_sum_to"):
            if getattr(props, name) is not None:
                out.append(Case(spec, dtype, "properties", name, extra=name))
        if differentiable:
            out.extend(self.kinks(spec, dtype))
        return out

    def _expected(self, spec: Spec, x: np.ndarray, params: dict[str, Any], dtype: str) -> str:
        try:
            inputs = fixed_inputs(spec, x, dtype)
            res = self.reference.value(spec, inputs, params, dtype)
        except Exception:   # noqa: BLE001 - an id must never stop collection; the test itself will report it
            return "?"
        return "uncertain" if res.any_uncertain else show(res.values)

    def stability(self, spec: Spec, dtype: str) -> list[Case]:
        out = []
        for params, x, why in stability_points(spec, dtype):
            label = " ".join(p for p in (_params_label(spec, params), f"x={show(x)}") if p)
            label += f" -> {self._expected(spec, x, params, dtype)}"
            out.append(Case(spec, dtype, "stability", label, inputs=x, params=params, extra=why))
        return out

    def special(self, spec: Spec, dtype: str) -> list[Case]:
        params = spec.default_params()
        if spec.shape == "elementwise":
            points = [math.nan, math.inf, -math.inf, -0.0]
            shaped = [shape_point(spec, np.asarray([p])) for p in points]
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
            label = f"x={show(x)} -> {self._expected(spec, x, params, dtype)}"
            out.append(Case(spec, dtype, "special", label, inputs=x, params=params))
        return out

    def kinks(self, spec: Spec, dtype: str) -> list[Case]:
        out = []
        params = spec.default_params()
        for i, (name, at, _) in enumerate(spec.kink_points):
            where = self.reference.evaluate_params(spec, at, params)
            x = cast([where], dtype).astype(np.float64)
            if float(x[0]) != where:
                continue     # the kink is not representable in this dtype: no input lands on it
            why = spec.doc.kinks[i].why
            label = f"d/d{name} at x={short(where)} (convention)"
            out.append(Case(spec, dtype, "kink", label, wrt=name, inputs=shape_point(spec, x), params=params, extra=why))
        return out
