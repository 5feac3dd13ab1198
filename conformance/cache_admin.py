"""`nnconform cache info|clear|prune`: where the reference cache is, what it holds, and removing it.

The cache holds certified reference results, one folder per reference code version
(`reference-<version>`): a changed evaluator starts a new folder and never reads an old one,
so folders of older versions are dead weight (`prune` removes them).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from nnconform.reference.cache import default_directory
from nnconform.reference.version import code_version


@dataclass(frozen=True)
class Folder:
    path: Path
    files: int
    size: int
    current: bool


def folders() -> tuple[Path | None, list[Folder]]:
    """The cache root (None when caching is off) and its version folders."""
    current = default_directory()
    if current is None:
        return None, []
    root = current.parent
    out = []
    for path in sorted(root.glob("reference-*")) if root.is_dir() else []:
        if not path.is_dir() or path.is_symlink():
            continue
        files = [f for f in path.rglob("*") if f.is_file()]
        out.append(Folder(path, len(files), sum(f.stat().st_size for f in files), path.name == f"reference-{code_version()}"))
    return root, out


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def info() -> list[str]:
    root, found = folders()
    if root is None:
        return ["the reference cache is off (NNCONFORM_CACHE_DIR is empty, 0, off or none)"]
    lines = [f"reference cache: {root} (set NNCONFORM_CACHE_DIR to move it)",
             f"this nnconform's reference version: {code_version()}"]
    for f in found:
        lines.append(f"  {f.path.name}: {f.files} files, {_mb(f.size)}{'  (current)' if f.current else '  (older: nnconform cache prune)'}")
    if not found:
        lines.append("  empty")
    return lines


def remove(which: str) -> list[str]:
    """which: 'prune' (every version but this one) or 'clear' (all of it)."""
    root, found = folders()
    if root is None:
        return ["the reference cache is off: nothing to remove"]
    gone = [f for f in found if which == "clear" or not f.current]
    for f in gone:
        shutil.rmtree(f.path)
    freed = sum(f.size for f in gone)
    return [f"removed {len(gone)} folder(s) from {root}, {_mb(freed)}"]
