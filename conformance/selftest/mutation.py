"""Mutation testing: does the suite catch a backend that gets one thing wrong?

Each mutant wraps a real backend and changes one function in one way a real
implementation could get wrong (a naive formula, a wrong default, a wrong
gradient at a kink, lowered precision, NaN swallowed or produced, a wrong axis,
an off-by-one count, a missing bias correction, a wrong epsilon, a dropped
label smoothing term, a wrong output dtype or shape).  The mutant is *killed*
when some check of that function fails on the mutant and passes (or is
skipped) on the real backend: a finding the real backend already has does not
count.

    python -m nnconform.conformance.selftest.mutation [--fast] [--only NAME,...]

prints, per mutant, killed or SURVIVED and the checks that killed it, then the
kill rate; it exits non-zero if any mutant survives.  `--fast` (CI) checks
float64 and float32 only, with fewer Hypothesis examples.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pytest

from nnconform.adapters.base import Adapter, Op, Optimizer
from nnconform.adapters.mutant_ops import (
    amsgrad_without_bias_correction,
    elu_straight_through,
    momentum_as_nesterov,
    relu_grad_one_at_zero,
    with_call,
)
from nnconform.adapters.registry import load
from nnconform.reference import Reference, ReferenceCache
from nnconform.spec import load_all

from .. import kinds
from ..core import CheckFailure, Context
from ..families import CaseBuilder, run

Mutate = Callable[[Any], Any]     # the real Op (or Optimizer) -> the mutated one


@dataclass(frozen=True)
class Mutant:
    name: str
    backend: str
    function: str
    what: str                       # the mistake, as a reviewer would describe it
    mutate: Mutate
    expect: tuple[str, ...] = ()    # the checks meant to catch it (documentation; the run reports what did)
    dtypes: tuple[str, ...] = field(default=("float64", "float32"))


def _np(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def quiet(*a: Any, **k: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return fn(*a, **k)
    return quiet


def _c(x: np.ndarray, v: float) -> np.ndarray:
    return np.asarray(v, dtype=x.dtype)


# ---------------------------------------------------------------- activations (NumPy)

def _naive_softplus(op: Op) -> Op:
    return with_call(op, _np(lambda x, beta: np.log(_c(x, 1) + np.exp(_c(x, beta) * x)) / _c(x, beta)))


def _naive_log_softmax(op: Op) -> Op:
    def f(x: np.ndarray, axis: int) -> np.ndarray:
        e = np.exp(x)
        return np.log(e / e.sum(axis=axis, keepdims=True))
    return with_call(op, _np(f))


def _naive_tanh(op: Op) -> Op:
    return with_call(op, _np(lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1)))


def _keras_slope(op: Op) -> Op:
    return with_call(op, _np(lambda x, negative_slope: np.where(x > 0, x, x * _c(x, 0.2))))


def _in_lower(op: Op, lower: Callable[[np.dtype], Any]) -> Op:
    inner = op.call

    def f(x: np.ndarray, **kw: Any) -> np.ndarray:
        return np.asarray(inner(x.astype(lower(x.dtype)), **kw)).astype(x.dtype)
    return with_call(op, _np(f))


def _nan_swallowed(op: Op) -> Op:
    inner = op.call
    return with_call(op, _np(lambda x, axis: np.nan_to_num(inner(x, axis=axis), nan=0.0)))


def _nan_from_inf(op: Op) -> Op:
    return with_call(op, _np(lambda x: np.exp(x) / (_c(x, 1) + np.exp(x))))


def _wrong_axis(op: Op) -> Op:
    inner = op.call
    return with_call(op, _np(lambda x, axis: inner(x, axis=0 if x.ndim > 1 and axis in (-1, x.ndim - 1) else -1)))


def _wrong_dtype(op: Op) -> Op:
    return with_call(op, _np(lambda x: np.maximum(x, 0).astype(np.float64)))


def _wrong_shape(op: Op) -> Op:
    inner = op.call
    return with_call(op, _np(lambda x, axis: np.squeeze(inner(x, axis=axis), axis=axis)))


def _hard_sigmoid_keras2(op: Op) -> Op:
    return with_call(op, _np(lambda x: np.clip(_c(x, 0.2) * x + _c(x, 0.5), _c(x, 0), _c(x, 1))))


# ---------------------------------------------------------------- losses (NumPy)

def _mean_over_n_minus_1(op: Op) -> Op:
    inner = op.call

    def f(input: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
        if reduction != "mean":
            return inner(input, target, reduction=reduction)
        total = np.sum((input - target) ** 2)
        return total / _c(input, max(input.size - 1, 1))
    return with_call(op, _np(f))


def _no_label_smoothing(op: Op) -> Op:
    inner = op.call

    def f(input: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, *, reduction: str, axis: int,
          label_smoothing: float = 0.0, ignore_index: int = -100) -> np.ndarray:
        return inner(input, target, weight=weight, reduction=reduction, axis=axis, ignore_index=ignore_index)
    return with_call(op, _np(f))


def _weighted_mean_over_n(op: Op) -> Op:
    inner = op.call

    def f(input: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, *, reduction: str, axis: int,
          label_smoothing: float = 0.0, ignore_index: int = -100) -> np.ndarray:
        if reduction != "mean" or weight is None:
            return inner(input, target, weight=weight, reduction=reduction, axis=axis, label_smoothing=label_smoothing,
                         ignore_index=ignore_index)
        per = inner(input, target, weight=weight, reduction="none", axis=axis, label_smoothing=label_smoothing,
                    ignore_index=ignore_index)
        return np.sum(per) / _c(input, per.size)
    return with_call(op, _np(f))


def _ignore_index_ignored(op: Op) -> Op:
    inner = op.call

    def f(input: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, *, reduction: str, axis: int,
          ignore_index: int = -100) -> np.ndarray:
        safe = np.where(target == ignore_index, 0, target)
        return inner(input, safe, weight=weight, reduction=reduction, axis=axis)
    return with_call(op, _np(f))


def _naive_bce_logits(op: Op) -> Op:
    def f(input: np.ndarray, target: np.ndarray, reduction: str, pos_weight: float) -> np.ndarray:
        s = _c(input, 1) / (_c(input, 1) + np.exp(-input))
        loss = -(_c(input, pos_weight) * target * np.log(s) + (_c(input, 1) - target) * np.log(_c(input, 1) - s))
        return loss if reduction == "none" else (loss.sum() if reduction == "sum" else loss.mean())
    return with_call(op, _np(f))


def _gelu_tanh(op: Op) -> Op:
    k = np.sqrt(2 / np.pi)
    return with_call(op, _np(lambda x: _c(x, 0.5) * x * (1 + np.tanh(_c(x, k) * (x + _c(x, 0.044715) * x ** 3)))))


# ---------------------------------------------------------------- optimizers (torch, optax)

def _build(opt: Optimizer, change: Callable[[dict], dict]) -> Optimizer:
    inner = opt.build

    def build(**hyper: Any) -> Any:
        return inner(**change(hyper))
    build.__signature__ = inspect.signature(inner)   # type: ignore[attr-defined]
    return replace(opt, build=build)


def _eps_times_100(opt: Optimizer) -> Optimizer:
    return _build(opt, lambda h: {**h, "eps": h["eps"] * 100})


def _adam_decoupled(opt: Optimizer) -> Optimizer:
    return _build(opt, lambda h: {**h, "decoupled_weight_decay": 1})


def _rmsprop_alpha_as_decay_of_g(opt: Optimizer) -> Optimizer:
    return _build(opt, lambda h: {**h, "rho": 1 - h["rho"]})          # the rate confused with its complement


CATALOGUE: tuple[Mutant, ...] = (
    Mutant("softplus-naive", "numpy", "softplus", "log(1 + exp(beta x)) / beta: overflows for large x", _naive_softplus,
           ("stability", "extremes")),
    Mutant("log_softmax-naive", "numpy", "log_softmax", "log(exp(x) / sum exp(x)): overflow and log(0)", _naive_log_softmax,
           ("stability", "value")),
    Mutant("tanh-naive", "numpy", "tanh", "(e^2x - 1) / (e^2x + 1): inf / inf for large x, cancellation near 0",
           _naive_tanh, ("value", "extremes")),
    Mutant("leaky_relu-keras-slope", "numpy", "leaky_relu", "ignores negative_slope and uses Keras's 0.2", _keras_slope,
           ("value",)),
    Mutant("hardsigmoid-keras2", "numpy", "hardsigmoid", "Keras 2's 0.2 x + 0.5 where the spec has x / 6 + 1/2",
           _hard_sigmoid_keras2, ("value",)),
    Mutant("gelu-float64-in-float32", "numpy", "gelu", "float64 silently computed in float32",
           lambda op: _in_lower(op, lambda d: np.float32 if d == np.float64 else d), ("value",)),
    Mutant("sigmoid-float32-in-float16", "numpy", "sigmoid", "float32 silently computed in float16",
           lambda op: _in_lower(op, lambda d: np.float16 if d == np.float32 else d), ("value",)),
    Mutant("softmax-nan-swallowed", "numpy", "softmax", "NaN replaced by 0 (nan_to_num)", _nan_swallowed, ("special",)),
    Mutant("sigmoid-nan-at-inf", "numpy", "sigmoid", "exp(x) / (1 + exp(x)): inf / inf = NaN for large x, where it is 1",
           _nan_from_inf, ("special", "stability")),
    Mutant("softmax-wrong-axis", "numpy", "softmax", "normalises over axis 0 instead of the given axis", _wrong_axis,
           ("value", "properties")),
    Mutant("relu-wrong-dtype", "numpy", "relu", "returns float64 whatever the input dtype", _wrong_dtype, ("dtype",)),
    Mutant("logsumexp-wrong-shape", "numpy", "logsumexp", "drops the reduced axis (keepdims=False)", _wrong_shape,
           ("dtype", "value")),
    Mutant("mse-mean-off-by-one", "numpy", "mse", "mean divides by n - 1", _mean_over_n_minus_1, ("value",)),
    Mutant("cross_entropy-no-label-smoothing", "numpy", "cross_entropy", "drops the label-smoothing term",
           _no_label_smoothing, ("value",)),
    Mutant("cross_entropy-weighted-mean-over-n", "numpy", "cross_entropy",
           "with class weights, mean divides by N instead of the sum of target weights", _weighted_mean_over_n, ("value",)),
    Mutant("nll-ignore_index-ignored", "numpy", "nll", "scores ignored samples as class 0", _ignore_index_ignored,
           ("value",)),
    Mutant("bce_with_logits-naive", "numpy", "binary_cross_entropy_with_logits",
           "log(sigmoid(x)) and log(1 - sigmoid(x)): -inf for large logits", _naive_bce_logits, ("value", "stability")),
    Mutant("relu-gradient-one-at-zero", "torch", "relu", "where(x >= 0, x, 0): relu'(0) = 1, not the spec's 0",
           relu_grad_one_at_zero, ("kink",)),
    Mutant("elu-straight-through-gradient", "torch", "elu",
           "a straight-through gradient (1 everywhere): the value is right, the gradient is not",
           elu_straight_through, ("gradient",)),
    Mutant("gelu-tanh-approximation", "numpy", "gelu", "the tanh approximation where the exact erf form is asked",
           _gelu_tanh, ("value",)),
    Mutant("adam-eps-100x", "torch", "adam", "epsilon 100 times too large (a wrong default carried over)", _eps_times_100,
           ("stability", "trajectory")),
    Mutant("adam-decay-decoupled", "torch", "adam", "decoupled weight decay where Adam's L2 term is asked",
           _adam_decoupled, ("weight_decay",)),
    Mutant("sgd_momentum-as-nesterov", "torch", "sgd_momentum", "Nesterov's update where plain momentum is asked",
           momentum_as_nesterov, ("trajectory",)),
    Mutant("amsgrad-no-bias-correction", "jax", "amsgrad", "Reddi et al.'s form without Adam's bias corrections",
           amsgrad_without_bias_correction, ("trajectory",)),
    Mutant("rmsprop-rho-complement", "torch", "rmsprop", "the decay rate confused with its complement (1 - rho)",
           _rmsprop_alpha_as_decay_of_g, ("trajectory",)),
)

FAST = ("softplus-naive", "gelu-float64-in-float32", "softmax-nan-swallowed", "relu-wrong-dtype", "mse-mean-off-by-one",
        "cross_entropy-no-label-smoothing", "relu-gradient-one-at-zero", "elu-straight-through-gradient", "adam-eps-100x",
        "adam-decay-decoupled")


# ---------------------------------------------------------------- running

def mutated(adapter: Adapter, m: Mutant) -> Adapter:
    """A copy of `adapter` whose entry for `m.function` is mutated; everything else is the real backend."""
    twin = copy.copy(adapter)
    twin.ops = {**adapter.ops, m.function: m.mutate(adapter.op(m.function))}
    twin.name = f"{adapter.name}+{m.name}"
    return twin


def verdicts(adapter: Adapter, function: str, dtypes: tuple[str, ...], examples: int) -> dict[str, str]:
    """Case id -> "pass", "skip" or "fail: <first line>" for every check of one function."""
    specs = load_all()
    ctx = Context(adapter, Reference(ReferenceCache()), max_examples=examples)
    cases = CaseBuilder(adapter, ctx.reference, dtypes, kinds.NAMES).build([specs[function]])
    out: dict[str, str] = {}
    for case in cases:
        try:
            run(ctx, case)
            out[case.id] = "pass"
        except CheckFailure as exc:
            out[case.id] = "fail: " + str(exc).splitlines()[0]
        except pytest.skip.Exception:
            out[case.id] = "skip"
        except Exception as exc:   # noqa: BLE001 - the suite itself broke on this mutant: a survivor, shown
            out[case.id] = f"error: {type(exc).__name__}: {exc}"
    ctx.reference.flush()
    return out


@dataclass
class Outcome:
    mutant: Mutant
    killed_by: list[str]
    errors: list[str]
    seconds: float
    crashed: list[str] = field(default_factory=list)   # the mutant itself raised: not a fair kill

    @property
    def killed(self) -> bool:
        return bool(self.killed_by) and not self.crashed


def run_mutants(mutants: tuple[Mutant, ...], dtypes: tuple[str, ...], examples: int) -> list[Outcome]:
    adapters: dict[str, Adapter] = {}
    baseline: dict[tuple[str, str], dict[str, str]] = {}
    outcomes = []
    for m in mutants:
        start = time.perf_counter()
        real = adapters.setdefault(m.backend, load(m.backend))
        dts = tuple(d for d in m.dtypes if d in dtypes) or dtypes
        key = (m.backend, m.function)
        if key not in baseline:
            baseline[key] = verdicts(real, m.function, dts, examples)
        mine = verdicts(mutated(real, m), m.function, dts, examples)
        base = baseline[key]
        killed = sorted(cid for cid, v in mine.items() if v.startswith("fail") and not base.get(cid, "").startswith("fail"))
        errors = [f"{cid}: {v}" for cid, v in mine.items() if v.startswith("error")]
        # A mutant must compute something wrong, not fail to compute: a TypeError of the
        # mutant's own making would be "killed" by every check and prove nothing.
        crashed = [cid for cid in killed if f"{real.name}+{m.name} raised TypeError" in mine[cid]]
        outcomes.append(Outcome(m, killed, errors, time.perf_counter() - start, crashed))
    return outcomes


def report(outcomes: list[Outcome]) -> str:
    lines = []
    for o in outcomes:
        m = o.mutant
        if o.crashed:
            lines.append(f"INVALID   {m.name:40s} the mutant raised TypeError (first: {o.crashed[0]})")
        elif o.killed:
            checks = sorted({cid.split(" ")[1] for cid in o.killed_by})
            lines.append(f"killed    {m.name:40s} by {', '.join(checks)} ({len(o.killed_by)} cases; first: {o.killed_by[0]})")
        else:
            lines.append(f"SURVIVED  {m.name:40s} {m.what}")
        lines.extend(f"          suite error: {e}" for e in o.errors)
    killed = sum(o.killed for o in outcomes)
    lines.append(f"kill rate: {killed}/{len(outcomes)} = {100 * killed / max(len(outcomes), 1):.0f}% "
                 f"({sum(o.seconds for o in outcomes):.0f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a representative tenth of the catalogue, fewer examples")
    parser.add_argument("--only", default="", help="comma-separated mutant names")
    parser.add_argument("--examples", type=int, default=None, help="Hypothesis examples per check (default 25, fast 10)")
    args = parser.parse_args(argv)
    chosen = CATALOGUE
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {m.name for m in CATALOGUE}
        if unknown:
            parser.error(f"unknown mutant(s) {sorted(unknown)}; see nnconform.conformance.mutation.CATALOGUE")
        chosen = tuple(m for m in CATALOGUE if m.name in names)
    elif args.fast:
        chosen = tuple(m for m in CATALOGUE if m.name in FAST)
    examples = args.examples or (10 if args.fast else 25)
    outcomes = run_mutants(chosen, ("float64", "float32"), examples)
    print(report(outcomes))
    return 0 if all(o.killed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
