"""Machine-readable records of a run, and a Markdown summary of them.

Two kinds of file, one schema (docs/report-format.md): "checks" (one record per
check of a pytest run, `<backend>-<device>.json`) and "sweeps" (one record per
function, dtype and quantity measured over a fixed grid, `<backend>-<device>.sweep.json`).
The schema is versioned, and `validate` refuses, naming the file and field, any file
this code does not understand.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import hypothesis
from pydantic import ValidationError

from nnconform import __version__
from nnconform.adapters import isa

from .. import kinds, known
from ..kinds import GRADIENT_CHECKS, OPTIMIZER_TABLE, TRAJECTORY_CHECKS, VALUE_CHECKS

SCHEMA_VERSION = 3      # 2: "kind" (checks | sweeps) and sweep files; 3: known_policy, status "not reproduced"
READABLE = (2, 3)       # a version-2 file is a version-3 file without those
# "not reproduced": passed here, listed as a finding of another environment (--known-policy=report)
STATUSES = ("pass", "fail", "known discrepancy", "fixed upstream", "not reproduced", "not provided", "reference uncertain",
            "skipped")
FINDINGS = ("fail", "fixed upstream", "known discrepancy", "not reproduced")      # the statuses a findings table lists
SWEEP_STATUSES = ("measured", "not provided", "failed")


class RecordsError(ValueError):
    """A records file that cannot be read; the message names the file and the field."""


def run_header(adapter: Any, dtypes: list[str], kind: str = "checks") -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "kind": kind, "backend": adapter.name, "version": adapter.version,
            "framework": adapter.framework, "device": adapter.device, "dtypes": dtypes, "environment": isa.environment_of(adapter),
            # what verdicts depend on besides the framework: the suite and the example generator
            "tools": {"nnconform": __version__, "hypothesis": hypothesis.__version__},
            "machine": {"cpu": _cpu_model(), "cores": str(os.cpu_count()), "python": platform.python_version(),
                        "system": platform.platform()}}


def _cpu_model() -> str:
    """The CPU's model name (its vector units decide which kernels a framework picks), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write(directory: Path, header: dict[str, Any], records: list[dict[str, Any]]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    ordered = sorted(records, key=lambda r: (r["function"], r["dtype"] or "", r["check"], r["id"]))
    name = f"{header['backend']}-{header['device']}"
    data_path = directory / f"{name}.json"
    data = {**header, "kind": "checks", "records": ordered}
    validate(json.loads(json.dumps(data, default=str)), data_path)
    data_path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    md_path = directory / f"{name}.md"
    md_path.write_text(markdown(header, ordered))
    return data_path, md_path


def write_sweeps(directory: Path, header: dict[str, Any], sweeps: list[dict[str, Any]], suffix: str = "sweep") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{header['backend']}-{header['device']}.{suffix}.json"
    data = {**header, "kind": "sweeps", "sweeps": sorted(sweeps, key=lambda r: (r["function"], r["dtype"], r["quantity"], r["grid"]))}
    validate(data, path)
    path.write_text(json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path


# ---------------------------------------------------------------- the schema

def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num_or_inf(v: Any) -> bool:
    return v is None or _is_num(v) or v == "inf"


# Records are data, never paths: a backend or device name becomes part of a file name and a link, so
# it is a plain name (no "/", no leading ".", no scheme); ':' only in a device ("cuda:0").
BACKEND_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
DEVICE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,63}")


def slug(text: str) -> str:
    """A file-name component from any text: letters, digits and _.+- only."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text).lstrip(".") or "_"


_HEADER: dict[str, Callable[[Any], bool]] = {
    "backend": lambda v: isinstance(v, str) and BACKEND_NAME.fullmatch(v) is not None,
    "version": lambda v: isinstance(v, str),
    "device": lambda v: isinstance(v, str) and DEVICE_NAME.fullmatch(v) is not None,
    "environment": lambda v: isinstance(v, dict),
    "dtypes": lambda v: isinstance(v, list) and all(isinstance(d, str) for d in v),
}
_CHECK: dict[str, Callable[[Any], bool]] = {
    "id": lambda v: isinstance(v, str), "function": lambda v: isinstance(v, str), "check": lambda v: isinstance(v, str),
    "dtype": lambda v: v is None or isinstance(v, str), "status": lambda v: v in STATUSES,
    "params": lambda v: isinstance(v, dict), "max_ulp": lambda v: v is None or _is_num(v),
    "max_relative": lambda v: v is None or _is_num(v), "worst": lambda v: v is None or isinstance(v, dict),
    "reason": lambda v: isinstance(v, str), "message": lambda v: isinstance(v, str),
}
_SWEEP: dict[str, Callable[[Any], bool]] = {
    "function": lambda v: isinstance(v, str), "dtype": lambda v: isinstance(v, str),
    "quantity": lambda v: v in (kinds.VALUE, kinds.GRADIENT), "grid": lambda v: isinstance(v, str),
    "status": lambda v: v in SWEEP_STATUSES, "budget_ulp": lambda v: v is None or _is_num(v),
    "message": lambda v: isinstance(v, str),
}
_MEASURED: dict[str, Callable[[Any], bool]] = {
    "points": lambda v: isinstance(v, int) and v > 0, "max_ulp": _num_or_inf,
    "histogram": lambda v: isinstance(v, list) and all(isinstance(c, int) for c in v),
    "worst": lambda v: isinstance(v, list) and all(isinstance(w, dict) and "input_hex" in w for w in v),
    "profile": lambda v: isinstance(v, dict) and isinstance(v.get("x"), list) and isinstance(v.get("max_ulp"), list),
}
EXPECTED = {"backend": "a plain name (letters, digits, _.+-; no '/', no leading '.')",
            "device": "a plain name (letters, digits, _.:+-; no '/', no leading '.')", "version": "a string",
            "environment": "an object", "dtypes": "a list of strings", "status": "one of the statuses",
            "params": "an object", "worst": "an object, a list or null", "quantity": "value or gradient",
            "points": "a positive integer", "histogram": "a list of integers", "profile": "an object with x and max_ulp"}


def _fields(path: Path, where: str, item: Any, rules: dict[str, Callable[[Any], bool]]) -> None:
    if not isinstance(item, dict):
        raise RecordsError(f"{path}: {where} is not an object")
    for key, ok in rules.items():
        if key not in item:
            raise RecordsError(f"{path}: {where}.{key} is missing" if where else f"{path}: field {key!r} is missing")
        if not ok(item[key]):
            shown = repr(item[key])[:60]
            label = f"{where}.{key}" if where else key
            raise RecordsError(f"{path}: {label} is {shown}, expected {EXPECTED.get(key, 'another type')}"
                               + (f" ({', '.join(STATUSES if where.startswith('records') else SWEEP_STATUSES)})"
                                  if key == "status" else ""))


def validate(data: Any, path: Path) -> dict[str, Any]:
    """`data` if it is a records file of this schema version; else RecordsError naming the file and field."""
    if not isinstance(data, dict) or "schema_version" not in data:
        raise RecordsError(f"{path}: no schema_version; not an nnconform records file")
    if data["schema_version"] not in READABLE:
        raise RecordsError(f"{path}: records schema version {data['schema_version']!r}; this nnconform reads versions "
                           f"{', '.join(map(str, READABLE))} (re-run the suite, or use the nnconform that wrote it)")
    kind = data.get("kind")
    if kind not in ("checks", "sweeps"):
        raise RecordsError(f"{path}: field 'kind' is {kind!r}, expected 'checks' or 'sweeps'")
    _fields(path, "", data, _HEADER)
    entries = data.get("known", [])           # the known list the run applied (optional: sweeps have none)
    if not isinstance(entries, list):
        raise RecordsError(f"{path}: field 'known' is {repr(entries)[:60]}, expected a list of known-discrepancy entries")
    for i, item in enumerate(entries):
        try:
            known.Entry.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise RecordsError(f"{path}: known[{i}].{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
    key, rules = ("records", _CHECK) if kind == "checks" else ("sweeps", _SWEEP)
    if not isinstance(data.get(key), list):
        raise RecordsError(f"{path}: field {key!r} is missing or not a list")
    for i, item in enumerate(data[key]):
        _fields(path, f"{key}[{i}]", item, rules)
        if kind == "sweeps" and item["status"] == "measured":
            _fields(path, f"{key}[{i}]", item, _MEASURED)
    return data


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordsError(f"{path}: not a readable JSON records file ({exc})") from None
    return validate(data, path)


CELL = {"pass": "ok", "fail": "FAIL", "known discrepancy": "known", "fixed upstream": "XPASS",
        "not reproduced": "ok (not here)", "not provided": "-", "reference uncertain": "?", "skipped": "skip"}
RANK = {s: i for i, s in enumerate(("fail", "fixed upstream", "known discrepancy", "not reproduced", "pass",
                                    "reference uncertain", "skipped", "not provided"))}


def markdown(header: dict[str, Any], records: list[dict[str, Any]]) -> str:
    dtypes = header["dtypes"]
    lines = [f"# nnconform report: {header['backend']} {header['version']} ({header['device']})", ""]
    env = ", ".join(f"{k}={v}" for k, v in sorted(header["environment"].items()))
    if env:
        lines += [f"Instruction set: {isa.isa_text(header['environment'])}", "", f"Environment: {env}", ""]
    if header.get("known_policy"):
        lines += [f"Known policy: {header['known_policy']} (a finding measured elsewhere: "
                  + ("applied as a non-strict xfail)" if header["known_policy"] == "report" else "not applied)"), ""]
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
               OPTIMIZER_TABLE, True))
    for title, checks, of_optimizers in tables:
        chosen = [r for r in records if (r["function"] in optimizers) == of_optimizers]
        rows = _matrix(chosen, [d for d in dtypes if not of_optimizers or d in ("float64", "float32")], checks,
                       with_ulp=not of_optimizers)
        if not rows:
            continue
        shown = [d for d in dtypes if not of_optimizers or d in ("float64", "float32")]
        lines += [f"## {title}", "", "| function | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
        lines += rows
        lines.append("")
    findings = [r for r in records if r["status"] in FINDINGS]
    if findings:
        lines += ["", f"## Findings ({len(findings)})", ""]
        for status, why, rs in finding_groups(findings):
            label = {"fixed upstream": "unexpected pass", "not reproduced": "not reproduced here"}.get(status, status)
            lines += [f"### {label}: {why}", "", "| check | input | exact | got | ULP |", "|---|---|---|---|---|"]
            for r in sorted(rs, key=lambda r: r["id"]):
                w = r.get("worst") or {}
                cells = [str(w.get(k + "_hex", "")) for k in ("input", "expected", "got")]
                lines.append(f"| {r['id']} | " + " | ".join(cells) + f" | {_ulp(r['max_ulp']) if r.get('max_ulp') else ''} |")
            lines.append("")
    defaults = [r for r in records if r["check"] == kinds.DEFAULTS]
    if defaults:
        lines += ["", "## Native defaults", "", "| function | parameter | framework default | canonical | status | detail |",
                  "|---|---|---|---|---|---|"]
        for r in defaults:
            detail = _first_line(r.get("message")) if r["status"] != "pass" else "same as canonical"
            lines.append(f"| {r['function']} | {r['id'].split(' ', 2)[-1]} | {default_as_stated(r)} | "
                         f"{(r.get('worst') or {}).get('canonical', '')} | "
                         f"{r['status']} | {detail} |")
    return "\n".join(lines) + "\n"


def finding_reason(r: dict[str, Any]) -> str:
    """The reason of a listed discrepancy without its evidence (the run's own measurement is shown instead),
    or a failure's first line."""
    return _first_line(r.get("reason") or r.get("message")).split(" Evidence: ")[0]


def finding_groups(findings: list[dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(status, reason, records) per reason, failures first: each reason written once, its checks under it."""
    order = {"fail": 0, "fixed upstream": 1, "known discrepancy": 2, "not reproduced": 3}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in findings:
        key = f"{r['function']}: {r['check']}" if r["status"] == "fail" else finding_reason(r)
        groups[(r["status"], key)].append(r)
    return [(st, why, rs) for (st, why), rs in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]


def default_as_stated(r: dict[str, Any]) -> str:
    """A native default as the framework states it, and what it documents it to mean where it reads one."""
    w = r.get("worst") or {}
    return str(w.get("native", "")) + (f" (means {w['means']})" if "means" in w else "")


def cells(records: list[dict[str, Any]], checks: tuple[str, ...]) -> dict[str, dict[str, dict[str, Any]]]:
    """function -> dtype -> {status (the worst), max_ulp (the largest), conditioned} over the checks of `kinds`."""
    by_fn: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["check"] in checks and r["dtype"]:       # dtype-independent checks (defaults) have their own table
            by_fn[r["function"]][r["dtype"]].append(r)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for fn in sorted(by_fn):
        out[fn] = {}
        for d, rs in by_fn[fn].items():
            worst = min(rs, key=lambda r: RANK[r["status"]])
            measured = [r for r in rs if r.get("max_ulp")]
            cell: dict[str, Any] = {"status": worst["status"], "max_ulp": None, "conditioned": False, "budget": None}
            if measured:
                top = max(measured, key=lambda r: r["max_ulp"])
                # A passing check whose raw error exceeds the budget passed under a condition allowance.
                cell["max_ulp"] = top["max_ulp"]
                cell["conditioned"] = top["status"] == "pass" and top["max_ulp"] > (top.get("budget_ulp") or float("inf"))
                cell["budget"] = top.get("budget_ulp")     # the bare budget; `*` says a condition number allowed more
            out[fn][d] = cell
    return out


def cell_text(cell: dict[str, Any] | None, with_ulp: bool = True) -> str:
    """`ok 3 / 4 ULP`: status, the largest error and the spec's budget (`*`: beyond the budget, within the allowance
    a condition number gives there).
    with_ulp=False for the optimizers, whose tolerance is a factor on a running bound, not ULPs."""
    if cell is None:
        return " "
    text = CELL[cell["status"]]
    u = cell["max_ulp"]
    if not with_ulp or not u:
        return text
    if u == float("inf"):
        return text + " (NaN/inf)"
    text += f" {_ulp(u).removesuffix(' ULP')}"
    if cell.get("budget") is not None:
        text += f" / {_ulp(float(cell['budget'])).removesuffix(' ULP')}"
    return text + " ULP" + ("*" if cell["conditioned"] else "")
def _matrix(records: list[dict[str, Any]], dtypes: list[str], checks: tuple[str, ...], with_ulp: bool = True) -> list[str]:
    return [f"| {fn} | " + " | ".join(cell_text(by_dtype.get(d), with_ulp) for d in dtypes) + " |"
            for fn, by_dtype in cells(records, checks).items()]


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _ulp(u: float) -> str:
    if u == float("inf"):
        return "(NaN/inf)"
    if u >= 1e6:
        return f"{u:.1e} ULP"
    return f"{u:,.0f} ULP" if u >= 10 else f"{u:.2g} ULP"
