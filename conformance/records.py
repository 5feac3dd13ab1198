"""Machine-readable records of a run, and a Markdown summary of them.

One record per check; the schema is versioned so that later tools (merge,
HTML reports) can refuse records they do not understand.
"""

from __future__ import annotations

import json
import platform
from collections import defaultdict
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("pass", "fail", "known discrepancy", "fixed upstream", "not provided", "reference uncertain", "skipped")


def run_header(adapter: Any, dtypes: list[str]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "backend": adapter.name, "version": adapter.version,
            "device": adapter.device, "dtypes": dtypes, "environment": adapter.environment(),
            "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                        "system": platform.platform()}}


def write(directory: Path, header: dict[str, Any], records: list[dict[str, Any]]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    ordered = sorted(records, key=lambda r: (r["function"], r["dtype"] or "", r["check"], r["id"]))
    name = f"{header['backend']}-{header['device']}"
    data_path = directory / f"{name}.json"
    data_path.write_text(json.dumps({**header, "records": ordered}, indent=1, sort_keys=True, default=str) + "\n")
    md_path = directory / f"{name}.md"
    md_path.write_text(markdown(header, ordered))
    return data_path, md_path


CELL = {"pass": "ok", "fail": "FAIL", "known discrepancy": "known", "fixed upstream": "XPASS",
        "not provided": "-", "reference uncertain": "?", "skipped": "skip"}
RANK = {s: i for i, s in enumerate(("fail", "fixed upstream", "known discrepancy", "pass", "reference uncertain",
                                    "skipped", "not provided"))}


def markdown(header: dict[str, Any], records: list[dict[str, Any]]) -> str:
    dtypes = header["dtypes"]
    lines = [f"# nnconform report: {header['backend']} {header['version']} ({header['device']})", ""]
    env = ", ".join(f"{k}={v}" for k, v in sorted(header["environment"].items()))
    if env:
        lines += [f"Environment: {env}", ""]
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r["status"]] += 1
    lines.append("Checks: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]))
    lines += ["", "Each cell: the worst status of the function's checks in that dtype (FAIL, known, ok), then the "
              "largest error measured against the exact value, in ULPs of the dtype. `*`: that largest error lies "
              "where the spec declares a condition number (cancellation the mathematics itself causes, such as "
              "log_softmax's dominant entry or tanh' near saturation), or in a reduced loss whose allowance adds the "
              "summation bound (docs/losses.md), and is within the allowance; the records "
              "give each check's budget and allowed error.", ""]
    optimizers = {r["function"] for r in records if r["check"] in TRAJECTORY_CHECKS}
    tables = (("Values", VALUE_CHECKS, False), ("Gradients", GRADIENT_CHECKS, False),
              ("Optimizer trajectories (every step against the exact trajectory; docs/optimizers.md)",
               TRAJECTORY_CHECKS + ("stability", "provided"), True))
    for title, kinds, of_optimizers in tables:
        chosen = [r for r in records if (r["function"] in optimizers) == of_optimizers]
        rows = _matrix(chosen, [d for d in dtypes if not of_optimizers or d in ("float64", "float32")], kinds)
        if not rows:
            continue
        shown = [d for d in dtypes if not of_optimizers or d in ("float64", "float32")]
        lines += [f"## {title}", "", "| function | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
        lines += rows
        lines.append("")
    findings = [r for r in records if r["status"] in ("fail", "known discrepancy", "fixed upstream")]
    if findings:
        lines += ["", "## Findings", ""]
        for r in findings:
            lines.append(f"- **{r['id']}** ({r['status']}): {_first_line(r.get('reason') or r.get('message'))}")
    defaults = [r for r in records if r["check"] == "defaults"]
    if defaults:
        lines += ["", "## Native defaults", "", "| function | parameter | status | detail |", "|---|---|---|---|"]
        for r in defaults:
            detail = _first_line(r.get("message")) if r["status"] != "pass" else "same as canonical"
            lines.append(f"| {r['function']} | {r['id'].split(' ', 2)[-1]} | {r['status']} | {detail} |")
    return "\n".join(lines) + "\n"


VALUE_CHECKS = ("provided", "value", "stability", "extremes", "subnormal", "special", "dtype", "properties", "statistics",
                "shapes", "large_batch")
GRADIENT_CHECKS = ("gradient", "kink")
TRAJECTORY_CHECKS = ("trajectory", "schedule", "weight_decay", "objective")


def _matrix(records: list[dict[str, Any]], dtypes: list[str], kinds: tuple[str, ...]) -> list[str]:
    by_fn: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["check"] in kinds and r["dtype"]:       # dtype-independent checks (defaults) have their own table
            by_fn[r["function"]][r["dtype"]].append(r)
    rows = []
    for fn in sorted(by_fn):
        cells = []
        for d in dtypes:
            rs = by_fn[fn].get(d, [])
            if not rs:
                cells.append(" ")
                continue
            worst = min(rs, key=lambda r: RANK[r["status"]])
            measured = [r for r in rs if r.get("max_ulp")]
            cell = CELL[worst["status"]]
            if measured:
                top = max(measured, key=lambda r: r["max_ulp"])
                # A passing check whose raw error exceeds the budget passed under a condition allowance.
                conditioned = top["status"] == "pass" and top["max_ulp"] > (top.get("budget_ulp") or float("inf"))
                cell += f" {_ulp(top['max_ulp'])}" + ("*" if conditioned else "")
            cells.append(cell)
        rows.append(f"| {fn} | " + " | ".join(cells) + " |")
    return rows


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _ulp(u: float) -> str:
    if u == float("inf"):
        return "(NaN/inf)"
    if u >= 1e6:
        return f"{u:.1e} ULP"
    return f"{u:,.0f} ULP" if u >= 10 else f"{u:.2g} ULP"
