"""PyTorch: torch.nn.functional, autograd for gradients, CPU or --device=cuda."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import ml_dtypes
import numpy as np
import torch
import torch.nn.functional as F

from .base import Adapter, Fixed, Missing, NativeDefault, NotProvided, Op, Optimizer, Session, native_default, require_class_axis

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


def _reduction(fn: Callable[..., Any], **kw: Any) -> NativeDefault:
    return native_default(fn, "reduction", **kw)


def _ce(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *, reduction: str, axis: int,
        label_smoothing: float = 0.0, ignore_index: int = -100) -> torch.Tensor:
    require_class_axis(axis, input.ndim, 1, "torch.nn.functional.cross_entropy")
    return F.cross_entropy(input, target, weight=weight, reduction=reduction, label_smoothing=label_smoothing,
                           ignore_index=int(ignore_index))


def _nll(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *, reduction: str, axis: int,
         ignore_index: int = -100) -> torch.Tensor:
    require_class_axis(axis, input.ndim, 1, "torch.nn.functional.nll_loss")
    return F.nll_loss(input, target, weight=weight, reduction=reduction, ignore_index=int(ignore_index))


def _kl(input: torch.Tensor, target: torch.Tensor, *, reduction: str, axis: int) -> torch.Tensor:
    # kl_div is elementwise: the spec's per-sample divergence is its 'none' summed over the classes,
    # and the spec's mean is 'batchmean' (which divides by the size of dim 0 only).
    if reduction == "none":
        return F.kl_div(input, target, reduction="none").sum(dim=axis)
    if reduction == "mean" and input.ndim != 2:
        raise NotProvided("kl_div's 'batchmean' divides by input.size(0), the spec's mean by the number of samples")
    return F.kl_div(input, target, reduction="batchmean" if reduction == "mean" else "sum")


def _pos_weight(input: torch.Tensor, pos_weight: float) -> torch.Tensor | None:
    return None if pos_weight == 1 else torch.full((), pos_weight, dtype=input.dtype, device=input.device)


def _bce(input: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    # On CUDA an input outside [0, 1] (NaN included) is a device-side assert, which leaves the
    # CUDA context unusable for every later call in the process.  The CPU kernel raises the same
    # complaint as an ordinary error; on CUDA it is raised here, before the launch.
    if input.is_cuda and not bool(((input >= 0) & (input <= 1)).all()):
        raise RuntimeError("CUDA binary_cross_entropy asserts on the device for inputs outside [0, 1] (NaN included); "
                           "not launched, since the assert would end every later CUDA call of this run")
    return F.binary_cross_entropy(input, target, reduction=reduction)


_NO_TARGET_GRAD = "torch does not implement the derivative of binary_cross_entropy with respect to target"
LOSSES: dict[str, Op | Missing] = {
    "mse": Op(lambda input, target, reduction: F.mse_loss(input, target, reduction=reduction),
              "torch.nn.functional.mse_loss", "torch.nn.functional.mse_loss({input}, {target}, reduction={reduction})",
              native=(_reduction(F.mse_loss),)),
    "l1": Op(lambda input, target, reduction: F.l1_loss(input, target, reduction=reduction),
             "torch.nn.functional.l1_loss", "torch.nn.functional.l1_loss({input}, {target}, reduction={reduction})",
             native=(_reduction(F.l1_loss),)),
    "huber": Op(lambda input, target, reduction, delta: F.huber_loss(input, target, reduction=reduction, delta=delta),
                "torch.nn.functional.huber_loss",
                "torch.nn.functional.huber_loss({input}, {target}, reduction={reduction}, delta={delta})",
                native=(_reduction(F.huber_loss), native_default(F.huber_loss, "delta"))),
    "smooth_l1": Op(lambda input, target, reduction, beta: F.smooth_l1_loss(input, target, reduction=reduction, beta=beta),
                    "torch.nn.functional.smooth_l1_loss",
                    "torch.nn.functional.smooth_l1_loss({input}, {target}, reduction={reduction}, beta={beta})",
                    native=(_reduction(F.smooth_l1_loss), native_default(F.smooth_l1_loss, "beta"))),
    "binary_cross_entropy": Op(
        _bce, "torch.nn.functional.binary_cross_entropy",
        "torch.nn.functional.binary_cross_entropy({input}, {target}, reduction={reduction})",
        native=(_reduction(F.binary_cross_entropy),), nondifferentiable={"target": _NO_TARGET_GRAD}),
    "binary_cross_entropy_with_logits": Op(
        lambda input, target, reduction, pos_weight: F.binary_cross_entropy_with_logits(
            input, target, reduction=reduction, pos_weight=_pos_weight(input, pos_weight)),
        "torch.nn.functional.binary_cross_entropy_with_logits",
        "torch.nn.functional.binary_cross_entropy_with_logits({input}, {target}, reduction={reduction}, "
        "pos_weight=torch.tensor({pos_weight}))",
        native=(_reduction(F.binary_cross_entropy_with_logits),)),
    "cross_entropy": Op(_ce, "torch.nn.functional.cross_entropy",
                        "torch.nn.functional.cross_entropy({input}, {target}, reduction={reduction}, "
                        "label_smoothing={label_smoothing}, ignore_index={ignore_index})",
                        native=(_reduction(F.cross_entropy), native_default(F.cross_entropy, "label_smoothing"),
                                native_default(F.cross_entropy, "ignore_index"))),
    "cross_entropy_soft": Op(_ce, "torch.nn.functional.cross_entropy",
                             "torch.nn.functional.cross_entropy({input}, {target}, reduction={reduction}, "
                             "label_smoothing={label_smoothing})",
                             native=(_reduction(F.cross_entropy), native_default(F.cross_entropy, "label_smoothing"))),
    "nll": Op(_nll, "torch.nn.functional.nll_loss",
              "torch.nn.functional.nll_loss({input}, {target}, reduction={reduction}, ignore_index={ignore_index})",
              native=(_reduction(F.nll_loss), native_default(F.nll_loss, "ignore_index"))),
    "kl_div": Op(_kl, "torch.nn.functional.kl_div",
                 "torch.nn.functional.kl_div({input}, {target}, reduction='batchmean')",
                 native=(_reduction(F.kl_div, means={"mean": "mean over every element (N * C)"},
                                    source="https://pytorch.org/docs/stable/generated/torch.nn.functional.kl_div.html",
                                    note="torch documents that 'mean' is not the true KL divergence; 'batchmean' is"),
                         native_default(F.kl_div, "log_target", "log_target", canonical=False))),
}
OPS.update(LOSSES)

# ---- optimizers: torch.optim, the learning rate set in param_groups before each step

_SUTSKEVER = Fixed(0, "torch accumulates the raw gradient, buf = momentum buf + g, p -= lr buf; its docs note the "
                      "difference from Sutskever et al. (https://pytorch.org/docs/stable/generated/torch.optim.SGD.html)")


def _betas(cls: Any, i: int, spec_name: str) -> NativeDefault:
    return NativeDefault(f"betas[{i}]", spec_name, lambda: inspect.signature(cls.__init__).parameters["betas"].default[i])


def _adam_native(cls: Any) -> tuple[NativeDefault, ...]:
    return (native_default(cls.__init__, "lr"), _betas(cls, 0, "beta1"), _betas(cls, 1, "beta2"),
            native_default(cls.__init__, "eps"), native_default(cls.__init__, "weight_decay"))


def _sgd(momentum: float, nesterov: bool) -> Callable[..., Any]:
    return lambda lr, weight_decay, momentum=momentum: lambda ps: torch.optim.SGD(
        ps, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


OPTIMIZERS: dict[str, Optimizer | Missing] = {
    "sgd": Optimizer(_sgd(0.0, False), "torch.optim.SGD",
                     native=(native_default(torch.optim.SGD.__init__, "lr"), native_default(torch.optim.SGD.__init__, "weight_decay"))),
    "sgd_momentum": Optimizer(_sgd(0.9, False), "torch.optim.SGD(momentum=)",
                              native=(native_default(torch.optim.SGD.__init__, "momentum"),),
                              fixed={"lr_in_velocity": _SUTSKEVER, "decoupled_weight_decay": Fixed(0, "weight_decay is an L2 term in the gradient")}),
    "sgd_nesterov": Optimizer(_sgd(0.9, True), "torch.optim.SGD(nesterov=True)",
                              fixed={"lr_in_velocity": _SUTSKEVER, "decoupled_weight_decay": Fixed(0, "weight_decay is an L2 term in the gradient")}),
    "adagrad": Optimizer(lambda lr, eps, initial_accumulator, weight_decay: lambda ps: torch.optim.Adagrad(
        ps, lr=lr, eps=eps, initial_accumulator_value=initial_accumulator, weight_decay=weight_decay), "torch.optim.Adagrad",
        native=tuple(native_default(torch.optim.Adagrad.__init__, n, s) for n, s in (
            ("lr", "lr"), ("eps", "eps"), ("initial_accumulator_value", "initial_accumulator"), ("weight_decay", "weight_decay"))),
        fixed={"eps_inside_sqrt": Fixed(0, "std = sqrt(sum) + eps"), "decoupled_weight_decay": Fixed(0, "L2 in the gradient")}),
    "rmsprop": Optimizer(lambda lr, rho, eps, weight_decay: lambda ps: torch.optim.RMSprop(
        ps, lr=lr, alpha=rho, eps=eps, weight_decay=weight_decay), "torch.optim.RMSprop",
        native=tuple(native_default(torch.optim.RMSprop.__init__, n, s) for n, s in (("lr", "lr"), ("alpha", "rho"), ("eps", "eps"))),
        fixed={"eps_inside_sqrt": Fixed(0, "avg = sqrt(square_avg) + eps"), "decoupled_weight_decay": Fixed(0, "L2 in the gradient")}),
    "rmsprop_centered": Optimizer(lambda lr, rho, eps, weight_decay: lambda ps: torch.optim.RMSprop(
        ps, lr=lr, alpha=rho, eps=eps, weight_decay=weight_decay, centered=True), "torch.optim.RMSprop(centered=True)",
        fixed={"eps_inside_sqrt": Fixed(0, "avg = sqrt(square_avg - grad_avg^2) + eps"), "decoupled_weight_decay": Fixed(0, "L2 in the gradient")}),
    "adam": Optimizer(lambda lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay: lambda ps: torch.optim.Adam(
        ps, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, decoupled_weight_decay=bool(decoupled_weight_decay)),
        "torch.optim.Adam", native=_adam_native(torch.optim.Adam),
        fixed={"eps_hat": Fixed(0, "denom = sqrt(v) / sqrt(1 - beta2^t) + eps")}),
    "amsgrad": Optimizer(lambda lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay: lambda ps: torch.optim.Adam(
        ps, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=True,
        decoupled_weight_decay=bool(decoupled_weight_decay)), "torch.optim.Adam(amsgrad=True)",
        fixed={"eps_hat": Fixed(0, "denom = sqrt(vmax) / sqrt(1 - beta2^t) + eps"),
               "max_of_corrected": Fixed(0, "the maximum is kept over the raw second moments")}),
    "adamw": Optimizer(lambda lr, beta1, beta2, eps, weight_decay: lambda ps: torch.optim.AdamW(
        ps, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay), "torch.optim.AdamW",
        native=_adam_native(torch.optim.AdamW), fixed={"eps_hat": Fixed(0, "denom = sqrt(v) / sqrt(1 - beta2^t) + eps")}),
}
OPS.update(OPTIMIZERS)


class _TorchSession(Session):
    def __init__(self, make: Callable[[list], torch.optim.Optimizer], initial: np.ndarray, dtype: torch.dtype, device: str) -> None:
        self.p = torch.nn.Parameter(torch.tensor(initial, dtype=dtype, device=device))
        self.opt = make([self.p])

    def step(self, grad: np.ndarray, lr: float) -> np.ndarray:
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.p.grad = torch.tensor(grad, dtype=self.p.dtype, device=self.p.device)
        self.opt.step()
        return self.p.detach().cpu().numpy().copy()


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
            t = torch.from_numpy(np.array(arr.astype(np.float32), order="C"))   # exact widening
        else:
            t = torch.from_numpy(np.array(arr, order="C"))      # not ascontiguousarray: it makes 0-d arrays 1-d
        return t.to(device=self.device, dtype=DTYPES[dtype])

    def to_backend_index(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.int64)).to(self.device)

    index_repro = "torch.tensor({values})"

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

    def optimizer_session(self, built: Any, initial: np.ndarray, dtype: str) -> Session:
        return _TorchSession(built, initial, DTYPES[dtype], self.device)

    def environment(self) -> dict[str, str]:
        env = {"threads": str(torch.get_num_threads()), "mkldnn": str(torch.backends.mkldnn.is_available()),
               "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        if self.device.startswith("cuda"):
            env["gpu"] = torch.cuda.get_device_name()
            env["tf32_matmul"] = str(torch.backends.cuda.matmul.allow_tf32)
        return env



def make_adapter(device: str = "cpu") -> TorchAdapter:
    return TorchAdapter(device)
