"""Loss checks, generated from spec/losses/*.yaml: nothing here names a loss.

A loss is checked in *configurations*: the plain loss (default parameters, no
class weights) under each reduction, and then each option the spec declares
(a real parameter such as label_smoothing, class weights, ignore_index) under
"mean", where the options and the reduction interact (what a weighted mean
divides by).  An option a backend's API lacks is reported "not provided" for
that configuration only.

Ids read as sentences: ``cross_entropy[float32] value reduction=mean with class weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnconform.reference import LossReference
from nnconform.spec import Spec
from nnconform.spec.schema import number

from .cases import Case, show
from .strategies import cast

if TYPE_CHECKING:
    from .cases import CaseBuilder

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


def for_dtype(builder: "CaseBuilder", spec: Spec, dtype: str, differentiable: bool, why_not: str) -> list[Case]:
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
    losses = LossReference(builder.reference)
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
