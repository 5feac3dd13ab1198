"""Find adapters: the built-in ones and any registered under the entry-point group `nnconform.adapters`."""

from __future__ import annotations

from importlib import metadata
from typing import Callable

from .base import Adapter

GROUP = "nnconform.adapters"
# The pip extra that installs each built-in backend's framework.
EXTRAS = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "jax", "onnxruntime": "onnxruntime",
          "keras": "keras", "keras_jax": "keras"}


class BackendUnavailable(Exception):
    """A backend that cannot be loaded here; the message says how to install it."""


def entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(entry_points())


def load(name: str, device: str = "cpu") -> Adapter:
    eps = entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none registered"
        raise BackendUnavailable(f"unknown backend {name!r} (known: {known}); a third-party adapter registers "
                                 f"under the entry-point group {GROUP!r}")
    try:
        factory: Callable[..., Adapter] = eps[name].load()
    except ImportError as exc:
        extra = EXTRAS.get(name)
        how = f"pip install 'nnconform[{extra}]'" if extra else f"install the package that provides {name!r}"
        raise BackendUnavailable(f"backend {name!r} needs {exc.name or 'a module'} that is not installed: {how}") from None
    try:
        adapter = factory(device=device)
    except RuntimeError as exc:
        raise BackendUnavailable(f"backend {name!r} cannot run on device {device!r}: {exc}") from None
    if not isinstance(adapter, Adapter):
        raise BackendUnavailable(f"entry point {name!r} returned {type(adapter).__name__}, not an Adapter")
    return adapter
