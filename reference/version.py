"""The reference's code version: a hash of its own source, which every cached and shipped result is keyed by.

A fixed evaluator must never read results of the old one: the cache directory and the shipped
16-bit tables both carry this version, and a table of another version is not read.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

CACHE_VERSION = "1"


@cache
def code_version() -> str:
    h = hashlib.sha256(CACHE_VERSION.encode())
    here = Path(__file__).parent
    for name in ("evaluator.py", "engine.py", "losses.py", "approx.py", "dtypes.py", "cache.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]
