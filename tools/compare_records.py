"""Compare two runs' records: the same tests, statuses, measurements and messages, `seconds` aside.

    python tools/compare_records.py BEFORE.json AFTER.json

Prints every difference and exits non-zero if there is one; used to show that a refactoring
changed no verdict (or to list exactly which it changed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

IGNORED = {"seconds"}


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items() if k not in IGNORED}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    a = {r["id"]: _clean(r) for r in before["records"]}
    b = {r["id"]: _clean(r) for r in after["records"]}
    out += [f"only before: {i}" for i in sorted(a.keys() - b.keys())]
    out += [f"only after: {i}" for i in sorted(b.keys() - a.keys())]
    for i in sorted(a.keys() & b.keys()):
        for k in sorted(a[i].keys() | b[i].keys()):
            if a[i].get(k) != b[i].get(k):
                out.append(f"{i}: {k}: {str(a[i].get(k))[:200]!r} -> {str(b[i].get(k))[:200]!r}")
    head = {k for k in before.keys() | after.keys() if k != "records"}
    out += [f"header {k}: {before.get(k)!r} -> {after.get(k)!r}" for k in sorted(head)
            if _clean(before.get(k)) != _clean(after.get(k))]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    before, after = (json.loads(Path(p).read_text()) for p in argv)
    diffs = differences(before, after)
    for d in diffs:
        print(d)
    print(f"{len(before['records'])} records before, {len(after['records'])} after: "
          f"{'identical' if not diffs else f'{len(diffs)} differences'}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
