"""Reference results are cached by exact input bits and survive the process, safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnconform.reference import Reference, ReferenceCache, engine
from nnconform.spec import load_all, parse_document

SPECS = load_all(["activation", "loss"])
XS = np.array([-3.5, 0.0, 1e-30, 2.0, 40.0])


def test_second_run_reads_the_disk_cache_and_evaluates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Reference(ReferenceCache(tmp_path))
    expected = first.value(SPECS["gelu"], {"x": XS}).values
    first.flush()
    assert list(tmp_path.rglob("*.npz"))

    def no_evaluation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have answered")
    monkeypatch.setattr(engine.Reference, "_elementwise_point", no_evaluation)
    second = Reference(ReferenceCache(tmp_path))
    got = second.value(SPECS["gelu"], {"x": XS}).values
    assert np.array_equal(got, expected)


def test_keys_are_exact_bits_dtype_and_params(tmp_path: Path) -> None:
    ref = Reference(ReferenceCache(tmp_path))
    a = ref.value(SPECS["softplus"], {"x": XS}, {"beta": 1.0}).values
    b = ref.value(SPECS["softplus"], {"x": XS}, {"beta": 2.0}).values
    assert not np.array_equal(a, b)
    c = ref.value(SPECS["softplus"], {"x": XS.astype(np.float32)}, dtype="float32").values
    assert c.dtype == np.float32
    # -0.0 and +0.0 are different keys: their results may differ in sign
    t = ref.value(SPECS["tanh"], {"x": np.array([0.0, -0.0])}).values
    assert np.signbit(t).tolist() == [False, True]


def test_damaged_cache_file_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    ref = Reference(ReferenceCache(tmp_path))
    expected = ref.value(SPECS["sigmoid"], {"x": XS}).values
    ref.flush()
    for f in tmp_path.rglob("*.npz"):
        f.write_bytes(b"not a zip file")
    got = Reference(ReferenceCache(tmp_path)).value(SPECS["sigmoid"], {"x": XS}).values
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped"])
def test_a_truncated_empty_or_flipped_cache_file_is_a_miss_set_aside_and_rewritten(tmp_path: Path, damage: str) -> None:
    # ../shared/reviews/reliability.md D2: a half-written .npz raised BadZipFile, an empty one EOFError,
    # and every later run's checks failed until someone deleted the cache.
    ref = Reference(ReferenceCache(tmp_path))
    expected = ref.value(SPECS["sigmoid"], {"x": XS}).values
    ref.flush()
    [table] = list(tmp_path.rglob("*.npz"))
    raw = table.read_bytes()
    table.write_bytes({"truncated": raw[: len(raw) // 2], "empty": b"",
                       "flipped": raw[:40] + bytes(b ^ 0xFF for b in raw[40:80]) + raw[80:]}[damage])
    again = Reference(ReferenceCache(tmp_path))
    with pytest.warns(RuntimeWarning, match="damaged"):
        got = again.value(SPECS["sigmoid"], {"x": XS}).values
    assert np.array_equal(got, expected)
    again.flush()
    assert table.with_suffix(".damaged").exists()
    assert np.array_equal(Reference(ReferenceCache(tmp_path)).value(SPECS["sigmoid"], {"x": XS}).values, expected)
    with np.load(table) as z:                       # the rewritten table is whole
        assert len(z["keys"]) == len(XS)


def test_changed_spec_file_does_not_reuse_old_results(tmp_path: Path) -> None:
    base = {"name": "f", "family": "activation", "summary": "s", "inputs": {"x": {"differentiable": False}},
            "tolerance": {d: {"ulp": 1, "gradient_ulp": 1} for d in ("float64", "float32", "float16", "bfloat16")}
            | {"why": "test spec for the cache key only"}, "sources": ["test"]}
    one = parse_document(dict(base, formula="x + 1"), "f.yaml", fingerprint="aaaa")
    two = parse_document(dict(base, formula="x + 2"), "f.yaml", fingerprint="bbbb")
    ref = Reference(ReferenceCache(tmp_path))
    assert ref.value(one, {"x": np.array([1.0])}).values[0] == 2.0
    assert ref.value(two, {"x": np.array([1.0])}).values[0] == 3.0


def test_uncertain_results_are_cached_as_uncertain(tmp_path: Path) -> None:
    doc = {"name": "undecidable", "family": "activation", "summary": "s", "inputs": {"x": {"differentiable": False}},
           "formula": "where(exp(log(x)) > x, 1, 0)",
           "tolerance": {d: {"ulp": 1, "gradient_ulp": 1} for d in ("float64", "float32", "float16", "bfloat16")}
           | {"why": "test spec for the cache only"}, "sources": ["test"]}
    spec = parse_document(doc, "u.yaml", fingerprint="cccc")
    ref = Reference(ReferenceCache(tmp_path), max_precision=256)
    assert ref.value(spec, {"x": np.array([3.0])}).uncertain.all()
    ref.flush()
    again = Reference(ReferenceCache(tmp_path), max_precision=256).value(spec, {"x": np.array([3.0])})
    assert again.uncertain.all() and np.isnan(again.values).all()
