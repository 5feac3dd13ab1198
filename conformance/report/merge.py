"""`nnconform report merge DIR...`: records of several runs as one matrix, and backend-versus-backend differences.

Each run (one backend, version and device) writes `<backend>-<device>.json`.  Merging
reads them all and writes `merged.md` and `merged.json`:

- the matrix function x backend x dtype: each cell the worst status of the function's
  value checks (or gradient checks) in that dtype and the largest error against the exact
  value, as in a single run's report;
- pairwise differences: where two backends were given the same input (the spec's named
  stability and special inputs, the same in every run), how far their outputs are from
  each other in ULPs of the dtype, whatever the reference says.  That is what a user
  porting a model from one framework to another sees.

The output depends only on the records, never on the order the files are given in or
found: the same records give byte-identical reports.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from nnconform.adapters.base import ALL_DTYPES
from nnconform.reference.dtypes import info, ulp_of
from nnconform.spec.loader import load_all

from .. import kinds
from ..kinds import FIXED_INPUT_CHECKS, GRADIENT_CHECKS, OPTIMIZER_TABLE, VALUE_CHECKS
from .records import CELL, RANK, SCHEMA_VERSION, RecordsError, _ulp, load


def find(paths: list[Path]) -> list[Path]:
    """Records files: the files given, and every *.json under the directories given (merged.json excepted)."""
    found: set[Path] = set()
    for p in paths:
        if p.is_dir():
            found.update(q for q in p.rglob("*.json") if q.name != "merged.json")
        elif p.exists():
            found.add(p)
        else:
            raise RecordsError(f"{p}: no such file or directory")
    if not found:
        raise RecordsError("no records files (*.json) found in " + ", ".join(map(str, paths)))
    return sorted(found)


def _labels(runs: list[dict[str, Any]]) -> list[str]:
    """The backend name where it is unique, else backend, version and device."""
    names = [r["backend"] for r in runs]
    full = [f"{r['backend']} {r['version']} {r['device']}" for r in runs]
    return [n if names.count(n) == 1 else f for n, f in zip(names, full)]


def load_runs(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Run label -> the run's header, its check records and its sweeps, from every file found.

    A run is one (backend, device, version): its checks file and any number of sweep files
    (the grid sweep, exhaustive float32 sweeps).  Two checks files of one run are refused.
    """
    runs: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in find(paths):
        data = load(path)
        key = (data["backend"], data["device"], data["version"])
        run = runs.setdefault(key, {k: data[k] for k in ("backend", "version", "device")} | {"records": [], "sweeps": []})
        for k in ("environment", "machine", "dtypes", "profile", "reference", "framework", "known"):
            if k in data and (data["kind"] == "checks" or k not in run):
                run[k] = data[k]
        if data["kind"] == "checks":
            if run.get("has_checks"):
                raise RecordsError(f"two records files are the same run ({' '.join(key)}): {run['has_checks']} "
                                   f"and {path}; merge each run once")
            run["has_checks"] = str(path)
            run["records"] = data["records"]
        else:
            run["sweeps"] += data["sweeps"]
    ordered = [runs[k] for k in sorted(runs)]
    for run in ordered:
        run["sweeps"].sort(key=lambda r: (r["function"], r["dtype"], r["quantity"], r["grid"]))
    return dict(zip(_labels(ordered), ordered))


def _cell(records: list[dict[str, Any]]) -> dict[str, Any]:
    worst = min(records, key=lambda r: RANK[r["status"]])
    measured = [r["max_ulp"] for r in records if r.get("max_ulp")]
    return {"status": worst["status"], "max_ulp": max(measured) if measured else None}


def matrix(runs: dict[str, dict[str, Any]], checks: tuple[str, ...], optimizers: bool) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """function -> dtype -> run label -> {status, max_ulp}, for the optimizers or for the other functions."""
    chosen = {name for name, spec in load_all().items() if (spec.family == "optimizer") == optimizers}
    grouped: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for label, run in runs.items():
        for r in run["records"]:
            if r["check"] not in checks or r["function"] not in chosen:
                continue
            # A function not provided at all has one record without a dtype: it fills every dtype of the run.
            for d in [r["dtype"]] if r["dtype"] else run.get("dtypes", []) if r["check"] == kinds.PROVIDED else []:
                if not optimizers or d in ("float64", "float32"):
                    grouped[r["function"]][d][label].append(r)
    return {fn: {d: {lab: _cell(rs) for lab, rs in sorted(by_run.items())} for d, by_run in sorted(by_dtype.items())}
            for fn, by_dtype in sorted(grouped.items())}


def _ulps_apart(a: float, b: float, dtype: str) -> float:
    if math.isnan(a) and math.isnan(b) or a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return float(abs(a - b) / ulp_of(np.array(max(abs(a), abs(b))), info(dtype)))


def pairwise(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """For each pair of runs: the shared fixed inputs, how many outputs differ, and the largest differences."""
    outputs: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for label, run in runs.items():
        outputs[label] = {}
        for r in run["records"]:
            w = r.get("worst")
            if r["check"] in FIXED_INPUT_CHECKS and r["dtype"] and isinstance(w, dict) and "got" in w and "input_hex" in w:
                outputs[label][(r["id"], str(w["input_hex"]))] = {"record": r, "got": float(w["got"]),
                                                                     "got_hex": w.get("got_hex")}
    pairs = []
    for a, b in combinations(sorted(runs), 2):
        shared = sorted(set(outputs[a]) & set(outputs[b]))
        diffs = []
        for key in shared:
            ra, rb = outputs[a][key], outputs[b][key]
            apart = _ulps_apart(ra["got"], rb["got"], ra["record"]["dtype"])
            if apart > 0:
                diffs.append({"id": key[0], "input_hex": key[1], "ulps_apart": apart,
                              a: ra["got_hex"] or repr(ra["got"]), b: rb["got_hex"] or repr(rb["got"])})
        diffs.sort(key=lambda d: (-d["ulps_apart"], d["id"]))
        pairs.append({"a": a, "b": b, "shared": len(shared), "differ": len(diffs), "largest": diffs[:5]})
    return pairs


def widest(sweeps: list[dict[str, Any]], quantity: str) -> dict[str, dict[str, dict[str, Any]]]:
    """function -> dtype -> the sweep of that cell with the most inputs (an exhaustive float32 sweep beats the grid)."""
    by: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for s in sweeps:
        if s["quantity"] == quantity:
            prev = by[s["function"]].get(s["dtype"])
            if prev is None or s.get("points", 0) > prev.get("points", 0):
                by[s["function"]][s["dtype"]] = s
    return by


def sweep_matrix(runs: dict[str, dict[str, Any]], quantity: str) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """function -> dtype -> run label -> {max_ulp, grid, points} of the widest measured sweep."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for label, run in runs.items():
        measured = [r for r in run["sweeps"] if r["status"] == "measured"]
        for fn, by_dtype in widest(measured, quantity).items():
            for d, r in by_dtype.items():
                out[fn][d][label] = {"max_ulp": r["max_ulp"], "grid": r["grid"], "points": r["points"]}
    return {fn: {d: dict(sorted(c.items())) for d, c in sorted(by.items())} for fn, by in sorted(out.items())}


def merge(paths: list[Path]) -> dict[str, Any]:
    runs = load_runs(paths)
    return {"schema_version": SCHEMA_VERSION,
            "runs": {lab: {k: run[k] for k in ("backend", "version", "device", "environment", "machine") if k in run}
                     for lab, run in runs.items()},
            "values": matrix(runs, VALUE_CHECKS, False), "gradients": matrix(runs, GRADIENT_CHECKS, False),
            "optimizers": matrix(runs, OPTIMIZER_TABLE, True),
            "sweep_values": sweep_matrix(runs, kinds.VALUE), "sweep_gradients": sweep_matrix(runs, kinds.GRADIENT),
            "pairwise": pairwise(runs)}


def _fmt_cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return " "
    text = CELL[cell["status"]]
    return text + (f" {_ulp(cell['max_ulp'])}" if cell["max_ulp"] else "")


def status_cell(cell: dict[str, Any] | None) -> str:
    """An optimizer cell: the status alone (their tolerance is a factor on a running bound, not ULPs)."""
    return " " if cell is None else CELL[cell["status"]]


def sweep_cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return " "
    u = cell["max_ulp"]
    text = "-" if u is None else _ulp(math.inf if u == "inf" else float(u))
    return text + (" (all inputs)" if cell["grid"].startswith("exhaustive") else "")


def markdown(merged: dict[str, Any]) -> str:
    labels = list(merged["runs"])
    lines = ["# nnconform: merged report", "", "| run | backend | version | device |", "|---|---|---|---|"]
    lines += [f"| {lab} | {r['backend']} | {r['version']} | {r['device']} |" for lab, r in merged["runs"].items()]
    lines += ["", "Each cell: the worst status of the function's checks in that dtype (FAIL, known, ok, - not "
              "provided) and the largest error measured against the exact value, in ULPs of the dtype.", ""]
    tables = (("Values", "values", _fmt_cell, ""), ("Gradients", "gradients", _fmt_cell, ""),
              ("Optimizer trajectories", "optimizers", status_cell, ""),
              ("Sweeps: values", "sweep_values", sweep_cell, " (largest error over every swept input)"),
              ("Sweeps: derivatives", "sweep_gradients", sweep_cell, " (largest error over every swept input)"))
    for title, key, fmt, note in tables:
        table = merged.get(key, {})
        for d in [d for d in ALL_DTYPES if any(d in by_dtype for by_dtype in table.values())]:
            lines += [f"## {title}, {d}{note}", "", "| function | " + " | ".join(labels) + " |",
                      "|---|" + "---|" * len(labels)]
            for fn, by_dtype in table.items():
                if d in by_dtype:
                    lines.append(f"| {fn} | " + " | ".join(fmt(by_dtype[d].get(lab)) for lab in labels) + " |")
            lines.append("")
    lines += ["## Backend versus backend", "",
              "The spec's named stability and special inputs are the same in every run, so two backends' outputs "
              "there can be compared with each other directly: how many shared inputs give different outputs, and "
              "the largest differences in ULPs of the dtype.", "",
              "| pair | shared inputs | outputs differ | largest difference |", "|---|---|---|---|"]
    for p in merged["pairwise"]:
        top = p["largest"][0] if p["largest"] else None
        where = f"{_ulp(top['ulps_apart'])}: {top['id']}" if top else "none"
        lines.append(f"| {p['a']} vs {p['b']} | {p['shared']} | {p['differ']} | {where} |")
    return "\n".join(lines) + "\n"


def write(paths: list[Path], out: Path) -> tuple[Path, Path]:
    merged = merge(paths)
    out.mkdir(parents=True, exist_ok=True)
    data, md = out / "merged.json", out / "merged.md"
    data.write_text(json.dumps(merged, indent=1, sort_keys=True, default=str, allow_nan=True) + "\n")
    md.write_text(markdown(merged))
    return data, md
