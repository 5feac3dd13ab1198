"""Which reference judges a run: `--reference=mpmath|arb|both`.

mpmath is the default (cached, and the shipped 16-bit tables are its results).  `arb` takes the
values and VJPs of activations and losses from the independent arb tier (arb_tier.py);
`both` computes each with both tiers and refuses to judge wherever they disagree: such an
output is "reference uncertain", and the run's records count it.  In every tier, condition
numbers (tolerance multipliers), output shapes and parameter formulas (kink locations) come
from the mpmath engine: they size allowances and grids, they are not reference values.  The
optimizers' trajectories have one tier (optimizers.py), whatever is chosen.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from nnconform.spec import Spec

from .arb_tier import ArbReference, tier_version
from .cache import ReferenceCache
from .engine import Reference, RefResult
from .losses import LossReference
from .version import code_version

TIERS = ("mpmath", "arb", "both")


def _agree(a: RefResult, b: RefResult) -> tuple[RefResult, int]:
    """mpmath's `a` where both tiers decided the same bits (NaN equal to NaN, -0.0 not +0.0), uncertain
    elsewhere; and the count of disagreements: both decided differently, or arb decided what mpmath
    declined.  (mpmath deciding where arb declines is not one: arb cannot check there.)"""
    av, bv = np.asarray(a.values, dtype=np.float64), np.asarray(b.values, dtype=np.float64)
    same_bits = (av.view(np.uint64) == bv.view(np.uint64)) | (np.isnan(av) & np.isnan(bv))
    decided = ~a.uncertain & ~b.uncertain
    disagree = (decided & ~same_bits) | (a.uncertain & ~b.uncertain)
    uncertain = ~(decided & same_bits)
    values = np.where(uncertain, np.nan, a.values).astype(a.values.dtype)
    return RefResult(values, uncertain), int(disagree.sum())


class TieredReference(Reference):
    """The Reference interface with values and VJPs from the arb tier, or from both tiers in agreement."""

    def __init__(self, tier: str, cache: ReferenceCache | None = None) -> None:
        if tier not in ("arb", "both"):
            raise ValueError(f"unknown reference tier {tier!r}; choose from {', '.join(TIERS)}")
        super().__init__(cache)
        self.tier = tier
        self.arb = ArbReference()
        self.disagreements = 0          # outputs the tiers disagreed on (judged by neither)

    def judge(self, first: RefResult, second: RefResult) -> RefResult:
        result, n = _agree(first, second)
        self.disagreements += n
        return result

    def value(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None,
              dtype: str = "float64") -> RefResult:
        merged = self.params_for(spec, params)
        theirs = self.arb.value(spec, inputs, merged, dtype)
        return theirs if self.tier == "arb" else self.judge(super().value(spec, inputs, merged, dtype), theirs)

    def vjp(self, spec: Spec, wrt: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray,
            params: Mapping[str, Any] | None = None, dtype: str = "float64") -> RefResult:
        merged = self.params_for(spec, params)
        theirs = self.arb.vjp(spec, wrt, inputs, cotangent, merged, dtype)
        return theirs if self.tier == "arb" else self.judge(super().vjp(spec, wrt, inputs, cotangent, merged, dtype), theirs)


class TieredLosses(LossReference):
    def __init__(self, reference: TieredReference) -> None:
        super().__init__(reference)
        self.tiered = reference

    def value(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None,
              reduction: str = "none", dtype: str = "float64") -> RefResult:
        merged = self.ref.params_for(spec, params)
        theirs = self.tiered.arb.loss_value(spec, inputs, merged, reduction, dtype)
        if self.tiered.tier == "arb":
            return theirs
        return self.tiered.judge(super().value(spec, inputs, merged, reduction, dtype), theirs)

    def vjp(self, spec: Spec, wrt: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray,
            params: Mapping[str, Any] | None = None, reduction: str = "none", dtype: str = "float64") -> RefResult:
        merged = self.ref.params_for(spec, params)
        theirs = self.tiered.arb.loss_vjp(spec, wrt, inputs, cotangent, merged, reduction, dtype)
        if self.tiered.tier == "arb":
            return theirs
        return self.tiered.judge(super().vjp(spec, wrt, inputs, cotangent, merged, reduction, dtype), theirs)


def make(tier: str, cache: ReferenceCache | None = None) -> Reference:
    """The reference a run asked for; TierUnavailable (with the install line) if arb is asked for without python-flint."""
    if tier == "mpmath":
        return Reference(cache)
    return TieredReference(tier, cache)


def losses_for(reference: Reference) -> LossReference:
    return TieredLosses(reference) if isinstance(reference, TieredReference) else LossReference(reference)


def describe(reference: Reference) -> dict[str, Any]:
    """What a records header says about the reference that judged the run."""
    out: dict[str, Any] = {"tier": getattr(reference, "tier", "mpmath"), "mpmath_code": code_version()}
    if isinstance(reference, TieredReference):
        out.update(arb_code=tier_version(), disagreements=reference.disagreements)
    return out


__all__ = ["TIERS", "TieredLosses", "TieredReference", "describe", "losses_for", "make"]
