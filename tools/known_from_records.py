"""Write a backend's known-discrepancy list from a run's records and hand-written reasons.

    pytest conformance --backend=torch --known=/dev/null-list.yaml --report=raw   # every finding fails
    python tools/known_from_records.py raw/torch-cpu.json reasons.yaml [more-reasons.yaml ...] conformance/known/torch.yaml

`reasons.yaml` maps "function/check" (or "function/check/label" for checks about one input,
a parameter or a property; "*" for any function; "...@float64" for one dtype only) to
{kind, reason, link}.  It may also be an
existing known-discrepancy list: its reasons are kept and its evidence is measured again,
which is how a list is refreshed after a framework upgrade.  The evidence of
each entry (measured error, exact input, expected, got, version) is taken from the records,
never written by hand.  A failure without a reason is listed and left out: every entry
needs a person to say why.  An old entry's reason that now also covers a dtype it did not
name is listed too, to be read: a new dtype's failure may have another cause.
"""

from __future__ import annotations

import collections
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from nnconform.conformance import kinds

ONE_INPUT = set(kinds.LABELLED_BY_INPUT)      # entries name the input/parameter/property
LABELLED = set(kinds.LABELLED)                # plus losses' configurations (value/gradient with a label)


def evidence(r: dict[str, Any], backend: str, version: str) -> str:
    message = r.get("message") or ""
    first = message.splitlines()[0] if message else ""
    if r["check"] in (kinds.DEFAULTS, kinds.BY_NAME["properties"].name):  # their message is the evidence
        return first.split(": ", 1)[-1][:300]
    found = re.search(r": (wrong NaN/inf|[\d,.]+(e[+-]\d+)? ULP) >", first)
    parts = [found.group(1)] if found else []
    for key in ("input", "expected", "got"):
        m = re.search(rf"^\s*{key}:\s*(.*)$", message, re.M)
        if m:
            text = m.group(1).split('  (exact')[0].strip()
            # a reduced loss over the fixed sample names 512 inputs: the record has them all
            parts.append(f"{key} {text if len(text) <= 240 else text[:240] + ' ...'}")
    if not parts:
        return first[:300]
    return f"{r['id'].split(' ')[0]}: " + "; ".join(parts) + f" ({backend} {version}, {r.get('device', 'cpu')})"


def load_reasons(path: Path) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """Reasons by key, and reasons that hold for one dtype of a key only (the first given wins).

    A dict maps "function/check[/label]" to {kind, reason, link}; "key@dtype" limits a reason
    to one dtype.  A list is an existing known list: an entry with dtypes gives its reason to
    those dtypes, so one key may keep different reasons for different dtypes.
    """
    raw = yaml.safe_load(path.read_text()) or {}
    reasons: dict[str, dict[str, Any]] = {}
    by_dtype: dict[tuple[str, str], dict[str, Any]] = {}
    if isinstance(raw, list):
        for e in raw:
            key = f"{e['function']}/{e['checks'][0]}" + (f"/{e['case'].split(' ', 1)[1].rstrip('$')}" if e.get("case") else "")
            why = {k: e[k] for k in ("kind", "reason", "link") if k in e}
            reasons.setdefault(key, why)
            for d in e.get("dtypes") or []:
                by_dtype.setdefault((key, d), why)
    else:
        for key, why in raw.items():
            if "@" in key:
                base, dtype = key.rsplit("@", 1)
                by_dtype.setdefault((base, dtype), why)
            else:
                reasons.setdefault(key, why)
    return reasons, by_dtype


def build(records_path: Path, *reasons_paths: Path) -> tuple[list[dict[str, Any]], list[str], str]:
    run = json.loads(records_path.read_text())
    reasons: dict[str, dict[str, Any]] = {}
    by_dtype: dict[tuple[str, str], dict[str, Any]] = {}
    for path in reasons_paths:                  # the first file that gives a reason wins
        more, more_by_dtype = load_reasons(path)
        reasons = {**more, **reasons}
        by_dtype = {**more_by_dtype, **by_dtype}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = collections.OrderedDict()
    for r in sorted((r for r in run["records"] if r["status"] == "fail"), key=lambda r: (r["function"], r["check"], r["id"])):
        parts = r["id"].split(" ", 2)
        loss = r["check"] in (kinds.BY_NAME["value"].name, kinds.BY_NAME["gradient"].name) and len(parts) == 3 and "reduction=" in parts[2]
        label = parts[2].split(" -> ")[0] if len(parts) == 3 and (r["check"] in LABELLED or loss) else ""
        groups.setdefault((r["function"], r["check"], label), []).append(r)
    entries, missing = [], []
    for (fn, check, label), rs in groups.items():
        keys = [f"{fn}/{check}/{label}", f"{fn}/{check}", f"*/{check}/{label}", f"*/{check}"] if label else \
               [f"{fn}/{check}", f"*/{check}"]

        def reason_for(dtype: str | None) -> dict[str, Any] | None:
            # A reason for this dtype under any key first, then the most specific key's.
            found = next((by_dtype[(k, dtype)] for k in keys if (k, dtype) in by_dtype), None)
            return found or next((reasons[k] for k in keys if k in reasons), None)
        split: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = collections.OrderedDict()
        for r in rs:
            why = reason_for(r["dtype"])
            if why is None:
                missing.append(keys[0] + (f"@{r['dtype']}" if r["dtype"] else ""))
                continue
            split.setdefault(why["reason"], (why, []))[1].append(r)
        for why, part in split.values():
            entries.append(_entry(fn, check, label, part, why, run))
    return entries, missing, f"{run['backend']} {run['version']}"


def _entry(fn: str, check: str, label: str, rs: list[dict[str, Any]], why: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """One known-list entry for failures `rs` that share a reason."""
    entry: dict[str, Any] = {"function": fn}
    dtypes = sorted({r["dtype"] for r in rs if r["dtype"]})
    if dtypes:
        entry["dtypes"] = dtypes
    entry["checks"] = [check]
    if label:
        # "$": the label is the whole rest of the id, so an entry for the canonical run cannot
        # also match the same case "under its own conventions" (a longer id).
        whole = any(r["id"].endswith(f" {check} {label}") for r in rs)
        anchored = ("reduction=" in label and check != kinds.BY_NAME["stability"].name) or kinds.BY_NAME[check].group == "trajectories" or whole
        entry["case"] = f"{check} {label}" + ("$" if anchored else "")
    entry["kind"] = why.get("kind", "accuracy")
    entry["reason"] = why["reason"]
    worst = max(rs, key=lambda r: r.get("max_ulp") or 0)
    entry["evidence"] = evidence(worst, run["backend"], run["version"])
    if why.get("link"):
        entry["link"] = why["link"]
    return entry


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    entries, missing, who = build(Path(sys.argv[1]), *(Path(a) for a in sys.argv[2:-1]))
    header = (f"# Known discrepancies of {who}.\n# Each entry: what differs, why, the measured evidence and an upstream "
              "link where one exists.\n# Matched tests are strict xfails; an upstream fix makes them XPASS and the "
              "entry must go.\n")
    Path(sys.argv[-1]).write_text(header + yaml.safe_dump(entries, sort_keys=False, width=120, allow_unicode=True,
                                                         default_flow_style=None))
    print(f"{len(entries)} entries written to {sys.argv[-1]}")
    if missing:
        print("failures without a reason (left out):", *sorted(set(missing)), sep="\n  ")
    grown = reused_for_new_dtypes(entries, [Path(a) for a in sys.argv[2:-1]])
    if grown:
        print("an old entry's reason now also covers these dtypes; read it, and give a dtype its own "
              "reason (key@dtype) where it does not fit:", *grown, sep="\n  ")


def reused_for_new_dtypes(entries: list[dict[str, Any]], reasons_paths: list[Path]) -> list[str]:
    """Entries whose reason comes from an old list entry that did not name these dtypes."""
    old: dict[tuple[str, str, str], set[str]] = collections.defaultdict(set)
    old_reasons: set[str] = set()
    for path in reasons_paths:
        raw = yaml.safe_load(path.read_text()) or {}
        for e in raw if isinstance(raw, list) else []:
            old[(e["function"], e["checks"][0], (e.get("case") or "").rstrip("$"))].update(e.get("dtypes") or [])
            old_reasons.add(e["reason"])
    out = []
    for e in entries:
        key = (e["function"], e["checks"][0], (e.get("case") or "").rstrip("$"))
        new = sorted(set(e.get("dtypes") or []) - old[key])
        if key in old and new and e["reason"] in old_reasons:
            label = key[2].split(" ", 1)[1] if " " in key[2] else ""       # the case without its check
            out.append(f"{'/'.join(k for k in (*key[:2], label) if k)}@{','.join(new)}: {e['reason'][:90]}")
    return out


if __name__ == "__main__":
    main()
