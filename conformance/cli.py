"""The `nnconform` console script.

    nnconform new-adapter NAME [--dir DIR] [--force]   write NAME_adapter.py, listing every spec function
    nnconform backends                                 the registered backends, and whether each loads here
    nnconform report merge PATH... [--out DIR]         several runs' records as one matrix (merged.md, merged.json)

The conformance run itself is pytest's: `pytest conformance --backend=NAME --report=DIR`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnconform.adapters import registry

from . import merge
from .scaffold import ScaffoldError, write


def _new_adapter(args: argparse.Namespace) -> int:
    try:
        path, stanza = write(args.name, Path(args.dir), force=args.force)
    except ScaffoldError as exc:
        print(f"nnconform new-adapter: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: every spec function is listed as not yet provided.\n")
    print("Register it from your package's pyproject.toml (the module must be importable):\n")
    print(stanza)
    print(f"then `pip install -e .` there and run: pytest --pyargs nnconform.conformance --backend={args.name}")
    return 0


def _backends(args: argparse.Namespace) -> int:
    for name in registry.available():
        try:
            adapter = registry.load(name)
            state = f"{adapter.framework} {adapter.version}"
        except registry.BackendUnavailable as exc:
            state = f"unavailable: {exc}"
        print(f"{name:<14} {state}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    try:
        data, md = merge.write([Path(p) for p in args.paths], Path(args.out))
    except merge.RecordsError as exc:
        print(f"nnconform report merge: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {md} and {data}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nnconform", description="nnconform: the conformance suite's tools")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new-adapter", help="write the first draft of an adapter for a new backend")
    new.add_argument("name", help="the backend's name, as in --backend=NAME")
    new.add_argument("--dir", default=".", help="where to write NAME_adapter.py (default: here)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(run=_new_adapter)
    listing = sub.add_parser("backends", help="list the registered backends and whether each loads")
    listing.set_defaults(run=_backends)
    report = sub.add_parser("report", help="work with the records that --report=DIR writes")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    merging = report_sub.add_parser("merge", help="combine the records of several runs into one matrix")
    merging.add_argument("paths", nargs="+", help="records files, or directories searched for *.json")
    merging.add_argument("--out", default="merged-report", help="where to write merged.md and merged.json")
    merging.set_defaults(run=_merge)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
