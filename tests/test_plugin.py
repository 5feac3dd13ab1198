"""The pytest plugin end to end, on the numpy backend (always installed), through pytester."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

import nnconform.conformance
from nnconform.adapters import registry
from nnconform.conformance.report import records

pytest_plugins = ["pytester"]
SUITE = str(Path(nnconform.conformance.__file__).parent)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(SUITE, "-p", "no:randomly", "-q", *args)


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


def test_unknown_backend_is_one_clear_line(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--backend=nosuch")
    assert result.ret != 0
    assert "unknown backend 'nosuch' (known: jax, keras, keras_jax, numpy, onnxruntime, tensorflow, torch)" in output(result)


def test_missing_framework_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = metadata.EntryPoint(name="torch", value="nnconform_no_such_module:make_adapter", group=registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda: {"torch": ep})
    with pytest.raises(registry.BackendUnavailable, match=r"pip install 'nnconform\[torch\]'"):
        registry.load("torch")


def test_run_without_backend_says_how(pytester: pytest.Pytester) -> None:
    result = run(pytester)
    assert result.ret != 0
    assert "the conformance suite needs --backend=NAME" in output(result)


def test_header_and_sentence_ids(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--backend=numpy", "--functions=relu", "--dtypes=float64", "-vv")
    result.stdout.fnmatch_lines(["nnconform: backend numpy *, device cpu, dtypes float64*",
                                 "*relu[[]float64[]] stability x=5e-324 -> 5e-324*PASSED*"])
    assert result.ret == 0


def test_report_records_follow_the_schema(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = run(pytester, "--backend=numpy", "--functions=relu,sigmoid", "--dtypes=float32", f"--report={tmp_path}")
    assert result.ret == 0, result.stdout.str()
    data = json.loads((tmp_path / "numpy-cpu.json").read_text())
    assert records.validate(data, tmp_path) is data      # the schema, as records.validate states it
    assert data["kind"] == "checks" and data["backend"] == "numpy" and data["dtypes"] == ["float32"]
    keys = {"id", "function", "dtype", "check", "params", "status", "max_ulp", "max_relative", "worst", "reason", "message"}
    assert all(keys <= set(r) for r in data["records"])
    statuses = {r["status"] for r in data["records"]}
    assert "pass" in statuses and "known discrepancy" in statuses    # scipy's float32 expit underflow
    md = (tmp_path / "numpy-cpu.md").read_text()
    assert "| sigmoid |" in md and "known" in md


def write_known(path: Path, entries: str) -> Path:
    path.write_text(entries)
    return path


def known_list(findings: str) -> str:
    return "format: 2\nbackend: numpy\nfindings:\n" + findings if findings.strip() else "format: 2\nbackend: numpy\n"


SIGMOID_ENTRY = known_list("""
- id: expit-underflow
  reason: float32 expit underflows below -88.72 (test entry)
  matches:
  - {function: sigmoid, dtypes: [float32], checks: [subnormal]}
""")


@pytest.mark.parametrize("entries, outcome", [(SIGMOID_ENTRY, {"xfailed": 1}), (known_list(""), {"failed": 1})],
                         ids=["with the entry: strict xfail", "without it: the finding fails"])
def test_known_entry_decides_between_xfail_and_failure(pytester: pytest.Pytester, tmp_path: Path, entries: str,
                                                       outcome: dict[str, int]) -> None:
    known = write_known(tmp_path / "k.yaml", entries)
    result = run(pytester, "--backend=numpy", "--functions=sigmoid", "--dtypes=float32", "--checks=subnormal", f"--known={known}")
    result.assert_outcomes(**outcome)
    if "failed" in outcome:
        result.stdout.fnmatch_lines(["*sigmoid[[]float32[]] subnormal*ULP*allowed*"])


def test_entry_for_a_passing_test_is_an_xpass_failure(pytester: pytest.Pytester, tmp_path: Path) -> None:
    known = write_known(tmp_path / "k.yaml", known_list("""
- id: fixed
  reason: a discrepancy that was fixed upstream (test entry)
  matches:
  - {function: relu, dtypes: [float64], checks: [value]}
"""))
    result = run(pytester, "--backend=numpy", "--functions=relu", "--dtypes=float64", "--checks=value", f"--known={known}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*"])


def test_unmatched_entry_is_reported(pytester: pytest.Pytester, tmp_path: Path) -> None:
    known = write_known(tmp_path / "k.yaml", known_list("""
- id: nothing
  reason: matches nothing (test entry)
  matches:
  - {function: relu, dtypes: [float64], checks: [value], case: "x=12345"}
"""))
    result = run(pytester, "--backend=numpy", "--functions=relu", "--dtypes=float64", "--checks=value", f"--known={known}")
    result.stdout.fnmatch_lines(["*known discrepancies that matched no test*", "*relu*matches nothing*"])


def test_malformed_known_file_names_file_and_field(pytester: pytest.Pytester, tmp_path: Path) -> None:
    known = write_known(tmp_path / "k.yaml", known_list("- id: no-reason\n  matches: [{function: relu}]\n"))
    result = run(pytester, "--backend=numpy", f"--known={known}")
    assert result.ret != 0
    assert f"{known}: field 'findings[no-reason]': Value error, a finding needs a reason" in output(result)


def test_shipped_known_lists_are_valid() -> None:
    from nnconform.conformance import known
    for backend in ("numpy", "torch", "tensorflow", "jax", "keras", "keras_jax", "onnxruntime"):
        entries = known.load(backend)
        assert entries, backend
        assert all(e.reason and e.id and e.evidence is None for e in entries)      # evidence is measured, not listed
