"""The framework half of the suite's mutant backends (conformance/mutation.py): the mutants
that need torch or optax to compute their one wrong thing.  They live here because only
adapters/ imports a framework; each takes the real entry and returns the mutated one."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Callable

from .base import Op, Optimizer


def with_call(op: Op, fn: Callable[..., Any]) -> Op:
    """`op` with its call replaced by `fn`, keeping the signature the adapter inspects."""
    fn.__signature__ = inspect.signature(op.call)   # type: ignore[attr-defined]
    return replace(op, call=fn)


def relu_grad_one_at_zero(op: Op) -> Op:
    import torch
    return with_call(op, lambda x: torch.where(x >= 0, x, torch.zeros_like(x)))


def elu_straight_through(op: Op) -> Op:
    import torch.nn.functional as F
    return with_call(op, lambda x, alpha: F.elu(x.detach(), alpha) + (x - x.detach()))


def momentum_as_nesterov(opt: Optimizer) -> Optimizer:
    import torch

    def build(lr: float, momentum: float, weight_decay: float) -> Any:
        return lambda ps: torch.optim.SGD(ps, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    return replace(opt, build=build)


def amsgrad_without_bias_correction(opt: Optimizer) -> Optimizer:
    import optax

    def build(lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
              decoupled_weight_decay: int) -> Any:
        def make(learning_rate: Any, b1: Any, b2: Any, eps: Any, weight_decay: Any) -> Any:
            return optax.chain(optax.add_decayed_weights(weight_decay),
                               optax.scale_by_amsgrad(b1, b2, eps, bias_correction_mu=False, bias_correction_nu=False),
                               optax.scale_by_learning_rate(learning_rate))
        return optax.inject_hyperparams(make)(learning_rate=lr, b1=beta1, b2=beta2, eps=eps, weight_decay=weight_decay)
    return replace(opt, build=build)
