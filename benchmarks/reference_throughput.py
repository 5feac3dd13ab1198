"""Reference throughput, cold cache and warm cache.  Prints figures; asserts nothing.

    python benchmarks/reference_throughput.py [--n 20000]

Targets (issue 2, on the 2-core workplace machine): cold >= 50,000 sigmoid values/s on one
core, warm >= 1,000,000 values/s.  Cold means an empty in-memory cache and no disk cache.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nnconform.reference import Reference, ReferenceCache
from nnconform.spec import load_all


def measure(name: str, x: np.ndarray, repeats: int = 5) -> tuple[float, float]:
    spec = load_all()[name]
    ref = Reference(ReferenceCache(persistent=False))
    start = time.perf_counter()
    ref.value(spec, {"x": x})
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        ref.value(spec, {"x": x})
    warm = (time.perf_counter() - start) / repeats
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="values per function")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 4, args.n // 2), rng.uniform(-50, 50, args.n - args.n // 2)])
    print(f"reference throughput, float64, {args.n} values, one process (one core)")
    print(f"{'function':<14}{'cold values/s':>16}{'warm values/s':>16}")
    for name in ("sigmoid", "softplus", "gelu"):
        cold, warm = measure(name, x)
        print(f"{name:<14}{args.n / cold:>16,.0f}{args.n / warm:>16,.0f}")
    rows = x[: (args.n // 10) * 10].reshape(-1, 10)
    cold, warm = measure("log_softmax", rows)
    print(f"{'log_softmax':<14}{rows.size / cold:>16,.0f}{rows.size / warm:>16,.0f}   (rows of 10; values/s)")


if __name__ == "__main__":
    main()
