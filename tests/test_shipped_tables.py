"""The reference tables shipped with the package are the live evaluator's results, for the current specs.

A table that disagreed with the evaluator would make every first run measure against wrong
numbers, so each is checked against a fresh mpmath evaluation at a seeded sample of inputs:
the specials, both ends of the range, and random bit patterns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnconform.conformance.sweeps.shipped_tables import compute, wanted
from nnconform.reference import Reference, ReferenceCache, engine, info, shipped
from nnconform.reference.dtypes import all_bit_patterns
from nnconform.spec import load_all

SPECS = load_all(["activation"])
WANTED = wanted(SPECS)
REGENERATE = ("run `python -m nnconform.conformance.sweeps.shipped_tables` after editing an activation's spec or the "
              "reference's code")
SAMPLE = 48


def _key_and_table(fn: str, dtype: str, quantity: str, tmp_path: Path) -> tuple[tuple, dict]:
    """What the sweep's cache reads for this table, from an empty cache directory."""
    cache = ReferenceCache(tmp_path)
    ref = Reference(cache)
    spec = SPECS[fn]
    x = np.array([1.0]).astype(info(dtype).np_dtype)
    if quantity == "value":
        ref.value(spec, {spec.tensor_inputs[0]: x}, spec.default_params(), dtype)
    else:
        ref.vjp(spec, spec.tensor_inputs[0], {spec.tensor_inputs[0]: x}, np.ones(1), spec.default_params(), dtype)
    ((key, table),) = cache.tables.items()
    return key, table.data


def test_every_exhaustive_sweep_has_a_table() -> None:
    assert len(WANTED) >= 60        # 18 unary activations x 2 dtypes x value and derivative, at least
    names = {p.name for p in shipped.DIRECTORY.glob("*.npz")}
    missing = [t for t in WANTED if not any(n.startswith(f"{t[0]}-") and n.endswith(f"-{t[1]}.npz") for n in names)]
    assert not missing, f"no shipped table for {missing}: {REGENERATE}"


@pytest.mark.parametrize("fn, dtype, quantity", WANTED, ids=[f"{f}[{d}] {q}" for f, d, q in WANTED])
def test_table_matches_the_evaluator(fn: str, dtype: str, quantity: str, tmp_path: Path) -> None:
    key, data = _key_and_table(fn, dtype, quantity, tmp_path)
    assert len(data) >= 65_000, f"the shipped table for this spec is missing or stale: {REGENERATE}"
    keys = sorted(data, key=lambda k: k if isinstance(k, tuple) else (k,))
    xs = np.array([k[0] if isinstance(k, tuple) else k for k in keys], dtype=np.uint64).view(np.float64)
    mags = np.where(np.isfinite(xs) & (xs != 0), np.abs(xs), np.nan)
    # The ends of the range (where the evaluator works hardest), the subnormals, and a seeded sample.
    ends = np.argsort(np.nan_to_num(mags, nan=-1.0))[-8:].tolist() + np.argsort(np.nan_to_num(mags, nan=np.inf))[:4].tolist()
    rng = np.random.default_rng(20261123)
    picks = [keys[i] for i in ends + rng.choice(len(keys), SAMPLE, replace=False).tolist()]
    x = np.array([k[0] if isinstance(k, tuple) else k for k in picks], dtype=np.uint64).view(np.float64)
    x = x.astype(info(dtype).np_dtype)
    live = Reference(ReferenceCache(persistent=False))      # no cache, no shipped tables: mpmath now
    spec = SPECS[fn]
    name = spec.tensor_inputs[0]
    with np.errstate(invalid="ignore"):
        if quantity == "value":
            got = live.value(spec, {name: x}, spec.default_params(), dtype)
        else:
            got = live.vjp(spec, name, {name: x}, np.ones(x.shape), spec.default_params(), dtype)
    want = np.array([data[k] for k in picks], dtype=np.uint64)
    fresh = np.where(got.uncertain, shipped.UNCERTAIN_BITS, got.values.astype(np.float64).view(np.uint64))
    assert np.array_equal(fresh, want), f"shipped and live results differ at {x[fresh != want]}"


def test_the_sweep_of_a_16_bit_function_evaluates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_evaluation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the shipped table should have answered")
    monkeypatch.setattr(engine.Reference, "_elementwise_point", no_evaluation)
    key, data = _key_and_table("gelu", "bfloat16", "gradient", tmp_path)
    assert len(data) > 65_000
    spec = SPECS["gelu"]
    x = all_bit_patterns("bfloat16")
    with np.errstate(invalid="ignore"):
        out = Reference(ReferenceCache(tmp_path)).vjp(spec, "x", {"x": x}, np.ones(x.shape), spec.default_params(), "bfloat16")
    assert out.values.shape == x.shape


def test_an_edited_spec_does_not_read_the_old_table(tmp_path: Path) -> None:
    key, data = _key_and_table("tanh", "float16", "value", tmp_path)
    edited = (key[0] + "-edited",) + key[1:]                      # another spec file content
    assert shipped.load(key) is not None and shipped.load(edited) is None


def test_a_table_round_trips_exactly(tmp_path: Path) -> None:
    key, data = compute(SPECS["softsign"], "float16", "gradient")
    shipped.write(key, data, tmp_path)
    assert shipped.load(key, tmp_path) == data


def test_a_table_of_other_inputs_is_refused() -> None:
    key, data = compute(SPECS["softsign"], "float16", "value")
    data = dict(data)
    data.pop(next(iter(data)))
    with pytest.raises(ValueError, match="bit pattern"):
        shipped.encode(key, data)
