"""Human reports: per run a Markdown summary and an HTML page; for several runs a merged page.

`write(paths, out)` reads every records file found (the checks of a pytest run, and its
sweeps), and writes for each run `<backend>-<device>.md` and `.html`, and, for two runs or
more, `merged.md`, `merged.json` and `merged.html`.  A page needs only its figures folder
beside it (`<page>.figures/`, PNGs it links with loading="lazy", so that one backend's page
stays well under 1 MB): the style is inline, nothing is fetched from the network, and there is
no script.

The output depends only on the records (sorted everywhere, PNGs without timestamps): the
same records give byte-identical pages.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any, Callable, Iterable

from nnconform.adapters.base import ALL_DTYPES
from nnconform.adapters.isa import isa_text
from nnconform.reference import relations
from nnconform.spec import Spec, SpecError
from nnconform.spec.loader import load_all

from .. import kinds, known
from ..kinds import GRADIENT_CHECKS, OPTIMIZER_TABLE, VALUE_CHECKS
from ..known import where_text
from ..sweeps.sweep import HISTOGRAM_LABELS
from . import merge, plots, records
from .records import FINDINGS, STATUSES, _first_line, _ulp

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1400px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0 1.4em}th,td{border:1px solid #ccc;padding:.25em .55em;font-size:.86em}
th{background:#f2f2f2;text-align:left}td.num{text-align:right;font-family:ui-monospace,monospace}
code,.hex{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em}
.pass{background:#d9f2d9}.fail{background:#f6c4c4}.known{background:#ffe8a3}.xpass{background:#c9ddff}.elsewhere{background:#e8f0e0}
.na{background:#eee;color:#777}.uncertain{background:#e6dcf5}.skip{background:#f5f5f5}.over{background:#ffd9b3}
.wrong{background:#f6c4c4}.exact{background:#d9f2d9}.within{background:#edf8e5}
img{max-width:100%;border:1px solid #ddd;margin:.3em 0 1.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
.note{color:#555;font-size:.9em;max-width:70em}
.banner{font-size:1.15em;padding:.6em 1em;border-radius:4px;margin:.8em 0}.banner.pass{border:2px solid #3a3}
.banner.fail{border:2px solid #c33}.banner.incomplete{border:2px solid #c80;background:#ffe8a3}
nav.toc{columns:3 14em;font-size:.9em;margin:.5em 0 1em}nav.toc a{display:block}
td a{color:inherit}details{margin:.3em 0}summary{cursor:pointer}
@media (max-width:600px){body{padding:0 .4em;margin:.5em}table{display:block;overflow-x:auto;max-width:100%}
th,td{font-size:.78em;padding:.2em .35em}}
"""
STATUS_LABEL = {"fixed upstream": "unexpected pass", "not reproduced": "not reproduced here"}     # a listed discrepancy that passed: the run fails (strict)
STATUS_CLASS = {"pass": "pass", "fail": "fail", "known discrepancy": "known", "fixed upstream": "xpass",
                "not reproduced": "elsewhere", "not provided": "na", "reference uncertain": "uncertain", "skipped": "skip"}
READING = ("Each matrix cell is the worst status of that function's checks in that dtype (FAIL, known = a listed, "
           "explained discrepancy, XPASS = listed but now passing, ok (not here) = passed, listed as a finding of another environment, ok, - = not provided) and the largest error "
           "measured against the exact (correctly rounded) value, in ULPs of the dtype. * marks an error within the "
           "allowance the spec declares for an ill-conditioned region. The sweeps measure fixed inputs, every one "
           "of the 65,536 inputs for float16 and bfloat16, and report the largest error over all of them, "
           "whatever the verdict.")


def _td(text: str, cls: str = "", title: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    t = f' title="{escape(title)}"' if title else ""
    return f"<td{c}{t}>{escape(text)}</td>"


def _table(head: list[str], rows: Iterable[str]) -> str:
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(f"<tr>{r}</tr>" for r in rows) + "</tbody></table>")


def _sweep_text(s: dict[str, Any] | None) -> tuple[str, str, str]:
    """Cell text, class and tooltip of one sweep."""
    if s is None:
        return " ", "", ""
    if s["status"] != "measured":
        return ("-" if s["status"] == "not provided" else "failed"), ("na" if s["status"] == "not provided" else "fail"), \
            s.get("message", "")
    u = s["max_ulp"]
    hist = s.get("histogram") or []
    wrong = hist[-1] if hist else 0
    finite = s.get("max_ulp_finite")
    text = "-" if u is None else _ulp(float(finite)) if finite is not None and finite >= 0 else "-"
    if s.get("max_ulp_normal") not in (None, u) and s["max_ulp_normal"] != "inf" and wrong == 0:
        text += f" ({_ulp(float(s['max_ulp_normal']))} normal)"
    nan_in = s.get("nan_not_propagated", 0)
    if wrong - nan_in:
        text += f"; {wrong - nan_in:,} wrong NaN/inf"
    if nan_in:
        text += "; NaN in, number out"
    over = s.get("over_allowance", 0)
    cls = "wrong" if wrong else "over" if over else "exact" if u == 0 else "within"
    tip = f"{s['points']:,} inputs ({s['grid']}); {over:,} beyond the spec's allowance; {wrong:,} wrong NaN/inf"
    return text, cls, tip


def _sweep_rows(sweeps: list[dict[str, Any]], dtypes: list[str], quantity: str) -> list[str]:
    by = merge.widest(sweeps, quantity)
    rows = []
    for fn in sorted(by):
        rows.append(f"<td>{escape(fn)}</td>" + "".join(_td(*_sweep_text(by[fn].get(d))) for d in dtypes))
    return rows


def finding_anchor(function: str, dtype: str | None) -> str:
    return "f-" + records.slug(f"{function}-{dtype or 'any'}")


def _matrix_rows(recs: list[dict[str, Any]], dtypes: list[str], checks: tuple[str, ...], chosen: set[str],
                 with_ulp: bool = True, linked: set[str] | None = None) -> list[str]:
    """linked: the finding anchors that exist; a cell with a finding links to it."""
    table = records.cells([r for r in recs if r["function"] in chosen], checks)
    rows = []
    for fn, by_dtype in table.items():
        cells = []
        for d in dtypes:
            c = by_dtype.get(d)
            text, cls = records.cell_text(c, with_ulp), STATUS_CLASS[c["status"]] if c else ""
            anchor = finding_anchor(fn, d)
            if c and c["status"] in FINDINGS and linked and anchor in linked:
                cells.append(f'<td class="{cls}"><a href="#{anchor}">{escape(text)}</a></td>')
            else:
                cells.append(_td(text, cls))
        rows.append(f"<td>{escape(fn)}</td>" + "".join(cells))
    return rows


Saver = Callable[[str, bytes], str]      # (function, PNG bytes) -> the URL the page links


def _figures(function_sweeps: dict[str, dict[str, list[dict[str, Any]]]], save: Saver) -> list[str]:
    out = []
    for fn in sorted(function_sweeps):
        png = plots.function_figure(fn, function_sweeps[fn])
        if png:
            out.append(f'<h3 id="fig-{escape(records.slug(fn))}">{escape(fn)}</h3><img loading="lazy" '
                       f'alt="{escape(fn)}: curves and errors" width="1400" height="620" src="{escape(save(fn, png))}">')
    return out


def embedded(function: str, png: bytes) -> str:
    """A Saver for a page that must stand alone: the figure as a data URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def saving_into(directory: Path, link: str) -> Saver:
    """A Saver that writes `directory/<function>.png` and links it as `link/<function>.png`."""
    def save(function: str, png: bytes) -> str:
        name = records.slug(function) + ".png"
        path = directory / name
        if path.resolve().parent != directory.resolve():
            raise records.RecordsError(f"a figure for {function!r} would be written outside {directory}")
        directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return f"{link}/{name}"
    return save


def _page(title: str, body: list[str]) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------- one run

def _specs() -> dict[str, Any]:
    try:
        return load_all()
    except SpecError:
        return {}


def _known_entries(run: dict[str, Any]) -> list[known.Entry]:
    """The known list the run applied, as its records carry it (never re-read from the package by name)."""
    return [known.Entry.model_validate(item) for item in run.get("known") or []]     # validated when read


def reference_text(ref: Any) -> str:
    """The tier that judged the run, and any outputs the two tiers disagreed on (never judged)."""
    if not isinstance(ref, dict):
        return "mpmath"
    text = str(ref.get("tier", "mpmath"))
    if ref.get("disagreements"):
        text += f" (the tiers disagreed at {ref['disagreements']} outputs, which were not judged)"
    return text


def verdict(run: dict[str, Any]) -> tuple[str, str]:
    """(class, text) of the banner: passed, failed (a check failed, or a listed discrepancy passed) or incomplete."""
    recs = run["records"]
    counts = defaultdict(int)
    for r in recs:
        counts[r["status"]] += 1
    shown = ", ".join(f"{counts[k]} {STATUS_LABEL.get(k, k)}" for k in STATUSES if counts[k])
    if run.get("complete") is False:
        return "incomplete", f"INCOMPLETE: the run stopped before its end ({escape(str(run.get('stopped', 'interrupted')))}); " \
                             f"{len(recs)} checks recorded: {shown}"
    if not recs:
        return "incomplete", "NO CHECKS: these records hold sweeps only"
    bad = counts["fail"] + counts["fixed upstream"]
    if bad:
        why = []
        if counts["fail"]:
            why.append(f"{counts['fail']} check(s) failed")
        if counts["fixed upstream"]:
            why.append(f"{counts['fixed upstream']} listed discrepancy(ies) passed (strict: the list must change)")
        return "fail", f"FAILED: {'; '.join(why)}. {len(recs)} checks: {shown}"
    elsewhere = (f" {counts['not reproduced']} listed finding(s) of another environment are not reproduced here "
                 f"(known policy {run.get('known_policy', 'report')}): see the findings." if counts["not reproduced"] else "")
    return "pass", f"PASSED: {len(recs)} checks: {shown}.{elsewhere}"


def run_html(label: str, run: dict[str, Any], save: Saver = embedded) -> str:
    recs, sweeps = run["records"], run["sweeps"]
    dtypes = [d for d in ALL_DTYPES if d in (run.get("dtypes") or ALL_DTYPES)]
    specs = _specs()
    optimizers = {n for n, s in specs.items() if s.family == "optimizer"}
    others = {r["function"] for r in recs} - optimizers
    head = [f"<h1>nnconform report: {escape(run['backend'])} {escape(run['version'])} ({escape(run['device'])})</h1>"]
    cls, text = verdict(run)
    head.append(f'<div class="banner {cls}"><strong>{escape(text)}</strong></div>')
    tools = run.get("tools") or {}
    info = [("backend", run["backend"]), ("version", run["version"]), ("device", run["device"]),
            ("profile and seed", f"{run.get('profile', '')}, seed {run.get('seed', 0)}"),
            ("known policy", str(run.get("known_policy", "not recorded"))),
            ("reference", reference_text(run.get("reference"))),
            ("made with", ", ".join(f"{k} {v}" for k, v in sorted(tools.items())) or "not recorded"),
            ("instruction set", isa_text(run.get("environment") or {})),
            ("numerics environment", ", ".join(f"{k}={v}" for k, v in sorted((run.get("environment") or {}).items()))),
            ("machine", ", ".join(f"{k}={v}" for k, v in sorted((run.get("machine") or {}).items())))]
    head.append("<table><tbody>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in info)
                + "</tbody></table>")
    sections: list[tuple[str, str, list[str]]] = []       # (anchor, title, html)
    findings = [r for r in recs if r["status"] in FINDINGS]
    linked = {finding_anchor(r["function"], r["dtype"]) for r in findings}
    for anchor, title, checks, chosen, shown, with_ulp in (
            ("values", "Values", VALUE_CHECKS, others, dtypes, True),
            ("gradients", "Gradients", GRADIENT_CHECKS, others, dtypes, True),
            ("optimizers", "Optimizer trajectories", OPTIMIZER_TABLE, optimizers,
             [d for d in dtypes if d in ("float64", "float32")], False)):
        rows = _matrix_rows(recs, shown, checks, chosen, with_ulp, linked)
        if rows:
            note = [] if with_ulp else ['<p class="note">Status only: an optimizer\'s tolerance is a factor on a running '
                                        "error bound (docs/optimizers.md), not a number of ULPs.</p>"]
            sections.append((anchor, title, note + [_table(["function"] + shown, rows)]))
    if findings:
        sections.append(("findings", f"Findings ({len(findings)})", _findings(findings)))
    if sweeps:
        part = ['<p class="note">Green: within the spec\'s allowance everywhere (dark: exact everywhere); orange: '
                'some inputs beyond it; red: a NaN or infinity where the exact result differs. In brackets: the '
                'largest error leaving out subnormal inputs and results (flushing them to zero is a separate, '
                'reported choice). Hover a cell for counts.</p>']
        for q, title in ((kinds.VALUE, "Values"), (kinds.GRADIENT, "Derivatives")):
            rows = _sweep_rows(sweeps, dtypes, q)
            if rows:
                part += [f"<h3>{title}</h3>", _table(["function"] + dtypes, rows)]
        part += ["<h3>Worst inputs</h3>", _worst_table(sweeps)]
        mono = [s for s in sweeps if s.get("monotone")]
        if mono:
            part += ["<h3>Monotonicity over the sweeps</h3>", _monotone_table(mono)]
        exh = [s for s in sweeps if s["grid"] == "exhaustive float32"]
        if exh:
            part += ["<h3>Exhaustive float32 sweeps</h3>", _float32_table(exh)]
        sections.append(("sweeps", "Sweeps: largest error over every swept input", part))
    defaults = [r for r in recs if r["check"] == kinds.DEFAULTS]
    if defaults:
        sections.append(("defaults", "Native defaults", [
            '<p class="note">What a user gets calling the framework without arguments, against the spec\'s canonical '
            "value.</p>",
            _table(["function", "parameter", "framework default", "canonical", "status", "detail"], [
                _td(r["function"]) + _td(r["id"].split(" ", 2)[-1])
                + _td(records.default_as_stated(r)) + _td(str((r.get("worst") or {}).get("canonical", "")))
                + _td(STATUS_LABEL.get(r["status"], r["status"]), STATUS_CLASS[r["status"]])
                + _td("same as canonical" if r["status"] == "pass" else _first_line(r.get("message") or r.get("reason")))
                for r in defaults])]))
    conventions = _conventions(run, specs, recs)
    if conventions:
        sections.append(("conventions", "Conventions", conventions))
    relations_part = _relations(specs, {r["function"] for r in recs})
    if relations_part:
        sections.append(("relations", "Relations between functions", relations_part))
    entries = _known_entries(run)
    if entries:
        sections.append(("known", f"Known discrepancies of {run['backend']} ({len(entries)})", [
            "<details><summary>the list this run applied</summary>",
            _table(["finding", "function", "dtypes", "checks", "case", "measured where", "kind", "reason", "link"], [
                _td(e.id or "") + _td(e.function) + _td(", ".join(e.dtypes or ["all"])) + _td(", ".join(e.checks or ["all"]))
                + _td(e.case or "") + _td(where_text(e.where)) + _td(e.kind) + _td(e.reason)
                + (f'<td><a href="{escape(e.link)}">{escape(e.link)}</a></td>' if e.link and e.link.startswith(("https://", "http://"))
                   else _td(e.link or "")) for e in entries]), "</details>"]))
    by_fn: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for s in sweeps:
        if s["status"] == "measured":
            by_fn[s["function"]][label].append(s)
    figures = _figures(by_fn, save)
    if figures:
        sections.append(("figures", "Figures", [
            '<p class="note">Per function: the value and derivative over [-6, 6] against the exact curve (grey), and '
            "the largest error in each bin of the swept inputs, per dtype, with the spec's budget (dotted).</p>"] + figures))
    toc = '<nav class="toc"><strong>Contents</strong>' + "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t, _ in sections) \
        + "</nav>"
    body = head + [toc, f'<p class="note">{escape(READING)}</p>']
    for anchor, title, part in sections:
        body.append(f'<h2 id="{anchor}">{escape(title)}</h2>')
        body += part
    return _page(f"nnconform: {label}", body)


def _value(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else "" if v is None else str(v)[:80]


def _findings(findings: list[dict[str, Any]]) -> list[str]:
    out, anchored = [], set()
    for status, why, rs in records.finding_groups(findings):
        rows = []
        for r in sorted(rs, key=lambda r: r["id"]):
            w = r.get("worst") or {}
            anchor = finding_anchor(r["function"], r["dtype"])
            attr = f' id="{anchor}"' if anchor not in anchored else ""
            anchored.add(anchor)
            rows.append(f"<td{attr}>{escape(r['id'])}</td>"
                        + "".join(f'<td class="hex">{escape(_value(w.get(k)))}<br>{escape(str(w.get(k + "_hex", "")))}</td>'
                                  for k in ("input", "expected", "got"))
                        + _td(_ulp(r["max_ulp"]) if r.get("max_ulp") else "", "num")
                        + (_td(_first_line(r.get("message"))) if status == "fail" else ""))
        head = ["check", "input", "exact", "got", "ULP"] + (["message"] if status == "fail" else [])
        opened = " open" if status != "known discrepancy" else ""
        out.append(f'<details{opened}><summary><span class="{STATUS_CLASS[status]}">{escape(STATUS_LABEL.get(status, status))}'
                   f"</span> {escape(why)} ({len(rs)} check{'s' if len(rs) > 1 else ''})</summary>"
                   + _table(head, rows) + "</details>")
    return out


def _why(r: dict[str, Any]) -> str:
    return records.finding_reason(r)


def _worst_table(sweeps: list[dict[str, Any]], limit: int = 40) -> str:
    rows = []
    for s in sweeps:
        if s["status"] == "measured" and s.get("worst"):
            w = s["worst"][0]
            u = float("inf") if w["ulp"] == "inf" else float(w["ulp"])
            if u > (s.get("budget_ulp") or 0):
                rows.append((-u, s["function"], s["dtype"], s["quantity"], w))
    rows.sort(key=lambda r: r[:4])
    return _table(["function", "dtype", "quantity", "input", "exact", "got", "error"], [
        _td(fn) + _td(d) + _td(q) + _td(w["input_hex"], "hex") + _td(w["expected_hex"], "hex") + _td(w["got_hex"], "hex")
        + _td(_ulp(-u), "num") for u, fn, d, q, w in rows[:limit]]) if rows else "<p>No swept input beyond the budget.</p>"


def _monotone_table(mono: list[dict[str, Any]]) -> str:
    """Every pair of neighbouring swept inputs of a function the spec calls monotone: how many move the wrong way."""
    bad = [s for s in mono if s["monotone"]["violations"]]
    pairs = sum(s["monotone"]["pairs"] for s in mono)
    note = (f'<p class="note">{len(mono)} sweeps of monotone functions compare {pairs:,} pairs of neighbouring '
            f"inputs; {'none' if not bad else len(bad)} of them {'has' if len(bad) == 1 else 'have'} a pair where the "
            "output moves against the spec's direction.</p>")
    if not bad:
        return note
    return note + _table(["function", "dtype", "pairs against the direction", "of", "first: x", "f(x)"], [
        _td(s["function"]) + _td(s["dtype"]) + _td(f"{s['monotone']['violations']:,}", "num over")
        + _td(f"{s['monotone']['pairs']:,}", "num") + _td(" < ".join(s["monotone"]["first"]["x_hex"]), "hex")
        + _td(" > ".join(s["monotone"]["first"]["y_hex"]), "hex") for s in bad])


def _float32_table(exh: list[dict[str, Any]]) -> str:
    return _table(["function", "inputs", "largest error", "where", "histogram", "screen check", "seconds"], [
        _td(s["function"]) + _td(f"{s['points']:,}", "num")
        + _td(_ulp(float("inf") if s["max_ulp"] == "inf" else float(s["max_ulp"]))
              + (f" ({_ulp(s['max_ulp_finite'])} finite)" if s["max_ulp"] == "inf" and "max_ulp_finite" in s else ""), "num")
        + _td((s.get("worst") or [{}])[0].get("input_hex", ""), "hex")
        + _td(", ".join(f"{lab}: {c:,}" for lab, c in zip(HISTOGRAM_LABELS, s["histogram"]) if c))
        + _td(f"{s['screen_check']['screen_differs_from_mpmath']} of {s['screen_check']['sample']:,} sampled screen "
              f"values differ from mpmath; {s.get('unmeasured', 0):,} unmeasured")
        + _td(str(s.get("seconds", "")), "num") for s in exh])


def _relation_rows(specs: dict[str, Any], shown: set[str]) -> list[tuple[str, str, str, str, bool, str]]:
    """(function, related to, identity, verdict, holds, why) of every relation touching a shown function,
    each verified by the reference when the page is written."""
    out = []
    for name, checks in relations.verify_all({k: v for k, v in specs.items() if isinstance(v, Spec)}).items():
        for c in checks:
            if name in shown or c.relation.function in shown:
                verdict = (f"holds at {c.points} points (largest difference {c.max_ulp:g} ULP in float64)" if c.holds
                           else f"FAILS: {c.max_ulp:.3g} ULP at {c.worst}")
                out.append((name, c.relation.function, c.relation.identity, verdict, c.holds, c.relation.why.strip()))
    return out


def _relations(specs: dict[str, Any], shown: set[str]) -> list[str]:
    """Identities between specs that frameworks name differently, each verified by the reference."""
    rows = [_td(a) + _td(b) + _td(identity) + _td(verdict, "pass" if holds else "fail") + _td(why)
            for a, b, identity, verdict, holds, why in _relation_rows(specs, shown)]
    if not rows:
        return []
    return ['<p class="note">Functions that frameworks name differently and users confuse, and how they relate, '
            "as the specs declare it; the reference evaluates both sides exactly at a fixed sample of inputs and "
            "parameters when the page is written.</p>",
            _table(["function", "related to", "identity", "verified by the reference", "why it matters"], rows)]


def _conventions(run: dict[str, Any], specs: dict[str, Any], recs: list[dict[str, Any]]) -> list[str]:
    """The conventions the mathematics leaves open: the spec's choice and, where the spec records it, this framework's."""
    backend = run["backend"]
    rows = []
    for name in sorted(specs):
        for conv, c in sorted(specs[name].doc.conventions.items()):
            alt = c.alternatives.get(backend) or c.alternatives.get(run.get("framework") or "", "")
            rows.append(_td(name) + _td(conv) + _td(str(c.canonical)) + _td(alt or "(not stated by the spec)"))
    kinks = [r for r in recs if r["check"] == kinds.BY_NAME["kink"].name]
    out = []
    if rows:
        stated = sum(1 for r in rows if "(not stated by the spec)" not in r)
        out += ['<p class="note">Choices the mathematics leaves open (derivative at a kink, all -inf rows, clamping, '
                "thresholds): the spec's canonical choice and what the spec records this framework doing. The special, "
                "kink and defaults checks test them; their findings are listed above.</p>",
                f"<details><summary>{len(rows)} conventions, {stated} with this framework's choice stated</summary>",
                _table(["function", "convention", "canonical", backend], rows), "</details>"]
    if kinks:
        odd = [r for r in kinks if r["status"] != "pass"]
        out += [f"<h3>Derivatives at kinks</h3><p>{len(kinks) - len(odd)} of {len(kinks)} as the spec.</p>"]
        if odd:
            out.append(_table(["check", "status", "detail"], [
                _td(r["id"]) + _td(STATUS_LABEL.get(r["status"], r["status"]), STATUS_CLASS[r["status"]]) + _td(_why(r))
                for r in odd]))
    return out


def run_markdown(run: dict[str, Any]) -> str:
    header = {k: run.get(k) for k in ("backend", "version", "device", "environment", "known_policy")}
    header["dtypes"] = [d for d in ALL_DTYPES if d in (run.get("dtypes") or ALL_DTYPES)]
    header["environment"] = header["environment"] or {}
    text = records.markdown(header, run["records"]) if run["records"] else \
        f"# nnconform report: {run['backend']} {run['version']} ({run['device']})\n"
    related = _relation_rows(_specs(), {r["function"] for r in run["records"]})
    if related:
        text += "\n## Relations between functions\n\n| function | related to | identity | verified by the reference |\n" \
                "|---|---|---|---|\n" + "".join(f"| {a} | {b} | {i} | {v} |\n" for a, b, i, v, _, _ in related)
    if not run["sweeps"]:
        return text
    lines = ["", "## Sweeps: largest error over every swept input", "",
             "float16 and bfloat16: all 65,536 inputs of each unary function; otherwise the deterministic grid. "
             "In brackets: leaving out subnormal inputs and results.", ""]
    for q, title in ((kinds.VALUE, "Values"), (kinds.GRADIENT, "Derivatives")):
        by = merge.widest(run["sweeps"], q)
        lines += [f"### {title}", "", "| function | " + " | ".join(header["dtypes"]) + " |",
                  "|---|" + "---|" * len(header["dtypes"])]
        lines += [f"| {fn} | " + " | ".join(_sweep_text(by[fn].get(d))[0] for d in header["dtypes"]) + " |" for fn in sorted(by)]
        lines.append("")
    return text + "\n".join(lines) + "\n"


# ---------------------------------------------------------------- several runs

def merged_html(merged: dict[str, Any], runs: dict[str, dict[str, Any]], save: Saver = embedded) -> str:
    labels = list(merged["runs"])
    body = ["<h1>nnconform: merged report</h1>",
            _table(["run", "backend", "version", "device", "instruction set", "page"], [
                _td(lab) + _td(r["backend"]) + _td(r["version"]) + _td(r["device"]) + _td(isa_text(r.get("environment") or {}))
                + f'<td><a href="./{escape(stem(lab, runs[lab]))}.html">{escape(stem(lab, runs[lab]))}.html</a></td>'
                for lab, r in merged["runs"].items()]),
            f'<p class="note">{escape(READING)}</p>']
    for title, key in (("Values", "values"), ("Gradients", "gradients"), ("Optimizer trajectories", "optimizers")):
        table = merged[key]
        for d in [d for d in ALL_DTYPES if any(d in by for by in table.values())]:
            fmt = merge.status_cell if key == "optimizers" else merge._fmt_cell
            rows = [f"<td>{escape(fn)}</td>" + "".join(
                _td(fmt(by[d].get(lab)), STATUS_CLASS[by[d][lab]["status"]] if lab in by[d] else "")
                for lab in labels) for fn, by in table.items() if d in by]
            body += [f"<h2>{escape(title)}, {d}</h2>", _table(["function"] + labels, rows)]
    for title, key in (("Sweeps: values", "sweep_values"), ("Sweeps: derivatives", "sweep_gradients")):
        table = merged.get(key, {})
        for d in [d for d in ALL_DTYPES if any(d in by for by in table.values())]:
            rows = [f"<td>{escape(fn)}</td>" + "".join(_td(merge.sweep_cell(by[d].get(lab))) for lab in labels)
                    for fn, by in table.items() if d in by]
            body += [f"<h2>{escape(title)}, {d} (largest error over every swept input)</h2>", _table(["function"] + labels, rows)]
    body.append("<h2>Backend versus backend</h2>")
    body.append('<p class="note">At the spec\'s named stability and special inputs (the same in every run): how many '
                "outputs differ between two backends, and the largest difference, in ULPs of the dtype.</p>")
    body.append(_table(["pair", "shared inputs", "outputs differ", "largest difference", "where"], [
        _td(f"{p['a']} vs {p['b']}") + _td(str(p["shared"]), "num") + _td(str(p["differ"]), "num")
        + _td(_ulp(p["largest"][0]["ulps_apart"]) if p["largest"] else "none", "num")
        + _td(p["largest"][0]["id"] if p["largest"] else "") for p in merged["pairwise"]]))
    by_fn: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for lab, run in runs.items():
        for s in run["sweeps"]:
            if s["status"] == "measured":
                by_fn[s["function"]][lab].append(s)
    figures = _figures(by_fn, save)
    if figures:
        body += ["<h2>Figures</h2>", '<p class="note">Per function: every backend\'s value and derivative against the '
                 "exact curve (grey), and each backend's largest error per bin of the swept inputs, per dtype.</p>"]
        body += figures
    return _page("nnconform: merged report", body)


def stem(label: str, run: dict[str, Any]) -> str:
    """A run's file name without suffix: as pytest's --report names it, plus the version where two runs share it."""
    base = records.slug(f"{run['backend']}-{run['device']}")
    return base if label == run["backend"] else records.slug(f"{base}-{run['version']}")


def write(paths: list[Path], out: Path) -> list[Path]:
    """Every run's pages, and the merged ones for two runs or more.  RecordsError for a bad file."""
    runs = merge.load_runs(paths)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for label, run in runs.items():
        name = stem(label, run)
        md, page = out / f"{name}.md", out / f"{name}.html"
        if page.resolve().parent != out.resolve():          # a slug never leaves --out; this says so if it did
            raise records.RecordsError(f"{run.get('has_checks', label)}: a page for {label!r} would be written outside {out}")
        md.write_text(run_markdown(run))
        page.write_text(run_html(label, run, saving_into(out / f"{name}.figures", f"{name}.figures")))
        written += [md, page]
    if len(runs) > 1:
        data, md = merge.write(paths, out)
        merged = json.loads(data.read_text())
        page = out / "merged.html"
        page.write_text(merged_html(merged, runs, saving_into(out / "merged.figures", "merged.figures")))
        written += [md, data, page]
    return written
