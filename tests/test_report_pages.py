"""The human reports: Markdown and HTML pages from hand-written records say what the records say.

The HTML is checked twice: parsed here (cells, classes, embedded images, nothing fetched from
elsewhere), and rendered in headless Chromium (tests/test_report_chromium.py).
"""

from __future__ import annotations

import base64
import io
import json
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from nnconform.conformance import cli
from nnconform.conformance.report import html as report
from nnconform.conformance.report import records
from nnconform.conformance.report.records import SCHEMA_VERSION


def check(fn: str, dtype: str | None, kind: str, status: str, max_ulp: float | None = None, budget: float = 2.0,
          reason: str = "", message: str = "", worst: dict | None = None) -> dict[str, Any]:
    return {"id": f"{fn}[{dtype}] {kind}", "function": fn, "dtype": dtype, "check": kind, "params": {}, "status": status,
            "max_ulp": max_ulp, "max_relative": None, "budget_ulp": budget, "worst": worst, "reason": reason,
            "message": message}


def swept(fn: str, dtype: str, quantity: str, max_ulp: float, wrong: int = 0, points: int = 65536) -> dict[str, Any]:
    """A measured sweep whose curve is x**2 / 8 exactly (so the figure has something to draw)."""
    xs = [i / 4 for i in range(-24, 25)]
    hist = [points - 1 - wrong, 0, 1 if max_ulp else 0, 0, 0, 0, 0, 0, 0, wrong]
    return {"function": fn, "dtype": dtype, "quantity": quantity, "grid": "exhaustive", "status": "measured",
            "budget_ulp": 2.0, "message": "", "points": points, "uncertain": 0, "max_ulp": "inf" if wrong else max_ulp,
            "max_ulp_finite": max_ulp, "max_ulp_normal": max_ulp, "mean_ulp": 0.0, "over_allowance": 0,
            "histogram": hist, "worst": [{"input_hex": (1.5).hex(), "input": "1.5", "expected_hex": (0.28125).hex(),
                                          "got_hex": (0.28125 + 2**-10).hex(), "ulp": max_ulp}],
            "profile": {"x": [-4.0, -1e-3, 0.0, 2.0, 60000.0], "max_ulp": [0.0, 0.0, 0.0, max_ulp, 0.0]},
            "curve": {"x": xs, "expected": [x * x / 8 for x in xs], "got": [x * x / 8 for x in xs]}}


def header(backend: str, kind: str) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "kind": kind, "backend": backend, "version": "1.0", "device": "cpu",
            "dtypes": ["float32", "float16"], "environment": {"threads": "2"}, "machine": {"cpu": "x86_64"}, "profile": "ci"}


CHECKS = [check("softplus", "float32", "value", "fail", 9.0, message="value against the exact reference: 9 ULP",
                worst={"input_hex": (20.5).hex(), "expected_hex": (20.5).hex(), "got_hex": (20.5 + 2**-19).hex()}),
          check("softplus", "float16", "value", "pass", 0.5),
          check("softplus", "float32", "gradient", "known discrepancy", 300.0,
                reason="known accuracy: the backward pass rounds twice. Evidence: 300 ULP at x=3"),
          check("softplus", None, "defaults", "fail", message="threshold: framework default 20, canonical none",
                worst={"native": "20", "canonical": "'none'"}),
          check("relu", "float32", "kink", "known discrepancy", reason="known convention: relu'(0) = 1. Evidence: x=0")]
SWEEPS = [swept("softplus", "float16", "value", 1.0), swept("softplus", "float16", "gradient", 3.0, wrong=2),
          swept("softplus", "float32", "value", 0.0, points=6000), swept("softplus", "float32", "gradient", 1.0, points=6000)]


def listed_reasons(backend: str) -> list[dict]:
    """The shipped list's reasons, read from the file here (yaml), not through the code that writes the page."""
    data = yaml.safe_load((Path(report.known.__file__).parent / "known" / f"{backend}.yaml").read_text())
    return [{"reason": " ".join(f["reason"].split())} for f in data["findings"]]


def write_run(directory: Path, backend: str = "numpy", checks: list | None = None, sweeps: list | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    applied = [e.model_dump(exclude_none=True) for e in report.known.load("numpy")]
    (directory / f"{backend}-cpu.json").write_text(json.dumps({**header(backend, "checks"), "records": checks or CHECKS,
                                                             "known": applied}))
    (directory / f"{backend}-cpu.sweep.json").write_text(json.dumps({**header(backend, "sweeps"), "sweeps": sweeps or SWEEPS}))
    return directory


class Page(HTMLParser):
    """Cells (text, class) per table, images' src, links, and any element that would fetch something."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, str]]]] = []
        self.srcs: list[str] = []
        self.fetching: list[str] = []
        self._cell: list[str] | None = None
        self._cls = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._cls = [], a.get("class") or ""
        elif tag == "img":
            self.srcs.append(a.get("src") or "")
        if tag in ("script", "link", "iframe", "object", "embed") or (tag != "a" and (a.get("src") or "").startswith(("http", "//"))):
            self.fetching.append(tag)

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(("".join(self._cell).strip(), self._cls))
            self._cell = None

    def row(self, first_cell: str, table_with: str) -> list[tuple[str, str]]:
        for t in self.tables:
            if any(c[0] == table_with for r in t for c in r):
                for r in t:
                    if r and r[0][0] == first_cell:
                        return r[1:]
        raise AssertionError(f"no row {first_cell!r} in a table with {table_with!r}")


def pages(tmp_path: Path) -> tuple[str, str]:
    report.write([write_run(tmp_path / "r")], tmp_path / "r")
    return (tmp_path / "r" / "numpy-cpu.html").read_text(), (tmp_path / "r" / "numpy-cpu.md").read_text()


def test_the_checks_matrix_cells_carry_status_error_and_colour(tmp_path: Path) -> None:
    html, md = pages(tmp_path)
    page = Page(html)
    values = page.row("softplus", "float16")
    assert ("FAIL 9 / 2 ULP", "fail") in values and ("ok 0.5 / 2 ULP", "pass") in values   # error / budget
    assert "| softplus | FAIL 9 / 2 ULP | ok 0.5 / 2 ULP |" in md


def test_the_sweep_cells_say_the_largest_error_over_every_input_and_the_wrong_specials(tmp_path: Path) -> None:
    html, md = pages(tmp_path)
    cells = [c for t in Page(html).tables for r in t for c in r]
    assert ("3 ULP; 2 wrong NaN/inf", "wrong") in cells       # the float16 derivative sweep: 2 NaN/inf where exact is finite
    assert ("1 ULP", "within") in cells and ("0 ULP", "exact") in cells
    assert "| softplus | 0 ULP | 1 ULP |" in md                # values: float32 grid exact, float16 1 ULP


def test_findings_defaults_conventions_and_the_known_list_are_shown(tmp_path: Path) -> None:
    html, _ = pages(tmp_path)
    page = Page(html)
    finding = page.row("softplus[float32] value", "check")      # input, exact, got: the value over its hex
    assert (20.5).hex() in finding[0][0] and (20.5 + 2**-19).hex() in finding[2][0]
    assert "softplus: value (1 check)" in html                  # its group: failures first, one per function and check
    defaults = page.row("softplus", "parameter")          # parameter, framework default, canonical, status, detail
    assert defaults[1][0] == "20" and defaults[2][0] == "'none'" and defaults[4][0] == "threshold: framework default 20, canonical none"
    # softplus.yaml declares the threshold convention (canonical: none) and what numpy does (nothing stated: numpy
    # has no softplus threshold), and relu's kink check is listed with its reason.
    conv = page.row("softplus", "convention")
    assert conv[0][0] == "threshold" and conv[1][0] == "none" and conv[2][0] == "(not stated by the spec)"
    assert page.row("relu[float32] kink", "detail")[1][0] == "known convention: relu'(0) = 1."
    # The known list shown is the one the run applied, as its records carry it (numpy's file, read here independently).
    listed = listed_reasons("numpy")
    reasons = {c[0] for t in page.tables for r in t for c in r}
    assert all(e["reason"].strip() in reasons for e in listed)


def test_the_known_list_shown_is_the_one_in_the_records_not_the_packaged_one(tmp_path: Path) -> None:
    planted = [{"function": "relu", "reason": "a reason only this run's list has", "evidence": "planted"}]
    directory = write_run(tmp_path / "in")
    data = json.loads((directory / "numpy-cpu.json").read_text())
    (directory / "numpy-cpu.json").write_text(json.dumps({**data, "known": planted}))
    report.write([directory], tmp_path / "out")
    page = Page((tmp_path / "out" / "numpy-cpu.html").read_text())
    reasons = {c[0] for t in page.tables for r in t for c in r}
    assert "a reason only this run's list has" in reasons
    packaged = listed_reasons("numpy")
    assert not any(e["reason"].strip() in reasons for e in packaged)


def test_every_image_is_a_png_in_the_pages_figures_folder_and_nothing_is_fetched(tmp_path: Path) -> None:
    page = Page(pages(tmp_path)[0])
    assert page.srcs and not page.fetching
    for src in page.srcs:
        assert src.startswith("numpy-cpu.figures/") and src.endswith(".png")
        image = Image.open(tmp_path / "r" / src)
        assert image.format == "PNG" and image.size[0] >= 1400 and image.size[1] >= 600    # 100 dpi, legible in print


def test_an_embedded_page_stands_alone() -> None:
    run = {**header("numpy", "checks"), "records": CHECKS, "sweeps": SWEEPS}
    page = Page(report.run_html("numpy", run))              # the default Saver: data URIs, for a page sent on its own
    assert page.srcs and all(src.startswith("data:image/png;base64,") for src in page.srcs)
    image = Image.open(io.BytesIO(base64.b64decode(page.srcs[0].split(",", 1)[1])))
    assert image.format == "PNG"


def test_the_banner_says_failed_when_a_check_failed_or_a_listed_discrepancy_passed() -> None:
    base = {**header("numpy", "checks"), "sweeps": []}
    assert report.verdict({**base, "records": CHECKS})[0] == "fail"                 # softplus value failed
    passing = [check("relu", "float32", "value", "pass", 0.0)]
    assert report.verdict({**base, "records": passing})[0] == "pass"
    xpass = [check("relu", "float32", "value", "fixed upstream", 0.0)]
    cls, text = report.verdict({**base, "records": xpass})
    assert cls == "fail" and "listed discrepancy" in text and "passed" in text
    assert report.verdict({**base, "records": passing, "complete": False})[0] == "incomplete"


def test_a_finding_not_reproduced_here_is_shown_on_the_page_and_the_banner_stays_green(tmp_path: Path) -> None:
    elsewhere = check("relu", "float32", "value", "not reproduced", 0.0,
                      reason="known bug: planted. Measured where torch==2.12.0, not here.")
    base = {**header("numpy", "checks"), "sweeps": [], "known_policy": "report"}
    cls, text = report.verdict({**base, "records": [elsewhere, check("relu", "float16", "value", "pass", 0.0)]})
    assert cls == "pass" and "1 listed finding(s) of another environment are not reproduced here" in text
    directory = tmp_path / "in"
    directory.mkdir()
    (directory / "numpy-cpu.json").write_text(json.dumps({**base, "records": [elsewhere]}))
    report.write([directory], tmp_path / "out")
    html = (tmp_path / "out" / "numpy-cpu.html").read_text()
    assert '<span class="elsewhere">not reproduced here</span> known bug: planted. Measured where torch==2.12.0' in html
    md = (tmp_path / "out" / "numpy-cpu.md").read_text()
    assert "### not reproduced here: known bug: planted. Measured where torch==2.12.0, not here." in md


def test_matrix_cells_link_to_their_findings_and_the_contents_to_every_section(tmp_path: Path) -> None:
    html, _ = pages(tmp_path)
    anchor = report.finding_anchor("softplus", "float32")
    assert f'href="#{anchor}"' in html and f'id="{anchor}"' in html
    for section in ("values", "findings", "sweeps", "figures"):
        assert f'href="#{section}"' in html and f'id="{section}"' in html


def test_optimizer_cells_show_no_ulp_figure() -> None:
    recs = [check("adam", "float64", "trajectory", "pass", 1.2e308)]
    md = records.markdown({**header("torch", "checks"), "dtypes": ["float64"]}, recs)
    assert "1.2e+308" not in md and "| adam | ok |" in md


def test_the_same_records_give_byte_identical_pages(tmp_path: Path) -> None:
    write_run(tmp_path / "r", "numpy")
    write_run(tmp_path / "r", "torch")
    files = sorted((tmp_path / "r").glob("*.json"))
    report.write(files, tmp_path / "one")
    report.write(list(reversed(files)), tmp_path / "two")       # found in another order: the same pages
    for name in ("numpy-cpu.html", "numpy-cpu.md", "merged.html", "merged.md", "merged.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_two_runs_give_a_merged_page_with_both_backends(tmp_path: Path) -> None:
    write_run(tmp_path / "r", "numpy")
    other = [dict(s, max_ulp_finite=7.0, max_ulp=7.0, histogram=[65535, 0, 0, 0, 0, 1, 0, 0, 0, 0])
             if s["dtype"] == "float16" and s["quantity"] == "value" else s for s in SWEEPS]
    write_run(tmp_path / "r", "torch", sweeps=other)
    written = report.write([tmp_path / "r"], tmp_path / "r")
    assert {p.name for p in written} >= {"numpy-cpu.html", "torch-cpu.html", "merged.html", "merged.md"}
    page = Page((tmp_path / "r" / "merged.html").read_text())
    rows = [r[1:] for t in page.tables for r in t if r and r[0][0] == "softplus"]
    assert [("1 ULP (all inputs)", ""), ("7 ULP (all inputs)", "")] in rows     # the float16 value sweeps, side by side
    assert len(page.srcs) == 1 and not page.fetching        # one figure: softplus, both backends
    assert "numpy-cpu.html" in (tmp_path / "r" / "merged.html").read_text()


def test_a_malformed_records_file_is_named_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "r")
    bad = run / "numpy-cpu.sweep.json"
    data = json.loads(bad.read_text())
    data["sweeps"][0]["quantity"] = "curvature"
    bad.write_text(json.dumps(data))
    assert cli.main(["report", "html", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "sweeps[0].quantity is 'curvature'" in err
    assert not (run / "numpy-cpu.html").exists()


def test_sweep_records_in_the_written_file_follow_the_schema(tmp_path: Path) -> None:
    path = records.write_sweeps(tmp_path, header("numpy", "sweeps"), SWEEPS)
    data = json.loads(path.read_text())
    assert records.validate(data, path)["kind"] == "sweeps" and len(data["sweeps"]) == 4
    assert not any(isinstance(v, float) and not math.isfinite(v) for s in data["sweeps"] for v in s.values())


def test_the_main_command_writes_records_sweeps_and_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`nnconform report run`, narrowed to relu: the pytest run and the sweeps both land in the pages."""
    out = tmp_path / "report"
    status = cli.main(["report", "run", "numpy", "--out", str(out), "--functions", "relu", "--dtypes", "float32,float16",
                       "--jobs", "1", "--no-progress"])
    assert status == 0, capsys.readouterr()
    checks = records.load(out / "numpy-cpu.json")
    sweeps = records.load(out / "numpy-cpu.sweep.json")
    assert {r["function"] for r in checks["records"]} == {"relu"} and checks["records"]
    assert {(s["dtype"], s["grid"]) for s in sweeps["sweeps"]} == {("float32", "grid"), ("float16", "exhaustive")}
    page = Page((out / "numpy-cpu.html").read_text())
    assert page.row("relu", "float16") and page.srcs       # the matrices and relu's figure


def test_the_main_command_names_a_backend_it_cannot_load(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["report", "run", "nosuch", "--out", str(tmp_path)]) == 2
    assert "nosuch" in capsys.readouterr().err and not list(tmp_path.iterdir())
