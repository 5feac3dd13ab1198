"""Wall time of the default (ci profile) conformance run, per backend.  Prints figures; asserts nothing.

    python benchmarks/conformance_wall_time.py [--backends numpy,torch,tensorflow,jax] [--families activation]

Each backend runs twice in a fresh process: first with an empty reference cache (cold),
then with the cache the first run wrote (warm), which is what a developer re-running the
suite sees.  Target (issue 3): at most 90 s per backend on the 2-core workplace machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def run(backend: str, cache: str) -> tuple[float, str]:
    env = dict(os.environ, NNCONFORM_CACHE_DIR=cache)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "conformance", f"--backend={backend}", "-q", "-p", "no:randomly"],
                          capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    summary = next((line for line in reversed(proc.stdout.splitlines()) if " in " in line and ("passed" in line or "failed" in line)), "")
    return elapsed, summary.strip("= ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,torch,tensorflow,jax")
    args = parser.parse_args()
    print(f"{'backend':<12}{'cold s':>9}{'warm s':>9}  result (warm run)")
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as cache:
            cold, _ = run(backend, cache)
            warm, summary = run(backend, cache)
        print(f"{backend:<12}{cold:>9.1f}{warm:>9.1f}  {summary}")


if __name__ == "__main__":
    main()
