"""Wall time of a backend's conformance run and report run, and where it goes.  Prints figures; asserts nothing.

    python benchmarks/run_speed.py [--backends torch,jax] [--repeat 3] [--runs conformance,report] [-n N]

For each backend, in fresh processes:

- `pytest conformance --backend=B` with an empty reference cache (cold: a new machine, as in
  CI) and then with the cache that run wrote (warm: a developer's re-run), split by
  conformance_timing.py into collection, reference, framework calls, Hypothesis and the
  checks' own work, and pytest's;
- `nnconform report run B` (the checks and the sweeps side by side, and the pages), cold.

With --repeat R, each figure is the min / median / max of R runs.  Issue 22's targets, on the
2-core machine, idle, cold cache: torch 60 s, jax 90 s, a report run 120 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"torch": 60.0, "jax": 90.0}
REPORT_TARGET = 120.0
PARTS = ("collection", "reference", "framework", "hypothesis and checks", "pytest and setup")


def conformance(backend: str, cache: str, workers: int, records: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "split.json"
        env = dict(os.environ, NNCONFORM_CACHE_DIR=cache, NNCONFORM_TIMING_OUT=str(out),
                   PYTHONPATH=os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p))
        cmd = [sys.executable, "-m", "pytest", "--pyargs", "nnconform.conformance", f"--backend={backend}", "-q",
               "-p", "conformance_timing", "--report", records or tmp] + (["-n", str(workers)] if workers > 1 else [])
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        split = json.loads(out.read_text()) if out.exists() else {}
        if workers > 1:                           # the controller's split says nothing of the workers' time
            split = {}
        split["process wall"] = wall
        split["exit"] = proc.returncode
        return split


def report(backend: str, cache: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NNCONFORM_CACHE_DIR=cache)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "nnconform.conformance.cli", "report", "run", backend, "--out", tmp,
                               "--no-progress"], capture_output=True, text=True, env=env)
        return time.perf_counter() - start, proc.returncode


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:7.1f}"
    return f"{min(values):6.1f} / {statistics.median(values):6.1f} / {max(values):6.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,torch,tensorflow,jax")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--runs", default="conformance,report")
    parser.add_argument("--records", help="keep the records files here (DIR/cold-1/B-cpu.json, ...), to compare verdicts")
    parser.add_argument("-n", type=int, default=1, help="pytest-xdist workers for the conformance run (no split then)")
    args = parser.parse_args()
    runs = args.runs.split(",")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; figures in seconds"
          + (", min / median / max" if args.repeat > 1 else ""))
    for backend in args.backends.split(","):
        if "conformance" in runs:
            splits: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
            for i in range(args.repeat):
                with tempfile.TemporaryDirectory() as cache:
                    for label in ("cold", "warm"):         # the warm run reads the cache the cold one wrote
                        keep = str(Path(args.records) / f"{label}-{i + 1}") if args.records else None
                        splits[label].append(conformance(backend, cache, args.n, keep))
            for label, got in splits.items():
                target = TARGETS.get(backend)
                print(f"{backend:<12} pytest conformance, {label} cache: {spread([s['process wall'] for s in got])}"
                      + (f"  (target {target:.0f} s cold)" if target and label == "cold" else "")
                      + f"  exit {sorted({int(s['exit']) for s in got})}", flush=True)
                for part in PARTS:
                    if all(part in s for s in got):
                        print(f"{'':<14}{part:<24}{spread([s[part] for s in got])}", flush=True)
        if "report" in runs:
            results = []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as cache:
                    results.append(report(backend, cache))
            print(f"{backend:<12} nnconform report run, cold cache: {spread([r[0] for r in results])}"
                  f"  (target {REPORT_TARGET:.0f} s)  exit {sorted({r[1] for r in results})}", flush=True)


if __name__ == "__main__":
    main()
