"""The reference agrees with an independent implementation: python-flint's arb ball arithmetic.

Each unary activation's formula tree is evaluated here with arb balls (its own interval
arithmetic, no code shared with `reference/evaluator.py`). Where both ends of the ball round
to the same float (tests/independent.py: Fraction arithmetic and round()), that float is the
certified correctly rounded value, and the reference must give exactly it, sign of zero
included. That is checked at 2,000 points per function, in float64 and in float32.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from nnconform.reference import Reference, ReferenceCache
from nnconform.spec import Spec, load_all
from nnconform.spec import formula as F

from .independent import FORMATS, MAX_EXP, round_fraction

flint = pytest.importorskip("flint", reason="python-flint is in the dev extra")
arb = flint.arb

POINTS = 2000
PRECISIONS = (128, 512, 2048)
SPECS = {n: s for n, s in load_all(["activation"]).items()
         if s.shape == "elementwise" and len(s.tensor_inputs) == 1 and not s.is_stochastic}
REFERENCE = Reference(ReferenceCache(persistent=False))


class Undecided(Exception):
    """A comparison the ball cannot settle at this precision."""


ZERO_OF_UNKNOWN_SIGN = object()    # both ends round to zero, of both signs: arb bounds |f| but not its sign


def _sign(d: arb) -> int:
    if d.rad() == 0 and d.mid() == 0:
        return 0
    if d > 0:
        return 1
    if d < 0:
        return -1
    raise Undecided


def _compare(op: str, a: arb, b: arb) -> bool:
    s = _sign(a - b)
    return {"<": s < 0, "<=": s <= 0, ">": s > 0, ">=": s >= 0, "==": s == 0, "!=": s != 0}[op]


ARB_METHODS = ("exp", "expm1", "log", "log1p", "sqrt", "tanh", "erf", "erfc")   # same names in the formula language


def _call(name: str, args: list, env: dict) -> arb:
    if name in ARB_METHODS:
        return getattr(args[0], name)()
    if name == "abs":
        return abs(args[0])
    if name == "sigmoid":
        return 1 / (1 + (-args[0]).exp())
    if name in ("max", "min") and len(args) == 2:
        first = _compare(">=" if name == "max" else "<=", args[0], args[1])
        return args[0] if first else args[1]
    raise NotImplementedError(name)


def evaluate(node: F.Node, env: dict) -> arb | bool:
    if isinstance(node, F.Num):
        return arb(node.text)
    if isinstance(node, F.Name):
        return arb.pi() if node.id == "pi" else env[node.id]
    if isinstance(node, F.Neg):
        return -evaluate(node.operand, env)
    if isinstance(node, F.BinOp):
        a, b = evaluate(node.left, env), evaluate(node.right, env)
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b}[node.op]()
    if isinstance(node, F.Pow):
        c = Fraction(node.exponent.text)
        base = evaluate(node.base, env)
        return base ** int(c) if c.denominator == 1 else base ** arb(str(c.numerator)) / arb(str(c.denominator))
    if isinstance(node, F.Compare):
        return _compare(node.op, evaluate(node.left, env), evaluate(node.right, env))
    if isinstance(node, F.BoolOp):
        parts = (evaluate(n, env) for n in node.operands)
        return all(parts) if node.op == "and" else any(parts)
    if isinstance(node, F.Call):
        if node.func == "where":
            return evaluate(node.args[1] if evaluate(node.args[0], env) else node.args[2], env)
        return _call(node.func, [evaluate(a, env) for a in node.args], env)
    raise NotImplementedError(type(node).__name__)


def _round(x: arb, dtype: str) -> float:
    """An exact arb endpoint rounded to the dtype; far outside the dtype's range without building the rational."""
    p, emin = FORMATS[dtype]
    if abs(x) > arb(2) ** (MAX_EXP[dtype] + 1):
        return math.copysign(math.inf, float(x.mid()))
    if x != 0 and abs(x) < arb(2) ** (emin - p - 1):
        return math.copysign(0.0, float(x.mid()))
    man, exp = x.man_exp()
    return round_fraction(Fraction(int(man)) * Fraction(2) ** int(exp), dtype)


def certified(spec: Spec, x: float, dtype: str) -> float | None | object:
    """arb's correctly rounded f(x), or None where arb cannot settle it within PRECISIONS
    (ZERO_OF_UNKNOWN_SIGN where it settles only that the result underflows to a zero)."""
    straddled = False
    for prec in PRECISIONS:
        flint.ctx.prec = prec
        env = {spec.tensor_inputs[0]: arb(x)}
        env.update({k: arb(v) for k, v in spec.defaults.items()})
        try:
            y = evaluate(spec.formula, env)
        except (Undecided, ZeroDivisionError, ValueError):
            continue
        if not y.is_finite():
            continue
        lo, hi = _round(y.lower(), dtype), _round(y.upper(), dtype)
        if lo == hi and math.copysign(1.0, lo) == math.copysign(1.0, hi):
            return lo
        straddled = straddled or (lo == hi == 0)          # zeros of both signs: not settled
    return ZERO_OF_UNKNOWN_SIGN if straddled else None


def points(spec: Spec, dtype: str) -> np.ndarray:
    """Both signs, log-spaced magnitudes over the dtype's range, the bend region and the kinks."""
    rng = np.random.default_rng(sum(map(ord, spec.name + dtype)))
    finfo = np.finfo(np.float64 if dtype == "float64" else np.float32)
    logs = rng.uniform(math.log(float(finfo.smallest_normal)), math.log(float(finfo.max) / 4), POINTS // 2)
    spread = np.exp(logs) * rng.choice([-1.0, 1.0], POINTS // 2)
    bend = rng.uniform(-40, 40, POINTS - POINTS // 2)
    x = np.concatenate([spread, bend]).astype(np.float64 if dtype == "float64" else np.float32).astype(np.float64)
    domain = spec.domain(spec.tensor_inputs[0])
    return np.asarray([v for v in x if v in domain and v != 0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_reference_matches_arb(name: str, dtype: str) -> None:
    spec = SPECS[name]
    x = points(spec, dtype)
    ours = REFERENCE.value(spec, {spec.tensor_inputs[0]: x}, None, dtype)
    compared, zeros, disagreements = 0, 0, []
    for i, v in enumerate(x):
        if ours.uncertain[i]:
            continue
        theirs = certified(spec, float(v), dtype)
        if theirs is ZERO_OF_UNKNOWN_SIGN:
            zeros += 1               # gelu far left: its sign is held by test_reference_defects, from the mathematics
            assert float(ours.values[i]) == 0, f"{name}[{dtype}] at {float(v).hex()}: arb bounds a zero, the reference gives {ours.values[i]}"
            continue
        if theirs is None:
            continue
        compared += 1
        mine = float(ours.values[i])
        same = mine == theirs and math.copysign(1.0, mine) == math.copysign(1.0, theirs)   # -0.0 is not +0.0
        if not (same or (math.isnan(mine) and math.isnan(theirs))):
            disagreements.append((float(v).hex(), mine, theirs))
    assert not disagreements, f"{name}[{dtype}]: reference and arb disagree at {disagreements[:5]}"
    assert compared >= 0.95 * (len(x) - zeros) and len(x) >= 0.9 * POINTS, \
        f"{name}[{dtype}]: only {compared} of {len(x) - zeros} points compared"
