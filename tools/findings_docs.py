"""Write docs/findings/<backend>.md from the known-discrepancy lists: what was found, why, and the link.

    python tools/findings_docs.py [conformance/known] [docs/findings]

The lists are the source (conformance/known/<backend>.yaml); these pages group their entries by
reason so that a reader sees each finding once, with every function, dtype and check it covers.
Re-run it whenever a list changes.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from nnconform.conformance import known


def page(backend: str, entries: list[known.Entry], measured: dict | None = None) -> str:
    by_reason: dict[tuple[str, str, str], list[known.Entry]] = defaultdict(list)
    for e in entries:
        by_reason[(e.kind, e.reason, e.link or "")].append(e)
    lines = [f"# Findings: {backend}", "",
             f"Generated from `conformance/known/{backend}.yaml` (and the lists it includes) by `tools/findings_docs.py`: "
             f"{len(entries)} matches, {len(by_reason)} distinct reasons. Each is a strict xfail in the environment its "
             "`where:` names; the measured evidence is in every report's findings table.", "",
             f"Measured where {known.where_text(measured)}; narrower conditions are given per match.", ""]
    for kind in ("bug", "accuracy", "convention", "default"):
        group = [(k, v) for k, v in by_reason.items() if k[0] == kind]
        if not group:
            continue
        lines += [f"## {kind.capitalize()} ({len(group)})", ""]
        for (_, reason, link), es in sorted(group, key=lambda kv: sorted(e.function for e in kv[1])[0]):
            where = "; ".join(sorted({f"{e.function} {'/'.join(e.checks or ['all checks'])} "
                                      f"[{', '.join(e.dtypes or ['all dtypes'])}]"
                                      + (f" where {known.where_text(narrow)}" if (narrow := {
                                          k: v for k, v in (e.where or {}).items() if (measured or {}).get(k) != v}) else "")
                                      for e in es}))
            lines.append(f"- **{where}**: {reason}" + (f" ({link})" if link else ""))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else Path("conformance/known")
    out = Path(argv[1]) if len(argv) > 1 else Path("docs/findings")
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.yaml")):
        (out / f"{path.stem}.md").write_text(page(path.stem, known.load(path.stem, path), known.read(path).where))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
