"""Evaluate a formula tree with mpmath, carrying a rigorous error bound on every value.

A value is a pair ``(v, e)``: `v` is an mpmath raw float, `e` an integer with
``|v - exact| <= 2**e``, or None when `v` is exact.  Each operation adds its own
rounding error and propagates its operands' errors through a bound on the
derivative.  The caller accepts a result only when both ends of its interval
round to the same number of the target format, and otherwise evaluates again
at twice the precision.

Why not plain Ziv (compare two precisions): for ``1 - sigmoid(100)`` at 64 and
at 128 bits, ``1 + exp(-100)`` rounds to 1 at both, so both give exactly 0 and
agree, and Ziv would certify the wrong answer.  Here the subtraction carries
the bound of its absorbed operand and the result is refused until the
precision is high enough.

A condition whose truth the bounds cannot settle (``where(x > 0, ...)`` with x
known only to within its error) raises NeedPrecision too.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Callable, Union

import mpmath
from mpmath.libmp import (
    fone,
    from_int,
    from_str,
    fzero,
    mpf_abs,
    mpf_add,
    mpf_cmp,
    mpf_div,
    mpf_erf,
    mpf_erfc,
    mpf_exp,
    mpf_log,
    mpf_mul,
    mpf_neg,
    mpf_pi,
    mpf_pow_int,
    mpf_sqrt,
    mpf_sub,
    mpf_tanh,
    normalize,
    to_int,
)

from nnconform.spec import formula as F

NO_ERROR = None
Scalar = tuple  # (mpf raw tuple, int | None)
Value = Union[Scalar, list]
Env = dict
Compiled = Callable[[Env, int], Value]
_LOG2E = 1.4426950408889634


class NeedPrecision(Exception):
    """The working precision cannot settle this value; evaluate again with more bits."""


class DomainError(Exception):
    """The formula is undefined here (log of a negative number, division by exact zero)."""


def mag(v: tuple) -> int:
    """An integer m with |v| < 2**m (and |v| >= 2**(m-1) for non-zero v)."""
    return v[2] + v[3] if v[1] else -(1 << 40)


def radd(a: tuple, b: tuple, prec: int, rnd: str = "n") -> tuple:
    """mpf_add rounded to prec bits, safe for operands of wildly different size.

    mpmath shifts the smaller operand by the whole exponent gap, which for 1 + exp(3e38)
    is 4e38 bits: an OverflowError, or an abort when it merely runs out of memory.  An
    operand entirely below the larger one's last bit and below the rounding grid is
    replaced by a same-signed stand-in just below both: the rounded sum, in any rounding
    mode, is the same.  Only then: a small operand above the larger one's last bit (a
    1,000-bit working value and an error bound of 2**-200) changes a directed rounding, and
    a stand-in there made "outward" ends inward (the certified log_softmax VJP of
    [500, 500, 0] came out 2 where the exact value is 2 - 2**-53 - ...).
    """
    if a[1] and b[1]:
        gap = mag(a) - mag(b)
        big, small = (a, b) if gap > 0 else (b, a)
        if abs(gap) > max(prec, big[3]) + 8:
            below = mag(big) - max(prec, big[3]) - 8
            return mpf_add(big, (small[0], 1, below - 1, 1), prec, rnd)
    return mpf_add(a, b, prec, rnd)


def _bound(*exps: int | None) -> int | None:
    """Bound a sum of terms 2**e: at most three terms, so two more bits cover it."""
    present = [e for e in exps if e is not None]
    return max(present) + 2 if present else None


def _rounding(r: tuple, prec: int) -> int:
    return mag(r) - prec


_HALF, _MINUS_HALF = (0, 1, -1, 1), (1, 1, -1, 1)


def exp_mpf(x: tuple, prec: int, rnd: str = "n") -> tuple:
    """mpf_exp, without its slow path for huge integer arguments; the result is within one ulp.

    Above 600 bits, mpmath evaluates exp(n) for an integer n as e**n by repeated squaring: for
    -x**2 with x a float64 near 1e300 that is 2,000 squarings of 3,000-bit numbers, 10 ms a
    call, and most of the cold cost of a float64 grid (gelu's derivative at x < -40).  Written as
    exp(x + 1/2) * exp(-1/2), the argument is not an integer and mpmath reduces it modulo log 2
    instead.  The two extra roundings, at prec + 8 bits, add less than 2**-6 ulp; every caller
    bounds its result by at least one ulp at prec.
    """
    if prec > 600 and x[1] and x[2] >= 0 and x[2] + x[3] > 8:
        shifted = mpf_add(x, _HALF)                 # exact: x is an integer
        return mpf_mul(mpf_exp(shifted, prec + 8), mpf_exp(_MINUS_HALF, prec + 8), prec, rnd)
    return mpf_exp(x, prec, rnd)


# ---------------------------------------------------------------- arithmetic

def add(a: Scalar, b: Scalar, prec: int) -> Scalar:
    (av, ae), (bv, be) = a, b
    if ae is None and be is None:
        exact = mpf_add(av, bv)
        if exact[3] <= prec:
            return exact, None
    r = radd(av, bv, prec)
    return r, _bound(ae, be, _rounding(r, prec))


def neg(a: Scalar) -> Scalar:
    return mpf_neg(a[0]), a[1]


def sub(a: Scalar, b: Scalar, prec: int) -> Scalar:
    return add(a, neg(b), prec)


def _exact_zero(v: tuple, e: int | None) -> bool:
    return e is None and not v[1] and v[2] == 0     # mpf zero (not an infinity stand-in)


def mul(a: Scalar, b: Scalar, prec: int) -> Scalar:
    (av, ae), (bv, be) = a, b
    if _exact_zero(av, ae) or _exact_zero(bv, be):
        return fzero, None                            # 0 * (b +- e) is exactly 0: an optimizer's zero gradient
    if ae is None and be is None:
        exact = mpf_mul(av, bv)
        if exact[3] <= prec:
            return exact, None
    r = mpf_mul(av, bv, prec, "n")
    # |a|*eb + |b|*ea + ea*eb; the last is second order and absorbed by the +1.
    terms = [_rounding(r, prec)]
    if be is not None:
        terms.append(mag(av) + 1 + be)
    if ae is not None:
        terms.append(mag(bv) + 1 + ae)
    return r, _bound(*terms)


def _away_from_zero(v: tuple, e: int | None) -> bool:
    """True when the interval v +- 2**e excludes zero, with a factor-of-two margin."""
    if not v[1]:
        return False
    return e is None or e < mag(v) - 2


def div(a: Scalar, b: Scalar, prec: int) -> Scalar:
    (av, ae), (bv, be) = a, b
    if not bv[1]:
        if be is None:
            raise DomainError("division by zero")
        raise NeedPrecision
    if not _away_from_zero(bv, be):
        raise NeedPrecision
    if _exact_zero(av, ae):
        return fzero, None
    r = mpf_div(av, bv, prec, "n")
    if ae is None and be is None and mpf_mul(r, bv) == av:
        return r, None
    mb = mag(bv) - 1                          # |b| >= 2**mb, and >= 2**(mb-1) over the interval
    terms = [_rounding(r, prec)]
    if ae is not None:
        terms.append(ae - mb + 1)
    if be is not None:
        terms.append(mag(r) + be - mb + 1)
    return r, _bound(*terms)


def power(a: Scalar, c: Fraction, prec: int) -> Scalar:
    av, ae = a
    if c.denominator == 1:
        n = int(c)
        if n < 0:
            return div((fone, None), power(a, -c, prec), prec)
        if n == 0:
            return fone, None
        if ae is None:
            exact = av
            for _ in range(n - 1):          # n <= 8: exact products (mpf_pow_int has no exact mode)
                exact = mpf_mul(exact, av)
            if exact[3] <= prec:
                return exact, None
        r = mpf_pow_int(av, n, prec + 4, "n")
        if n > 1 and ae is not None and not _away_from_zero(av, ae):
            # Near zero: |(a+d)^n - a^n| <= n (|a| + |d|)^(n-1) |d|.
            spread = max(mag(av), ae + 1)
            return r, _bound(_rounding(r, prec) + 1, ae + (n - 1) * spread + n.bit_length())
    else:
        if av[0] or not av[1]:
            if not av[1] and ae is None and c > 0:
                return fzero, None
            raise DomainError("fractional power of a non-positive number")
        if ae is not None and not _away_from_zero(av, ae):
            raise NeedPrecision
        r = _mpf_pow_frac(av, c, prec)
    if ae is None:
        return r, _bound(_rounding(r, prec) + 1)
    # relative error of the result is |c| times that of a
    rel = ae - (mag(av) - 1)
    return r, _bound(_rounding(r, prec) + 1, mag(r) + rel + abs(c).numerator.bit_length() + 1)


def _mpf_pow_frac(av: tuple, c: Fraction, prec: int) -> tuple:
    wp = prec + 10
    return exp_mpf(mpf_mul(mpf_log(av, wp), _fraction(c, wp), wp), prec)


def _fraction(c: Fraction, prec: int) -> tuple:
    return mpf_div(from_int(c.numerator), from_int(c.denominator), prec, "n")


# ---------------------------------------------------------------- functions

def _to_float(v: tuple) -> float:
    """Rough value for derivative bounds only (|x| below 2**30; larger ones go through _log2_exp_bound)."""
    m = mag(v)
    if m > 30:
        return -1e9 if v[0] else 1e9
    if m < -1000:
        return 0.0
    return float(mpmath.mpf(v))


def _log2_exp_bound(av: tuple, power: int, factor: float) -> int:
    """An integer above log2 exp(-factor |x|**power), for any |x| (computed to the last unit past 2**30).

    A bound saturated at |x| = 1e9 is 2**-1.4e9 in absolute terms, far above a result like
    sigmoid(-7e88) = e^-7e88: the interval then straddles zero, and the sign of the exact
    value could not be certified.
    """
    if mag(av) <= 30:
        x = abs(_to_float(av))
        return int(-factor * x ** power * _LOG2E)          # int() rounds a negative bound up: still a bound
    with mpmath.workprec(power * mag(av) + 64):           # the exponent to within 1: rounded up, a bound
        x = mpmath.mpf(mpf_abs(av))
        return int(mpmath.ceil(-mpmath.mpf(factor) * x ** power / mpmath.log(2))) + 1


def _fn_result(r: tuple, prec: int, ae: int | None, slope_mag: int) -> Scalar:
    """Result of a function with |f'| <= 2**slope_mag around the argument."""
    if ae is None:
        return r, _bound(_rounding(r, prec) + 1)
    return r, _bound(_rounding(r, prec) + 1, ae + slope_mag + 1)


def f_exp(a: Scalar, prec: int) -> Scalar:
    av, ae = a
    if ae is not None and ae > -2:
        raise NeedPrecision
    if ae is None and not av[1]:
        return fone, None
    r = exp_mpf(av, prec + 2)
    return _fn_result(r, prec, ae, mag(r))


def f_expm1(a: Scalar, prec: int) -> Scalar:
    av, ae = a
    if ae is not None and ae > -2:
        raise NeedPrecision
    if not av[1]:
        return fzero, ae
    if mag(av) < -(prec + 8):
        return _near_zero_identity(av, ae, prec)
    # exp(x) - 1 cancels for small |x|; extra bits cover the loss.
    extra = max(0, -mag(av)) + 10
    r = mpf_sub(exp_mpf(av, prec + extra), fone, prec + 2, "n")
    return _fn_result(r, prec, ae, max(mag(r), 1) + 1)


def f_log(a: Scalar, prec: int) -> Scalar:
    av, ae = a
    if av[0] or not av[1]:
        if ae is None or not av[1]:
            if not av[1] and ae is None:
                return mpmath.ninf._mpf_, None
            raise DomainError("log of a negative number")
        raise NeedPrecision
    if not _away_from_zero(av, ae):
        raise NeedPrecision
    if ae is None and av == fone:
        return fzero, None
    extra = 10 + (abs(mag(av)).bit_length())
    r = mpf_log(av, prec + extra, "n")
    return _fn_result(r, prec, ae, -(mag(av) - 2))


def f_log1p(a: Scalar, prec: int) -> Scalar:
    av, ae = a
    if not av[1]:
        return fzero, ae
    if mag(av) < -(prec + 8):
        return _near_zero_identity(av, ae, prec)
    wp = prec + max(0, -mag(av)) + 10
    if mag(av) > wp + 4 and av[0]:
        raise DomainError("log1p of a number <= -1")
    if mag(av) > wp + 4:
        # 1 + x is x to far beyond the working precision: log1p(x) = log(x) + log1p(1/x), and the
        # second term, below 2**(2 - mag(x)), goes into the bound.
        r = mpf_log(av, prec + 2 + abs(mag(av)).bit_length(), "n")
        extra = _bound(_rounding(r, prec) + 1, 2 - mag(av))
        if ae is None:
            return r, extra
        return r, _bound(extra, ae - (mag(av) - 2) + 1)
    t = radd(fone, av, wp)
    if not t[1] and ae is None:
        return mpmath.ninf._mpf_, None          # log1p(-1) = log(0) = -inf, as f_log(0)
    if t[0] or not t[1]:
        raise DomainError("log1p of a number <= -1")
    if ae is not None and not _away_from_zero(t, ae):
        raise NeedPrecision
    r = _log1p(av, prec)
    return _fn_result(r, prec, ae, -(mag(t) - 2))


def _near_zero_identity(av: tuple, ae: int | None, prec: int) -> Scalar:
    """expm1(x) and log1p(x) for |x| < 2**-(prec+8): x itself, within x**2 (and slope ~1 for ae)."""
    r = mpf_add(av, fzero, prec, "n")
    return r, _bound(2 * mag(av) + 1, _rounding(r, prec), None if ae is None else ae + 1)


def _log1p(av: tuple, prec: int) -> tuple:
    with mpmath.workprec(prec + 4):
        return mpmath.log1p(mpmath.mpf(av))._mpf_


def f_sqrt(a: Scalar, prec: int) -> Scalar:
    av, ae = a
    if not av[1] and ae is None:
        return fzero, None
    if av[0]:
        if ae is None:
            raise DomainError("sqrt of a negative number")
        raise NeedPrecision
    if ae is not None and not _away_from_zero(av, ae):
        raise NeedPrecision
    if ae is None:
        exact = mpf_sqrt(av, prec + 8, "d")
        if mpf_mul(exact, exact) == av:
            return exact, None
    r = mpf_sqrt(av, prec + 2, "n")
    return _fn_result(r, prec, ae, -mag(r) + 1)


def f_tanh(a: Scalar, prec: int) -> Scalar:
    av, ae = a
    if ae is not None and ae > -3:       # tanh' ~ 4 e^(-2|x|) varies by e^(2 delta) across the argument's interval
        raise NeedPrecision
    if not av[1]:
        return fzero, ae
    r = mpf_tanh(av, prec + 2, "n")
    x = abs(_to_float(av))
    slope = 0 if x < 1 else _log2_exp_bound(av, 1, 2.0) + 3   # tanh' = 1 - tanh^2 <= 4 exp(-2|x|)
    return _fn_result(r, prec, ae, slope)


def f_sigmoid(a: Scalar, prec: int) -> Scalar:
    av, ae = a
    if ae is not None and ae > -2:       # sigmoid' ~ e^-|x| varies by e^delta across the argument's interval
        raise NeedPrecision
    if not av[1]:
        return mpmath.mpf(0.5)._mpf_, None if ae is None else ae - 1
    wp = prec + 10
    if av[0]:   # x < 0: e / (1 + e) with e = exp(x) keeps the small result accurate
        e = exp_mpf(av, wp)
        r = mpf_div(e, radd(fone, e, wp), prec + 2, "n")
    else:
        r = mpf_div(fone, radd(fone, exp_mpf(mpf_neg(av), wp), wp), prec + 2, "n")
    x = abs(_to_float(av))
    slope = -2 if x < 2 else _log2_exp_bound(av, 1, 1.0) + 1       # sigmoid' <= min(1/4, exp(-|x|))
    return _fn_result(r, prec, ae, slope)


def _slope_holds(av: tuple, ae: int | None, growth: int) -> None:
    """The slope bound at the computed argument holds over the argument's whole interval only while
    the interval is narrow against the function's growth (|f'| varies by e^(growth |x| delta) there):
    erfc(5.9e8) with a 32-bit argument varies by 2**(2.3e8) across it.  Otherwise: more precision."""
    if ae is not None and ae + max(mag(av), 0) + growth > -2:
        raise NeedPrecision


def f_erf(a: Scalar, prec: int) -> Scalar:
    av, ae = a
    _slope_holds(av, ae, 2)
    if not av[1]:
        return fzero, None if ae is None else ae + 1
    r = mpf_erf(av, prec + 2, "n")
    return _fn_result(r, prec, ae, _gauss_slope(av))


def f_erfc(a: Scalar, prec: int) -> Scalar:
    av, ae = a
    _slope_holds(av, ae, 2)
    # For large z, erfc(z) ~ e^(-z^2): mpmath forms z^2 at the requested precision, and at 34 bits
    # erfc(5.9e8) came out 2**85,000,000 too large (gelu'(-8.3e8) in bfloat16 then certified +0.0
    # where the exact value is negative).  The exponent needs 2 mag(z) more bits.
    wp = prec + 2 + max(0, 2 * mag(av)) + 8
    r = mpf_erfc(av, wp, "n")
    if wp > prec + 2:
        r = normalize(r[0], r[1], r[2], r[3], prec + 2, "n") if r[1] else r
    return _fn_result(r, prec, ae, _gauss_slope(av))


def _gauss_slope(av: tuple) -> int:
    """|erf'(x)| = 2/sqrt(pi) exp(-x^2) <= 2**slope."""
    x = abs(_to_float(av))
    return 1 if x < 1 else _log2_exp_bound(av, 2, 1.0) + 2


def f_abs(a: Scalar, prec: int) -> Scalar:
    return mpf_abs(a[0]), a[1]


UNARY: dict[str, Callable[[Scalar, int], Scalar]] = {
    "exp": f_exp, "expm1": f_expm1, "log": f_log, "log1p": f_log1p, "sqrt": f_sqrt,
    "tanh": f_tanh, "sigmoid": f_sigmoid, "erf": f_erf, "erfc": f_erfc, "abs": f_abs,
}


# ---------------------------------------------------------------- comparisons

def compare(op: str, a: Scalar, b: Scalar, prec: int) -> bool:
    d, de = sub(a, b, prec)
    if d[1] and not _away_from_zero(d, de):
        raise NeedPrecision
    if not d[1] and de is not None:
        raise NeedPrecision
    s = mpf_cmp(d, fzero)
    return {"<": s < 0, "<=": s <= 0, ">": s > 0, ">=": s >= 0, "==": s == 0, "!=": s != 0}[op]


def pick_max(a: Scalar, b: Scalar, sign: int) -> Scalar:
    """max (sign=1) or min (sign=-1) of two values: the bound is the larger of the two bounds."""
    c = mpf_cmp(a[0], b[0]) * sign
    v = a[0] if c >= 0 else b[0]
    e = None if a[1] is None and b[1] is None else max(x for x in (a[1], b[1]) if x is not None)
    return v, e


# ---------------------------------------------------------------- compilation

def _lift1(fn: Callable[[Scalar], Scalar]) -> Callable[[Value], Value]:
    def lifted(a: Value) -> Value:
        return [fn(x) for x in a] if isinstance(a, list) else fn(a)
    return lifted


def _broadcast(a: Value, b: Value) -> tuple[list, list] | None:
    la, lb = isinstance(a, list), isinstance(b, list)
    if not la and not lb:
        return None
    if la and lb:
        if len(a) != len(b):
            raise DomainError(f"vectors of lengths {len(a)} and {len(b)} do not match")
        return a, b
    return (a, [b] * len(a)) if la else ([a] * len(b), b)


@functools.lru_cache(maxsize=4096)
def constant(text: str, prec: int) -> Scalar:
    frac = Fraction(text)
    exact = frac.denominator & (frac.denominator - 1) == 0   # a dyadic rational is exact at enough bits
    v = from_str(text, prec, "n")
    if exact and mpf_mul(v, from_int(frac.denominator)) == from_int(frac.numerator):
        return v, None
    return v, _rounding(v, prec)


def compile_node(node: F.Node) -> Compiled:
    """Turn a formula tree into a closure ``(env, prec) -> Value`` (no Python eval anywhere)."""
    if isinstance(node, F.Num):
        text = node.text
        cache: dict[int, Scalar] = {}

        def num(env: Env, prec: int) -> Value:
            if prec not in cache:
                cache[prec] = constant(text, prec)
            return cache[prec]
        return num
    if isinstance(node, F.Name):
        name = node.id
        if name == "pi":
            return lambda env, prec: (mpf_pi(prec + 2), mag(mpf_pi(prec + 2)) - prec)
        return lambda env, prec: env[name]
    if isinstance(node, F.Neg):
        inner = compile_node(node.operand)
        lifted_neg = _lift1(neg)
        return lambda env, prec: lifted_neg(inner(env, prec))
    if isinstance(node, F.BinOp):
        left, right = compile_node(node.left), compile_node(node.right)
        op = {"+": add, "-": sub, "*": mul, "/": div}[node.op]

        def binop(env: Env, prec: int) -> Value:
            a, b = left(env, prec), right(env, prec)
            pair = _broadcast(a, b)
            if pair is None:
                return op(a, b, prec)
            return [op(x, y, prec) for x, y in zip(*pair)]
        return binop
    if isinstance(node, F.Pow):
        base = compile_node(node.base)
        counter = node.exponent.id if isinstance(node.exponent, F.Name) else None
        fixed = Fraction(node.exponent.text) if isinstance(node.exponent, F.Num) else Fraction(0)

        def pw(env: Env, prec: int) -> Value:
            a = base(env, prec)
            # A counter (an optimizer's step t) is an exact integer in the environment.
            c = Fraction(to_int(env[counter][0])) if counter is not None else fixed
            return [power(x, c, prec) for x in a] if isinstance(a, list) else power(a, c, prec)
        return pw
    if isinstance(node, F.Compare):
        left, right = compile_node(node.left), compile_node(node.right)
        cop = node.op

        def cmp(env: Env, prec: int) -> Value:
            a, b = left(env, prec), right(env, prec)
            pair = _broadcast(a, b)
            if pair is None:
                return compare(cop, a, b, prec)
            return [compare(cop, x, y, prec) for x, y in zip(*pair)]
        return cmp
    if isinstance(node, F.BoolOp):
        parts = [compile_node(n) for n in node.operands]
        is_and = node.op == "and"

        def boolop(env: Env, prec: int) -> Value:
            values = [p(env, prec) for p in parts]
            if any(isinstance(v, list) for v in values):
                n = max(len(v) for v in values if isinstance(v, list))
                rows = [v if isinstance(v, list) else [v] * n for v in values]
                return [all(t) if is_and else any(t) for t in zip(*rows)]
            return all(values) if is_and else any(values)
        return boolop
    if isinstance(node, F.Call):
        return _compile_call(node)
    if isinstance(node, F.Index):
        vname, iname = node.value.id, node.index.id

        def index(env: Env, prec: int) -> Value:
            return env[vname][class_of(env[iname], len(env[vname]))]
        return index
    raise DomainError(f"{type(node).__name__} is not supported by the reference yet")


def class_of(target: Value, width: int) -> int:
    """An integer class target as a Python index; a target outside [0, width) is a domain error."""
    if isinstance(target, list) or target[1] is not None:
        raise DomainError("a class target must be one exact integer")
    k = int(mpmath.mpf(target[0]))
    if k != mpmath.mpf(target[0]) or not 0 <= k < width:
        raise DomainError(f"class target {mpmath.mpf(target[0])} is not a class in [0, {width})")
    return k


def _compile_call(node: F.Call) -> Compiled:
    name = node.func
    if name == "onehot":
        tname = node.args[0].id   # the loader guarantees a class_index name

        def onehot(env: Env, prec: int) -> Value:
            width = int(mpmath.mpf(env["width"][0]))
            k = class_of(env[tname], width)
            return [(fone, None) if j == k else (fzero, None) for j in range(width)]
        return onehot
    args = [compile_node(a) for a in node.args]
    if name in UNARY:
        fn = UNARY[name]
        (arg,) = args

        def unary(env: Env, prec: int) -> Value:
            a = arg(env, prec)
            return [fn(x, prec) for x in a] if isinstance(a, list) else fn(a, prec)
        return unary
    if name == "where":
        cond, yes, no = args

        def where(env: Env, prec: int) -> Value:
            c = cond(env, prec)
            if isinstance(c, list):
                a, b = yes(env, prec), no(env, prec)
                a = a if isinstance(a, list) else [a] * len(c)
                b = b if isinstance(b, list) else [b] * len(c)
                return [x if t else y for t, x, y in zip(c, a, b)]
            return yes(env, prec) if c else no(env, prec)   # only the chosen branch is evaluated
        return where
    if name in ("max", "min") and len(args) == 2:
        sign = 1 if name == "max" else -1
        left, right = args

        def pairwise(env: Env, prec: int) -> Value:
            a, b = left(env, prec), right(env, prec)
            pair = _broadcast(a, b)
            if pair is None:
                return pick_max(a, b, sign)
            return [pick_max(x, y, sign) for x, y in zip(*pair)]
        return pairwise
    (arg,) = args
    reducer = {"sum": reduce_sum, "mean": reduce_mean, "logsumexp": reduce_logsumexp,
               "max": lambda v, p: reduce_max(v, 1), "min": lambda v, p: reduce_max(v, -1)}[name]

    def reduction(env: Env, prec: int) -> Value:
        v = arg(env, prec)
        if not isinstance(v, list):
            raise DomainError(f"{name}() needs a vector argument")
        return reducer(v, prec)
    return reduction


def reduce_sum(v: list, prec: int) -> Scalar:
    if not v:
        return fzero, None
    # Pairwise, so that the bound grows with log2(n), not n.
    while len(v) > 1:
        nxt = [add(v[i], v[i + 1], prec) for i in range(0, len(v) - 1, 2)]
        if len(v) % 2:
            nxt.append(v[-1])
        v = nxt
    return v[0]


def reduce_mean(v: list, prec: int) -> Scalar:
    return div(reduce_sum(v, prec), (from_int(len(v)), None), prec)


def reduce_max(v: list, sign: int) -> Scalar:
    best = v[0]
    for x in v[1:]:
        best = pick_max(best, x, sign)
    return best


def reduce_logsumexp(v: list, prec: int) -> Scalar:
    m = reduce_max(v, 1)
    shifted = [f_exp(sub(x, m, prec), prec) for x in v]
    return add(m, f_log(reduce_sum(shifted, prec), prec), prec)


__all__ = ["NeedPrecision", "DomainError", "compile_node", "mag", "Value", "Scalar"]
