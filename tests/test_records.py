"""The Markdown summary: the cells say what the records say (records written by hand here)."""

from __future__ import annotations

from nnconform.conformance.report import records

HEADER = {"backend": "demo", "version": "1.0", "device": "cpu", "dtypes": ["float64", "float32"], "environment": {}}


def rec(fn: str, dtype: str | None, check: str, status: str, max_ulp: float | None = None,
        budget: float | None = 2.0, message: str = "") -> dict:
    return {"id": f"{fn}[{dtype}] {check}", "function": fn, "dtype": dtype, "check": check, "params": {},
            "status": status, "max_ulp": max_ulp, "max_relative": None, "budget_ulp": budget, "worst": None,
            "reason": "", "message": message}


def cell(md: str, fn: str, section: str = "## Values") -> list[str]:
    part = md.split(section, 1)[1]
    row = next(line for line in part.splitlines() if line.startswith(f"| {fn} |"))
    return [c.strip() for c in row.strip("|").split("|")][1:]


def test_worst_status_and_largest_error() -> None:
    md = records.markdown(HEADER, [rec("f", "float64", "value", "pass", 1.0),
                                   rec("f", "float64", "stability", "fail", 9.0, message="boom"),
                                   rec("f", "float32", "value", "known discrepancy", 300.0)])
    assert cell(md, "f") == ["FAIL 9 / 2 ULP", "known 300 / 2 ULP"]      # error / the record's budget


def test_passing_error_above_budget_is_marked_as_conditioned() -> None:
    md = records.markdown(HEADER, [rec("g", "float64", "value", "pass", 5e15, budget=4.0),
                                   rec("g", "float32", "value", "pass", 3.0, budget=4.0)])
    assert cell(md, "g") == ["ok 5.0e+15 / 4 ULP*", "ok 3 / 4 ULP"]


def test_dtype_independent_checks_stay_out_of_the_matrix() -> None:
    md = records.markdown(HEADER, [rec("h", "float64", "value", "pass", 1.0),
                                   rec("h", None, "defaults", "known discrepancy", budget=None, message="slope 0.2")])
    assert cell(md, "h") == ["ok 1 / 2 ULP", ""]
    assert "| h | " in md.split("## Native defaults", 1)[1]


def test_gradients_have_their_own_matrix() -> None:
    md = records.markdown(HEADER, [rec("k", "float64", "gradient", "fail", 12.0, message="bad")])
    assert cell(md, "k", "## Gradients") == ["FAIL 12 / 2 ULP", ""]
