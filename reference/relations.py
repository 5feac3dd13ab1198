"""Relations between specs, checked by the reference: f(inputs; p) = scale(p) * g(inputs; q(p)).

A relation is a claim of the spec file, so it is verified, not trusted: at a fixed sample of
inputs and parameter values, both sides are evaluated exactly (correctly rounded to float64)
and must agree to within the one rounding of the product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nnconform.spec import Spec
from nnconform.spec.loader import Relation

from .dtypes import info, ulp_of
from .engine import Reference
from .losses import LossReference

SAMPLE = 64                       # inputs per parameter setting
PARAM_FACTORS = (1.0, 0.5, 3.0)   # each real parameter at its default, and scaled (inside its domain)


@dataclass(frozen=True)
class RelationCheck:
    relation: Relation
    points: int
    max_ulp: float                # |f - scale * g| / ulp(f), float64
    holds: bool                   # within the product's rounding (1 ULP) at every point
    worst: dict[str, Any]


def _settings(spec: Spec) -> list[dict[str, Any]]:
    defaults = spec.default_params()
    out = [defaults]
    for name, p in spec.doc.params.items():
        if p.kind != "real":
            continue
        for f in PARAM_FACTORS[1:]:
            v = float(defaults[name]) * f
            if v in spec.param_domain(name):
                out.append({**defaults, name: v})
    return out


def _inputs(spec: Spec) -> dict[str, np.ndarray]:
    """The same deterministic sample for both sides: spread over each input's domain within [-4, 4]."""
    rng = np.random.default_rng(SAMPLE)
    out = {}
    for name in spec.tensor_inputs:
        dom = spec.domain(name)
        lo, hi = max(dom.lo, -4.0), min(dom.hi, 4.0)
        out[name] = rng.uniform(lo, hi, (SAMPLE // 4, 4))
    return out


def verify(spec: Spec, other: Spec, relation: Relation, reference: Reference) -> RelationCheck:
    losses = LossReference(reference)
    inputs = _inputs(spec)
    worst: dict[str, Any] = {}
    top, points = 0.0, 0
    for params in _settings(spec):
        theirs = {**other.default_params(),
                  **{k: reference.evaluate_params(spec, node, params) for k, node in relation.params.items()}}
        scale = reference.evaluate_params(spec, relation.scale, params)
        if spec.family == "loss":
            mine = losses.value(spec, inputs, params, "none", "float64").values
            base = losses.value(other, inputs, theirs, "none", "float64").values
        else:
            mine = reference.value(spec, inputs, params, "float64").values
            base = reference.value(other, inputs, theirs, "float64").values
        mine, base = mine.astype(np.float64), base.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(mine - scale * base) / ulp_of(mine, info("float64"))
        err = np.where(np.isnan(err), np.inf, err)
        points += err.size
        i = int(np.argmax(err))
        if err.ravel()[i] > top or not worst:
            top = float(err.ravel()[i])
            worst = {"params": params, "other_params": theirs, "scale": scale,
                     "inputs": {k: float(v.ravel()[i]) for k, v in inputs.items()},
                     "value": float(mine.ravel()[i]), "other": float(base.ravel()[i])}
    return RelationCheck(relation, points, top, top <= 1.0, worst)


def verify_all(specs: dict[str, Any], reference: Reference | None = None) -> dict[str, list[RelationCheck]]:
    """Every declared relation, by the name of the spec declaring it."""
    ref = reference or Reference()
    return {name: [verify(spec, specs[r.function], r, ref) for r in spec.relations]
            for name, spec in sorted(specs.items()) if getattr(spec, "relations", ())}
