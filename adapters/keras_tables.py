"""The Keras tables: Keras's activations, losses and optimizers as adapter entries, for a given `keras` module.

Used by the Keras adapters (keras_adapter.py, on TensorFlow and on JAX) and by the TensorFlow
adapter (tf.keras's losses and optimizers).  Nothing here imports Keras: each table is built
for the `keras` module its caller imported.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any

import numpy as np

from .base import Adapter, Fixed, Missing, NativeDefault, Op, Optimizer, Session, native_default, require_class_axis, signature_default

KERAS_REDUCTION = {"none": None, "sum": "sum", "mean": "sum_over_batch_size"}


# ---- activations

def activations(keras: ModuleType) -> dict[str, Op | Missing]:
    A, ops = keras.activations, keras.ops

    def act(name: str, **kw: Any) -> Op:
        fn = getattr(A, name)
        return Op(lambda x: fn(x), f"keras.activations.{name}", f"keras.activations.{name}({{x}})", **kw)

    return {
        "sigmoid": act("sigmoid"),
        "log_sigmoid": act("log_sigmoid"),
        "tanh": act("tanh"),
        "relu": act("relu", native=(native_default(A.relu, "negative_slope", "leaky slope", canonical=0.0),
                                    native_default(A.relu, "threshold", "threshold", canonical=0.0))),
        "relu6": act("relu6"),
        "leaky_relu": Op(lambda x, negative_slope: A.leaky_relu(x, negative_slope=negative_slope),
                         "keras.activations.leaky_relu", "keras.activations.leaky_relu({x}, negative_slope={negative_slope})",
                         native=(native_default(A.leaky_relu, "negative_slope"),)),
        "elu": Op(lambda x, alpha: A.elu(x, alpha=alpha), "keras.activations.elu", "keras.activations.elu({x}, alpha={alpha})",
                  native=(native_default(A.elu, "alpha"),)),
        "selu": act("selu", fixed={"alpha": 1.6732632423543772848170429916717,
                                   "scale": 1.0507009873554804934193349852946}),
        "celu": Op(lambda x, alpha: A.celu(x, alpha=alpha), "keras.activations.celu",
                   "keras.activations.celu({x}, alpha={alpha})", native=(native_default(A.celu, "alpha"),)),
        "prelu": Missing("Keras has PReLU only as a layer with a trained slope (keras.layers.PReLU), no function"),
        "gelu": Op(lambda x: A.gelu(x, approximate=False), "keras.activations.gelu",
                   "keras.activations.gelu({x}, approximate=False)",
                   native=(native_default(A.gelu, "approximate", "approximation", canonical=False),
                           NativeDefault("keras.ops.gelu approximate", "approximation",
                                         signature_default(ops.gelu, "approximate"), canonical=False,
                                         note="keras.ops.gelu defaults to the tanh approximation, "
                                              "keras.activations.gelu to the exact one"))),
        "gelu_tanh": Op(lambda x: A.gelu(x, approximate=True), "keras.activations.gelu",
                        "keras.activations.gelu({x}, approximate=True)"),
        "silu": act("silu", fixed={"beta": 1.0}),
        "mish": act("mish"),
        "softplus": act("softplus", fixed={"beta": 1.0}),
        "softsign": act("softsign"),
        "hardtanh": act("hard_tanh", fixed={"min_val": -1.0, "max_val": 1.0}),
        "hardsigmoid": act("hard_sigmoid"),
        "hardswish": act("hard_swish"),
        "softmax": Op(lambda x, axis: A.softmax(x, axis=axis), "keras.activations.softmax",
                      "keras.activations.softmax({x}, axis={axis})", native=(native_default(A.softmax, "axis"),)),
        "log_softmax": Op(lambda x, axis: A.log_softmax(x, axis=axis), "keras.activations.log_softmax",
                          "keras.activations.log_softmax({x}, axis={axis})", native=(native_default(A.log_softmax, "axis"),)),
        "logsumexp": Op(lambda x, axis: ops.logsumexp(x, axis=axis, keepdims=True), "keras.ops.logsumexp",
                        "keras.ops.logsumexp({x}, axis={axis}, keepdims=True)",
                        native=(native_default(ops.logsumexp, "axis", note="axis=None reduces over the whole tensor"),)),
        "maxout": Missing("Keras 3 has no maxout (Keras 2's MaxoutDense layer was removed)"),
        "dropout": Op(lambda x, p, training=True: keras.random.dropout(x, p, seed=0) if training else x,
                      "keras.random.dropout", "keras.random.dropout({x}, {p}, seed=0)",
                      native=(native_default(keras.random.dropout, "rate", "p"),), differentiable=False,
                      why="the gradient of dropout depends on the random mask; checked through the kept values"),
    }


# ---- losses: Keras loss classes.  Keras reduces the last axis before its reduction, so
# elementwise losses get a trailing axis of 1; Keras computes in floatx (float32) unless
# given dtype=, so the canonical call passes the input's.

def losses(keras: ModuleType) -> dict[str, Op | Missing]:
    K, ops = keras.losses, keras.ops

    def call(cls: Any, input: Any, target: Any, reduction: str, elementwise: bool = False, **kw: Any) -> Any:
        loss = cls(reduction=KERAS_REDUCTION[reduction], dtype=keras.backend.standardize_dtype(input.dtype), **kw)
        if elementwise:
            return loss(target[..., None], input[..., None])
        return loss(target, input)

    def defaults(cls: Any, logits: bool | None = None) -> tuple[NativeDefault, ...]:
        init = cls.__init__
        out = [native_default(init, "reduction", means={"sum_over_batch_size": "mean"},
                              source="https://keras.io/api/losses/#the-reduction-argument"),
               native_default(init, "dtype", "computation dtype", canonical="the input's dtype",
                              note="None: keras.config.floatx(), float32; float16 and float64 inputs are computed in float32")]
        if logits is not None:
            out.append(native_default(init, "from_logits", "input convention", canonical=logits,
                                      note="from_logits=False takes the input as probabilities"))
        return tuple(out)

    epsilon = NativeDefault("keras.config.epsilon()", "probability clipping", keras.config.epsilon, canonical="none",
                            note="probabilities are clipped to [epsilon, 1 - epsilon] before the log")

    def sparse_ce(input: Any, target: Any, *, reduction: str, axis: int, ignore_index: int = -100) -> Any:
        ignore = int(ignore_index)
        return call(K.SparseCategoricalCrossentropy, input, target, reduction, from_logits=True, axis=int(axis),
                    ignore_class=None if ignore < 0 else ignore)

    def kl(input: Any, target: Any, *, reduction: str, axis: int) -> Any:
        require_class_axis(axis, len(input.shape), -1, "keras.losses.KLDivergence")
        return call(K.KLDivergence, ops.exp(input), target, reduction)   # Keras takes probabilities, not log q

    return {
        "mse": Op(lambda input, target, reduction: call(K.MeanSquaredError, input, target, reduction, True),
                  "keras.losses.MeanSquaredError", "keras.losses.MeanSquaredError(reduction={reduction})({target}, {input})",
                  native=defaults(K.MeanSquaredError)),
        "l1": Op(lambda input, target, reduction: call(K.MeanAbsoluteError, input, target, reduction, True),
                 "keras.losses.MeanAbsoluteError", "keras.losses.MeanAbsoluteError(reduction={reduction})({target}, {input})",
                 native=defaults(K.MeanAbsoluteError)),
        "huber": Op(lambda input, target, reduction, delta: call(K.Huber, input, target, reduction, True, delta=delta),
                    "keras.losses.Huber", "keras.losses.Huber(delta={delta}, reduction={reduction})({target}, {input})",
                    native=defaults(K.Huber) + (native_default(K.Huber.__init__, "delta"),)),
        "smooth_l1": Missing("keras.losses has no smooth L1 (it is keras.losses.Huber(delta=beta) / beta)"),
        "binary_cross_entropy": Op(
            lambda input, target, reduction: call(K.BinaryCrossentropy, input, target, reduction, True),
            "keras.losses.BinaryCrossentropy", "keras.losses.BinaryCrossentropy(reduction={reduction})({target}, {input})",
            native=defaults(K.BinaryCrossentropy, logits=False) + (epsilon,)),
        "binary_cross_entropy_with_logits": Op(
            lambda input, target, reduction: call(K.BinaryCrossentropy, input, target, reduction, True, from_logits=True),
            "keras.losses.BinaryCrossentropy(from_logits=True)",
            "keras.losses.BinaryCrossentropy(from_logits=True, reduction={reduction})({target}, {input})",
            native=defaults(K.BinaryCrossentropy, logits=True), fixed={"pos_weight": 1.0}),
        "cross_entropy": Op(sparse_ce, "keras.losses.SparseCategoricalCrossentropy",
                            "keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction={reduction}, "
                            "axis={axis})({target}, {input})",
                            native=defaults(K.SparseCategoricalCrossentropy, logits=True)
                            + (native_default(K.SparseCategoricalCrossentropy.__init__, "ignore_class", "ignore_index",
                                              note="None: nothing is ignored"),),
                            fixed={"label_smoothing": 0.0}),
        "cross_entropy_soft": Op(
            lambda input, target, reduction, axis, label_smoothing: call(
                K.CategoricalCrossentropy, input, target, reduction, from_logits=True, label_smoothing=label_smoothing,
                axis=int(axis)),
            "keras.losses.CategoricalCrossentropy",
            "keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing={label_smoothing}, axis={axis}, "
            "reduction={reduction})({target}, {input})",
            native=defaults(K.CategoricalCrossentropy, logits=True)
            + (native_default(K.CategoricalCrossentropy.__init__, "label_smoothing"),)),
        "nll": Missing("keras.losses has no negative log-likelihood of log-probabilities"),
        "kl_div": Op(kl, "keras.losses.KLDivergence",
                     "keras.losses.KLDivergence(reduction={reduction})({target}, keras.ops.exp({input}))",
                     native=defaults(K.KLDivergence) + (epsilon,),
                     why="Keras takes probabilities: the canonical call passes exp(input)"),
    }


# ---- optimizers: Keras 3 optimizers over a keras.Variable, the learning rate assigned before each step

_DECOUPLED = Fixed(1, "Keras 3 applies weight_decay to every optimizer as p -= lr * weight_decay * p before the "
                      "step, never through the gradient (keras/src/optimizers/base_optimizer.py, _apply_weight_decay)")
_EPS_IN_SQRT = Fixed(1, "update = lr * g / sqrt(accumulator + epsilon) (keras/src/optimizers/{adagrad,rmsprop}.py)")
_EPS_HAT = Fixed(1, "alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t); p -= alpha * m / (sqrt(v) + epsilon): epsilon "
                    "meets the uncorrected root (keras/src/optimizers/adam.py)")
_VELOCITY = Fixed(1, "v = momentum v - lr g")


def _wd(weight_decay: float) -> float | None:
    return float(weight_decay) or None      # Keras takes None for no decay


def optimizers(keras: ModuleType) -> dict[str, Optimizer | Missing]:
    O = keras.optimizers

    def native(cls: Any, *names: tuple[str, str]) -> tuple[NativeDefault, ...]:
        return tuple(native_default(cls.__init__, k, s) for k, s in (("learning_rate", "lr"),) + names)

    return {
        "sgd": Optimizer(lambda lr, weight_decay: O.SGD(lr, weight_decay=_wd(weight_decay)), "keras.optimizers.SGD",
                         native=native(O.SGD)),
        "sgd_momentum": Optimizer(lambda lr, momentum, weight_decay: O.SGD(lr, momentum=momentum, weight_decay=_wd(weight_decay)),
                                  "keras.optimizers.SGD(momentum=)", native=(native_default(O.SGD.__init__, "momentum"),),
                                  fixed={"lr_in_velocity": _VELOCITY, "decoupled_weight_decay": _DECOUPLED}),
        "sgd_nesterov": Optimizer(lambda lr, momentum, weight_decay: O.SGD(lr, momentum=momentum, nesterov=True,
                                                                           weight_decay=_wd(weight_decay)),
                                  "keras.optimizers.SGD(nesterov=True)",
                                  fixed={"lr_in_velocity": _VELOCITY, "decoupled_weight_decay": _DECOUPLED}),
        "adagrad": Optimizer(lambda lr, eps, initial_accumulator, weight_decay: O.Adagrad(
            lr, initial_accumulator_value=initial_accumulator, epsilon=eps, weight_decay=_wd(weight_decay)),
            "keras.optimizers.Adagrad",
            native=native(O.Adagrad, ("epsilon", "eps"), ("initial_accumulator_value", "initial_accumulator")),
            fixed={"eps_inside_sqrt": _EPS_IN_SQRT, "decoupled_weight_decay": _DECOUPLED}),
        "rmsprop": Optimizer(lambda lr, rho, eps, weight_decay: O.RMSprop(lr, rho=rho, epsilon=eps, weight_decay=_wd(weight_decay)),
                             "keras.optimizers.RMSprop", native=native(O.RMSprop, ("rho", "rho"), ("epsilon", "eps")),
                             fixed={"eps_inside_sqrt": _EPS_IN_SQRT, "decoupled_weight_decay": _DECOUPLED}),
        "rmsprop_centered": Optimizer(lambda lr, rho, eps, weight_decay: O.RMSprop(
            lr, rho=rho, epsilon=eps, centered=True, weight_decay=_wd(weight_decay)), "keras.optimizers.RMSprop(centered=True)",
            fixed={"eps_inside_sqrt": _EPS_IN_SQRT, "decoupled_weight_decay": _DECOUPLED}),
        "adam": Optimizer(lambda lr, beta1, beta2, eps, weight_decay: O.Adam(
            lr, beta_1=beta1, beta_2=beta2, epsilon=eps, weight_decay=_wd(weight_decay)), "keras.optimizers.Adam",
            native=native(O.Adam, ("beta_1", "beta1"), ("beta_2", "beta2"), ("epsilon", "eps")),
            fixed={"eps_hat": _EPS_HAT, "decoupled_weight_decay": _DECOUPLED}),
        "amsgrad": Optimizer(lambda lr, beta1, beta2, eps, weight_decay: O.Adam(
            lr, beta_1=beta1, beta_2=beta2, epsilon=eps, amsgrad=True, weight_decay=_wd(weight_decay)),
            "keras.optimizers.Adam(amsgrad=True)",
            fixed={"eps_hat": _EPS_HAT, "decoupled_weight_decay": _DECOUPLED,
                   "max_of_corrected": Fixed(0, "v_hat = maximum(v_hat, v) over the raw moments")}),
        "adamw": Optimizer(lambda lr, beta1, beta2, eps, weight_decay: O.AdamW(
            lr, weight_decay=weight_decay, beta_1=beta1, beta_2=beta2, epsilon=eps), "keras.optimizers.AdamW",
            native=native(O.AdamW, ("beta_1", "beta1"), ("beta_2", "beta2"), ("epsilon", "eps"),
                          ("weight_decay", "weight_decay")),
            fixed={"eps_hat": _EPS_HAT}),
    }


class KerasSession(Session):
    """A Keras optimizer stepping one keras.Variable; `place` is the backend's device scope, if any."""

    def __init__(self, keras: ModuleType, opt: Any, initial: np.ndarray, dtype: str, place: Any = None) -> None:
        self.keras, self.opt, self.dtype, self.place = keras, opt, dtype, place
        with self._scope():
            self.var = keras.Variable(initial, dtype=dtype)

    def _scope(self) -> Any:
        return self.place() if self.place is not None else contextlib.nullcontext()

    def step(self, grad: np.ndarray, lr: float) -> np.ndarray:
        with self._scope():
            self.opt.learning_rate = lr
            self.opt.apply_gradients([(self.keras.ops.convert_to_tensor(grad, dtype=self.dtype), self.var)])
        return np.array(self.keras.ops.convert_to_numpy(self.var.value))


def keras_spelling(adapter: Adapter, function: str, params: Any) -> Any:
    """Keras spells the reductions differently: repro snippets show the call as a user types it."""
    if "reduction" in params and adapter.op(function).api.startswith("keras"):
        return {**params, "reduction": KERAS_REDUCTION[params["reduction"]]}
    return params


