"""Wall time of a full report for one backend, and of one exhaustive float32 sweep.  Prints figures; asserts nothing.

    python benchmarks/report_speed.py [--backend torch] [--function sigmoid] [--jobs 2] [--skip-float32]

1. `nnconform report run BACKEND`: the conformance run (every function, every dtype), the
   sweeps (every one of the 65,536 float16 and bfloat16 inputs of each unary function, the
   grids elsewhere) and the Markdown and HTML pages.  Run twice, in fresh processes: with an
   empty reference cache (cold: a first run on a new machine) and with the cache the first
   run wrote (warm: every later run).
2. `nnconform sweep BACKEND --float32-exhaustive FUNCTION`: all 2**32 float32 inputs, on
   `--jobs` processes.

Targets (issue 6, on the 2-core workplace machine): the full report in at most 5 minutes; the
float32 sweep of one unary function in at most 10 minutes using both cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], cache: str, summary: str) -> tuple[float, int, str]:
    """Seconds, exit status, and the command's own summary line (the last line starting with `summary`)."""
    env = dict(os.environ, NNCONFORM_CACHE_DIR=cache)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(summary)]
    return time.perf_counter() - start, proc.returncode, lines[-1] if lines else (proc.stderr.strip().splitlines() or [""])[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--function", default="sigmoid", help="the unary function of the float32 sweep")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-report", action="store_true")
    parser.add_argument("--skip-float32", action="store_true")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "nnconform.conformance.cli"]
    print(f"machine: {os.cpu_count()} cores; backend {args.backend}; {args.jobs} worker processes")
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        if not args.skip_report:
            for label in ("cold", "warm"):
                out = Path(tmp) / f"report-{label}"
                seconds, code, last = timed(cli + ["report", "run", args.backend, "--out", str(out), "--no-progress",
                                                   "--jobs", str(args.jobs)], cache, "conformance run:")
                pages = sorted(p.name for p in out.glob("*.html"))
                print(f"full report, {label} reference cache: {seconds:7.1f} s  (target 300 s; exit {code}; "
                      f"pages {', '.join(pages)}; {last})")
        if not args.skip_float32:
            out = Path(tmp) / "float32"
            seconds, code, last = timed(cli + ["sweep", args.backend, "--float32-exhaustive", args.function, "--out",
                                               str(out), "--no-progress", "--jobs", str(args.jobs)], cache,
                                        f"{args.function} float32:")
            print(f"float32 exhaustive sweep of {args.function}, 2**32 inputs: {seconds:7.1f} s  (target 600 s; "
                  f"exit {code}; {last})")


if __name__ == "__main__":
    main()
