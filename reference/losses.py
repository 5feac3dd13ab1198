"""The exact reference for losses: per-sample losses, their reductions, and VJPs.

A loss spec's formula is the loss of one sample: one element (elementwise
losses such as mse) or one row along the class axis (cross-entropy).  The
reduction is not in the formula, because it is where frameworks differ most:
"sum" adds the kept samples, "mean" divides that sum by the sum of the kept
samples' `count` (1 each unless the spec says otherwise, e.g. the class weight
of the target), and an ignored sample contributes nothing anywhere.  Reduced
values are certified as one number (the whole sum carries its error bound), so
a naive summation's error in a backend shows up against an exact total.

Infinite predictions are limits, as for activations (stand-ins of +-2**2000);
an infinite target or weight has no declared meaning and is "uncertain".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from mpmath.libmp import from_float, from_int, to_float

from nnconform.spec import Spec
from nnconform.spec import formula as F

from . import approx
from . import evaluator as E
from .dtypes import UNCERTAIN_BITS, info
from .engine import NEG_INF_STANDIN, POS_INF_STANDIN, Reference, RefResult, _param_scalar, _params_key

REDUCTIONS = ("none", "sum", "mean")


@dataclass(frozen=True)
class Samples:
    """A batch cut into samples: each is a dict of exact inputs (floats, rows or class ints)."""

    out_shape: tuple                        # shape of the "none" output
    items: list[dict[str, Any]]
    restore: Callable[[str, np.ndarray], np.ndarray]   # per-sample gradient rows -> the input's shape
    width: int                              # class-axis length (1 for elementwise losses)


def class_axis(spec: Spec, x: np.ndarray, params: Mapping[str, Any]) -> int:
    return int(float(params[spec.doc.axis_param])) % max(x.ndim, 1)


def split(spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Samples:
    first = spec.tensor_inputs[0]
    x = np.asarray(inputs[first], dtype=np.float64)
    kinds = {n: s.kind for n, s in spec.doc.inputs.items()}
    if spec.shape == "elementwise":
        arrays = {n: np.broadcast_to(np.asarray(inputs[n], dtype=np.float64), x.shape).ravel() for n in spec.tensor_inputs}
        items = [{n: float(arrays[n][i]) for n in arrays} for i in range(x.size)]
        return Samples(x.shape, items, lambda name, a: np.asarray(a).reshape(x.shape), 1)
    axis = class_axis(spec, x, params)
    moved = np.moveaxis(x, axis, -1)
    width = moved.shape[-1]
    out_shape = moved.shape[:-1]
    n = int(np.prod(out_shape)) if out_shape else 1
    cols: dict[str, Any] = {}
    for name in spec.tensor_inputs:
        a = np.asarray(inputs[name])
        if kinds[name] == "class_weight":
            cols[name] = [list(np.asarray(a, dtype=np.float64).ravel())] * n
        elif kinds[name] == "class_index":
            if a.shape != out_shape:
                raise ValueError(f"{spec.name}: target shape {a.shape} does not match {out_shape}")
            cols[name] = [int(v) for v in np.asarray(a).ravel()]
        else:
            if a.shape != x.shape:
                raise ValueError(f"{spec.name}: {name} has shape {a.shape}, the predictions {x.shape}")
            cols[name] = list(np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1).reshape(n, width))
    items = [{name: cols[name][i] for name in cols} for i in range(n)]

    def restore(name: str, rows: np.ndarray) -> np.ndarray:
        return np.moveaxis(np.asarray(rows).reshape(moved.shape), -1, axis)
    return Samples(out_shape, items, restore, width)


def _scalar(v: Any) -> tuple:
    return (from_int(v), None) if isinstance(v, int) else (from_float(float(v)), None)


def _has(item: dict[str, Any], test: Callable[[float], bool], names: list[str]) -> bool:
    for n in names:
        v = item[n]
        vals = v if isinstance(v, (list, np.ndarray)) else [v]
        if any(not isinstance(e, int) and test(float(e)) for e in vals):
            return True
    return False


class LossReference:
    """Evaluates loss specs exactly; shares the activations' cache and compiled formulas."""

    def __init__(self, reference: Reference) -> None:
        self.ref = reference

    # ------------------------------------------------------------ environment

    def _binder(self, spec: Spec, params: Mapping[str, Any], samples: Samples) -> Callable[[dict, int], None]:
        real = [(k, v) for k, v in params.items() if spec.doc.params[k].kind == "real"]
        ints = {k: (from_int(int(float(v))), None) for k, v in params.items() if spec.doc.params[k].kind != "real"}
        width = (from_int(samples.width), None)

        def bind(env: dict, prec: int) -> None:
            for k, v in real:
                env[k] = _param_scalar(v, prec)
            env.update(ints)
            env["width"] = width
        return bind

    def _env(self, spec: Spec, item: dict[str, Any]) -> dict:
        first = spec.tensor_inputs[0]
        env: dict = {}
        for name, v in item.items():
            if isinstance(v, int):
                env[name] = (from_int(v), None)
            elif isinstance(v, (list, np.ndarray)):
                env[name] = [self._entry(float(e), name == first) for e in v]
            else:
                env[name] = self._entry(float(v), name == first)
        return env

    @staticmethod
    def _entry(v: float, is_prediction: bool) -> tuple:
        if math.isinf(v) and is_prediction:
            return NEG_INF_STANDIN if v < 0 else POS_INF_STANDIN, None
        return from_float(v), None

    def _status(self, spec: Spec, item: dict[str, Any]) -> str:
        """'nan' (a NaN input: the loss is NaN), 'uncertain' (an infinite non-prediction), or 'ok'."""
        names = list(item)
        if _has(item, math.isnan, names):
            return "nan"
        if _has(item, math.isinf, names[1:]):
            return "uncertain"
        return "ok"

    def _ignored(self, spec: Spec, item: dict[str, Any], bind: Callable[[dict, int], None]) -> bool:
        if spec.ignore is None:
            return False
        used = [n for n in F.names(spec.ignore) if n in item]
        if _has(item, lambda v: not math.isfinite(v), used):
            return False
        env = {n: _scalar(item[n]) for n in used if not isinstance(item[n], list)}
        bind(env, 64)
        fn = self.ref._compiled_for(spec, "ignore", spec.ignore)
        try:
            return bool(fn(env, 64))
        except (E.NeedPrecision, E.DomainError):
            return False

    # ------------------------------------------------------------ public API

    def value(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None,
              reduction: str = "none", dtype: str = "float64") -> RefResult:
        return self._cached(spec, "value", inputs, None, params, reduction, dtype)

    def vjp(self, spec: Spec, wrt: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray,
            params: Mapping[str, Any] | None = None, reduction: str = "none", dtype: str = "float64") -> RefResult:
        if wrt not in spec.derivatives:
            raise KeyError(f"{spec.name} declares no derivative with respect to {wrt!r}")
        return self._cached(spec, f"vjp:{wrt}", inputs, cotangent, params, reduction, dtype)

    def output_shape(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None,
                     reduction: str = "none") -> tuple:
        """The shape of the loss for these inputs (a cotangent's shape), without evaluating it."""
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        return self._result_shape(spec, "value", inputs, self.ref.params_for(spec, params), reduction)

    def counts(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None) -> np.ndarray:
        """Each sample's share of mean's denominator, in float64 (0 for ignored samples); for tolerances only."""
        return self._per_sample_approx(spec, spec.count, inputs, params)

    def approximate(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None) -> np.ndarray:
        """Per-sample losses in plain float64 (NumPy), 0 for ignored samples: sizes for tolerances, never a reference."""
        return self._per_sample_approx(spec, spec.formula, inputs, params)

    def _per_sample_approx(self, spec: Spec, tree: F.Node | None, inputs: Mapping[str, np.ndarray],
                           params: Mapping[str, Any] | None) -> np.ndarray:
        merged = self.ref.params_for(spec, params)
        samples = split(spec, inputs, merged)
        n = len(samples.items)
        if n == 0:
            return np.zeros(samples.out_shape)
        env = self._approx_env(spec, samples, merged, "float64")
        value = np.ones((n, 1)) if tree is None else np.broadcast_to(approx.evaluate(tree, env), (n, 1))
        keep = np.ones((n, 1), bool) if spec.ignore is None else ~np.broadcast_to(approx.evaluate(spec.ignore, env), (n, 1))
        return np.where(keep, value, 0.0)[:, 0].reshape(samples.out_shape)

    def _approx_env(self, spec: Spec, samples: Samples, params: Mapping[str, Any], dtype: str) -> dict[str, np.ndarray]:
        n, dt = len(samples.items), info(dtype)
        env = {name: np.asarray([item[name] for item in samples.items], dtype=np.float64).reshape(n, -1)
               for name in samples.items[0]}
        env.update({k: np.asarray(float(v)) for k, v in params.items()})
        env.update(eps=np.asarray(2.0 ** (1 - dt.precision)), tiny=np.asarray(2.0 ** dt.min_subnormal_exp),
                   width=np.asarray(float(samples.width)), g=np.asarray(1.0))
        return env

    def condition(self, spec: Spec, which: str, inputs: Mapping[str, np.ndarray],
                  params: Mapping[str, Any] | None = None, dtype: str = "float64", wrt: str | None = None) -> np.ndarray:
        """The spec's condition number per sample ("value") or per input element ("gradient").

        A tolerance multiplier evaluated at modest precision, never a reference value; 1 where
        the spec declares none or the formula cannot be evaluated at that sample.
        """
        tree = spec.condition if which == "value" else spec.gradient_conditions.get(wrt or "", spec.gradient_condition)
        merged = self.ref.params_for(spec, params)
        samples = split(spec, inputs, merged)
        n = len(samples.items)
        width = samples.width if (which == "gradient" and spec.shape != "elementwise") else 1
        if tree is None or n == 0:
            out = np.ones((n, width))
        else:
            env = self._approx_env(spec, samples, merged, dtype)
            env["y"] = approx.evaluate(spec.formula, env)
            out = np.abs(np.broadcast_to(approx.evaluate(tree, env), (n, width))).astype(np.float64).copy()
            # Float64 cancels where the condition is largest (y or a derivative far below its terms):
            # those samples are evaluated again with mpmath, whose rows need no infinities.
            bind = self._binder(spec, merged, samples)
            fn = self.ref._compiled_for(spec, f"cond:{which}:{wrt or ''}", tree)
            yfn = self.ref._compiled_for(spec, "value", spec.formula)
            for i in np.nonzero(~(out < 2.0 ** 40).all(axis=1))[0]:
                better = self._precise(spec, samples.items[i], bind, env, fn, yfn, width)
                if better is not None:
                    out[i] = better
            out = np.where(np.isnan(out), 1.0, out)       # never an unbounded allowance by accident
        if which == "value":
            return out[:, 0].reshape(samples.out_shape)
        return samples.restore("", out.reshape(-1) if spec.shape == "elementwise" else out)

    def _precise(self, spec: Spec, item: dict[str, Any], bind: Callable, approx_env: dict, fn: E.Compiled,
                 yfn: E.Compiled, width: int) -> list[float] | None:
        if self._status(spec, item) != "ok" or _has(item, math.isinf, [spec.tensor_inputs[0]]):
            return None
        env = self._env(spec, item)
        dtype_names = {k: (from_float(float(approx_env[k])), None) for k in ("eps", "tiny")}
        for prec in (64, 256, 1024):
            try:
                bind(env, prec)
                env.update(dtype_names)
                env["y"] = yfn(env, prec)
                env["g"] = (from_int(1), None)
                out = fn(env, prec)
            except E.NeedPrecision:
                continue
            except (E.DomainError, ZeroDivisionError, TypeError):
                return None
            vals = out if isinstance(out, list) else [out]
            res = [abs(to_float(v)) for v, _ in vals]
            return res if len(res) == width else res * width
        return None

    # ------------------------------------------------------------ evaluation

    def _cached(self, spec: Spec, quantity: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray | None,
                params: Mapping[str, Any] | None, reduction: str, dtype: str) -> RefResult:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        merged = self.ref.params_for(spec, params)
        arrays = [np.asarray(inputs[n]) for n in spec.tensor_inputs]
        if cotangent is not None:
            arrays.append(np.asarray(cotangent))
        shapes = tuple(a.shape for a in arrays)
        key = tuple(v for a in arrays for v in np.ascontiguousarray(a, dtype=np.float64).view(np.uint64).ravel().tolist())
        table = self.ref.cache.table((spec.fingerprint, spec.name, "loss", quantity, reduction, _params_key(merged),
                                      dtype, shapes))
        bits = table.data.get(key)
        if bits is None:
            values = self._compute(spec, quantity, inputs, cotangent, merged, reduction, dtype)
            bits = tuple(UNCERTAIN_BITS if v is None else int(np.float64(v).view(np.uint64)) for v in values.ravel())
            shape_of = values.shape
            if key and bits:
                table.put(key, bits)
        else:
            shape_of = self._result_shape(spec, quantity, inputs, merged, reduction)
        b = np.asarray(bits, dtype=np.uint64).reshape(shape_of)
        uncertain = b == UNCERTAIN_BITS
        out = np.where(uncertain, np.nan, b.view(np.float64))
        return RefResult(out.astype(info(dtype).np_dtype), uncertain)

    def _result_shape(self, spec: Spec, quantity: str, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any],
                      reduction: str) -> tuple:
        if quantity != "value":
            return np.asarray(inputs[quantity.split(":", 1)[1]]).shape
        return split(spec, inputs, params).out_shape if reduction == "none" else ()

    def _count(self, spec: Spec, item: dict[str, Any], bind: Callable[[dict, int], None], prec: int) -> E.Scalar:
        if spec.count is None:
            return from_int(1), None
        env = self._env(spec, item)
        bind(env, prec)
        return self.ref._compiled_for(spec, "count", spec.count)(env, prec)

    def _compute(self, spec: Spec, quantity: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray | None,
                 params: Mapping[str, Any], reduction: str, dtype: str) -> np.ndarray:
        samples = split(spec, inputs, params)
        bind = self._binder(spec, params, samples)
        dt = info(dtype)
        status = [self._status(spec, item) for item in samples.items]
        ignored = [self._ignored(spec, item, bind) for item in samples.items]
        yfn = self.ref._compiled_for(spec, "value", spec.formula)
        if quantity == "value":
            return self._value(spec, samples, status, ignored, bind, yfn, reduction, dt)
        wrt = quantity.split(":", 1)[1]
        return self._vjp(spec, wrt, samples, status, ignored, bind, yfn, cotangent, reduction, dt, inputs)

    def _value(self, spec: Spec, samples: Samples, status: list[str], ignored: list[bool], bind: Callable,
               yfn: E.Compiled, reduction: str, dt: Any) -> np.ndarray:
        def one(item: dict[str, Any]) -> Callable[[int], list]:
            env = self._env(spec, item)

            def evaluate(prec: int) -> list:
                bind(env, prec)
                return [yfn(env, prec)]
            return evaluate

        if reduction == "none":
            out: list[float | None] = []
            for item, st_, ig in zip(samples.items, status, ignored):
                if ig:
                    out.append(0.0)
                elif st_ != "ok":
                    out.append(math.nan if st_ == "nan" else None)
                else:
                    out.append(self.ref._solve(one(item), dt, limit=_has(item, math.isinf, [spec.tensor_inputs[0]]))[0])
            return np.asarray(out, dtype=object).reshape(samples.out_shape)
        kept = [(item, st_) for item, st_, ig in zip(samples.items, status, ignored) if not ig]
        if any(st_ == "nan" for _, st_ in kept):
            return np.asarray(math.nan, dtype=object)
        if any(st_ != "ok" for _, st_ in kept):
            return np.asarray(None, dtype=object)
        evals = [one(item) for item, _ in kept]

        def total(prec: int) -> list:
            s = E.reduce_sum([ev(prec)[0] for ev in evals], prec)
            if reduction == "sum":
                return [s]
            d = self._denominator(spec, [item for item, _ in kept], bind, prec)
            if not d[0][1] and d[1] is None:
                if spec.doc.reduction.mean_of_nothing == "zero":
                    return [(from_int(0), None)]
                raise E.DomainError("mean over no samples")
            return [E.div(s, d, prec)]
        limit = any(_has(item, math.isinf, [spec.tensor_inputs[0]]) for item, _ in kept)
        return np.asarray(self.ref._solve(total, dt, limit=limit)[0], dtype=object)

    def _denominator(self, spec: Spec, kept: list[dict[str, Any]], bind: Callable, prec: int) -> E.Scalar:
        return E.reduce_sum([self._count(spec, item, bind, prec) for item in kept], prec)

    def _vjp(self, spec: Spec, wrt: str, samples: Samples, status: list[str], ignored: list[bool], bind: Callable,
             yfn: E.Compiled, cotangent: np.ndarray | None, reduction: str, dt: Any,
             inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        deriv = self.ref._compiled_for(spec, f"d:{wrt}", spec.derivatives[wrt])
        g = np.asarray(cotangent, dtype=np.float64)
        per_sample = g.ravel() if reduction == "none" else np.full(len(samples.items), float(g))
        kept_items = [item for item, ig in zip(samples.items, ignored) if not ig]
        bad_kept = any(st_ != "ok" for st_, ig in zip(status, ignored) if not ig)
        rows: list[list[float | None]] = []
        width = samples.width if spec.shape != "elementwise" else 1
        denominators: dict[int, E.Scalar] = {}      # mean's denominator, per precision: the same for every sample

        def denominator(prec: int) -> E.Scalar:
            if prec not in denominators:
                denominators[prec] = self._denominator(spec, kept_items, bind, prec)
            return denominators[prec]
        for i, (item, st_, ig) in enumerate(zip(samples.items, status, ignored)):
            if ig:
                rows.append([0.0] * width)
                continue
            if st_ != "ok" or (reduction != "none" and bad_kept) or not math.isfinite(per_sample[i]) \
                    or _has(item, math.isinf, [spec.tensor_inputs[0]]):
                rows.append([math.nan if st_ == "nan" else None] * width)
                continue
            env = self._env(spec, item)
            gi = per_sample[i]

            def evaluate(prec: int, env: dict = env, gi: float = gi) -> list:
                bind(env, prec)
                gs: E.Scalar = (from_float(gi), None)
                if reduction == "mean":
                    d = denominator(prec)
                    if not d[0][1] and d[1] is None:
                        raise E.DomainError("mean over no samples")
                    gs = E.div(gs, d, prec)
                env["g"] = gs
                env["y"] = yfn(env, prec)
                out = deriv(env, prec)
                if spec.shape == "elementwise":
                    out = E.mul(gs, out, prec)
                return out if isinstance(out, list) else [out]
            res = self.ref._solve(evaluate, dt)
            rows.append(res if len(res) == width else res * width)
        arr = np.asarray(rows, dtype=object)
        shaped = samples.restore(wrt, arr.reshape(-1) if spec.shape == "elementwise" else arr)
        return np.asarray(shaped, dtype=object)


__all__ = ["LossReference", "REDUCTIONS", "split", "class_axis"]
