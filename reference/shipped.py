"""Reference results shipped with the package, so that a machine's first report is not spent in mpmath.

The exhaustive sweeps (`conformance/sweep.py`) ask for every float16 and bfloat16 input of each
unary activation, value and derivative, at the default parameters: 72 tables of 65,536 results.
mpmath takes about 170 core-seconds for them, more than half of a first report's time (issue 6's
five-minute target); a warm cache takes seconds.  So they ship, computed once by
`python -m nnconform.conformance.sweeps.shipped_tables`.  A table stores one 16-bit result per input
bit pattern (a 16-bit target's result is a number of that dtype), the inputs implied: 2.6 MB in
all, compressed.

A shipped table is only the cache pre-filled.  It is read where the cache has no file for the
same key, and only when the key stored inside it, the spec file's content included, equals the
key asked for, and the reference code's version stored with it (version.py) is this code's: an
edited spec or a changed evaluator misses it and is computed, never served stale results.
`tests/test_shipped_tables.py` recomputes a sample of every table with the live evaluator and
fails, naming the command, when a spec or the evaluator changed without its tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dtypes import UNCERTAIN_BITS, all_bit_patterns, info
from .version import code_version

DIRECTORY = Path(__file__).parent / "tables"
SHIPPED_DTYPES = ("float16", "bfloat16")


def file_name(key: tuple) -> str:
    """`gelu-vjp_x-bfloat16.npz`: one file per function, quantity and dtype, so a regenerated table replaces its file."""
    _, name, quantity, _, dtype = key
    return f"{name}-{quantity.replace(':', '_')}-{dtype}.npz"


def _keys(dtype: str, rest: tuple) -> list:
    with np.errstate(invalid="ignore"):                               # NaN patterns are inputs too
        x = all_bit_patterns(dtype).astype(np.float64).view(np.uint64).tolist()     # as the engine keys its inputs
    return x if not rest else [(k, *rest) for k in x]


def load(key: tuple, directory: Path = DIRECTORY) -> dict | None:
    """The shipped results for a cache key, or None (no such table, or one for another key)."""
    if len(key) != 5 or key[4] not in SHIPPED_DTYPES:
        return None
    path = directory / file_name(key)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        if str(z["key"]) != repr(key) or "code" not in z or str(z["code"]) != code_version():
            return None            # another spec, or results of another evaluator: computed afresh instead
        rest = tuple(z["rest"].tolist())
        vals = z["vals"].view(info(key[4]).np_dtype).astype(np.float64).view(np.uint64)
        vals[np.unpackbits(z["uncertain"], count=len(vals)).astype(bool)] = UNCERTAIN_BITS
    return dict(zip(_keys(key[4], rest), vals.tolist()))


def encode(key: tuple, data: dict) -> dict[str, np.ndarray]:
    """The arrays of a shipped table: one 16-bit result per input bit pattern, the inputs implied.

    Refuses (ValueError) a table that would not decode to exactly `data`: keys other than every bit
    pattern with one fixed cotangent, or a result that is not a number of the dtype.
    """
    dtype = key[4]
    some = next(iter(data))
    rest = tuple(some[1:]) if isinstance(some, tuple) else ()
    keys = _keys(dtype, rest)
    if set(keys) != set(data):
        raise ValueError(f"{file_name(key)}: the table's inputs are not every {dtype} bit pattern with cotangent {rest}")
    raw = np.array([data[k] for k in keys], dtype=np.uint64)
    uncertain = raw == UNCERTAIN_BITS
    with np.errstate(invalid="ignore", over="ignore"):
        vals = np.where(uncertain, 0, raw).view(np.float64).astype(info(dtype).np_dtype)
        again = np.where(uncertain, UNCERTAIN_BITS, vals.astype(np.float64).view(np.uint64))
    if not np.array_equal(again, raw):
        raise ValueError(f"{file_name(key)}: a result is not a {dtype} number")
    return {"key": np.array(repr(key)), "code": np.array(code_version()), "rest": np.array(rest, dtype=np.uint64),
            "vals": vals.view(np.uint16), "uncertain": np.packbits(uncertain)}


def write(key: tuple, data: dict, directory: Path = DIRECTORY) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(key)
    np.savez_compressed(path, **encode(key, data))
    return path
