"""`nnconform report merge`: the matrix and the backend-versus-backend table from hand-written records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nnconform.conformance import cli
from nnconform.conformance.report import merge
from nnconform.conformance.report.records import SCHEMA_VERSION

ONE_PLUS_2ULP = 1.0 + 2 * 2.0**-23      # 1 + 2 ULP of float32 at 1 (float32 spacing on [1, 2) is 2^-23)


def record(rid: str, check: str, status: str, max_ulp: float | None = None, got: float | None = None,
           dtype: str | None = "float32", function: str = "sigmoid") -> dict[str, Any]:
    r: dict[str, Any] = {"id": rid, "function": function, "check": check, "dtype": dtype, "status": status,
                         "max_ulp": max_ulp, "max_relative": None, "params": {}, "message": "", "reason": "",
                         "worst": None}
    if got is not None:
        r["worst"] = {"input": 2.0, "input_hex": (2.0).hex(), "got": got, "got_hex": got.hex()}
    return r


def run(backend: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "kind": "checks", "backend": backend, "version": "1.0", "device": "cpu",
            "dtypes": ["float32"], "environment": {}, "machine": {}, "records": records}


A = run("alpha", [record("sigmoid[float32] value", "value", "pass", 1.0),
                  record("sigmoid[float32] stability x=2", "stability", "fail", 300.0, got=1.0),
                  record("maxout provided", "provided", "not provided", dtype=None, function="maxout")])
B = run("beta", [record("sigmoid[float32] value", "value", "pass", 2.0),
                 record("sigmoid[float32] stability x=2", "stability", "pass", 0.5, got=ONE_PLUS_2ULP),
                 record("maxout[float32] value", "value", "known discrepancy", 7.0, function="maxout")])


def files(tmp: Path, *runs: dict[str, Any]) -> list[Path]:
    paths = []
    for r in runs:
        p = tmp / f"{r['backend']}-cpu.json"
        p.write_text(json.dumps(r))
        paths.append(p)
    return paths


def test_each_cell_is_the_worst_status_and_the_largest_error(tmp_path: Path) -> None:
    merged = merge.merge(files(tmp_path, A, B))
    cells = merged["values"]["sigmoid"]["float32"]
    assert cells["alpha"] == {"status": "fail", "max_ulp": 300.0}     # value passed at 1 ULP, stability failed at 300
    assert cells["beta"] == {"status": "pass", "max_ulp": 2.0}


def test_a_function_not_provided_fills_every_dtype_of_its_run(tmp_path: Path) -> None:
    merged = merge.merge(files(tmp_path, A, B))
    assert merged["values"]["maxout"]["float32"]["alpha"]["status"] == "not provided"
    assert "| maxout | - | known 7 ULP |" in merge.markdown(merged)


def test_two_backends_are_compared_with_each_other_at_the_same_input(tmp_path: Path) -> None:
    (pair,) = merge.merge(files(tmp_path, A, B))["pairwise"]
    assert (pair["a"], pair["b"], pair["shared"], pair["differ"]) == ("alpha", "beta", 1, 1)
    assert pair["largest"][0]["ulps_apart"] == 2.0    # 1.0 against 1 + 2^-22: 2 ULP of float32


def test_the_same_records_give_byte_identical_reports_in_any_order(tmp_path: Path) -> None:
    paths = files(tmp_path, A, B)
    first, second = tmp_path / "one", tmp_path / "two"
    merge.write(paths, first)
    merge.write(list(reversed(paths)), second)
    for name in ("merged.md", "merged.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


@pytest.mark.parametrize("content, complaint", [
    ("{not json", "not a readable JSON records file"),
    (json.dumps({"records": []}), "no schema_version"),
    (json.dumps({**A, "schema_version": SCHEMA_VERSION + 1}), f"schema version {SCHEMA_VERSION + 1}"),
    (json.dumps({k: v for k, v in A.items() if k != "backend"}), "field 'backend' is missing"),
    (json.dumps({**A, "kind": "other"}), "field 'kind' is 'other'"),
    (json.dumps({**A, "records": [{"id": "x"}]}), "records[0].function is missing"),
    (json.dumps({**A, "records": [{**A["records"][0], "status": "great"}]}), "records[0].status is 'great', expected"),
    (json.dumps({**A, "records": [{**A["records"][0], "max_ulp": "big"}]}), "records[0].max_ulp is 'big'"),
    (json.dumps({**A, "kind": "sweeps", "sweeps": [{"function": "f"}]}), "sweeps[0].dtype is missing"),
])
def test_a_malformed_records_file_is_named_with_what_is_wrong(tmp_path: Path, content: str, complaint: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(merge.RecordsError) as err:
        merge.merge([bad])
    assert str(bad) in str(err.value) and complaint in str(err.value)


def test_the_same_run_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "copy").mkdir()
    paths = files(tmp_path, A) + files(tmp_path / "copy", A)
    with pytest.raises(merge.RecordsError, match="the same run"):
        merge.merge(paths)


def test_the_command_writes_both_files_and_reports_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files(tmp_path, A, B)
    assert cli.main(["report", "merge", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "merged.md").exists() and (tmp_path / "out" / "merged.json").exists()
    assert cli.main(["report", "merge", str(tmp_path / "nowhere")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
