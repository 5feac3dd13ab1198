"""A second reference that shares no arithmetic with the first: each spec's formula as arb balls (python-flint).

Why a second one: every verdict rests on the reference, and the first tier (evaluator.py,
engine.py, losses.py) carries its error bounds by hand, where one slip certifies a wrong number
(a stand-in in `radd` that was not outward did: issue 19).  Here arb computes rigorous balls;
the ends of a ball are rounded to the dtype by the integer arithmetic in `round_exact`; the
precision doubles until both ends round to the same number, sign of zero included, or MAX_BITS
is reached, and then the output is "uncertain".

What the tiers share is what a spec means, never how it is computed: the parameters as exact
decimals (`engine.with_defaults`), how a loss batch is cut into samples (`losses.split`), and the
conventions a spec declares or the suite fixed (limits at +-inf; infinite row entries and loss
predictions as the limit, through a stand-in of +-2**3000 here, +-2**2000 there; a derivative at
an infinite input left uncertain; an exact zero result is +0.0, or -0.0 for `zero_sign: preserve`
at a -0.0 input; 0 times anything is 0, as the limit t log t -> 0 needs).

Used by tests/test_reference_tiers.py (the tiers bit for bit) and by `--reference=arb|both`.
The optimizers keep the mpmath tier only: their trajectories are a different evaluator
(reference/optimizers.py), not formula trees.
"""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import numpy as np

from nnconform.spec import Spec
from nnconform.spec import formula as F

from .dtypes import info
from .engine import RefResult, with_defaults
from .losses import REDUCTIONS, split

try:
    import flint
    from flint import arb
except ImportError:      # the dev extra has it; a run that asks for this tier without it is told so
    flint = None         # type: ignore[assignment]
    arb = None           # type: ignore[assignment,misc]

MAX_BITS = 1 << 16         # twice the mpmath tier's cap: what that decides, this can check
# name: (significand bits with the hidden one, exponent of the smallest normal, exponent of the largest)
FORMATS: dict[str, tuple[int, int, int]] = {
    "float64": (53, -1022, 1023), "float32": (24, -126, 127), "float16": (11, -14, 15), "bfloat16": (8, -126, 127),
}
STANDIN_EXP = 3000
Val = Union["arb", list, bool, int]


class TierUnavailable(RuntimeError):
    pass


class Undecided(Exception):
    """The balls at this precision cannot settle a comparison or a sign: try more bits."""


class Domain(Exception):
    """The formula has no real value here (log of a negative, division by zero): NaN."""


def require() -> None:
    if flint is None:
        raise TierUnavailable("the arb reference tier needs python-flint: pip install 'nnconform[dev]' "
                              "(or pip install python-flint)")


@cache
def tier_version() -> str:
    """Keys this tier's cached results: a changed evaluator never reads an old one's."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------- rounding an exact number

def round_exact(man: int, exp: int, dtype: str) -> float:
    """man * 2**exp rounded to nearest, ties to even, in the dtype (its overflow to inf included)."""
    p, emin, emax = FORMATS[dtype]
    if man == 0:
        return 0.0
    negative, m = man < 0, abs(man)
    top = m.bit_length() + exp                    # 2**(top-1) <= |v| < 2**top
    if top >= emax + 2:
        return -math.inf if negative else math.inf
    if top <= emin - p + 1 - 1:                    # |v| < 2**(emin-p+1) / 2: below half the smallest subnormal
        return -0.0 if negative else 0.0
    q = max(top - 1, emin) - p + 1                # the quantum of the result
    shift = q - exp
    if shift <= 0:
        n = m << -shift
    else:
        n, rest = m >> shift, m & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rest > half or (rest == half and n & 1):
            n += 1
    if n.bit_length() + q > emax + 1:
        return -math.inf if negative else math.inf
    out = math.ldexp(n, q)
    return -out if negative else out


def _end(x: Any, dtype: str) -> float:
    if not x.is_finite():
        v = float(x.mid())
        return v if math.isinf(v) and x.rad() == 0 else math.nan
    man, exp = x.man_exp()
    return round_exact(int(man), int(exp), dtype)


class StraddlesZero(Undecided):
    """Both ends round to zero, of opposite signs."""


def certify(y: Val, dtype: str) -> float:
    """The dtype number every point of the ball rounds to; Undecided if they do not all agree."""
    if isinstance(y, bool):
        return 1.0 if y else 0.0
    ball = _ball(y)          # a vector here is a Domain error: one output is one number
    if ball.is_zero():
        return 0.0                                 # an exact zero of the formula: +0.0, as IEEE gives it
    lo, hi = _end(ball.lower(), dtype), _end(ball.upper(), dtype)
    if math.isnan(lo) or math.isnan(hi) or lo != hi:
        raise Undecided
    if math.copysign(1, lo) != math.copysign(1, hi):
        raise StraddlesZero
    return lo


# ---------------------------------------------------------------- the formula as balls

def _ball(v: Val) -> Any:
    if isinstance(v, bool) or isinstance(v, list):
        raise Domain("a number was expected")
    return arb(v) if isinstance(v, int) else v


def _sign(d: Any) -> int:
    if d.is_zero():
        return 0
    if d > 0:
        return 1
    if d < 0:
        return -1
    raise Undecided


def _compare(op: str, a: Val, b: Val) -> bool:
    s = 0 if a is b else _sign(_ball(a) - _ball(b))
    return {"<": s < 0, "<=": s <= 0, ">": s > 0, ">=": s >= 0, "==": s == 0, "!=": s != 0}[op]


def _mul(a: Val, b: Val) -> Any:
    p, q = _ball(a), _ball(b)
    if p.is_zero() or q.is_zero():
        return arb(0)
    return p * q


def _div(a: Val, b: Val) -> Any:
    p, q = _ball(a), _ball(b)
    if q.is_zero():
        raise Domain("division by zero")
    if 0 in q:
        raise Undecided
    return arb(0) if p.is_zero() else p / q


def _pick(a: Val, b: Val, sign: int) -> Val:
    if a is b:
        return a
    try:
        s = _sign(_ball(a) - _ball(b)) * sign
    except Undecided:
        return _ball(a).union(_ball(b))           # the max lies between the larger lower and the larger upper end
    return a if s >= 0 else b


def _positive_arg(x: Any) -> None:
    if x < 0:
        raise Domain("a logarithm or root of a negative number")
    if 0 in x:
        raise Undecided


def _log(x: Val) -> Any:
    b = _ball(x)
    if b.is_zero():
        return arb.neg_inf()
    _positive_arg(b)
    return b.log()


def _log1p(x: Val) -> Any:
    b = _ball(x)
    t = b + 1
    if t.is_zero():
        return arb.neg_inf()
    _positive_arg(t)
    return b.log1p()


def _sqrt(x: Val) -> Any:
    b = _ball(x)
    if b.is_zero():
        return arb(0)
    _positive_arg(b)
    return b.sqrt()


def _exp(x: Val) -> Any:
    return _ball(x).exp().nonnegative_part()      # exp > 0: a ball that reached below 0 only widened


def _monotone(name: str, x: Val) -> Any:
    """erf and erfc of an inexact ball from its exact ends: arb bounds their slope by 2/sqrt(pi),
    which for erfc(1e6) ~ e^-1e12 is a ball of radius far beyond the value; both are monotone."""
    b = _ball(x)
    if b.is_exact():
        return getattr(b, name)()
    return getattr(b.lower(), name)().union(getattr(b.upper(), name)())


def _sigmoid(x: Val) -> Any:
    b = _ball(x)
    if b.mid() >= 0:
        return 1 / (1 + _exp(-b))
    e = _exp(b)
    return e / (1 + e)


UNARY: dict[str, Callable[[Val], Any]] = {
    "exp": _exp, "expm1": lambda b: _ball(b).expm1(), "log": _log, "log1p": _log1p, "sqrt": _sqrt,
    "tanh": lambda b: _ball(b).tanh(), "erf": lambda b: _monotone("erf", b), "erfc": lambda b: _monotone("erfc", b),
    "abs": lambda b: abs(_ball(b)), "sigmoid": _sigmoid,
}
BINARY: dict[str, Callable[[Val, Val], Any]] = {
    "+": lambda a, b: _ball(a) + _ball(b), "-": lambda a, b: _ball(a) - _ball(b), "*": _mul, "/": _div,
}


def _zip(fn: Callable[[Val, Val], Val], a: Val, b: Val) -> Val:
    if not isinstance(a, list) and not isinstance(b, list):
        return fn(a, b)
    n = len(a) if isinstance(a, list) else len(b)      # type: ignore[arg-type]
    left = a if isinstance(a, list) else [a] * n
    right = b if isinstance(b, list) else [b] * n
    if len(left) != len(right):
        raise Domain("vectors of different lengths")
    return [fn(x, y) for x, y in zip(left, right)]


def _map(fn: Callable[[Val], Val], a: Val) -> Val:
    return [fn(x) for x in a] if isinstance(a, list) else fn(a)


def _power(base: Any, c: Fraction) -> Any:
    b = _ball(base)
    if c.denominator == 1:
        n = int(c)
        if n == 0:
            return arb(1)
        r = b ** abs(n)
        return r if n > 0 else _div(arb(1), r)
    if b.is_zero() and c > 0:
        return arb(0)
    _positive_arg(b)
    return (arb(c.numerator) / c.denominator * b.log()).exp()


def _class(target: Val, width: int) -> int:
    if not isinstance(target, int) or isinstance(target, bool) or not 0 <= target < width:
        raise Domain(f"class target {target} is not a class in [0, {width})")
    return target


def _reduce(name: str, v: Val) -> Val:
    if not isinstance(v, list):
        raise Domain(f"{name}() needs a vector")
    if name in ("sum", "mean"):
        s = arb(0)
        for x in v:
            s = s + _ball(x)
        return s if name == "sum" else s / len(v)
    if name in ("max", "min"):
        best = v[0]
        for x in v[1:]:
            best = _pick(best, x, 1 if name == "max" else -1)
        return best
    m = _ball(_reduce("max", v))                  # logsumexp: exact for any shift m; the max keeps it tight
    total = arb(0)
    for x in v:
        total = total + _exp(_ball(x) - m)
    return m + _log(total)


def evaluate(node: F.Node, env: dict[str, Val]) -> Val:
    """The formula at the current flint precision.  env: balls, rows (lists), exact ints (classes, counters)."""
    if isinstance(node, F.Num):
        frac = Fraction(node.text)
        return arb(frac.numerator) / frac.denominator if frac.denominator > 1 else arb(frac.numerator)
    if isinstance(node, F.Name):
        return arb.pi() if node.id == "pi" else env[node.id]
    if isinstance(node, F.Neg):
        return _map(lambda x: -_ball(x), evaluate(node.operand, env))
    if isinstance(node, F.BinOp):
        return _zip(BINARY[node.op], evaluate(node.left, env), evaluate(node.right, env))
    if isinstance(node, F.Pow):
        counter = env[node.exponent.id] if isinstance(node.exponent, F.Name) else None
        if counter is not None and not isinstance(counter, int):
            raise Domain("an exponent's counter must be an exact integer")
        c = Fraction(counter) if counter is not None else Fraction(node.exponent.text)   # type: ignore[union-attr]
        return _map(lambda x: _power(x, c), evaluate(node.base, env))
    if isinstance(node, F.Compare):
        return _zip(lambda a, b: _compare(node.op, a, b), evaluate(node.left, env), evaluate(node.right, env))
    if isinstance(node, F.BoolOp):
        parts = [evaluate(n, env) for n in node.operands]
        combine = all if node.op == "and" else any
        if any(isinstance(p, list) for p in parts):
            n = max(len(p) for p in parts if isinstance(p, list))
            rows = [p if isinstance(p, list) else [p] * n for p in parts]
            return [combine(t) for t in zip(*rows)]
        return combine(parts)
    if isinstance(node, F.Index):
        row = env[node.value.id]
        assert isinstance(row, list)
        return row[_class(env[node.index.id], len(row))]
    if isinstance(node, F.Call):
        return _call(node, env)
    raise Domain(f"{type(node).__name__} is not in the formula language")


def _call(node: F.Call, env: dict[str, Val]) -> Val:
    name = node.func
    if name == "onehot":
        width = env["width"]
        assert isinstance(width, int)
        k = _class(env[node.args[0].id], width)   # type: ignore[union-attr]
        return [arb(1) if j == k else arb(0) for j in range(width)]
    if name == "where":
        c = evaluate(node.args[0], env)
        if not isinstance(c, list):
            return evaluate(node.args[1] if c else node.args[2], env)   # only the branch taken
        yes, no = evaluate(node.args[1], env), evaluate(node.args[2], env)
        yes = yes if isinstance(yes, list) else [yes] * len(c)
        no = no if isinstance(no, list) else [no] * len(c)
        return [a if t else b for t, a, b in zip(c, yes, no)]
    args = [evaluate(a, env) for a in node.args]
    if name in UNARY:
        return _map(UNARY[name], args[0])
    if name in ("max", "min") and len(args) == 2:
        sign = 1 if name == "max" else -1
        return _zip(lambda a, b: _pick(a, b, sign), args[0], args[1])
    return _reduce(name, args[0])


# ---------------------------------------------------------------- certified evaluation

def _param(v: Any) -> Val:
    """A real parameter as the number it names: decimal text exactly, a float as its binary value."""
    if isinstance(v, str):
        frac = Fraction(v.strip())
        return arb(frac.numerator) / frac.denominator
    return arb(float(v))


class Params:
    """The integer parameters (exact), and the real ones kept as written until a precision is chosen:
    `env()` inside an evaluation gives them as balls at that precision."""

    def __init__(self, real: Mapping[str, Any], ints: Mapping[str, int]) -> None:
        self.real, self.ints = dict(real), dict(ints)

    def env(self) -> dict[str, Val]:
        out: dict[str, Val] = dict(self.ints)
        out.update({k: _param(v) for k, v in self.real.items()})
        return out


def _standin(v: float) -> Any:
    if math.isinf(v):
        return arb(2) ** STANDIN_EXP * (1 if v > 0 else -1)
    return arb(v)


def _settle(y: Val, dtype: str, last: bool, limit: bool) -> float | None:
    try:
        return certify(y, dtype)
    except StraddlesZero:
        if last and limit:
            return 0.0      # stand-ins that cancel: the limit's zero, +0.0 (the convention; engine.certify says why)
        if last:
            return None
        raise
    except Undecided:
        if last:
            return None
        raise


def solve(outputs: Callable[[], list[Val]], dtype: str, start: int | None = None, limit: bool = False) -> list[float | None]:
    """Certified outputs at doubling precision: a float each (NaN where the formula has no value),
    None for an output MAX_BITS does not settle (every output, when the formula itself cannot be
    evaluated that far).  `limit`: the inputs hold stand-ins for infinities."""
    require()
    old = flint.ctx.prec
    prec = start or FORMATS[dtype][0] + 32
    try:
        while True:
            flint.ctx.prec = prec
            try:
                return [_settle(y, dtype, prec >= MAX_BITS, limit) for y in outputs()]
            except Domain:
                return [math.nan]
            except (Undecided, ZeroDivisionError, ValueError):
                if prec >= MAX_BITS:
                    return [None]
            prec = min(2 * prec, MAX_BITS)
    finally:
        flint.ctx.prec = old


def _stored(r: float, dtype: str) -> float:
    return float(np.asarray(r, dtype=np.float64).astype(info(dtype).np_dtype))


def _pack(results: list[float | None], shape: tuple, dtype: str) -> RefResult:
    uncertain = np.array([r is None for r in results], dtype=bool).reshape(shape)
    vals = np.array([math.nan if r is None else r for r in results], dtype=np.float64).reshape(shape)
    return RefResult(vals.astype(info(dtype).np_dtype), uncertain)


def _widen(res: list[float | None], width: int) -> list[float | None]:
    return res if len(res) == width else (res * width)[:width]


class ArbReference:
    """The arb tier: `value` and `vjp` of activation specs, `loss_value` and `loss_vjp` of losses."""

    def __init__(self) -> None:
        require()

    # ------------------------------------------------------------ activations

    def value(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None,
              dtype: str = "float64") -> RefResult:
        return self._run(spec, None, inputs, None, with_defaults(spec, params), dtype)

    def vjp(self, spec: Spec, wrt: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray,
            params: Mapping[str, Any] | None = None, dtype: str = "float64") -> RefResult:
        if wrt not in spec.derivatives:
            raise KeyError(f"{spec.name} declares no derivative with respect to {wrt!r}")
        return self._run(spec, wrt, inputs, cotangent, with_defaults(spec, params), dtype)

    def _bind(self, spec: Spec, params: Mapping[str, Any]) -> "Params":
        return Params({k: v for k, v in params.items() if spec.doc.params[k].kind == "real"},
                      {k: int(float(v)) for k, v in params.items() if spec.doc.params[k].kind != "real"})

    def _run(self, spec: Spec, wrt: str | None, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray | None,
             params: Mapping[str, Any], dtype: str) -> RefResult:
        if spec.shape == "elementwise":
            return self._elementwise(spec, wrt, inputs, cotangent, params, dtype)
        return self._rows(spec, wrt, inputs, cotangent, params, dtype)

    def _elementwise(self, spec: Spec, wrt: str | None, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray | None,
                     params: Mapping[str, Any], dtype: str) -> RefResult:
        x = np.asarray(inputs[spec.tensor_inputs[0]])
        arrays: dict[str, np.ndarray] = {}
        for name in spec.tensor_inputs:
            a = np.asarray(inputs[name], dtype=np.float64)
            ispec = spec.doc.inputs[name]
            if name != spec.tensor_inputs[0] and ispec.kind == "channel_weight" and x.ndim > ispec.channel_axis \
                    and a.ndim == 1 and a.size > 1:
                shape = [1] * x.ndim
                shape[ispec.channel_axis] = a.size
                a = a.reshape(shape)
            arrays[name] = np.broadcast_to(a, x.shape)
        if cotangent is not None:
            arrays["g"] = np.broadcast_to(np.asarray(cotangent, dtype=np.float64), x.shape)
        flat = {n: a.ravel().tolist() for n, a in arrays.items()}
        base = self._bind(spec, params)
        value_tree = spec.formula
        tree = value_tree if wrt is None else F.BinOp("*", F.Name("g"), spec.derivatives[wrt])
        points = [{n: flat[n][i] for n in flat} for i in range(x.size)]
        if wrt is not None and np.asarray(inputs[wrt]).shape != x.shape:
            return self._reduced_vjp(spec, wrt, inputs, arrays, tree, base, points, dtype)
        out = [self._point(spec, wrt, tree, base, p, params, dtype) for p in points]
        return _pack(out, x.shape, dtype)

    def _point(self, spec: Spec, wrt: str | None, tree: F.Node, base: Params, point: dict[str, float],
               params: Mapping[str, Any], dtype: str) -> float | None:
        vals = list(point.values())
        if any(math.isnan(v) for v in vals):
            return math.nan
        first = spec.tensor_inputs[0]
        if any(math.isinf(v) for v in vals):
            x = point[first]
            if wrt is not None or not math.isinf(x) or any(math.isinf(v) for n, v in point.items() if n != first):
                return None
            limit = spec.limits.get("+inf" if x > 0 else "-inf")
            if limit is None:
                return None
            if isinstance(limit, float):
                return _stored(limit, dtype)
            return solve(lambda: [evaluate(limit, base.env())], dtype)[0]

        def outputs() -> list[Val]:
            env = base.env()
            env.update({n: arb(v) for n, v in point.items()})
            if wrt is not None:
                env["y"] = evaluate(spec.formula, env)
            return [evaluate(tree, env)]
        r = solve(outputs, dtype)[0]
        x0 = point[first]
        if wrt is None and r == 0 and x0 == 0 and math.copysign(1, x0) < 0 and spec.doc.zero_sign == "preserve":
            return -0.0
        return r

    def _reduced_vjp(self, spec: Spec, wrt: str, inputs: Mapping[str, np.ndarray], arrays: dict, tree: F.Node,
                     base: Params, points: list[dict[str, float]], dtype: str) -> RefResult:
        target = np.asarray(inputs[wrt])
        x = arrays[spec.tensor_inputs[0]]
        ids = np.arange(target.size).reshape(target.shape)
        ispec = spec.doc.inputs[wrt]
        if ispec.kind == "channel_weight" and target.ndim == 1 and target.size > 1:
            shape = [1] * x.ndim
            shape[ispec.channel_axis] = target.size
            ids = ids.reshape(shape)
        owner = np.broadcast_to(ids, x.shape).ravel()
        out: list[float | None] = []
        for k in range(target.size):
            pts = [points[i] for i in np.nonzero(owner == k)[0]]
            if any(not math.isfinite(v) for p in pts for v in p.values()):
                out.append(None)
                continue

            def outputs(pts: list = pts) -> list[Val]:
                total = arb(0)
                for p in pts:
                    env = base.env()
                    env.update({n: arb(v) for n, v in p.items()})
                    env["y"] = evaluate(spec.formula, env)
                    total = total + _ball(evaluate(tree, env))
                return [total]
            out.append(solve(outputs, dtype)[0])
        return _pack(out, target.shape, dtype)

    def _rows(self, spec: Spec, wrt: str | None, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray | None,
              params: Mapping[str, Any], dtype: str) -> RefResult:
        x = np.asarray(inputs[spec.tensor_inputs[0]], dtype=np.float64)
        axis = int(float(params[spec.doc.axis_param])) % max(x.ndim, 1)
        group = int(float(params[spec.doc.group_param])) if spec.shape == "grouped" else x.shape[axis]
        if spec.shape == "grouped" and (group < 1 or x.shape[axis] % group):
            raise ValueError(f"{spec.name}: axis {axis} of length {x.shape[axis]} is not a multiple of {group}")
        moved = np.moveaxis(x, axis, -1)
        rows = moved.reshape(-1, group)
        same = spec.doc.output == "same"
        grows = None
        if cotangent is not None:
            g = np.asarray(cotangent, dtype=np.float64)
            grows = (np.moveaxis(np.broadcast_to(g, x.shape), axis, -1).reshape(-1, group) if same
                     else np.moveaxis(g, axis, -1).reshape(-1, 1))
        width = group if (same or wrt is not None) else 1
        base = self._bind(spec, params)
        tree = spec.formula if wrt is None else spec.derivatives[wrt]
        out = [self._row(spec, wrt, tree, base, rows[i], None if grows is None else grows[i], dtype, width)
               for i in range(rows.shape[0])]
        arr = np.asarray([[math.nan if r is None else r for r in row] for row in out], dtype=np.float64)
        unc = np.asarray([[r is None for r in row] for row in out], dtype=bool)
        if width == 1 and not same and wrt is None:
            shape = moved.shape[:-1] + (moved.shape[-1] // group,)
            vals, unc_ = arr.reshape(shape), unc.reshape(shape)
        else:
            vals, unc_ = arr.reshape(moved.shape), unc.reshape(moved.shape)
        return RefResult(np.moveaxis(vals, -1, axis).astype(info(dtype).np_dtype), np.moveaxis(unc_, -1, axis))

    def _row(self, spec: Spec, wrt: str | None, tree: F.Node, base: Params, row: np.ndarray, grow: np.ndarray | None,
             dtype: str, width: int) -> list[float | None]:
        conv = spec.doc.conventions
        if np.isnan(row).any():
            return [math.nan] * width
        if np.isposinf(row).any() and "pos_inf_entries" in conv and str(conv["pos_inf_entries"].canonical) == "nan":
            return [math.nan] * width
        if grow is not None and not np.isfinite(grow).all():
            return [None] * width
        if np.isneginf(row).all() and "all_neg_inf_row" in conv and str(conv["all_neg_inf_row"].canonical) == "nan":
            return [math.nan] * width
        if wrt is not None and np.isinf(row).any():
            return [None] * width
        masked = np.isneginf(row)
        if masked.any() and "neg_inf_entries" in conv and spec.doc.output == "same":
            # The convention: the others are the function of the row without the masked entries.
            out = self._stand_ins(spec, wrt, tree, base, row, grow, dtype, width)
            inside = self._row(spec, wrt, tree, base, row[~masked], None if grow is None else grow[~masked],
                               dtype, int((~masked).sum()))
            for j, r in zip(np.nonzero(~masked)[0].tolist(), inside):
                out[j] = r
            return out
        return self._stand_ins(spec, wrt, tree, base, row, grow, dtype, width)

    def _stand_ins(self, spec: Spec, wrt: str | None, tree: F.Node, base: Params, row: np.ndarray,
                   grow: np.ndarray | None, dtype: str, width: int) -> list[float | None]:
        entries, gs = row.tolist(), None if grow is None else grow.tolist()

        def outputs() -> list[Val]:
            env = base.env()
            env[spec.tensor_inputs[0]] = [_standin(v) for v in entries]
            if gs is not None:
                env["g"] = [arb(v) for v in gs] if spec.doc.output == "same" else arb(gs[0])
            if wrt is not None:
                env["y"] = evaluate(spec.formula, env)
            y = evaluate(tree, env)
            return y if isinstance(y, list) else [y]
        return _widen(solve(outputs, dtype, limit=bool(np.isinf(row).any())), width)

    # ------------------------------------------------------------ losses

    def loss_value(self, spec: Spec, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None,
                   reduction: str = "none", dtype: str = "float64") -> RefResult:
        return self._loss(spec, None, inputs, None, with_defaults(spec, params), reduction, dtype)

    def loss_vjp(self, spec: Spec, wrt: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray,
                 params: Mapping[str, Any] | None = None, reduction: str = "none", dtype: str = "float64") -> RefResult:
        if wrt not in spec.derivatives:
            raise KeyError(f"{spec.name} declares no derivative with respect to {wrt!r}")
        return self._loss(spec, wrt, inputs, cotangent, with_defaults(spec, params), reduction, dtype)

    def _sample_env(self, spec: Spec, item: dict[str, Any], base: Params) -> dict[str, Val]:
        env = base.env()
        first = spec.tensor_inputs[0]
        for name, v in item.items():
            if isinstance(v, int):
                env[name] = v
            elif isinstance(v, (list, np.ndarray)):
                env[name] = [_standin(float(e)) if name == first else arb(float(e)) for e in v]
            else:
                env[name] = _standin(float(v)) if name == first else arb(float(v))
        return env

    @staticmethod
    def _nonfinite(item: dict[str, Any], names: list[str], test: Callable[[float], bool]) -> bool:
        for n in names:
            v = item[n]
            for e in (v if isinstance(v, (list, np.ndarray)) else [v]):
                if not isinstance(e, int) and test(float(e)):
                    return True
        return False

    def _status(self, spec: Spec, item: dict[str, Any]) -> str:
        names = list(item)
        if self._nonfinite(item, names, math.isnan):
            return "nan"
        if self._nonfinite(item, names[1:], math.isinf):
            return "uncertain"         # an infinite target or weight: no declared meaning
        return "ok"

    def _ignored(self, spec: Spec, item: dict[str, Any], base: Params) -> bool:
        if spec.ignore is None:
            return False
        used = [n for n in F.names(spec.ignore) if n in item]
        if self._nonfinite(item, used, lambda v: not math.isfinite(v)):
            return False
        old = flint.ctx.prec
        flint.ctx.prec = 64
        try:
            return bool(evaluate(spec.ignore, self._sample_env(spec, {n: item[n] for n in used}, base)))
        except (Undecided, Domain, KeyError):
            return False
        finally:
            flint.ctx.prec = old

    def _loss(self, spec: Spec, wrt: str | None, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray | None,
              params: Mapping[str, Any], reduction: str, dtype: str) -> RefResult:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        samples = split(spec, inputs, params)
        base = self._bind(spec, params)
        base.ints["width"] = samples.width
        status = [self._status(spec, it) for it in samples.items]
        ignored = [self._ignored(spec, it, base) for it in samples.items]
        kept = [it for it, ig in zip(samples.items, ignored) if not ig]

        def denominator() -> Any:
            total = arb(0)
            for it in kept:
                total = total + (arb(1) if spec.count is None else _ball(evaluate(spec.count, self._sample_env(spec, it, base))))
            return total

        first = spec.tensor_inputs[0]
        if wrt is None:
            def one(it: dict[str, Any]) -> Any:
                return _ball(evaluate(spec.formula, self._sample_env(spec, it, base)))
            if reduction == "none":
                out: list[float | None] = []
                for it, st_, ig in zip(samples.items, status, ignored):
                    if ig:
                        out.append(0.0)
                    elif st_ != "ok":
                        out.append(math.nan if st_ == "nan" else None)
                    else:
                        def single(it: dict[str, Any] = it) -> list[Val]:
                            return [one(it)]
                        out.append(solve(single, dtype, limit=self._nonfinite(it, [first], math.isinf))[0])
                return _pack(out, samples.out_shape, dtype)
            kept_status = [st_ for st_, ig in zip(status, ignored) if not ig]
            if "nan" in kept_status:
                return _pack([math.nan], (), dtype)
            if "uncertain" in kept_status:
                return _pack([None], (), dtype)

            def total() -> list[Val]:
                s = arb(0)
                for it in kept:
                    s = s + one(it)
                if reduction == "sum":
                    return [s]
                d = denominator()
                if d.is_zero():
                    if spec.doc.reduction.mean_of_nothing == "zero":
                        return [arb(0)]
                    raise Domain("mean over no samples")
                return [_div(s, d)]
            limit = any(self._nonfinite(it, [first], math.isinf) for it in kept)
            return _pack(solve(total, dtype, limit=limit), (), dtype)

        deriv = spec.derivatives[wrt]
        g = np.asarray(cotangent, dtype=np.float64)
        per_sample = g.ravel().tolist() if reduction == "none" else [float(g)] * len(samples.items)
        bad_kept = any(st_ != "ok" for st_, ig in zip(status, ignored) if not ig)
        width = samples.width if spec.shape != "elementwise" else 1
        rows: list[list[float | None]] = []
        for i, (it, st_, ig) in enumerate(zip(samples.items, status, ignored)):
            if ig:
                rows.append([0.0] * width)
                continue
            if st_ != "ok" or (reduction != "none" and bad_kept) or not math.isfinite(per_sample[i]) \
                    or self._nonfinite(it, [first], math.isinf):
                rows.append([math.nan if st_ == "nan" else None] * width)
                continue

            def outputs(it: dict[str, Any] = it, gi: float = per_sample[i]) -> list[Val]:
                gs: Val = arb(gi)
                if reduction == "mean":
                    d = denominator()
                    if d.is_zero():
                        raise Domain("mean over no samples")
                    gs = _div(gs, d)
                env = self._sample_env(spec, it, base)
                env["g"] = gs
                env["y"] = evaluate(spec.formula, env)
                out = evaluate(deriv, env)
                if spec.shape == "elementwise":
                    out = _mul(gs, out)
                return out if isinstance(out, list) else [out]
            rows.append(_widen(solve(outputs, dtype), width))
        flat: list[float | None] = [r for row in rows for r in row]
        shaped_vals = samples.restore(wrt, np.asarray([math.nan if r is None else r for r in flat], dtype=np.float64)
                                      .reshape(-1) if spec.shape == "elementwise" else
                                      np.asarray([math.nan if r is None else r for r in flat]).reshape(-1, width))
        shaped_unc = samples.restore(wrt, np.asarray([r is None for r in flat]).reshape(-1) if spec.shape == "elementwise"
                                     else np.asarray([r is None for r in flat]).reshape(-1, width))
        return RefResult(np.asarray(shaped_vals, dtype=np.float64).astype(info(dtype).np_dtype),
                         np.asarray(shaped_unc, dtype=bool))


__all__ = ["ArbReference", "MAX_BITS", "TierUnavailable", "certify", "evaluate", "round_exact", "solve", "tier_version"]
