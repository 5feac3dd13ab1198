"""TensorFlow: eager tf.nn / tf.math, tf.GradientTape for gradients.

TF's numerics depend on oneDNN (TF_ENABLE_ONEDNN_OPTS) and its thread pools;
both are recorded in the run's header.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # keep the run's output readable

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from . import keras_tables  # noqa: E402
from .base import Adapter, Missing, NativeDefault, Op, Session, native_default  # noqa: E402

DTYPES = {"float64": tf.float64, "float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}


def _axis(fn: Callable[..., Any]) -> NativeDefault:
    return native_default(fn, "axis", means={None: -1}, source="https://www.tensorflow.org/api_docs/python/tf/nn/softmax",
                          note="documented: axis=None means the last axis")


OPS: dict[str, Op | Missing] = {
    "sigmoid": Op(lambda x: tf.math.sigmoid(x), "tf.math.sigmoid", "tf.math.sigmoid({x})"),
    "log_sigmoid": Op(lambda x: tf.math.log_sigmoid(x), "tf.math.log_sigmoid", "tf.math.log_sigmoid({x})"),
    "tanh": Op(lambda x: tf.math.tanh(x), "tf.math.tanh", "tf.math.tanh({x})"),
    "relu": Op(lambda x: tf.nn.relu(x), "tf.nn.relu", "tf.nn.relu({x})"),
    "relu6": Op(lambda x: tf.nn.relu6(x), "tf.nn.relu6", "tf.nn.relu6({x})"),
    "leaky_relu": Op(lambda x, negative_slope: tf.nn.leaky_relu(x, alpha=negative_slope), "tf.nn.leaky_relu",
                     "tf.nn.leaky_relu({x}, alpha={negative_slope})",
                     native=(native_default(tf.nn.leaky_relu, "alpha", "negative_slope"),)),
    "elu": Op(lambda x: tf.nn.elu(x), "tf.nn.elu", "tf.nn.elu({x})", fixed={"alpha": 1.0}),
    "selu": Op(lambda x: tf.nn.selu(x), "tf.nn.selu", "tf.nn.selu({x})",
               fixed={"alpha": 1.6732632423543772848170429916717, "scale": 1.0507009873554804934193349852946}),
    "celu": Missing("tf.nn has no celu (Keras 3 provides keras.activations.celu)"),
    "prelu": Missing("tf.nn has no prelu (Keras provides it as the PReLU layer)"),
    "gelu": Op(lambda x: tf.nn.gelu(x, approximate=False), "tf.nn.gelu", "tf.nn.gelu({x}, approximate=False)",
               native=(native_default(tf.nn.gelu, "approximate", "approximation", canonical=False),)),
    "gelu_tanh": Op(lambda x: tf.nn.gelu(x, approximate=True), "tf.nn.gelu", "tf.nn.gelu({x}, approximate=True)"),
    "silu": Op(lambda x, beta: tf.nn.silu(x, beta=beta), "tf.nn.silu", "tf.nn.silu({x}, beta={beta})",
               native=(native_default(tf.nn.silu, "beta"),)),
    "mish": Missing("tf.nn has no mish (TensorFlow Addons, now unmaintained, had tfa.activations.mish)"),
    "softplus": Op(lambda x: tf.math.softplus(x), "tf.math.softplus", "tf.math.softplus({x})", fixed={"beta": 1.0}),
    "softsign": Op(lambda x: tf.nn.softsign(x), "tf.nn.softsign", "tf.nn.softsign({x})"),
    "hardtanh": Op(lambda x, min_val, max_val: tf.clip_by_value(x, min_val, max_val), "tf.clip_by_value",
                   "tf.clip_by_value({x}, {min_val}, {max_val})"),
    "hardsigmoid": Missing("tf.nn has no hard sigmoid (Keras provides keras.activations.hard_sigmoid)"),
    "hardswish": Missing("tf.nn has no hard swish (Keras provides keras.activations.hard_swish)"),
    "softmax": Op(lambda x, axis: tf.nn.softmax(x, axis=axis), "tf.nn.softmax", "tf.nn.softmax({x}, axis={axis})",
                  native=(_axis(tf.nn.softmax),)),
    "log_softmax": Op(lambda x, axis: tf.nn.log_softmax(x, axis=axis), "tf.nn.log_softmax",
                      "tf.nn.log_softmax({x}, axis={axis})", native=(_axis(tf.nn.log_softmax),)),
    "logsumexp": Op(lambda x, axis: tf.math.reduce_logsumexp(x, axis=axis, keepdims=True), "tf.math.reduce_logsumexp",
                    "tf.math.reduce_logsumexp({x}, axis={axis}, keepdims=True)",
                    native=(native_default(tf.math.reduce_logsumexp, "axis", note="axis=None reduces over the whole tensor"),)),
    "maxout": Missing("tf.nn has no maxout (TensorFlow Addons had tfa.layers.Maxout)"),
    "dropout": Op(lambda x, p, training=True: tf.nn.dropout(x, rate=p, seed=0) if training else x, "tf.nn.dropout",
                  "tf.nn.dropout({x}, rate={p})", native=(native_default(tf.nn.dropout, "rate", "p"),), differentiable=False,
                  why="the gradient of dropout depends on the random mask; checked through the kept values"),
}


# ---- losses and optimizers: Keras's (what TF users call), shared with the Keras adapter; tf.nn where
# Keras lacks an option (pos_weight).

def _tf_reduce(t: tf.Tensor, reduction: str) -> tf.Tensor:
    return t if reduction == "none" else (tf.reduce_sum(t) if reduction == "sum" else tf.reduce_mean(t))


def _bce_logits(input: tf.Tensor, target: tf.Tensor, *, reduction: str, pos_weight: float) -> tf.Tensor:
    if pos_weight == 1:
        return _tf_reduce(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=input), reduction)
    return _tf_reduce(tf.nn.weighted_cross_entropy_with_logits(labels=target, logits=input, pos_weight=pos_weight), reduction)


OPS.update(keras_tables.losses(tf.keras))
OPS["binary_cross_entropy_with_logits"] = Op(
    _bce_logits, "tf.nn.weighted_cross_entropy_with_logits",
    "tf.nn.weighted_cross_entropy_with_logits(labels={target}, logits={input}, pos_weight={pos_weight})",
    native=(native_default(tf.keras.losses.BinaryCrossentropy.__init__, "from_logits", "input convention", canonical=True,
                           note="keras.losses.BinaryCrossentropy takes probabilities unless from_logits=True"),))
OPS.update(keras_tables.optimizers(tf.keras))


class TensorflowAdapter(Adapter):
    name = "tensorflow"
    framework = "tensorflow"
    version = tf.__version__
    ops = OPS
    array_repro = "tf.constant([{values}], dtype=tf.{dtype})"
    reshape_repro = "tf.reshape({array}, {shape})"

    def __init__(self, device: str = "cpu") -> None:
        if device.startswith("cuda") and not tf.config.list_physical_devices("GPU"):
            raise RuntimeError("--device=cuda asked for, but TensorFlow sees no GPU")
        super().__init__(device)
        self._tf_device = "/GPU:0" if device.startswith("cuda") else "/CPU:0"

    def to_backend(self, a: np.ndarray, dtype: str) -> tf.Tensor:
        with tf.device(self._tf_device):
            return tf.constant(np.asarray(a), dtype=DTYPES[dtype])

    def to_backend_index(self, a: np.ndarray) -> tf.Tensor:
        with tf.device(self._tf_device):
            return tf.constant(np.asarray(a, dtype=np.int64))

    index_repro = "tf.constant({values})"

    def to_numpy(self, t: Any) -> np.ndarray:
        if not isinstance(t, (tf.Tensor, tf.Variable)):
            raise TypeError(f"expected a tf.Tensor, got {type(t).__name__}")
        return np.asarray(t.numpy())          # a 0-d tensor gives a NumPy scalar, not an array

    def vjp_call(self, fn: Callable[..., Any], args: Sequence[Any], wrt: int, cotangent: Any) -> Any:
        with tf.device(self._tf_device):
            with tf.GradientTape() as tape:
                tape.watch(args[wrt])
                out = fn(*args)
            grad = tape.gradient(out, args[wrt], output_gradients=tf.cast(cotangent, out.dtype))
        if grad is None:
            raise RuntimeError("tf.GradientTape returned None: the output does not depend on the input")
        return grad

    def optimizer_session(self, built: Any, initial: np.ndarray, dtype: str) -> Session:
        return keras_tables.KerasSession(tf.keras, built, initial, dtype, place=lambda: tf.device(self._tf_device))

    def repro(self, function: str, inputs: Any, params: Any, dtype: str) -> str:
        return super().repro(function, inputs, keras_tables.keras_spelling(self, function, params), dtype)

    def environment(self) -> dict[str, str]:
        return {"TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (oneDNN on by default on x86)"),
                "intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads()),
                "inter_op_threads": str(tf.config.threading.get_inter_op_parallelism_threads())}



def make_adapter(device: str = "cpu") -> TensorflowAdapter:
    return TensorflowAdapter(device)
