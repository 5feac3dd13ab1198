"""PyTorch: torch.nn.functional, autograd for gradients, CPU or --device=cuda."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import ml_dtypes
import numpy as np
import torch
import torch.nn.functional as F

from .base import Adapter, Missing, NativeDefault, Op, native_default

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _dim(fn: Callable[..., Any]) -> NativeDefault:
    return native_default(fn, "dim", "axis", note="dim=None picks an axis from the number of dimensions, with a deprecation warning")


OPS: dict[str, Op | Missing] = {
    "sigmoid": Op(lambda x: torch.sigmoid(x), "torch.sigmoid", "torch.sigmoid({x})"),
    "log_sigmoid": Op(lambda x: F.logsigmoid(x), "torch.nn.functional.logsigmoid", "torch.nn.functional.logsigmoid({x})"),
    "tanh": Op(lambda x: torch.tanh(x), "torch.tanh", "torch.tanh({x})"),
    "relu": Op(lambda x: F.relu(x), "torch.nn.functional.relu", "torch.nn.functional.relu({x})"),
    "relu6": Op(lambda x: F.relu6(x), "torch.nn.functional.relu6", "torch.nn.functional.relu6({x})"),
    "leaky_relu": Op(lambda x, negative_slope: F.leaky_relu(x, negative_slope), "torch.nn.functional.leaky_relu",
                     "torch.nn.functional.leaky_relu({x}, {negative_slope})",
                     native=(native_default(F.leaky_relu, "negative_slope"),)),
    "elu": Op(lambda x, alpha: F.elu(x, alpha), "torch.nn.functional.elu", "torch.nn.functional.elu({x}, {alpha})",
              native=(native_default(F.elu, "alpha"),)),
    "selu": Op(lambda x: F.selu(x), "torch.nn.functional.selu", "torch.nn.functional.selu({x})",
               fixed={"alpha": 1.6732632423543772848170429916717, "scale": 1.0507009873554804934193349852946}),
    "celu": Op(lambda x, alpha: F.celu(x, alpha), "torch.nn.functional.celu", "torch.nn.functional.celu({x}, {alpha})",
               native=(native_default(F.celu, "alpha"),)),
    "prelu": Op(lambda x, weight: F.prelu(x, weight), "torch.nn.functional.prelu",
                "torch.nn.functional.prelu({x}, {weight})"),
    "gelu": Op(lambda x: F.gelu(x, approximate="none"), "torch.nn.functional.gelu",
               "torch.nn.functional.gelu({x}, approximate='none')",
               native=(native_default(torch.nn.GELU.__init__, "approximate", "approximation", canonical="none"),)),
    "gelu_tanh": Op(lambda x: F.gelu(x, approximate="tanh"), "torch.nn.functional.gelu",
                    "torch.nn.functional.gelu({x}, approximate='tanh')"),
    "silu": Op(lambda x: F.silu(x), "torch.nn.functional.silu", "torch.nn.functional.silu({x})", fixed={"beta": 1.0}),
    "mish": Op(lambda x: F.mish(x), "torch.nn.functional.mish", "torch.nn.functional.mish({x})"),
    # The default threshold=20 is kept: it is what every user of F.softplus gets, and the
    # public API offers no way to turn it off (threshold=inf overflows exp for large x).
    "softplus": Op(lambda x, beta: F.softplus(x, beta=beta), "torch.nn.functional.softplus",
                   "torch.nn.functional.softplus({x}, beta={beta})",
                   native=(native_default(torch.nn.Softplus.__init__, "beta"),
                           native_default(torch.nn.Softplus.__init__, "threshold", "threshold", canonical="none",
                                    note="returns x where beta*x > threshold"))),
    "softsign": Op(lambda x: F.softsign(x), "torch.nn.functional.softsign", "torch.nn.functional.softsign({x})"),
    "hardtanh": Op(lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val), "torch.nn.functional.hardtanh",
                   "torch.nn.functional.hardtanh({x}, {min_val}, {max_val})",
                   native=(native_default(F.hardtanh, "min_val"), native_default(F.hardtanh, "max_val"))),
    "hardsigmoid": Op(lambda x: F.hardsigmoid(x), "torch.nn.functional.hardsigmoid", "torch.nn.functional.hardsigmoid({x})"),
    "hardswish": Op(lambda x: F.hardswish(x), "torch.nn.functional.hardswish", "torch.nn.functional.hardswish({x})"),
    "softmax": Op(lambda x, axis: F.softmax(x, dim=axis), "torch.nn.functional.softmax",
                  "torch.nn.functional.softmax({x}, dim={axis})", native=(_dim(F.softmax),)),
    "log_softmax": Op(lambda x, axis: F.log_softmax(x, dim=axis), "torch.nn.functional.log_softmax",
                      "torch.nn.functional.log_softmax({x}, dim={axis})", native=(_dim(F.log_softmax),)),
    "logsumexp": Op(lambda x, axis: torch.logsumexp(x, dim=axis, keepdim=True), "torch.logsumexp",
                    "torch.logsumexp({x}, dim={axis}, keepdim=True)"),
    "maxout": Missing("torch.nn.functional has no maxout (it is a reshape and amax that each model writes itself)"),
    "dropout": Op(lambda x, p, training=True: F.dropout(x, p, training=training), "torch.nn.functional.dropout",
                  "torch.nn.functional.dropout({x}, {p})", native=(native_default(F.dropout, "p"),), differentiable=False,
                  why="the gradient of dropout depends on the random mask; checked through the kept values"),
}


class TorchAdapter(Adapter):
    name = "torch"
    framework = "torch"
    version = torch.__version__
    ops = OPS
    array_repro = "torch.tensor([{values}], dtype=torch.{dtype})"

    def __init__(self, device: str = "cpu") -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("--device=cuda asked for, but torch.cuda.is_available() is False")
        super().__init__(device)

    def to_backend(self, a: np.ndarray, dtype: str) -> torch.Tensor:
        arr = np.asarray(a)
        if arr.dtype == ml_dtypes.bfloat16 or arr.dtype == np.float16:
            t = torch.from_numpy(np.ascontiguousarray(arr.astype(np.float32)))   # exact widening
        else:
            t = torch.from_numpy(np.ascontiguousarray(arr))
        return t.to(device=self.device, dtype=DTYPES[dtype])

    def to_numpy(self, t: torch.Tensor) -> np.ndarray:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.float().numpy().astype(ml_dtypes.bfloat16)
        return t.numpy()

    def vjp_call(self, fn: Callable[..., Any], args: Sequence[torch.Tensor], wrt: int, cotangent: torch.Tensor) -> torch.Tensor:
        leaves = [a.detach().clone().requires_grad_(i == wrt) for i, a in enumerate(args)]
        out = fn(*leaves)
        (grad,) = torch.autograd.grad(out, leaves[wrt], grad_outputs=cotangent.to(out.dtype))
        return grad

    def environment(self) -> dict[str, str]:
        env = {"threads": str(torch.get_num_threads()), "mkldnn": str(torch.backends.mkldnn.is_available())}
        if self.device.startswith("cuda"):
            env["gpu"] = torch.cuda.get_device_name()
            env["tf32_matmul"] = str(torch.backends.cuda.matmul.allow_tf32)
        return env



def make_adapter(device: str = "cpu") -> TorchAdapter:
    return TorchAdapter(device)
