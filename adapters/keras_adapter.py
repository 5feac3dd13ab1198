"""Keras 3: keras.activations, keras.ops, keras.losses and keras.optimizers, on a chosen Keras backend.

Keras picks its backend once, at import, from KERAS_BACKEND; so the two configurations are
two entry points (`keras` on TensorFlow, `keras_jax` on JAX), one per process.  Keras has no
backend-neutral autodiff: gradients come from the backend's own (tf.GradientTape, jax.vjp),
which is also what Keras's trainers use.  Arrays and gradients are the backend adapter's;
what this module adds is the Keras tables.

The loss and optimizer tables are shared with the TensorFlow adapter, whose users call
Keras for both.  Nothing here imports Keras at module level: the tables are built for the
`keras` module the factory imported.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

from .base import Adapter, Session
from .keras_tables import KerasSession, activations, keras_spelling, losses, optimizers


def import_keras(backend: str) -> ModuleType:
    """Keras on `backend`; an error if this process already imported it on another."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)   # float64 arrays are float32 without it
    import keras
    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras was already imported on the {keras.backend.backend()} backend in this process; "
                           f"Keras cannot switch to {backend}: run one Keras backend per process")
    return keras


def _adapter(base: type[Adapter], name: str, keras: ModuleType) -> type[Adapter]:
    """Keras over `base`: the backend adapter's arrays, autodiff and device, Keras's functions."""

    def optimizer_session(self: Adapter, built: Any, initial: np.ndarray, dtype: str) -> Session:
        return KerasSession(keras, built, initial, dtype)

    def environment(self: Adapter) -> dict[str, str]:
        return {**base.environment(self), "KERAS_BACKEND": keras.backend.backend(), "floatx": keras.config.floatx()}

    def repro(self: Adapter, function: str, inputs: Any, params: Any, dtype: str) -> str:
        return Adapter.repro(self, function, inputs, keras_spelling(self, function, params), dtype)

    table = {**activations(keras), **losses(keras), **optimizers(keras)}
    return type(f"Keras{base.__name__}", (base,), {
        "name": name, "framework": "keras", "version": keras.__version__, "ops": table,
        "optimizer_session": optimizer_session, "environment": environment, "repro": repro, "__doc__": __doc__})


def on_tensorflow(device: str = "cpu") -> Adapter:
    keras = import_keras("tensorflow")
    from .tensorflow_adapter import TensorflowAdapter
    return _adapter(TensorflowAdapter, "keras", keras)(device)


def on_jax(device: str = "cpu") -> Adapter:
    keras = import_keras("jax")
    from .jax_adapter import JaxAdapter
    return _adapter(JaxAdapter, "keras_jax", keras)(device)
