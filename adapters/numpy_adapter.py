"""NumPy: scipy.special where it has the function, idiomatic NumPy elsewhere; no autodiff.

float16 and bfloat16 are computed the way a NumPy user gets them: NumPy's
float16 ufuncs round each operation to float16; scipy.special and bfloat16
(ml_dtypes) are used through float32 and rounded once at the end, which is
stated per function in `why`.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import ml_dtypes
import numpy as np
import scipy
import scipy.special as sp

from .base import Adapter, Missing, NativeDefault, Op, signature_default

NP = {"float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def _wide(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Compute bfloat16 (which has few NumPy loops) in float32 and round once, as a NumPy user would."""
    def call(x: np.ndarray, **kw: Any) -> np.ndarray:
        # np.where evaluates both branches, and the suite provokes overflow on purpose: NumPy's
        # floating-point warnings say nothing the values do not.
        with np.errstate(all="ignore"):
            if x.dtype == ml_dtypes.bfloat16:
                return fn(x.astype(np.float32), **kw).astype(ml_dtypes.bfloat16)
            return fn(x, **kw).astype(x.dtype, copy=False)
    call.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return call


def _axis(fn: Callable[..., Any]) -> NativeDefault:
    return NativeDefault("axis", "axis", signature_default(fn, "axis"),
                         note="axis=None reduces over the whole array, not one axis")


def _c(x: np.ndarray, v: float) -> np.ndarray:
    return np.asarray(v, dtype=x.dtype)


def _maxout(x: np.ndarray, k: int, axis: int) -> np.ndarray:
    axis = axis % x.ndim
    shape = x.shape[:axis] + (x.shape[axis] // k, k) + x.shape[axis + 1:]
    return x.reshape(shape).max(axis=axis + 1)


def _dropout(x: np.ndarray, p: float, training: bool = True, seed: int = 0) -> np.ndarray:
    if not training or p == 0:
        return x
    keep = np.random.default_rng(seed).random(x.shape) >= p
    return np.where(keep, x / _c(x, 1 - p), _c(x, 0))


OPS: dict[str, Op | Missing] = {
    "sigmoid": Op(_wide(lambda x: sp.expit(x)), "scipy.special.expit", "scipy.special.expit({x})"),
    "log_sigmoid": Op(_wide(lambda x: sp.log_expit(x)), "scipy.special.log_expit", "scipy.special.log_expit({x})"),
    "tanh": Op(_wide(lambda x: np.tanh(x)), "numpy.tanh", "numpy.tanh({x})"),
    "relu": Op(_wide(lambda x: np.maximum(x, _c(x, 0))), "numpy.maximum", "numpy.maximum({x}, 0)"),
    "relu6": Op(_wide(lambda x: np.clip(x, _c(x, 0), _c(x, 6))), "numpy.clip", "numpy.clip({x}, 0, 6)"),
    "leaky_relu": Op(_wide(lambda x, negative_slope: np.where(x > 0, x, x * _c(x, negative_slope))),
                     "numpy.where", "numpy.where({x} > 0, {x}, {x} * {negative_slope})"),
    "elu": Op(_wide(lambda x, alpha: np.where(x > 0, x, _c(x, alpha) * np.expm1(x))),
              "numpy.expm1", "numpy.where({x} > 0, {x}, {alpha} * numpy.expm1({x}))"),
    "selu": Op(_wide(lambda x, alpha, scale: _c(x, float(scale)) * np.where(x > 0, x, _c(x, float(alpha)) * np.expm1(x))),
               "numpy.expm1",
        "{scale} * numpy.where({x} > 0, {x}, {alpha} * numpy.expm1({x}))"),
    "celu": Op(_wide(lambda x, alpha: np.where(x > 0, x, _c(x, alpha) * np.expm1(x / _c(x, alpha)))),
               "numpy.expm1", "numpy.where({x} > 0, {x}, {alpha} * numpy.expm1({x} / {alpha}))"),
    "prelu": Op(lambda x, weight: np.where(x > 0, x, x * weight.reshape((1, -1) + (1,) * (x.ndim - 2))),
                "numpy.where", "numpy.where({x} > 0, {x}, {x} * {weight}[:, None])"),
    "gelu": Op(_wide(lambda x: x * (sp.erfc(-x / _c(x, np.sqrt(2))) / _c(x, 2))), "scipy.special.erfc",
               "{x} * (scipy.special.erfc(-{x} / numpy.sqrt(2)) / 2)"),
    "gelu_tanh": Op(_wide(lambda x: _c(x, 0.5) * x * (1 + np.tanh(_c(x, np.sqrt(2 / np.pi)) * (x + _c(x, 0.044715) * x ** 3)))),
                    "numpy.tanh", "0.5 * {x} * (1 + numpy.tanh(numpy.sqrt(2 / numpy.pi) * ({x} + 0.044715 * {x}**3)))"),
    "silu": Op(_wide(lambda x, beta: x * sp.expit(_c(x, beta) * x)), "scipy.special.expit", "{x} * scipy.special.expit({beta} * {x})"),
    "mish": Op(_wide(lambda x: x * np.tanh(np.logaddexp(_c(x, 0), x))), "numpy.logaddexp", "{x} * numpy.tanh(numpy.logaddexp(0, {x}))"),
    "softplus": Op(_wide(lambda x, beta: np.logaddexp(_c(x, 0), _c(x, beta) * x) / _c(x, beta)), "numpy.logaddexp",
                   "numpy.logaddexp(0, {beta} * {x}) / {beta}"),
    "softsign": Op(_wide(lambda x: x / (1 + np.abs(x))), "numpy.abs", "{x} / (1 + numpy.abs({x}))"),
    "hardtanh": Op(_wide(lambda x, min_val, max_val: np.clip(x, _c(x, min_val), _c(x, max_val))), "numpy.clip",
                   "numpy.clip({x}, {min_val}, {max_val})"),
    "hardsigmoid": Op(_wide(lambda x: np.clip(x + _c(x, 3), _c(x, 0), _c(x, 6)) / _c(x, 6)), "numpy.clip",
                      "numpy.clip({x} + 3, 0, 6) / 6"),
    # Piecewise, so that x * 6 cannot overflow and -inf * 0 cannot make a NaN.
    "hardswish": Op(_wide(lambda x: np.where(x <= -3, _c(x, 0), np.where(x >= 3, x, x * ((x + _c(x, 3)) / _c(x, 6))))),
                    "numpy.where", "numpy.where({x} <= -3, 0, numpy.where({x} >= 3, {x}, {x} * (({x} + 3) / 6)))"),
    "softmax": Op(_wide(lambda x, axis: sp.softmax(x, axis=axis)), "scipy.special.softmax",
                  "scipy.special.softmax({x}, axis={axis})", native=(_axis(sp.softmax),)),
    "log_softmax": Op(_wide(lambda x, axis: sp.log_softmax(x, axis=axis)), "scipy.special.log_softmax",
                      "scipy.special.log_softmax({x}, axis={axis})", native=(_axis(sp.log_softmax),)),
    "logsumexp": Op(_wide(lambda x, axis: np.asarray(sp.logsumexp(x, axis=axis, keepdims=True))), "scipy.special.logsumexp",
                    "scipy.special.logsumexp({x}, axis={axis}, keepdims=True)", native=(_axis(sp.logsumexp),)),
    "maxout": Op(lambda x, k, axis: _maxout(x, int(k), int(axis)), "numpy.ndarray.max",
                 "{x}.reshape(..., n, {k}).max(axis=-1)"),
    "dropout": Op(_wide(lambda x, p, training=True: _dropout(x, p, training)), "numpy.random.Generator.random",
                  "numpy.where(rng.random(x.shape) >= {p}, {x} / (1 - {p}), 0)", differentiable=False),
}


# ---- losses: NumPy has none, so these are the formulas a NumPy user writes, with scipy.special's
# xlogy/log_softmax where they exist (they settle 0 log 0 and the overflow of exp for them).

def _loss(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """bfloat16 through float32 (as _wide), for every float argument of a loss."""
    def call(input: np.ndarray, target: np.ndarray, **kw: Any) -> np.ndarray:
        dtype = input.dtype
        wide = (lambda a: a.astype(np.float32) if a is not None and a.dtype == ml_dtypes.bfloat16 else a)
        with np.errstate(all="ignore"):
            if "weight" in kw:
                kw["weight"] = wide(kw["weight"])
            out = fn(wide(input), wide(target) if target.dtype.kind == "f" else target, **kw)
        return np.asarray(out).astype(dtype, copy=False)
    call.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return call


def _reduce(loss: np.ndarray, reduction: str, count: np.ndarray | None = None) -> np.ndarray:
    if reduction == "none":
        return loss
    total = np.sum(loss)                     # pairwise summation
    if reduction == "sum":
        return total
    return total / (np.sum(count) if count is not None else loss.dtype.type(loss.size))


def _huber(d: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(d)
    return np.where(a < delta, _c(d, 0.5) * d * d, _c(d, delta) * (a - _c(d, 0.5 * delta)))


def _bce_logits(x: np.ndarray, t: np.ndarray, pw: float) -> np.ndarray:
    softplus_neg = np.maximum(-x, _c(x, 0)) + np.log1p(np.exp(-np.abs(x)))
    return (_c(x, 1) - t) * x + (_c(x, 1) + _c(x, pw - 1) * t) * softplus_neg


def _ce(input: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, *, reduction: str, axis: int,
        label_smoothing: float = 0.0, ignore_index: int = -100) -> np.ndarray:
    logp = sp.log_softmax(input, axis=axis)
    moved = np.moveaxis(logp, axis, -1)
    w = np.ones(moved.shape[-1], dtype=input.dtype) if weight is None else weight
    if target.dtype.kind in "iu":
        keep = target != ignore_index
        t = np.where(keep, target, 0)
        picked = np.take_along_axis(moved, t[..., None], axis=-1)[..., 0]
        nll = -w[t] * picked
        loss = nll
        if label_smoothing:
            loss = _c(input, 1 - label_smoothing) * nll - _c(input, label_smoothing) * (moved * w).mean(axis=-1)
        loss = np.where(keep, loss, _c(input, 0))
        return _reduce(loss, reduction, np.where(keep, w[t], _c(input, 0)))
    q = np.moveaxis(target, axis, -1) * _c(input, 1 - label_smoothing) + _c(input, label_smoothing / moved.shape[-1])
    return _reduce(-(moved * q * w).sum(axis=-1), reduction)


def _nll(input: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, *, reduction: str, axis: int,
         ignore_index: int = -100) -> np.ndarray:
    moved = np.moveaxis(input, axis, -1)
    w = np.ones(moved.shape[-1], dtype=input.dtype) if weight is None else weight
    keep = target != ignore_index
    t = np.where(keep, target, 0)
    loss = np.where(keep, -w[t] * np.take_along_axis(moved, t[..., None], axis=-1)[..., 0], _c(input, 0))
    return _reduce(loss, reduction, np.where(keep, w[t], _c(input, 0)))


LOSSES: dict[str, Op | Missing] = {
    "mse": Op(_loss(lambda input, target, reduction: _reduce((input - target) ** 2, reduction)), "numpy",
              "numpy.mean(({input} - {target}) ** 2)"),
    "l1": Op(_loss(lambda input, target, reduction: _reduce(np.abs(input - target), reduction)), "numpy",
             "numpy.mean(numpy.abs({input} - {target}))"),
    "huber": Op(_loss(lambda input, target, reduction, delta: _reduce(_huber(input - target, delta), reduction)),
                "numpy.where", "numpy.where(|d| < {delta}, 0.5 d**2, {delta} (|d| - {delta}/2)), d = {input} - {target}"),
    "smooth_l1": Op(_loss(lambda input, target, reduction, beta: _reduce(_huber(input - target, beta) / _c(input, beta),
                                                                         reduction)),
                    "numpy.where", "huber({input} - {target}, {beta}) / {beta}"),
    "binary_cross_entropy": Op(_loss(lambda input, target, reduction: _reduce(
        -(sp.xlogy(target, input) + sp.xlog1py(_c(input, 1) - target, -input)), reduction)),
        "scipy.special.xlogy", "-(scipy.special.xlogy({target}, {input}) + scipy.special.xlog1py(1 - {target}, -{input}))"),
    "binary_cross_entropy_with_logits": Op(_loss(lambda input, target, reduction, pos_weight: _reduce(
        _bce_logits(input, target, pos_weight), reduction)), "numpy.log1p",
        "(1 - t) x + (1 + (pw - 1) t) (max(-x, 0) + log1p(exp(-|x|)))"),
    "cross_entropy": Op(_loss(_ce), "scipy.special.log_softmax", "scipy.special.log_softmax({input}, axis={axis})"),
    "cross_entropy_soft": Op(_loss(_ce), "scipy.special.log_softmax", "scipy.special.log_softmax({input}, axis={axis})"),
    "nll": Op(_loss(_nll), "numpy.take_along_axis", "-numpy.take_along_axis({input}, {target}[:, None], axis=1)"),
    "kl_div": Op(_loss(lambda input, target, reduction, axis: _reduce(
        (sp.xlogy(target, target) - target * input).sum(axis=axis), reduction)),
        "scipy.special.xlogy", "(scipy.special.xlogy({target}, {target}) - {target} * {input}).sum(axis={axis})"),
}
OPS.update(LOSSES)
# NumPy has no optimizer library; the suite's own tests step NumPy optimizers by hand
# (tests/test_optimizer_checks_catch_broken.py), which is not a backend anyone ports to.
OPS.update({name: Missing("NumPy has no optimizers (torch.optim, Keras and optax do)") for name in (
    "sgd", "sgd_momentum", "sgd_nesterov", "adagrad", "rmsprop", "rmsprop_centered", "adam", "amsgrad", "adamw")})


class NumpyAdapter(Adapter):
    name = "numpy"
    framework = "scipy"
    version = f"{np.__version__} (scipy {scipy.__version__})"
    gradient_reason = "NumPy has no automatic differentiation"
    ops = OPS

    def to_backend(self, a: np.ndarray, dtype: str) -> np.ndarray:
        return np.asarray(a).astype(NP[dtype])

    def to_numpy(self, t: Any) -> np.ndarray:
        if not isinstance(t, (np.ndarray, np.generic)):
            raise TypeError(f"expected a numpy array, got {type(t).__name__}")
        return np.asarray(t)




def make_adapter(device: str = "cpu") -> NumpyAdapter:
    if device != "cpu":
        raise RuntimeError("the numpy backend runs on the CPU only")
    return NumpyAdapter(device)
