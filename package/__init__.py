"""nnconform: a specification and conformance suite for activations, losses and optimizers."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("nnconform")
except metadata.PackageNotFoundError:     # a source tree on sys.path, not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
