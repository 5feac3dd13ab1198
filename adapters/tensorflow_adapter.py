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

from .base import (Adapter, Fixed, Missing, NativeDefault, Op, Optimizer, Session, native_default,  # noqa: E402
                   require_class_axis)

DTYPES = {"float64": tf.float64, "float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}


def _axis(fn: Callable[..., Any]) -> NativeDefault:
    return native_default(fn, "axis", interpret={None: -1}, note="documented: axis=None means the last axis")


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


# ---- losses: Keras loss classes (what TF users call), tf.nn where Keras lacks an option (pos_weight).
# Keras reduces the last axis before its reduction, so elementwise losses get a trailing axis of 1;
# Keras computes in floatx (float32) unless given dtype=, so the canonical call passes the input's.
K = tf.keras.losses
KERAS_REDUCTION = {"none": None, "sum": "sum", "mean": "sum_over_batch_size"}


def _keras(cls: Any, input: tf.Tensor, target: tf.Tensor, reduction: str, elementwise: bool = False, **kw: Any) -> tf.Tensor:
    loss = cls(reduction=KERAS_REDUCTION[reduction], dtype=input.dtype.name, **kw)
    if elementwise:
        out = loss(target[..., None], input[..., None])
        return out
    return loss(target, input)


def _tf_reduce(t: tf.Tensor, reduction: str) -> tf.Tensor:
    return t if reduction == "none" else (tf.reduce_sum(t) if reduction == "sum" else tf.reduce_mean(t))


def _keras_defaults(cls: Any, logits: bool | None = None) -> tuple[NativeDefault, ...]:
    init = cls.__init__
    out = [native_default(init, "reduction", interpret={"sum_over_batch_size": "mean"}),
           native_default(init, "dtype", "computation dtype", canonical="the input's dtype",
                          interpret={None: "float32 (keras floatx)"}, note="float16 and float64 inputs are computed in float32")]
    if logits is not None:
        out.append(native_default(init, "from_logits", "input convention", canonical=logits,
                                  note="from_logits=False takes the input as probabilities"))
    return tuple(out)


EPSILON = NativeDefault("keras.config.epsilon()", "probability clipping", tf.keras.config.epsilon, canonical="none",
                        note="probabilities are clipped to [epsilon, 1 - epsilon] before the log")


def _sparse_ce(input: tf.Tensor, target: tf.Tensor, *, reduction: str, axis: int, ignore_index: int = -100) -> tf.Tensor:
    ignore = int(ignore_index)
    return _keras(K.SparseCategoricalCrossentropy, input, target, reduction, from_logits=True, axis=int(axis),
                  ignore_class=None if ignore < 0 else ignore)


def _kl(input: tf.Tensor, target: tf.Tensor, *, reduction: str, axis: int) -> tf.Tensor:
    require_class_axis(axis, len(input.shape), -1, "keras.losses.KLDivergence")
    return _keras(K.KLDivergence, tf.exp(input), target, reduction)   # Keras takes probabilities, not log q


def _bce_logits(input: tf.Tensor, target: tf.Tensor, *, reduction: str, pos_weight: float) -> tf.Tensor:
    if pos_weight == 1:
        return _tf_reduce(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=input), reduction)
    return _tf_reduce(tf.nn.weighted_cross_entropy_with_logits(labels=target, logits=input, pos_weight=pos_weight), reduction)


LOSSES: dict[str, Op | Missing] = {
    "mse": Op(lambda input, target, reduction: _keras(K.MeanSquaredError, input, target, reduction, True),
              "keras.losses.MeanSquaredError", "keras.losses.MeanSquaredError(reduction={reduction})({target}, {input})",
              native=_keras_defaults(K.MeanSquaredError)),
    "l1": Op(lambda input, target, reduction: _keras(K.MeanAbsoluteError, input, target, reduction, True),
             "keras.losses.MeanAbsoluteError", "keras.losses.MeanAbsoluteError(reduction={reduction})({target}, {input})",
             native=_keras_defaults(K.MeanAbsoluteError)),
    "huber": Op(lambda input, target, reduction, delta: _keras(K.Huber, input, target, reduction, True, delta=delta),
                "keras.losses.Huber", "keras.losses.Huber(delta={delta}, reduction={reduction})({target}, {input})",
                native=_keras_defaults(K.Huber) + (native_default(K.Huber.__init__, "delta"),)),
    "smooth_l1": Missing("neither tf.nn nor keras.losses has smooth L1 (it is keras.losses.Huber(delta=beta) / beta)"),
    "binary_cross_entropy": Op(
        lambda input, target, reduction: _keras(K.BinaryCrossentropy, input, target, reduction, True),
        "keras.losses.BinaryCrossentropy", "keras.losses.BinaryCrossentropy(reduction={reduction})({target}, {input})",
        native=_keras_defaults(K.BinaryCrossentropy, logits=False) + (EPSILON,)),
    "binary_cross_entropy_with_logits": Op(
        _bce_logits, "tf.nn.weighted_cross_entropy_with_logits",
        "tf.nn.weighted_cross_entropy_with_logits(labels={target}, logits={input}, pos_weight={pos_weight})",
        native=(native_default(K.BinaryCrossentropy.__init__, "from_logits", "input convention", canonical=True,
                               note="keras.losses.BinaryCrossentropy takes probabilities unless from_logits=True"),)),
    "cross_entropy": Op(_sparse_ce, "keras.losses.SparseCategoricalCrossentropy",
                        "keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction={reduction}, "
                        "axis={axis})({target}, {input})",
                        native=_keras_defaults(K.SparseCategoricalCrossentropy, logits=True)
                        + (native_default(K.SparseCategoricalCrossentropy.__init__, "ignore_class", "ignore_index",
                                          interpret={None: -100}, note="None: nothing is ignored"),),
                        fixed={"label_smoothing": 0.0}),
    "cross_entropy_soft": Op(
        lambda input, target, reduction, axis, label_smoothing: _keras(
            K.CategoricalCrossentropy, input, target, reduction, from_logits=True, label_smoothing=label_smoothing,
            axis=int(axis)),
        "keras.losses.CategoricalCrossentropy",
        "keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing={label_smoothing}, axis={axis}, "
        "reduction={reduction})({target}, {input})",
        native=_keras_defaults(K.CategoricalCrossentropy, logits=True)
        + (native_default(K.CategoricalCrossentropy.__init__, "label_smoothing"),)),
    "nll": Missing("neither tf.nn nor keras.losses has a negative log-likelihood of log-probabilities"),
    "kl_div": Op(_kl, "keras.losses.KLDivergence", "keras.losses.KLDivergence(reduction={reduction})({target}, tf.exp({input}))",
                 native=_keras_defaults(K.KLDivergence) + (EPSILON,),
                 why="Keras takes probabilities: the canonical call passes tf.exp(input)"),
}
OPS.update(LOSSES)

# ---- optimizers: Keras 3 optimizers over a keras.Variable, the learning rate assigned before each step

keras = tf.keras
O = keras.optimizers
_DECOUPLED = Fixed(1, "Keras 3 applies weight_decay to every optimizer as p -= lr * weight_decay * p before the "
                      "step, never through the gradient (keras/src/optimizers/base_optimizer.py, _apply_weight_decay)")
_EPS_IN_SQRT = Fixed(1, "update = lr * g / sqrt(accumulator + epsilon) (keras/src/optimizers/{adagrad,rmsprop}.py)")
_EPS_HAT = Fixed(1, "alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t); p -= alpha * m / (sqrt(v) + epsilon): epsilon "
                    "meets the uncorrected root (keras/src/optimizers/adam.py)")


def _wd(weight_decay: float) -> float | None:
    return float(weight_decay) or None      # Keras takes None for no decay


def _keras_native(cls: Any, *names: tuple[str, str]) -> tuple[NativeDefault, ...]:
    return tuple(native_default(cls.__init__, k, s) for k, s in (("learning_rate", "lr"),) + names)


OPTIMIZERS: dict[str, Optimizer | Missing] = {
    "sgd": Optimizer(lambda lr, weight_decay: O.SGD(lr, weight_decay=_wd(weight_decay)), "keras.optimizers.SGD",
                     native=_keras_native(O.SGD)),
    "sgd_momentum": Optimizer(lambda lr, momentum, weight_decay: O.SGD(lr, momentum=momentum, weight_decay=_wd(weight_decay)),
                              "keras.optimizers.SGD(momentum=)", native=(native_default(O.SGD.__init__, "momentum"),),
                              fixed={"lr_in_velocity": Fixed(1, "v = momentum v - lr g"), "decoupled_weight_decay": _DECOUPLED}),
    "sgd_nesterov": Optimizer(lambda lr, momentum, weight_decay: O.SGD(lr, momentum=momentum, nesterov=True,
                                                                       weight_decay=_wd(weight_decay)),
                              "keras.optimizers.SGD(nesterov=True)",
                              fixed={"lr_in_velocity": Fixed(1, "v = momentum v - lr g"), "decoupled_weight_decay": _DECOUPLED}),
    "adagrad": Optimizer(lambda lr, eps, initial_accumulator, weight_decay: O.Adagrad(
        lr, initial_accumulator_value=initial_accumulator, epsilon=eps, weight_decay=_wd(weight_decay)), "keras.optimizers.Adagrad",
        native=_keras_native(O.Adagrad, ("epsilon", "eps"), ("initial_accumulator_value", "initial_accumulator")),
        fixed={"eps_inside_sqrt": _EPS_IN_SQRT, "decoupled_weight_decay": _DECOUPLED}),
    "rmsprop": Optimizer(lambda lr, rho, eps, weight_decay: O.RMSprop(lr, rho=rho, epsilon=eps, weight_decay=_wd(weight_decay)),
                         "keras.optimizers.RMSprop", native=_keras_native(O.RMSprop, ("rho", "rho"), ("epsilon", "eps")),
                         fixed={"eps_inside_sqrt": _EPS_IN_SQRT, "decoupled_weight_decay": _DECOUPLED}),
    "rmsprop_centered": Optimizer(lambda lr, rho, eps, weight_decay: O.RMSprop(
        lr, rho=rho, epsilon=eps, centered=True, weight_decay=_wd(weight_decay)), "keras.optimizers.RMSprop(centered=True)",
        fixed={"eps_inside_sqrt": _EPS_IN_SQRT, "decoupled_weight_decay": _DECOUPLED}),
    "adam": Optimizer(lambda lr, beta1, beta2, eps, weight_decay: O.Adam(
        lr, beta_1=beta1, beta_2=beta2, epsilon=eps, weight_decay=_wd(weight_decay)), "keras.optimizers.Adam",
        native=_keras_native(O.Adam, ("beta_1", "beta1"), ("beta_2", "beta2"), ("epsilon", "eps")),
        fixed={"eps_hat": _EPS_HAT, "decoupled_weight_decay": _DECOUPLED}),
    "amsgrad": Optimizer(lambda lr, beta1, beta2, eps, weight_decay: O.Adam(
        lr, beta_1=beta1, beta_2=beta2, epsilon=eps, amsgrad=True, weight_decay=_wd(weight_decay)),
        "keras.optimizers.Adam(amsgrad=True)",
        fixed={"eps_hat": _EPS_HAT, "decoupled_weight_decay": _DECOUPLED,
               "max_of_corrected": Fixed(0, "v_hat = maximum(v_hat, v) over the raw moments")}),
    "adamw": Optimizer(lambda lr, beta1, beta2, eps, weight_decay: O.AdamW(
        lr, weight_decay=weight_decay, beta_1=beta1, beta_2=beta2, epsilon=eps), "keras.optimizers.AdamW",
        native=_keras_native(O.AdamW, ("beta_1", "beta1"), ("beta_2", "beta2"), ("epsilon", "eps"),
                             ("weight_decay", "weight_decay")),
        fixed={"eps_hat": _EPS_HAT}),
}
OPS.update(OPTIMIZERS)


class _KerasSession(Session):
    def __init__(self, opt: Any, initial: np.ndarray, dtype: str, device: str) -> None:
        self.device = device
        with tf.device(device):
            self.var = keras.Variable(initial, dtype=dtype)
        self.opt, self.dtype = opt, dtype

    def step(self, grad: np.ndarray, lr: float) -> np.ndarray:
        with tf.device(self.device):
            self.opt.learning_rate = lr
            self.opt.apply_gradients([(tf.constant(grad, dtype=self.dtype), self.var)])
        return np.array(self.var.numpy())


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
        return _KerasSession(built, initial, dtype, self._tf_device)

    def repro(self, function: str, inputs: Any, params: Any, dtype: str) -> str:
        # Keras spells the reductions differently: show the call as a user types it.
        if "reduction" in params and self.op(function).api.startswith("keras"):
            params = {**params, "reduction": KERAS_REDUCTION[params["reduction"]]}
        return super().repro(function, inputs, params, dtype)

    def environment(self) -> dict[str, str]:
        return {"TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (oneDNN on by default on x86)"),
                "intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads()),
                "inter_op_threads": str(tf.config.threading.get_inter_op_parallelism_threads())}



def make_adapter(device: str = "cpu") -> TensorflowAdapter:
    return TensorflowAdapter(device)
