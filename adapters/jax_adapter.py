"""JAX: jax.nn (x64 enabled here, so float64 is float64), jax.vjp for gradients."""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Sequence

import jax

jax.config.update("jax_enable_x64", True)   # without it, float64 arrays silently become float32

import jax.numpy as jnp  # noqa: E402
import jax.scipy.special as jsp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from .base import Adapter, Fixed, Missing, Op, Optimizer, Session, native_default, require_class_axis  # noqa: E402

DTYPES = {"float64": jnp.float64, "float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}
nn = jax.nn


OPS: dict[str, Op | Missing] = {
    "sigmoid": Op(lambda x: nn.sigmoid(x), "jax.nn.sigmoid", "jax.nn.sigmoid({x})"),
    "log_sigmoid": Op(lambda x: nn.log_sigmoid(x), "jax.nn.log_sigmoid", "jax.nn.log_sigmoid({x})"),
    "tanh": Op(lambda x: jnp.tanh(x), "jax.numpy.tanh", "jax.numpy.tanh({x})"),
    "relu": Op(lambda x: nn.relu(x), "jax.nn.relu", "jax.nn.relu({x})"),
    "relu6": Op(lambda x: nn.relu6(x), "jax.nn.relu6", "jax.nn.relu6({x})"),
    "leaky_relu": Op(lambda x, negative_slope: nn.leaky_relu(x, negative_slope), "jax.nn.leaky_relu",
                     "jax.nn.leaky_relu({x}, {negative_slope})", native=(native_default(nn.leaky_relu, "negative_slope"),)),
    "elu": Op(lambda x, alpha: nn.elu(x, alpha), "jax.nn.elu", "jax.nn.elu({x}, {alpha})", native=(native_default(nn.elu, "alpha"),)),
    "selu": Op(lambda x: nn.selu(x), "jax.nn.selu", "jax.nn.selu({x})",
               fixed={"alpha": 1.6732632423543772848170429916717, "scale": 1.0507009873554804934193349852946}),
    "celu": Op(lambda x, alpha: nn.celu(x, alpha), "jax.nn.celu", "jax.nn.celu({x}, {alpha})", native=(native_default(nn.celu, "alpha"),)),
    "prelu": Missing("jax.nn has no prelu (Flax and Haiku provide it as a layer)"),
    "gelu": Op(lambda x: nn.gelu(x, approximate=False), "jax.nn.gelu", "jax.nn.gelu({x}, approximate=False)",
               native=(native_default(nn.gelu, "approximate", "approximation", canonical=False,
                                note="jax.nn.gelu defaults to the tanh approximation"),)),
    "gelu_tanh": Op(lambda x: nn.gelu(x, approximate=True), "jax.nn.gelu", "jax.nn.gelu({x}, approximate=True)"),
    "silu": Op(lambda x: nn.silu(x), "jax.nn.silu", "jax.nn.silu({x})", fixed={"beta": 1.0}),
    "mish": Op(lambda x: nn.mish(x), "jax.nn.mish", "jax.nn.mish({x})"),
    "softplus": Op(lambda x: nn.softplus(x), "jax.nn.softplus", "jax.nn.softplus({x})", fixed={"beta": 1.0}),
    "softsign": Op(lambda x: nn.soft_sign(x), "jax.nn.soft_sign", "jax.nn.soft_sign({x})"),
    "hardtanh": Op(lambda x: nn.hard_tanh(x), "jax.nn.hard_tanh", "jax.nn.hard_tanh({x})",
                   fixed={"min_val": -1.0, "max_val": 1.0}),
    "hardsigmoid": Op(lambda x: nn.hard_sigmoid(x), "jax.nn.hard_sigmoid", "jax.nn.hard_sigmoid({x})"),
    "hardswish": Op(lambda x: nn.hard_swish(x), "jax.nn.hard_swish", "jax.nn.hard_swish({x})"),
    "softmax": Op(lambda x, axis: nn.softmax(x, axis=axis), "jax.nn.softmax", "jax.nn.softmax({x}, axis={axis})",
                  native=(native_default(nn.softmax, "axis"),)),
    "log_softmax": Op(lambda x, axis: nn.log_softmax(x, axis=axis), "jax.nn.log_softmax",
                      "jax.nn.log_softmax({x}, axis={axis})", native=(native_default(nn.log_softmax, "axis"),)),
    "logsumexp": Op(lambda x, axis: nn.logsumexp(x, axis=axis, keepdims=True), "jax.nn.logsumexp",
                    "jax.nn.logsumexp({x}, axis={axis}, keepdims=True)",
                    native=(native_default(nn.logsumexp, "axis", note="axis=None reduces over the whole array"),)),
    "maxout": Missing("jax.nn has no maxout (it is a reshape and max that each model writes itself)"),
    "dropout": Missing("jax.nn has no dropout (Flax's nn.Dropout and optax-based code provide it)"),
}


# ---- losses: optax where it has the loss (per-sample values), jax.numpy for the reduction and
# for what optax lacks.

def _reduce(loss: jax.Array, reduction: str) -> jax.Array:
    return loss if reduction == "none" else (jnp.sum(loss) if reduction == "sum" else jnp.mean(loss))


def _soft_ce(input: jax.Array, target: jax.Array, *, reduction: str, axis: int, label_smoothing: float) -> jax.Array:
    if label_smoothing:
        require_class_axis(axis, input.ndim, -1, "optax.smooth_labels")
        target = optax.smooth_labels(target, label_smoothing)
    return _reduce(optax.softmax_cross_entropy(input, target, axis=int(axis)), reduction)


LOSSES: dict[str, Op | Missing] = {
    "mse": Op(lambda input, target, reduction: _reduce(optax.squared_error(input, target), reduction),
              "optax.squared_error", "jax.numpy.mean(optax.squared_error({input}, {target}))"),
    "l1": Op(lambda input, target, reduction: _reduce(jnp.abs(input - target), reduction), "jax.numpy.abs",
             "jax.numpy.mean(jax.numpy.abs({input} - {target}))"),
    "huber": Op(lambda input, target, reduction, delta: _reduce(optax.huber_loss(input, target, delta=delta), reduction),
                "optax.huber_loss", "jax.numpy.mean(optax.huber_loss({input}, {target}, delta={delta}))",
                native=(native_default(optax.huber_loss, "delta"),)),
    "smooth_l1": Missing("optax has no smooth L1 (it is optax.huber_loss(delta=beta) / beta)"),
    "binary_cross_entropy": Op(
        lambda input, target, reduction: _reduce(-(jsp.xlogy(target, input) + jsp.xlog1py(1 - target, -input)), reduction),
        "jax.scipy.special.xlogy", "-(jax.scipy.special.xlogy({target}, {input}) + jax.scipy.special.xlog1py(1 - {target}, -{input}))",
        why="optax has no binary cross-entropy on probabilities"),
    "binary_cross_entropy_with_logits": Op(
        lambda input, target, reduction: _reduce(optax.sigmoid_binary_cross_entropy(input, target), reduction),
        "optax.sigmoid_binary_cross_entropy", "jax.numpy.mean(optax.sigmoid_binary_cross_entropy({input}, {target}))",
        fixed={"pos_weight": 1.0}),
    "cross_entropy": Op(
        lambda input, target, reduction, axis: _reduce(
            optax.softmax_cross_entropy_with_integer_labels(input, target, axis=int(axis)), reduction),
        "optax.softmax_cross_entropy_with_integer_labels",
        "optax.softmax_cross_entropy_with_integer_labels({input}, {target}, axis={axis})",
        native=(native_default(optax.softmax_cross_entropy_with_integer_labels, "axis"),),
        fixed={"label_smoothing": 0.0, "ignore_index": -100}),
    "cross_entropy_soft": Op(_soft_ce, "optax.softmax_cross_entropy",
                             "optax.softmax_cross_entropy({input}, optax.smooth_labels({target}, {label_smoothing}), axis={axis})",
                             native=(native_default(optax.softmax_cross_entropy, "axis"),)),
    "nll": Missing("optax has no negative log-likelihood of log-probabilities"),
    "kl_div": Op(lambda input, target, reduction, axis: _reduce(optax.kl_divergence(input, target, axis=int(axis)), reduction),
                 "optax.kl_divergence", "optax.kl_divergence({input}, {target}, axis={axis})",
                 native=(native_default(optax.kl_divergence, "axis"),)),
}
OPS.update(LOSSES)

# ---- optimizers: optax, under inject_hyperparams so that the learning rate can change between steps.
# L2 weight decay is optax.add_decayed_weights before the scaling (it enters the gradient), the
# decoupled form after it (optax.adamw's own construction).

def _inject(make: Callable[..., optax.GradientTransformation], **hyper: Any) -> optax.GradientTransformation:
    return optax.inject_hyperparams(make)(**hyper)


def _l2(make: Callable[..., optax.GradientTransformation]) -> Callable[..., optax.GradientTransformation]:
    def chained(learning_rate: Any, weight_decay: Any, **kw: Any) -> optax.GradientTransformation:
        return optax.chain(optax.add_decayed_weights(weight_decay), make(learning_rate, **kw))
    # inject_hyperparams reads the factory's signature to know which arguments are hyperparameters.
    sig = inspect.signature(make)
    named = [p for p in sig.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    chained.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=named + [inspect.Parameter("weight_decay", inspect.Parameter.KEYWORD_ONLY)])
    return chained


def _amsgrad_decoupled(learning_rate: Any, b1: Any, b2: Any, eps: Any, weight_decay: Any) -> optax.GradientTransformation:
    return optax.chain(optax.scale_by_amsgrad(b1, b2, eps), optax.add_decayed_weights(weight_decay),
                       optax.scale_by_learning_rate(learning_rate))


_LR_OUTSIDE = Fixed(0, "optax.trace accumulates the raw gradient (t = g + momentum t) and the learning rate scales "
                       "the result (https://optax.readthedocs.io/en/latest/api/optimizers.html#optax.sgd)")


def _adam_like(make: Callable[..., optax.GradientTransformation], decoupled: Callable[..., optax.GradientTransformation]) -> Callable[..., Any]:
    return lambda lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay: _inject(
        decoupled if decoupled_weight_decay else _l2(make), learning_rate=lr, b1=beta1, b2=beta2, eps=eps,
        weight_decay=weight_decay)


OPTIMIZERS: dict[str, Optimizer | Missing] = {
    "sgd": Optimizer(lambda lr, weight_decay: _inject(_l2(optax.sgd), learning_rate=lr, weight_decay=weight_decay),
                     "optax.sgd", native=(native_default(optax.sgd, "learning_rate", "lr"),)),
    "sgd_momentum": Optimizer(lambda lr, momentum, weight_decay: _inject(
        _l2(optax.sgd), learning_rate=lr, momentum=momentum, weight_decay=weight_decay), "optax.sgd(momentum=)",
        native=(native_default(optax.sgd, "momentum"),), fixed={"lr_in_velocity": _LR_OUTSIDE}),
    "sgd_nesterov": Optimizer(lambda lr, momentum, weight_decay: _inject(
        _l2(lambda learning_rate, momentum: optax.sgd(learning_rate, momentum, nesterov=True)),
        learning_rate=lr, momentum=momentum, weight_decay=weight_decay), "optax.sgd(nesterov=True)",
        fixed={"lr_in_velocity": _LR_OUTSIDE}),
    "adagrad": Optimizer(lambda lr, eps, initial_accumulator, weight_decay: _inject(
        _l2(optax.adagrad), learning_rate=lr, eps=eps, initial_accumulator_value=initial_accumulator, weight_decay=weight_decay),
        "optax.adagrad", native=(native_default(optax.adagrad, "eps"),
                                 native_default(optax.adagrad, "initial_accumulator_value", "initial_accumulator")),
        fixed={"eps_inside_sqrt": Fixed(1, "scale_by_rss: g * rsqrt(sum + eps), and 0 where the sum is 0 "
                                           "(optax/_src/transform.py)")}),
    "rmsprop": Optimizer(lambda lr, rho, eps, weight_decay, eps_inside_sqrt: _inject(
        _l2(lambda learning_rate, decay, eps: optax.rmsprop(learning_rate, decay, eps, eps_in_sqrt=bool(eps_inside_sqrt))),
        learning_rate=lr, decay=rho, eps=eps, weight_decay=weight_decay), "optax.rmsprop",
        native=(native_default(optax.rmsprop, "decay", "rho"), native_default(optax.rmsprop, "eps"),
                native_default(optax.rmsprop, "eps_in_sqrt", "eps_inside_sqrt", means={True: 1, False: 0},
                               source="https://optax.readthedocs.io/en/latest/api/optimizers.html#optax.rmsprop"))),
    "rmsprop_centered": Optimizer(lambda lr, rho, eps, weight_decay, eps_inside_sqrt: _inject(
        _l2(lambda learning_rate, decay, eps: optax.rmsprop(learning_rate, decay, eps, eps_in_sqrt=bool(eps_inside_sqrt),
                                                            centered=True)),
        learning_rate=lr, decay=rho, eps=eps, weight_decay=weight_decay), "optax.rmsprop(centered=True)"),
    "adam": Optimizer(_adam_like(optax.adam, optax.adamw), "optax.adam",
                      native=tuple(native_default(optax.adam, k, s) for k, s in (("b1", "beta1"), ("b2", "beta2"), ("eps", "eps")))),
    "amsgrad": Optimizer(_adam_like(optax.amsgrad, _amsgrad_decoupled), "optax.amsgrad",
                         fixed={"max_of_corrected": Fixed(1, "scale_by_amsgrad keeps the maximum of the bias-corrected "
                                                             "second moments (optax/_src/transform.py)")}),
    "adamw": Optimizer(lambda lr, beta1, beta2, eps, weight_decay: _inject(
        optax.adamw, learning_rate=lr, b1=beta1, b2=beta2, eps=eps, weight_decay=weight_decay), "optax.adamw",
        native=(native_default(optax.adamw, "weight_decay"),)),
}
OPS.update(OPTIMIZERS)


class _OptaxSession(Session):
    def __init__(self, tx: optax.GradientTransformation, initial: np.ndarray, dtype: str, device: Any) -> None:
        self.params = jax.device_put(jnp.asarray(initial, dtype=DTYPES[dtype]), device)
        self.tx, self.state = tx, tx.init(self.params)

    def step(self, grad: np.ndarray, lr: float) -> np.ndarray:
        self.state.hyperparams["learning_rate"] = lr
        g = jax.device_put(jnp.asarray(grad, dtype=self.params.dtype), self.params.device)
        updates, self.state = self.tx.update(g, self.state, self.params)
        self.params = optax.apply_updates(self.params, updates)
        return np.asarray(self.params)


class JaxAdapter(Adapter):
    name = "jax"
    framework = "jax"
    version = jax.__version__
    ops = OPS
    array_repro = "jax.numpy.array([{values}], dtype='{dtype}')"

    def __init__(self, device: str = "cpu") -> None:
        platform = "gpu" if device.startswith("cuda") else "cpu"
        try:
            self._device = jax.devices(platform)[0]
        except RuntimeError as exc:
            raise RuntimeError(f"jax has no {platform} device: {exc}") from None
        super().__init__(device)

    def to_backend(self, a: np.ndarray, dtype: str) -> jax.Array:
        return jax.device_put(jnp.asarray(np.asarray(a), dtype=DTYPES[dtype]), self._device)

    def to_backend_index(self, a: np.ndarray) -> jax.Array:
        return jax.device_put(jnp.asarray(np.asarray(a), dtype=jnp.int64), self._device)

    index_repro = "jax.numpy.array({values})"

    def to_numpy(self, t: Any) -> np.ndarray:
        if not isinstance(t, jax.Array):
            raise TypeError(f"expected a jax.Array, got {type(t).__name__}")
        return np.asarray(t)

    def vjp_call(self, fn: Callable[..., Any], args: Sequence[Any], wrt: int, cotangent: Any) -> Any:
        def only(v: Any) -> Any:
            full = list(args)
            full[wrt] = v
            return fn(*full)
        _, pullback = jax.vjp(only, args[wrt])
        return pullback(cotangent)[0]

    def optimizer_session(self, built: Any, initial: np.ndarray, dtype: str) -> Session:
        return _OptaxSession(built, initial, dtype, self._device)

    def environment(self) -> dict[str, str]:
        return {"x64": str(jax.config.jax_enable_x64), "platform": self._device.platform,
                "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}



def make_adapter(device: str = "cpu") -> JaxAdapter:
    return JaxAdapter(device)
