"""Native defaults are read as the framework states them; a reading of a sentinel needs its documentation.

Keras's SparseCategoricalCrossentropy defaults ignore_class=None, which ignores no class; torch's
cross_entropy defaults ignore_index=-100 (the spec's canonical value).  An adapter that reads
None as -100 makes a different behaviour look canonical: the check must fail it.
"""

from __future__ import annotations

import numpy as np

from nnconform.adapters.base import NativeDefault, Op
from nnconform.conformance.core import CheckFailure, Context
from nnconform.conformance.families import CaseBuilder, run
from nnconform.reference import Reference
from nnconform.spec import load_all

from .test_checks_catch_broken_adapters import HandAdapter

SPEC = load_all(["loss"])["cross_entropy"]


def verdict(default: NativeDefault) -> str:
    op = Op(lambda input, target, **kw: np.zeros(len(target)), "keras.losses.SparseCategoricalCrossentropy", "",
            native=(default,))
    adapter = HandAdapter({"cross_entropy": op})
    reference = Reference()
    [case] = [c for c in CaseBuilder(adapter, reference, ["float64"], ["defaults"]).build([SPEC])]
    ctx = Context(adapter, reference)
    try:
        run(ctx, case)
    except CheckFailure as exc:
        return str(exc)
    return "pass"


def test_the_canonical_ignore_index_is_minus_100() -> None:
    assert float(SPEC.canonical("ignore_index")) == -100


def test_a_default_of_none_is_compared_as_none_and_fails() -> None:
    got = verdict(NativeDefault("ignore_class", "ignore_index", lambda: None, note="None: nothing is ignored"))
    assert "defaults ignore_class=None (None: nothing is ignored)" in got and "is '-100'" in got


def test_a_planted_translation_to_the_canonical_value_fails() -> None:
    got = verdict(NativeDefault("ignore_class", "ignore_index", lambda: None, means={None: -100}))
    assert "reads keras.losses.SparseCategoricalCrossentropy's default ignore_class=None as -100 without saying" in got


def test_a_documented_meaning_is_compared_and_the_record_keeps_the_stated_default() -> None:
    default = NativeDefault("axis", "ignore_index", lambda: None, means={None: -100}, source="https://example.org/docs")
    assert verdict(default) == "pass"
    op = Op(lambda input, target, **kw: np.zeros(len(target)), "api", "", native=(default,))
    adapter = HandAdapter({"cross_entropy": op})
    ctx = Context(adapter, Reference())
    [case] = CaseBuilder(adapter, ctx.reference, ["float64"], ["defaults"]).build([SPEC])
    run(ctx, case)
    assert ctx.results[case.id].detail == {"native": "None", "canonical": "-100", "means": "-100"}
