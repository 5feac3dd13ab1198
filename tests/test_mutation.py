"""Mutation testing, the fast representative part (the whole catalogue runs in CI through
`python -m nnconform.conformance.selftest.mutation`): each mutant is killed, by the check meant
for it, and without crashing (a mutant that raises proves nothing)."""

from __future__ import annotations

import pytest

from nnconform.conformance.selftest.mutation import CATALOGUE, FAST, run_mutants


def test_the_catalogue_covers_what_real_implementations_get_wrong() -> None:
    assert len(CATALOGUE) >= 20
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)
    words = " ".join(m.what for m in CATALOGUE)
    for mistake in ("overflow", "default", "gradient", "float32", "float16", "NaN", "axis", "n - 1",
                    "bias correction", "epsilon", "label-smoothing", "dtype", "reduced axis"):
        assert mistake in words, mistake
    assert {m.backend for m in CATALOGUE} >= {"numpy", "torch", "jax"}


@pytest.mark.parametrize("name", FAST)
def test_mutant_is_killed_by_the_check_meant_for_it(name: str) -> None:
    mutant = next(m for m in CATALOGUE if m.name == name)
    (outcome,) = run_mutants((mutant,), ("float64", "float32"), examples=10)
    assert not outcome.crashed, outcome.crashed[:3]
    assert not outcome.errors, outcome.errors[:3]
    killers = {cid.split(" ")[1] for cid in outcome.killed_by}
    assert killers & set(mutant.expect), (mutant.expect, killers)
