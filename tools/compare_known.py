"""Do two versions of the known lists judge the same tests the same way?  For a change to the lists that
should change nothing (a migration, a regrouping), over the tests of real runs.

    python tools/compare_known.py REV records/torch-cpu.json [more records ...]

REV is a git revision holding the old lists (format 1, a list of entries, or format 2); the new
ones are this checkout's.  For every test in the records, the first entry that applies in the
run's environment must be the same finding (kind, reason, link) before and after, and a test
xfailed before must be xfailed after.  Prints the differences; exit 1 if there are any.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from nnconform.adapters import isa
from nnconform.conformance import known
from nnconform.conformance.known_update import RecordCase


def entries_at(rev: str, backend: str) -> list[known.Entry]:
    """The entries a backend was judged by at `rev` (format 1 or 2; a format-2 include is read at `rev` too)."""
    def show(name: str) -> str:
        return subprocess.run(["git", "show", f"{rev}:conformance/known/{name}.yaml"], capture_output=True, text=True,
                              check=True).stdout
    data = yaml.safe_load(show(backend))
    if isinstance(data, list):            # format 1: one entry per item, the evidence in it
        return [known.Entry.model_validate({**e, "reason": " ".join(e["reason"].split())}) for e in data]
    with tempfile.TemporaryDirectory() as tmp:
        for name in [backend, *data.get("include", [])]:
            (Path(tmp) / f"{name}.yaml").write_text(show(name))
        return known.load(backend, Path(tmp) / f"{backend}.yaml")       # includes resolve beside it


def first(entries: list[known.Entry], case: RecordCase, environment: dict[str, str]) -> tuple[str, str, str] | None:
    for e in entries:
        if e.covers(case, environment.get("device", "cpu")) and e.applies_in(environment):  # type: ignore[arg-type]
            return e.kind, " ".join(e.reason.split()), e.link or ""
    return None


def differences(old: list[known.Entry], new: list[known.Entry], run: dict[str, Any]) -> list[str]:
    environment = {**isa.versions(), "device": str(run.get("device", "cpu")).split(":")[0], **run.get("environment", {})}
    out = []
    for r in run["records"]:
        before, after = first(old, RecordCase(r), environment), first(new, RecordCase(r), environment)
        if before != after:
            what = "another reason" if before and after else "xfail lost" if before else "xfail gained"
            out.append(f"{r['id']}: {what}: before {before[1][:70] if before else 'no entry'!r}, "
                       f"after {after[1][:70] if after else 'no entry'!r}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.exit(__doc__)
    rev, paths = argv[0], argv[1:]
    found = 0
    for path in paths:
        run = json.loads(Path(path).read_text())
        backend = run["backend"]
        diff = differences(entries_at(rev, backend), known.load(backend), run)
        moved = sum(": another reason:" not in d for d in diff)
        print(f"{backend}: {len(run['records'])} tests, {len(diff)} judged differently "
              f"({moved} xfailed before and not after or the reverse, {len(diff) - moved} by another reason)")
        for line in diff[:20]:
            print("  " + line)
        found += len(diff)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
