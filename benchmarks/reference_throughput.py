"""Reference throughput, cold cache and warm cache, of both tiers.  Prints figures; asserts nothing.

    python benchmarks/reference_throughput.py [--n 20000]

Values and VJPs (cotangent 1) of the mpmath tier, cold and warm; the arb tier (no cache) cold.

Targets (issue 2, on the 2-core workplace machine): cold >= 50,000 sigmoid values/s on one
core, warm >= 1,000,000 values/s.  Cold means an empty in-memory cache and no disk cache.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nnconform.reference import Reference, ReferenceCache
from nnconform.spec import load_all


def measure(name: str, x: np.ndarray, quantity: str = "value", repeats: int = 5) -> tuple[float, float, float]:
    """Seconds: mpmath cold, mpmath warm, arb cold (NaN without python-flint)."""
    spec = load_all()[name]
    ref = Reference(ReferenceCache(persistent=False))

    def run(r: object) -> None:
        if quantity == "value":
            r.value(spec, {"x": x})                                    # type: ignore[attr-defined]
        else:
            r.vjp(spec, "x", {"x": x}, np.ones(x.shape))               # type: ignore[attr-defined]
    start = time.perf_counter()
    run(ref)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        run(ref)
    warm = (time.perf_counter() - start) / repeats
    try:
        from nnconform.reference.arb_tier import ArbReference
        arb_ref: object = ArbReference()
    except Exception:
        return cold, warm, float("nan")
    start = time.perf_counter()
    run(arb_ref)
    return cold, warm, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="values per function")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 4, args.n // 2), rng.uniform(-50, 50, args.n - args.n // 2)])
    print(f"reference throughput, float64, {args.n} values, one process (one core)")
    print(f"{'function':<14}{'quantity':<10}{'mpmath cold/s':>16}{'mpmath warm/s':>16}{'arb cold/s':>14}")
    rows = x[: (args.n // 10) * 10].reshape(-1, 10)
    for name, data in (("sigmoid", x), ("softplus", x), ("gelu", x), ("log_softmax", rows)):
        for quantity in ("value", "vjp"):
            cold, warm, arb = measure(name, data, quantity)
            print(f"{name:<14}{quantity:<10}{data.size / cold:>16,.0f}{data.size / warm:>16,.0f}{data.size / arb:>14,.0f}")
    print("(log_softmax: rows of 10, figures in entries/s)")


if __name__ == "__main__":
    main()
