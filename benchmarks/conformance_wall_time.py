"""Wall time of the default (ci profile) conformance run, per backend and family.  Prints figures; asserts nothing.

    python benchmarks/conformance_wall_time.py [--backends numpy,torch,tensorflow,jax] [--families activation,loss,optimizer]

Each (backend, family) runs twice in a fresh process: first with an empty reference cache
(cold), then with the cache the first run wrote (warm), which is what a developer re-running
the suite sees.  Targets: activations at most 90 s per backend (issue 3); the loss checks add
at most 60 s per backend to the default run (issue 4); optimizers: 120 s, our own figure (issue 5 sets none).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

MODULES = {"activation": "conformance/test_activations.py", "loss": "conformance/test_losses.py",
           "optimizer": "conformance/test_optimizers.py"}
TARGETS = {"activation": 90.0, "loss": 60.0, "optimizer": 120.0}


def run(backend: str, module: str, cache: str) -> tuple[float, str]:
    env = dict(os.environ, NNCONFORM_CACHE_DIR=cache)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", module, f"--backend={backend}", "-q", "-p", "no:randomly"],
                          capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    summary = next((line for line in reversed(proc.stdout.splitlines()) if " in " in line and ("passed" in line or "failed" in line)), "")
    return elapsed, summary.strip("= ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,torch,tensorflow,jax")
    parser.add_argument("--families", default="activation,loss,optimizer")
    args = parser.parse_args()
    print(f"{'backend':<12}{'family':<12}{'cold s':>9}{'warm s':>9}{'target s':>10}  result (warm run)")
    for backend in args.backends.split(","):
        for family in args.families.split(","):
            with tempfile.TemporaryDirectory() as cache:
                cold, _ = run(backend, MODULES[family], cache)
                warm, summary = run(backend, MODULES[family], cache)
            print(f"{backend:<12}{family:<12}{cold:>9.1f}{warm:>9.1f}{TARGETS[family]:>10.0f}  {summary}", flush=True)


if __name__ == "__main__":
    main()
