"""Find adapters: the built-in ones and any registered under the entry-point group `nnconform.adapters`."""

from __future__ import annotations

from importlib import metadata, util
from typing import Callable

from .base import Adapter

GROUP = "nnconform.adapters"
# The pip extra that installs each built-in backend's framework.
EXTRAS = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "jax": "jax", "onnxruntime": "onnxruntime",
          "keras": "keras", "keras_jax": "keras"}


# The distributions each built-in backend needs: `nnconform backends` reads their metadata and
# never imports a framework (TensorFlow alone takes seconds and prints logs).
REQUIRES = {"numpy": ("numpy", "scipy"), "torch": ("torch",), "tensorflow": ("tensorflow",),
            "jax": ("jax", "jaxlib", "optax"), "onnxruntime": ("onnxruntime", "onnx"), "keras": ("keras", "tensorflow"),
            "keras_jax": ("keras", "jax", "jaxlib")}
MODULES = {"onnxruntime": "onnxruntime", "jaxlib": "jaxlib", "optax": "optax"}     # distribution -> module, where not the same


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


def state(name: str) -> tuple[bool, str]:
    """(ready, text) for the listing: versions of what a backend needs, or what is missing and how to install it.

    A built-in backend is judged from its distributions' metadata alone; a third-party one by
    the package that registered it (it is loaded only by a run).
    """
    ep = entry_points().get(name)
    if ep is None:
        return False, "not registered"
    needs = REQUIRES.get(name)
    if needs is None:
        dist = ep.dist.name if ep.dist is not None else "an unknown package"
        version = ep.dist.version if ep.dist is not None else ""
        return True, f"third-party adapter from {dist} {version} ({ep.value})".replace("  ", " ")
    found, missing = [], []
    for dist in needs:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing.append(dist)
            continue
        found.append(f"{dist} {version}") if util.find_spec(MODULES.get(dist, dist)) is not None else missing.append(dist)
    if missing:
        return False, f"missing {', '.join(missing)}: pip install 'nnconform[{EXTRAS[name]}]'"
    return True, ", ".join(found)
