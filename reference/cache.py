"""Reference results kept between runs.

A table holds the results of one (spec file content, quantity, parameters,
dtype) combination: a dict from the exact input bits to the exact output bits.
Lookups of whole arrays go through `dict.get` over Python ints, which is
several million per second, so a warm run costs almost nothing.

On disk a table is one .npz of two uint64 arrays (no pickle: the cache is read
back, and reading must never run code).  Writes go to a temporary file and are
renamed into place, so a run interrupted, or run in parallel, leaves either
the old table or the new one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Hashable

import numpy as np

from . import shipped
from .version import code_version

Key = Hashable


def default_directory() -> Path | None:
    env = os.environ.get("NNCONFORM_CACHE_DIR")
    if env is not None:       # keyed by the code's version there too: a fixed evaluator never reads the old one's results
        return Path(env) / f"reference-{code_version()}" if env not in ("", "0", "off", "none") else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nnconform" / f"reference-{code_version()}"


class Table:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[Key, int | tuple[int, ...]] = {}
        self.dirty = False
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as z:
                keys, vals = z["keys"], z["vals"]
            well_formed = keys.ndim == vals.ndim == 2 and len(keys) == len(vals) and keys.shape[1] and vals.shape[1]
        except Exception:   # noqa: BLE001 - truncated (BadZipFile), empty (EOFError), flipped bits: whatever it is
            well_formed = False
        if not well_formed:
            _set_aside(path)       # a damaged cache file is a miss, never a backend's failure; it is rewritten on flush
            return
        ks = [tuple(k) for k in keys.tolist()] if keys.shape[1] > 1 else keys[:, 0].tolist()
        vs = [tuple(v) for v in vals.tolist()] if vals.shape[1] > 1 else vals[:, 0].tolist()
        self.data.update(zip(ks, vs))

    def put(self, key: Key, value: int | tuple[int, ...]) -> None:
        self.data[key] = value
        self.dirty = True

    def flush(self) -> None:
        if self.path is None or not self.dirty or not self.data:
            return
        if self.path.exists():
            merged = Table(self.path)        # keep what a parallel worker wrote meanwhile
            merged.data.update(self.data)
            self.data = merged.data
        items = [(k, v) for k, v in self.data.items() if k != () and v != ()]
        shapes = {(len(k) if isinstance(k, tuple) else 1, len(v) if isinstance(v, tuple) else 1) for k, v in items}
        if len(shapes) != 1:
            return              # mixed shapes cannot go into one array; keep them in memory only
        keys = np.array([k if isinstance(k, tuple) else (k,) for k, _ in items], dtype=np.uint64)
        vals = np.array([v if isinstance(v, tuple) else (v,) for _, v in items], dtype=np.uint64)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=keys, vals=vals)
            os.replace(tmp, self.path)
        except OSError:
            if os.path.exists(tmp):
                os.unlink(tmp)
            return
        self.dirty = False


_WARNED: set[Path] = set()


def _set_aside(path: Path) -> None:
    """Move a damaged table out of the way (once, with a warning), so that the next flush writes a good one."""
    if path in _WARNED:
        return
    _WARNED.add(path)
    warnings.warn(f"nnconform: the reference cache file {path} is damaged; it is ignored and will be recomputed",
                  RuntimeWarning, stacklevel=3)
    try:
        os.replace(path, path.with_suffix(".damaged"))
    except OSError:
        pass


class ReferenceCache:
    def __init__(self, directory: Path | None = None, persistent: bool = True) -> None:
        if persistent and directory is not None:
            directory = directory / code_version()
        self.directory = (directory or default_directory()) if persistent else None
        self.tables: dict[tuple, Table] = {}

    def table(self, key: tuple) -> Table:
        t = self.tables.get(key)
        if t is None:
            path = None
            if self.directory is not None:
                name = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
                path = self.directory / f"{name}.npz"
            t = self.tables[key] = Table(path)
            if path is not None and not t.data:
                t.data.update(shipped.load(key) or {})     # the tables shipped with the package (shipped.py says why)
        return t

    def flush(self) -> None:
        for t in self.tables.values():
            t.flush()
