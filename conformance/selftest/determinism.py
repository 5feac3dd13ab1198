"""Determinism: the same verdicts under different Hypothesis seeds.

    python -m nnconform.conformance.selftest.determinism --backend numpy [--seeds 0,1,2,3,4] [--jobs 2] [--keep DIR] [pytest args...]

runs the `ci` profile of the conformance suite once per seed (each in a fresh
process, with `--conformance-seed=N`), then compares the status of every test
(pass, known discrepancy, fail, not provided, ...) across the runs.  It prints
every test whose verdict differs and exits non-zero if any does.  Hypothesis
keeps no example database here (`database=None` in every check), so nothing
carries over between runs; each seed draws different examples.

A flaky verdict is a bug of the suite, to be fixed (a draw that only sometimes
reaches a finding belongs in the spec's stability inputs), never retried.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_seed(backend: str, seed: int, out: Path, extra: list[str]) -> tuple[int, dict[str, str], float]:
    report = out / f"seed{seed}"
    cmd = [sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider", f"--backend={backend}",
           f"--conformance-seed={seed}", f"--report={report}", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    files = sorted(report.glob("*.json"))
    if not files:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise SystemExit(f"seed {seed}: no records written (exit {proc.returncode}):\n{tail}")
    records = json.loads(files[0].read_text())["records"]
    return proc.returncode, {r["id"]: r["status"] for r in records}, seconds


def compare(runs: dict[int, dict[str, str]]) -> list[str]:
    ids = sorted(set().union(*runs.values()))
    lines = []
    for cid in ids:
        seen = {seed: verdicts.get(cid, "absent") for seed, verdicts in runs.items()}
        if len(set(seen.values())) > 1:
            lines.append(f"{cid}: " + ", ".join(f"seed {s}: {v}" for s, v in seen.items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (each is one process)")
    parser.add_argument("--keep", type=Path, help="keep each seed's report here (DIR/seedN), e.g. to refresh a known list")
    args, extra = parser.parse_known_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = dict(zip(seeds, pool.map(lambda s: run_seed(args.backend, s, out, extra), seeds)))
    runs = {s: r[1] for s, r in results.items()}
    for s, (code, verdicts, seconds) in results.items():
        counts: dict[str, int] = {}
        for v in verdicts.values():
            counts[v] = counts.get(v, 0) + 1
        print(f"seed {s}: exit {code}, {len(verdicts)} tests in {seconds:.0f} s: "
              + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    differ = compare(runs)
    if differ:
        print(f"{len(differ)} tests changed verdict with the seed:")
        print("\n".join("  " + line for line in differ))
        return 1
    print(f"identical verdicts for all {len(runs[seeds[0]])} tests under seeds {args.seeds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
