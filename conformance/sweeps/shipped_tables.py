"""Write the reference tables shipped with the package (reference/shipped.py says why they exist).

    python -m nnconform.conformance.sweeps.shipped_tables [--jobs 2]

Run it after editing an activation's spec (tests/test_shipped_tables.py fails until then): it
recomputes, with mpmath and no cache, every float16 and bfloat16 input of every swept unary
activation, value and derivative, exactly as the exhaustive sweeps ask for them, and replaces
reference/tables/.  80 seconds on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from nnconform.reference import Reference, ReferenceCache, shipped
from nnconform.reference.dtypes import all_bit_patterns, cast
from nnconform.spec import Spec, load_all

from ..kinds import GRADIENT, VALUE
from .sweep import exhaustive, in_processes, sweepable

QUANTITIES = (VALUE, GRADIENT)


def wanted(specs: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(function, dtype, quantity) of every exhaustive sweep."""
    return [(name, dtype, q) for name, spec in sorted(specs.items())
            if isinstance(spec, Spec) and not sweepable(spec)
            for dtype in shipped.SHIPPED_DTYPES if exhaustive(spec, dtype) for q in QUANTITIES]


def compute(spec: Spec, dtype: str, quantity: str) -> tuple[tuple, dict]:
    """One table, computed as the sweep computes it (`Sweeper.run`), in a cache of its own."""
    ref = Reference(ReferenceCache(persistent=False))
    x = all_bit_patterns(dtype)
    name = spec.tensor_inputs[0]
    params = spec.default_params()
    with np.errstate(invalid="ignore", over="ignore"):
        if quantity == VALUE:
            ref.value(spec, {name: x}, params, dtype)
        else:
            g = cast(np.ones(x.shape), dtype).astype(np.float64)   # the sweep's cotangent
            ref.vjp(spec, name, {name: x}, g, params, dtype)
    ((key, table),) = ref.cache.tables.items()
    return key, table.data


_SPECS: dict[str, Any] = {}


def _init() -> None:
    _SPECS.update(load_all(["activation"]))


def _work(fn: str, dtype: str, quantity: str) -> str:
    start = time.perf_counter()
    key, data = compute(_SPECS[fn], dtype, quantity)
    path = shipped.write(key, data)
    return f"{path.name}: {len(data)} results, {time.perf_counter() - start:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    todo = wanted(load_all(["activation"]))
    written = set()
    for line in in_processes(_work, todo, args.jobs, _init, ()):
        print(line, flush=True)
        written.add(line.split(":", 1)[0])
    for stale in sorted(p for p in shipped.DIRECTORY.glob("*.npz") if p.name not in written):
        print(f"removed {stale.name}: no exhaustive sweep reads it")
        stale.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
