"""The `nnconform` console script.

    nnconform new-adapter NAME [--dir DIR] [--force]   write NAME_adapter.py, listing every spec function
    nnconform backends                                 the registered backends, and whether each is installed here
    nnconform cache info|prune|clear                   the reference cache: where and how big; remove old versions or all
    nnconform sweep BACKEND [--out DIR]                measurement sweeps (every 16-bit input, grids) -> DIR/BACKEND-cpu.sweep.json
    nnconform sweep BACKEND --float32-exhaustive FN    one unary function over all 2**32 float32 inputs
    nnconform report run BACKEND [--out DIR]           the full report: conformance run, sweeps, Markdown and HTML
    nnconform report html PATH... [--out DIR]          Markdown and HTML pages from records (merged too, for 2+ runs)
    nnconform report merge PATH... [--out DIR]         several runs' records as one matrix (merged.md, merged.json)

The conformance run itself is pytest's: `pytest conformance --backend=NAME --report=DIR`.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nnconform import __version__
from nnconform.adapters import registry
from nnconform.adapters.base import ALL_DTYPES
from nnconform.spec import SpecError, load_all

from . import cache_admin, known, known_update, selection
from .report import html as report
from .report import merge, records
from .scaffold import ScaffoldError, write
from .sweeps import float32 as sweep_float32
from .sweeps import sweep


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
    """Each backend's state from package metadata, without importing a framework (well under 2 s)."""
    for name in registry.available():
        ready, text = registry.state(name)
        print(f"{name:<14} {'ready  ' if ready else 'missing'}  {text}")
    return 0


def _cache(args: argparse.Namespace) -> int:
    lines = cache_admin.info() if args.action == "info" else cache_admin.remove(args.action)
    print("\n".join(lines))
    return 0


def _known_update(args: argparse.Namespace) -> int:
    path = Path(args.known) if args.known else known.known_file(args.backend)
    try:
        current = known.read(path) if path.exists() else known.KnownList(format=2, backend=args.backend)
    except SpecError as exc:
        print(f"nnconform known update: {exc}", file=sys.stderr)
        return 2
    records_path = Path(args.records) if args.records else None
    if records_path is None:
        out = Path(tempfile.mkdtemp(prefix="nnconform-known-"))
        command = [sys.executable, "-m", "pytest", "--pyargs", "nnconform.conformance", "-q", "-p", "no:cacheprovider",
                   f"--backend={args.backend}", "--known-policy=report", f"--functions={args.functions}", f"--report={out}"]
        if not path.exists():             # a new list: judged by none (not by the shipped one)
            (out / "empty.yaml").write_text(f"format: 2\nbackend: {args.backend}\n")
        command.append(f"--known={path if path.exists() else out / 'empty.yaml'}")
        print("running:", " ".join(command))
        status = subprocess.call(command, stdout=subprocess.DEVNULL)
        found = sorted(out.glob(f"{args.backend}-*.json"))
        if status not in (0, 1) or not found:
            print(f"nnconform known update: the conformance run stopped with exit status {status}", file=sys.stderr)
            return 2
        records_path = found[0]
    try:
        run = records.load(records_path)
    except records.RecordsError as exc:
        print(f"nnconform known update: {exc}", file=sys.stderr)
        return 2
    if run.get("backend") != args.backend:
        print(f"nnconform known update: {records_path} holds a run of {run.get('backend')!r}, not {args.backend!r}",
              file=sys.stderr)
        return 2
    data, changes = known_update.update(current, run, datetime.date.today().isoformat())
    target = Path(args.out) if args.out else path
    known_update.write(target, data)
    print("\n".join(changes) or "no change: every finding reproduced and none is new")
    print(f"wrote {target}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    try:
        data, md = merge.write([Path(p) for p in args.paths], Path(args.out))
    except merge.RecordsError as exc:
        print(f"nnconform report merge: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {md} and {data}")
    return 0



def _sweep(args: argparse.Namespace) -> int:
    if args.float32_exhaustive:
        return _float32_sweep(args.backend, args.device, Path(args.out), args.float32_exhaustive, args.jobs, args.first,
                              args.count, not args.no_progress)
    return _grid_sweeps(args.backend, args.device, Path(args.out), selection.split(args.dtypes), args.functions, args.jobs,
                        not args.no_progress)


def _sweep_setup(backend: str, device: str, dtypes: list[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The sweeps file's header and the specs, or None after saying what is wrong."""

    bad = [d for d in dtypes if d not in ALL_DTYPES]
    if bad:
        print(f"nnconform sweep: unknown dtype(s) {bad}; choose from {', '.join(ALL_DTYPES)}", file=sys.stderr)
        return None
    try:
        adapter = registry.load(backend, device)
        specs = load_all()
    except (registry.BackendUnavailable, SpecError) as exc:
        print(f"nnconform sweep: {exc}", file=sys.stderr)
        return None
    return records.run_header(adapter, [d for d in dtypes if d in adapter.dtypes], kind="sweeps"), specs


def _float32_sweep(backend: str, device: str, out: Path, fn: str, jobs: int, first: int, count: int,
                   progress: bool) -> int:
    setup = _sweep_setup(backend, device, ["float32"])
    if setup is None:
        return 2
    header, specs = setup
    if fn not in specs:
        print(f"nnconform sweep: no spec named {fn!r}", file=sys.stderr)
        return 2
    try:
        result = sweep_float32.run(backend, fn, device, jobs=jobs, first=first, count=count, progress=progress)
    except ValueError as exc:
        print(f"nnconform sweep: {exc}", file=sys.stderr)
        return 2
    path = records.write_sweeps(out, header, [result], suffix=f"float32-{fn}")
    print(f"{fn} float32: {result['points']:,} inputs in {result['seconds']} s, largest error "
          f"{result['max_ulp']} ULP at {result['worst'][0]['input_hex'] if result['worst'] else '-'}; wrote {path}")
    return 0


def _grid_sweeps(backend: str, device: str, out: Path, dtypes: list[str], functions: str, jobs: int,
                 progress: bool) -> int:

    setup = _sweep_setup(backend, device, dtypes)
    if setup is None:
        return 2
    header, specs = setup
    unmatched = selection.unmatched("functions", functions, list(specs))
    if unmatched:
        print(f"nnconform sweep: {unmatched}", file=sys.stderr)
        return 2
    chosen = [s for n, s in sorted(specs.items()) if any(fnmatch.fnmatch(n, p) for p in selection.split(functions))]
    results = sweep.sweep(backend, device, chosen, dtypes, jobs=jobs, progress=progress)
    path = records.write_sweeps(out, header, results)
    failed = [r for r in results if r["status"] == "failed"]
    print(f"{len(results)} sweeps ({len(failed)} where the backend failed); wrote {path}")
    return 0


def _html(args: argparse.Namespace) -> int:
    first = Path(args.paths[0])
    return _write_pages([Path(p) for p in args.paths], Path(args.out) if args.out else first if first.is_dir() else first.parent)


def _write_pages(paths: list[Path], out: Path) -> int:
    try:
        written = report.write(paths, out)
    except merge.RecordsError as exc:
        print(f"nnconform report html: {exc}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(p) for p in written if p.suffix == ".html"))
    return 0


class ProgressLine(threading.Thread):
    """The pytest phase's progress (checks done of total, failures so far) as a bar under the sweeps'."""

    def __init__(self, path: Path, proc: subprocess.Popen, show: bool) -> None:
        super().__init__(daemon=True)
        self.path, self.proc, self.show = path, proc, show

    def run(self) -> None:
        if not self.show:
            return
        bar = None
        while True:
            running = self.proc.poll() is None
            try:
                done, total, failed = (int(v) for v in self.path.read_text().split())
            except (OSError, ValueError):
                done = total = failed = -1
            if total >= 0:
                if bar is None:
                    bar = tqdm(total=total, desc="conformance checks", unit="check", position=1, leave=True)
                bar.n = done
                bar.set_postfix_str(f"{failed} failed", refresh=True)
            if not running:
                break
            time.sleep(0.5)
        if bar is not None:
            bar.close()


def _report_run(args: argparse.Namespace) -> int:
    """pytest (the verdicts and records) and, at the same time, the sweeps; then the pages.

    The conformance run is one process on one core; the sweeps run beside it on `--jobs`
    processes, so the two together take about as long as the longer one.  pytest's exit status is
    returned (1: a check failed; the pages are written all the same).
    """
    try:
        registry.load(args.backend, args.device)          # a missing backend: one message saying how to install it
    except registry.BackendUnavailable as exc:
        print(f"nnconform report run: {exc}", file=sys.stderr)
        return 2
    unmatched = selection.unmatched("functions", args.functions, list(load_all()))
    if unmatched:
        print(f"nnconform report run: {unmatched}", file=sys.stderr)
        return 2
    out = Path(args.out)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "nnconform.conformance", f"--backend={args.backend}",
           f"--device={args.device}", f"--report={out}", f"--functions={args.functions}", f"--dtypes={args.dtypes}",
           "-q", "-p", "no:cacheprovider", "--no-header"]
    print("$ " + " ".join(cmd), flush=True)
    log = out / f"{args.backend}-{args.device}.pytest.log"
    out.mkdir(parents=True, exist_ok=True)
    progress = out / f".{args.backend}-{args.device}.progress"
    progress.unlink(missing_ok=True)
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "NNCONFORM_PROGRESS": str(progress)})
        watcher = ProgressLine(progress, proc, show=not args.no_progress)
        watcher.start()
        try:
            swept = _grid_sweeps(args.backend, args.device, out, selection.split(args.dtypes), args.functions, args.jobs,
                                 not args.no_progress)
        finally:
            status = proc.wait()
            watcher.join()
    progress.unlink(missing_ok=True)
    summary = [line for line in log.read_text().splitlines() if line.startswith("nnconform: ")]
    tail = log.read_text().strip().splitlines()[-1:] or [""]
    print(f"conformance run: {tail[0]} (log: {log})")
    for line in summary:
        print(line)
    if status not in (0, 1) or swept:
        print(f"nnconform report run: the conformance run stopped with exit status {status}; see {log}"
              if status not in (0, 1) else "nnconform report run: the sweeps did not run", file=sys.stderr)
        return status or 2
    if _write_pages([out], out):
        return 2
    print(f"report for {args.backend} in {time.perf_counter() - start:.0f} s")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nnconform", description="nnconform: the conformance suite's tools")
    parser.add_argument("--version", action="version", version=f"nnconform {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new-adapter", help="write the first draft of an adapter for a new backend")
    new.add_argument("name", help="the backend's name, as in --backend=NAME")
    new.add_argument("--dir", default=".", help="where to write NAME_adapter.py (default: here)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(run=_new_adapter)
    listing = sub.add_parser("backends", help="list the registered backends and whether each loads")
    listing.set_defaults(run=_backends)
    caching = sub.add_parser("cache", help="the reference cache: where it is and its size (info), removing older "
                                          "versions' folders (prune) or all of it (clear)")
    caching.add_argument("action", choices=("info", "prune", "clear"))
    caching.set_defaults(run=_cache)
    knowns = sub.add_parser("known", help="the known-discrepancy lists")
    known_sub = knowns.add_subparsers(dest="known_command", required=True)
    upd = known_sub.add_parser("update", help="refresh a backend's list from a run's records: new findings as "
                                             "matches or TODO entries, findings that passed marked stale")
    upd.add_argument("--backend", required=True)
    upd.add_argument("--from", dest="records", metavar="RECORDS",
                     help="a records file (BACKEND-DEVICE.json); default: run the suite now with --known-policy=report")
    upd.add_argument("--known", default=None, metavar="PATH", help="the list to refresh (default: the shipped one)")
    upd.add_argument("--out", default=None, metavar="PATH", help="where to write it (default: over --known)")
    upd.add_argument("--functions", default="*", help="with no --from: the functions to run (names or globs)")
    upd.set_defaults(run=_known_update)
    report = sub.add_parser("report", help="work with the records that --report=DIR writes")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    merging = report_sub.add_parser("merge", help="combine the records of several runs into one matrix")
    merging.add_argument("paths", nargs="+", help="records files, or directories searched for *.json")
    merging.add_argument("--out", default="merged-report", help="where to write merged.md and merged.json")
    merging.set_defaults(run=_merge)
    swp = sub.add_parser("sweep", help="measure a backend over fixed inputs: every 16-bit input, and grids")
    swp.add_argument("backend")
    swp.add_argument("--device", default="cpu")
    swp.add_argument("--out", default="report", help="directory for BACKEND-DEVICE.sweep.json (default: report)")
    swp.add_argument("--dtypes", default="float64,float32,float16,bfloat16")
    swp.add_argument("--functions", default="*", help="comma-separated names or globs")
    swp.add_argument("--jobs", type=int, default=2, help="worker processes (default 2: this machine's cores)")
    swp.add_argument("--no-progress", action="store_true", help="no progress bar")
    swp.add_argument("--float32-exhaustive", metavar="FUNCTION", help="sweep one unary function over all 2**32 float32 inputs")
    swp.add_argument("--first", type=lambda t: int(t, 0), default=0, help="with --float32-exhaustive: first bit pattern")
    swp.add_argument("--count", type=lambda t: int(t, 0), default=1 << 32, help="with --float32-exhaustive: how many")
    swp.set_defaults(run=_sweep)
    full = report_sub.add_parser("run", help="conformance run, sweeps and pages for one backend")
    full.add_argument("backend")
    full.add_argument("--device", default="cpu")
    full.add_argument("--out", default="report")
    full.add_argument("--jobs", type=int, default=2)
    full.add_argument("--dtypes", default="float64,float32,float16,bfloat16")
    full.add_argument("--functions", default="*", help="comma-separated names or globs (default: all)")
    full.add_argument("--no-progress", action="store_true")
    full.set_defaults(run=_report_run)
    pages = report_sub.add_parser("html", help="Markdown and HTML pages (with a figures folder) from records")
    pages.add_argument("paths", nargs="+", help="records files, or directories searched for *.json")
    pages.add_argument("--out", default=None, help="where to write the pages (default: the first path)")
    pages.set_defaults(run=_html)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
