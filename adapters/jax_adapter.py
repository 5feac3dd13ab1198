"""JAX: jax.nn (x64 enabled here, so float64 is float64), jax.vjp for gradients."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax

jax.config.update("jax_enable_x64", True)   # without it, float64 arrays silently become float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from .base import Adapter, Missing, Op, native_default  # noqa: E402

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

    def environment(self) -> dict[str, str]:
        return {"x64": str(jax.config.jax_enable_x64), "platform": self._device.platform,
                "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}



def make_adapter(device: str = "cpu") -> JaxAdapter:
    return JaxAdapter(device)
