"""The exact reference: any spec's value and vector-Jacobian products, correctly rounded.

Each output element (or row, for vector functions) is evaluated by
`evaluator` at a working precision, starting a little above the target's
precision and doubling until the error bound certifies the rounded result, up
to MAX_PRECISION bits; past that the element is "reference uncertain" (NaN in
`values`, True in `uncertain`), never a guess.

Conventions the mathematics leaves open come from the spec: the values at
+-inf (`limits`), the sign of a zero result for a -0.0 input (`zero_sign`),
rows that contain -inf (treated as the limit: the entry contributes nothing,
through a stand-in of -2**2000 that rounds to -inf in every format) and rows
that are all -inf (`conventions.all_neg_inf_row`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from mpmath.libmp import ComplexResult, from_float, mpf_neg

from nnconform.spec import OptimizerSpec, Spec
from nnconform.spec import formula as F

from . import evaluator as E
from .cache import ReferenceCache
from .dtypes import UNCERTAIN_BITS, DtypeInfo, info, round_mpf

MAX_PRECISION = 1 << 15     # a gap of 10,000 nats (cross_entropy at logits +-1e4) needs 14,441 bits
_ONE_BITS = int(np.float64(1.0).view(np.uint64))
NEG_INF_STANDIN = (1, 1, 2000, 1)          # -2**2000 as an mpmath raw float
POS_INF_STANDIN = (0, 1, 2000, 1)
ParamValue = float | int | str


@dataclass(frozen=True)
class RefResult:
    values: np.ndarray       # in the target dtype; NaN where uncertain
    uncertain: np.ndarray    # bool, same shape

    @property
    def any_uncertain(self) -> bool:
        return bool(self.uncertain.any())


def certify(v: tuple, e: int | None, dt: DtypeInfo, final: bool = True, limit: bool = False) -> float | None:
    """The rounded value if every number within v +- 2**e rounds to it, sign of zero included, else None.

    `final`: the last precision the reference will try; `limit`: the inputs hold an infinity's
    stand-in (see the zero rule below).
    """
    r = round_mpf(v, dt)
    if e is None or math.isnan(r):
        return r
    eps = (0, 1, e, 1)
    # Outward-rounded ends (floor below, ceiling above) enclose the interval; rounding to the
    # dtype is monotone, so if both ends agree, every point between them does.  The ends carry
    # as many bits as v and eps span (up to a cap), so that a v an exponentially small distance
    # from a midpoint is decided once the working precision resolves it; exact sums would need
    # 2**2000 bits when v is exp(-2**2000) (the stand-in for -inf), which radd's stand-in spares.
    span = (E.mag(v) - e) if v[1] else 0
    prec = min(max(2 * dt.precision + 64, span + 8), END_BITS)
    lo, hi = round_mpf(E.radd(v, mpf_neg(eps), prec, "f"), dt), round_mpf(E.radd(v, eps, prec, "c"), dt)
    if lo != hi:
        return None
    if math.copysign(1.0, lo) != math.copysign(1.0, hi):
        # Zeros of both signs: the interval straddles 0, and the sign of the exact value is not
        # known: uncertain, never the sign of the noise (gelu's +0.0 for x < -41 was).  One
        # exception, a convention: where stand-ins of +-2**2000 cancel (bce_with_logits at
        # x = -inf, t = 0: -S + S + log1p(e^-S)), the limit is the zero IEEE arithmetic gives, +0.0,
        # once the last precision still cannot separate it.  Finite inputs never get this rule:
        # the dominant entry of [1e308, -1e308] in log_softmax is -log1p(e^-2e308), negative,
        # and was certified +0.0 by an earlier form of it (found by the arb tier).
        return 0.0 if final and limit else None
    return lo


END_BITS = 1 << 16       # the most bits the ends of a certified interval carry (the working precision's cap, and more)


def _param_scalar(value: ParamValue, prec: int) -> E.Scalar:
    """A parameter as the real number it names: decimal text exactly as written, a float as its binary value."""
    if isinstance(value, str):
        return E.constant(value.strip(), prec)
    return from_float(float(value)), None


def _row_mpf(row: np.ndarray) -> list[tuple]:
    """A row as mpmath values, infinite entries as their stand-ins (+-2**2000)."""
    return [(NEG_INF_STANDIN if v < 0 else POS_INF_STANDIN) if math.isinf(v) else from_float(float(v)) for v in row]


def _params_key(params: Mapping[str, ParamValue]) -> tuple:
    return tuple(sorted((k, v if isinstance(v, str) else float(v).hex()) for k, v in params.items()))


def _bits(a: np.ndarray) -> list[int]:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64).ravel().tolist()


def _float_of_bits(bits: Sequence[int]) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint64).view(np.float64)


def with_defaults(spec: Spec | OptimizerSpec, params: Mapping[str, ParamValue] | None) -> dict[str, ParamValue]:
    """The spec's defaults (exact decimal text) overridden by `params`; an unknown name is an error."""
    merged: dict[str, ParamValue] = dict(spec.defaults)
    for k, v in (params or {}).items():
        if k not in spec.doc.params:
            raise KeyError(f"{spec.name} has no parameter {k!r}")
        # A number equal to the default as a float is the default: the spec's decimal, exactly
        # (selu's 32-digit alpha, leaky_relu's 0.01), not its float64 rounding.
        if not isinstance(v, str) and k in spec.defaults and _same_number(v, spec.defaults[k]):
            continue
        merged[k] = v
    return merged


def _same_number(v: ParamValue, text: str) -> bool:
    try:
        return float(v) == float(text)
    except (TypeError, ValueError):
        return False


class Reference:
    """Evaluates specs exactly.  One instance per process; it owns the cache."""

    def __init__(self, cache: ReferenceCache | None = None, max_precision: int = MAX_PRECISION) -> None:
        self.cache = cache if cache is not None else ReferenceCache(persistent=False)
        self.max_precision = max_precision
        self._compiled: dict[tuple, E.Compiled] = {}
        self.last_precision = 0        # the working precision of the last certified evaluation (for tests)

    # ------------------------------------------------------------ public API

    def params_for(self, spec: Spec, params: Mapping[str, ParamValue] | None) -> dict[str, ParamValue]:
        return with_defaults(spec, params)

    def value(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, ParamValue] | None = None,
              dtype: str = "float64") -> RefResult:
        """The spec's output for these inputs, rounded correctly to `dtype`."""
        return self._run(spec, "value", inputs, None, self.params_for(spec, params), dtype)

    def vjp(self, spec: Spec, wrt: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray,
            params: Mapping[str, ParamValue] | None = None, dtype: str = "float64") -> RefResult:
        """sum_j g_j d y_j / d wrt_i, exactly, rounded to `dtype`; shaped like input `wrt`."""
        if wrt not in spec.derivatives:
            raise KeyError(f"{spec.name} declares no derivative with respect to {wrt!r}")
        return self._run(spec, f"vjp:{wrt}", inputs, cotangent, self.params_for(spec, params), dtype)

    def condition(self, spec: Spec, which: str, inputs: Mapping[str, np.ndarray],
                  params: Mapping[str, ParamValue] | None = None, cotangent: np.ndarray | None = None,
                  dtype: str = "float64", only: np.ndarray | None = None) -> np.ndarray:
        """The spec's condition number (a tolerance multiplier) per element of the checked quantity.

        For "value" that is the output; for "gradient" the input.  Condition formulas may use
        `eps` (the dtype's machine epsilon) and `tiny` (its smallest subnormal).  With `only` (a
        mask of that shape), elementwise functions evaluate it there alone and give 1 elsewhere:
        the checks need it only where an error exceeds the bare budget, and an mpmath evaluation
        of 65,536 conditions is a minute.
        """
        tree = spec.condition if which == "value" else spec.gradient_condition
        merged = self.params_for(spec, params)
        x = np.asarray(inputs[spec.tensor_inputs[0]])
        shape = self._output_shape(spec, inputs, merged) if which == "value" else x.shape
        if tree is None or (only is not None and not np.any(only)):
            return np.ones(shape)
        return self._approximate(spec, which, tree, inputs, cotangent, merged, shape, info(dtype), only)

    def output_shape(self, spec: Spec, inputs: Mapping[str, np.ndarray],
                     params: Mapping[str, ParamValue] | None = None) -> tuple:
        """The shape of the function's value for these inputs (a cotangent's shape)."""
        return self._output_shape(spec, inputs, self.params_for(spec, params))

    def flush(self) -> None:
        self.cache.flush()

    def evaluate_params(self, spec: Spec, tree: F.Node, params: Mapping[str, ParamValue] | None = None,
                        dtype: str = "float64") -> float:
        """A formula of the parameters only (a kink location, a limit), correctly rounded; NaN if uncertain."""
        fn = self._compiled_for(spec, f"params:{tree!r}", tree)
        bind = self._env(self.params_for(spec, params), spec)
        env: dict = {}

        def evaluate(prec: int) -> list[E.Scalar]:
            bind(env, prec)
            return [fn(env, prec)]
        r = self._solve(evaluate, info(dtype))[0]
        return math.nan if r is None else r

    # ------------------------------------------------------------ compilation

    def _tree(self, spec: Spec, quantity: str) -> F.Node:
        if quantity == "value":
            return spec.formula
        wrt = quantity.split(":", 1)[1]
        deriv = spec.derivatives[wrt]
        if spec.shape == "elementwise":
            return F.BinOp("*", F.Name("g"), deriv)      # VJP of an elementwise map
        return deriv

    def _compiled_for(self, spec: Spec, key: str, tree: F.Node) -> E.Compiled:
        k = (spec.fingerprint, spec.name, key)
        fn = self._compiled.get(k)
        if fn is None:
            fn = self._compiled[k] = E.compile_node(tree)
        return fn

    # ------------------------------------------------------------ shapes

    def _axis_and_group(self, spec: Spec, x: np.ndarray, params: Mapping[str, ParamValue]) -> tuple[int, int]:
        axis = int(float(params[spec.doc.axis_param])) % max(x.ndim, 1)
        group = int(float(params[spec.doc.group_param])) if spec.shape == "grouped" else x.shape[axis]
        if spec.shape == "grouped" and (group < 1 or x.shape[axis] % group):
            raise ValueError(f"{spec.name}: axis {axis} of length {x.shape[axis]} is not a multiple of {group}")
        return axis, group

    def _output_shape(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, ParamValue]) -> tuple:
        x = np.asarray(inputs[spec.tensor_inputs[0]])
        if spec.shape == "elementwise":
            return x.shape
        axis, group = self._axis_and_group(spec, x, params)
        if spec.doc.output == "same":
            return x.shape
        shape = list(x.shape)
        shape[axis] = x.shape[axis] // group
        return tuple(shape)

    def _broadcast_inputs(self, spec: Spec, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        first = spec.tensor_inputs[0]
        x = np.asarray(inputs[first])
        out = {first: x}
        for name in spec.tensor_inputs[1:]:
            a = np.asarray(inputs[name])
            ispec = spec.doc.inputs[name]
            if ispec.kind == "channel_weight" and x.ndim > ispec.channel_axis and a.ndim == 1 and a.size > 1:
                shape = [1] * x.ndim
                shape[ispec.channel_axis] = a.size
                a = a.reshape(shape)
            out[name] = np.broadcast_to(a, x.shape)
        return out

    # ------------------------------------------------------------ evaluation

    def _run(self, spec: Spec, quantity: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray | None,
             params: Mapping[str, ParamValue], dtype: str) -> RefResult:
        dt = info(dtype)
        missing = [n for n in spec.tensor_inputs if n not in inputs]
        if missing:
            raise KeyError(f"{spec.name} needs inputs {missing}")
        if spec.shape == "elementwise":
            return self._run_elementwise(spec, quantity, inputs, cotangent, params, dt)
        return self._run_rows(spec, quantity, inputs, cotangent, params, dt)

    def _env(self, params: Mapping[str, ParamValue], spec: Spec) -> Callable[[dict, int], None]:
        """A function that puts the real parameters, at the working precision, into an environment."""
        real = [(k, v) for k, v in params.items() if spec.doc.params[k].kind == "real"]

        def bind(env: dict, prec: int) -> None:
            for k, v in real:
                env[k] = _param_scalar(v, prec)
        return bind

    def _solve(self, evaluate: Callable[[int], list[E.Scalar]], dt: DtypeInfo, start: int | None = None,
               limit: bool = False) -> list[float | None]:
        """Evaluate at rising precision until every output is certified (or the cap is reached).
        `limit`: the inputs hold stand-ins for infinities (certify's zero rule)."""
        prec = start or dt.precision + 24
        while True:
            self.last_precision = prec
            try:
                outs = evaluate(prec)
                rounded = [certify(v, e, dt, final=prec >= self.max_precision, limit=limit) for v, e in outs]
                if all(r is not None for r in rounded) or prec >= self.max_precision:
                    return rounded
            except E.NeedPrecision:
                if prec >= self.max_precision:
                    return [None]
            except (E.DomainError, ComplexResult):
                return [math.nan]
            prec *= 2

    def _run_elementwise(self, spec: Spec, quantity: str, inputs: Mapping[str, np.ndarray],
                         cotangent: np.ndarray | None, params: Mapping[str, ParamValue], dt: DtypeInfo) -> RefResult:
        arrays = self._broadcast_inputs(spec, inputs)
        names = list(arrays)
        full_shape = arrays[names[0]].shape
        wrt = quantity.split(":", 1)[1] if quantity != "value" else None
        if cotangent is not None:
            names_g = names + ["g"]
            arrays = dict(arrays, g=np.broadcast_to(np.asarray(cotangent), full_shape))
        else:
            names_g = names
        # Inputs that were broadcast (a per-channel weight) collect their VJP by summation.
        if wrt is not None and np.asarray(inputs[wrt]).shape != full_shape:
            return self._run_reduced_vjp(spec, quantity, inputs, arrays, params, dt, wrt)

        columns = [_bits(arrays[n]) for n in names_g]
        keys: list = columns[0] if len(columns) == 1 else list(zip(*columns))
        table = self.cache.table((spec.fingerprint, spec.name, quantity, _params_key(params), dt.name))
        data = table.data
        found = [data.get(k) for k in keys]
        if any(f is None for f in found):
            fn = self._compiled_for(spec, quantity, self._tree(spec, quantity))
            yfn = self._compiled_for(spec, "value", spec.formula) if quantity != "value" else None
            base_env = self._env(params, spec)
            values = {n: arrays[n].astype(np.float64).ravel() for n in names_g}
            for i, k in enumerate(keys):
                if found[i] is not None:
                    continue
                point = {n: float(values[n][i]) for n in names_g}
                r = self._elementwise_point(spec, quantity, fn, yfn, base_env, point, params, dt)
                bits = UNCERTAIN_BITS if r is None else int(np.float64(r).view(np.uint64))
                table.put(k, bits)
                found[i] = bits
        out = _float_of_bits(found).reshape(full_shape)
        uncertain = np.asarray(found, dtype=np.uint64).reshape(full_shape) == UNCERTAIN_BITS
        out = np.where(uncertain, np.nan, out)
        return RefResult(out.astype(dt.np_dtype), uncertain)

    def _elementwise_point(self, spec: Spec, quantity: str, fn: E.Compiled, yfn: E.Compiled | None,
                           base_env: Callable, point: dict[str, float], params: Mapping[str, ParamValue],
                           dt: DtypeInfo) -> float | None:
        vals = list(point.values())
        if any(math.isnan(v) for v in vals):
            return math.nan
        if any(math.isinf(v) for v in vals):
            return self._at_infinity(spec, quantity, point, params, dt)
        env = {n: (from_float(v), None) for n, v in point.items()}

        def evaluate(prec: int) -> list[E.Scalar]:
            base_env(env, prec)
            if yfn is not None:
                env["y"] = yfn(env, prec)
            else:
                env.pop("y", None)
            return [fn(env, prec)]

        (r,) = self._solve(evaluate, dt)
        x0 = point.get(spec.tensor_inputs[0], 1.0)
        if r == 0 and quantity == "value" and x0 == 0 and math.copysign(1, x0) < 0 and spec.doc.zero_sign == "preserve":
            return -0.0
        return r

    def _at_infinity(self, spec: Spec, quantity: str, point: dict[str, float], params: Mapping[str, ParamValue],
                     dt: DtypeInfo) -> float | None:
        x = point.get(spec.tensor_inputs[0])
        others = [v for n, v in point.items() if n != spec.tensor_inputs[0]]
        if quantity != "value" or x is None or not math.isinf(x) or any(math.isinf(v) for v in others):
            return None     # no declared limit for this: uncertain rather than a guess
        limit = spec.limits.get("+inf" if x > 0 else "-inf")
        if limit is None:
            return None
        if isinstance(limit, float):
            return float(np.float64(limit).astype(dt.np_dtype)) if math.isfinite(limit) else limit
        fn = self._compiled_for(spec, f"limit:{x}", limit)
        bind = self._env(params, spec)
        env: dict = {}

        def evaluate(prec: int) -> list[E.Scalar]:
            bind(env, prec)
            return [fn(env, prec)]
        return self._solve(evaluate, dt)[0]

    def _run_reduced_vjp(self, spec: Spec, quantity: str, inputs: Mapping[str, np.ndarray], arrays: dict,
                         params: Mapping[str, ParamValue], dt: DtypeInfo, wrt: str) -> RefResult:
        target = np.asarray(inputs[wrt])
        full_shape = arrays[spec.tensor_inputs[0]].shape
        ispec = spec.doc.inputs[wrt]
        ids = np.arange(target.size).reshape(target.shape)
        if ispec.kind == "channel_weight" and target.ndim == 1 and target.size > 1:
            shape = [1] * len(full_shape)
            shape[ispec.channel_axis] = target.size
            ids = ids.reshape(shape)
        group_of = np.broadcast_to(ids, full_shape).ravel()
        fn = self._compiled_for(spec, quantity, self._tree(spec, quantity))
        yfn = self._compiled_for(spec, "value", spec.formula)
        base_env = self._env(params, spec)
        flat = {n: a.astype(np.float64).ravel() for n, a in arrays.items()}
        results: list[float | None] = []
        for gid in range(target.size):
            idx = np.nonzero(group_of == gid)[0]
            pts = [{n: float(flat[n][i]) for n in flat} for i in idx]
            if any(not math.isfinite(v) for p in pts for v in p.values()):
                results.append(None)
                continue

            def evaluate(prec: int, pts: list = pts) -> list[E.Scalar]:
                terms = []
                for p in pts:
                    env = {n: (from_float(v), None) for n, v in p.items()}
                    base_env(env, prec)
                    env["y"] = yfn(env, prec)
                    terms.append(fn(env, prec))
                return [E.reduce_sum(terms, prec)]
            results.append(self._solve(evaluate, dt)[0])
        return self._pack(results, target.shape, dt)

    def _pack(self, results: list[float | None], shape: tuple, dt: DtypeInfo) -> RefResult:
        uncertain = np.array([r is None for r in results], dtype=bool).reshape(shape)
        vals = np.array([math.nan if r is None else r for r in results], dtype=np.float64).reshape(shape)
        return RefResult(vals.astype(dt.np_dtype), uncertain)

    # ------------------------------------------------------------ rows (vector and grouped functions)

    def _rows(self, spec: Spec, a: np.ndarray, params: Mapping[str, ParamValue]) -> tuple[np.ndarray, Callable]:
        """Reshape so each row is one application of the function; returns rows and the inverse."""
        x = np.asarray(a)
        axis, group = self._axis_and_group(spec, x, params)
        moved = np.moveaxis(x, axis, -1)
        lead = moved.shape[:-1]
        rows = moved.reshape(-1, group)

        def restore(out_rows: np.ndarray) -> np.ndarray:
            total = moved.shape[-1] if spec.doc.output == "same" else moved.shape[-1] // group
            shaped = out_rows.reshape(lead + (total,))
            return np.moveaxis(shaped, -1, axis)
        return rows, restore

    def _run_rows(self, spec: Spec, quantity: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray | None,
                  params: Mapping[str, ParamValue], dt: DtypeInfo) -> RefResult:
        xname = spec.tensor_inputs[0]
        x = np.asarray(inputs[xname])
        rows, restore = self._rows(spec, x, params)
        same = spec.doc.output == "same"
        if cotangent is not None:
            g = np.asarray(cotangent, dtype=np.float64)
            if same:
                grows, _ = self._rows(spec, np.broadcast_to(g, x.shape), params)
            else:
                grows = np.moveaxis(g, self._axis_and_group(spec, x, params)[0], -1).reshape(-1, 1)
        else:
            grows = None
        # For a VJP the output has the input's shape even when the value is reduced.
        out_width = rows.shape[1] if (same or quantity != "value") else 1
        table = self.cache.table((spec.fingerprint, spec.name, quantity, _params_key(params), dt.name, rows.shape[1]))
        fn = self._compiled_for(spec, quantity, self._tree(spec, quantity))
        yfn = self._compiled_for(spec, "value", spec.formula) if quantity != "value" else None
        base_env = self._env(params, spec)
        out = np.empty((rows.shape[0], out_width), dtype=np.float64)
        unc = np.zeros((rows.shape[0], out_width), dtype=bool)
        for i in range(rows.shape[0]):
            row = rows[i].astype(np.float64)
            grow = None if grows is None else grows[i]
            key = tuple(_bits(row) + ([] if grow is None else _bits(grow)))
            bits = table.data.get(key)
            if bits is None:
                res = self._row_point(spec, quantity, fn, yfn, base_env, row, grow, dt, out_width)
                bits = tuple(UNCERTAIN_BITS if r is None else int(np.float64(r).view(np.uint64)) for r in res)
                table.put(key, bits)
            b = np.asarray(bits, dtype=np.uint64)
            unc[i] = b == UNCERTAIN_BITS
            out[i] = np.where(unc[i], np.nan, b.view(np.float64))
        if quantity == "value" and not same:
            result, uncertain = restore(out[:, 0]), restore(unc[:, 0])
        else:
            full = self._restore_full(spec, x, params)
            result, uncertain = full(out), full(unc)
        return RefResult(np.asarray(result).astype(dt.np_dtype), np.asarray(uncertain, dtype=bool))

    def _restore_full(self, spec: Spec, x: np.ndarray, params: Mapping[str, ParamValue]) -> Callable:
        axis, group = self._axis_and_group(spec, x, params)
        moved_shape = np.moveaxis(x, axis, -1).shape

        def restore(out_rows: np.ndarray) -> np.ndarray:
            return np.moveaxis(np.asarray(out_rows).reshape(moved_shape), -1, axis)
        return restore

    def _row_point(self, spec: Spec, quantity: str, fn: E.Compiled, yfn: E.Compiled | None, base_env: dict,
                   row: np.ndarray, grow: np.ndarray | None, dt: DtypeInfo, width: int) -> list[float | None]:
        if np.isnan(row).any():
            return [math.nan] * width
        if np.isposinf(row).any():
            conv = spec.doc.conventions.get("pos_inf_entries")
            if conv is not None and str(conv.canonical) == "nan":
                return [math.nan] * width
        if grow is not None and not np.isfinite(grow).all():
            return [None] * width
        if np.isneginf(row).all():
            conv = spec.doc.conventions.get("all_neg_inf_row")
            if conv is not None and str(conv.canonical) == "nan":
                return [math.nan] * width
        if quantity != "value" and np.isinf(row).any():
            return [None] * width   # derivatives at infinite entries: no declared convention
        masked = np.isneginf(row)
        if masked.any() and "neg_inf_entries" in spec.doc.conventions and spec.doc.output == "same":
            # The others are the function of the row without its masked entries (the convention),
            # exactly, not a row with a stand-in that only approximates "contributes nothing".
            outside = self._stand_in_row(spec, quantity, fn, yfn, base_env, row, grow, dt, width)
            inside = self._row_point(spec, quantity, fn, yfn, base_env, row[~masked],
                                     None if grow is None else grow[~masked], dt, int((~masked).sum()))
            merged = list(outside)
            for j, r in zip(np.nonzero(~masked)[0], inside):
                merged[j] = r
            return merged
        return self._stand_in_row(spec, quantity, fn, yfn, base_env, row, grow, dt, width)

    def _stand_in_row(self, spec: Spec, quantity: str, fn: E.Compiled, yfn: E.Compiled | None, base_env: Callable,
                      row: np.ndarray, grow: np.ndarray | None, dt: DtypeInfo, width: int) -> list[float | None]:
        # Infinite entries as the limit: a stand-in of +-2**2000 rounds to +-inf in every format
        # and leaves every finite float64 entry negligible beside it.
        xs = _row_mpf(row)
        env: dict = {spec.tensor_inputs[0]: [(v, None) for v in xs]}
        if grow is not None:
            gs = [(from_float(float(v)), None) for v in grow]
            env["g"] = gs if spec.doc.output == "same" else gs[0]

        def evaluate(prec: int) -> list[E.Scalar]:
            base_env(env, prec)
            if yfn is not None:
                env["y"] = yfn(env, prec)
            out = fn(env, prec)
            return out if isinstance(out, list) else [out]

        res = self._solve(evaluate, dt, limit=bool(np.isinf(row).any()))
        if len(res) != width:
            res = (res * width)[:width] if len(res) == 1 else res
        return res

    # ------------------------------------------------------------ condition numbers

    def _approximate(self, spec: Spec, which: str, tree: F.Node, inputs: Mapping[str, np.ndarray],
                     cotangent: np.ndarray | None, params: Mapping[str, ParamValue], shape: tuple,
                     dt: DtypeInfo, only: np.ndarray | None = None) -> np.ndarray:
        """Low-precision evaluation of a condition formula (a tolerance multiplier, not a reference)."""
        fn = self._compiled_for(spec, f"cond:{which}", tree)
        yfn = self._compiled_for(spec, "value", spec.formula)
        bind_params = self._env(params, spec)
        dtype_names = {"eps": ((0, 1, 1 - dt.precision, 1), None), "tiny": ((0, 1, dt.min_subnormal_exp, 1), None)}

        def base_env(env: dict, prec: int) -> None:
            bind_params(env, prec)
            env.update(dtype_names)
        def run(env: dict) -> list[float]:
            for prec in (64, 256, 1024, 4096):
                try:
                    base_env(env, prec)
                    env["y"] = yfn(env, prec)
                    out = fn(env, prec)
                except E.NeedPrecision:
                    continue
                except (E.DomainError, ZeroDivisionError):
                    break
                outs = out if isinstance(out, list) else [out]
                return [abs(round_mpf(v, info("float64"))) for v, _ in outs]
            return [math.inf]

        # Cached like reference values (a condition is a function of the exact inputs too).
        table = self.cache.table((spec.fingerprint, spec.name, f"cond:{which}", _params_key(params), dt.name))
        if spec.shape == "elementwise":
            arrays = self._broadcast_inputs(spec, inputs)
            flat = {n: a.astype(np.float64).ravel() for n, a in arrays.items()}
            if cotangent is not None:
                flat["g"] = np.broadcast_to(np.asarray(cotangent, np.float64), shape).ravel()
            columns = [np.ascontiguousarray(flat[n]).view(np.uint64).tolist() for n in flat]
            wanted = [True] * len(columns[0]) if only is None else np.broadcast_to(only, shape).ravel().tolist()
            res = []
            for i, key in enumerate(zip(*columns)):
                bits = table.data.get(key) if wanted[i] else _ONE_BITS
                if bits is None:
                    if not all(math.isfinite(flat[n][i]) for n in flat):
                        value = 1.0
                    else:
                        value = run({n: (from_float(float(flat[n][i])), None) for n in flat})[0]
                    bits = int(np.float64(value).view(np.uint64))
                    table.put(key, bits)
                res.append(bits)
            return np.asarray(res, dtype=np.uint64).view(np.float64).reshape(shape)
        x = np.asarray(inputs[spec.tensor_inputs[0]])
        rows, restore = self._rows(spec, x, params)
        grows = None
        if cotangent is not None:
            grows = self._rows(spec, np.broadcast_to(np.asarray(cotangent, np.float64), x.shape), params)[0] \
                if spec.doc.output == "same" else None
        out = []
        for i, row in enumerate(rows):
            if np.isnan(row).any() or np.isinf(row).all():
                out.append([1.0] * len(row))
                continue
            env = {spec.tensor_inputs[0]: [(v, None) for v in _row_mpf(row)]}
            if grows is not None:
                env["g"] = [(from_float(float(v)), None) for v in grows[i]]
            vals = run(env)
            out.append(vals * len(row) if len(vals) == 1 else vals)
        arr = np.asarray(out, dtype=np.float64)
        if spec.doc.output == "same" or which == "gradient":
            return self._restore_full(spec, x, params)(arr)
        return restore(arr[:, 0])


__all__ = ["Reference", "RefResult", "MAX_PRECISION", "certify"]
