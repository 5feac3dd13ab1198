"""Float64 evaluation of a formula over a batch of samples, for condition numbers only.

A condition number scales a tolerance; it needs two or three correct digits,
not a certified result, and it must survive the infinities that appear at the
edges of a loss's domain (log 0 for a zero target), where interval arithmetic
gives up on the whole row.  So it is evaluated here with NumPy, vectorised over
samples: every value is an array of shape (samples, 1) or (samples, classes).
Never used for a reference value.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Mapping

import numpy as np

from nnconform.spec import formula as F


@functools.cache
def _erf_table() -> tuple:
    """scipy's vectorised erf/erfc where installed (the float32 sweep screens 2**32 values), else math's.

    Imported on first use, not at import: the reference must import cheaply (pytest's in-process runs re-import)."""
    try:
        from scipy import special
        return special.erf, special.erfc
    except ImportError:
        return np.vectorize(math.erf, otypes=[float]), np.vectorize(math.erfc, otypes=[float])


_UNARY = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt, "tanh": np.tanh,
          "erf": lambda a: _erf_table()[0](a), "erfc": lambda a: _erf_table()[1](a),
          "logaddexp0": lambda a: np.logaddexp(0.0, a),    # log1p(exp(a)) without overflow; only the float32 sweep's screen
          "sigmoid": lambda x: 0.5 * (1 + np.tanh(0.5 * x)), "abs": np.abs}


def _logsumexp(a: np.ndarray) -> np.ndarray:
    m = a.max(axis=-1, keepdims=True)
    shift = np.where(np.isfinite(m), m, 0.0)
    return shift + np.log(np.exp(a - shift).sum(axis=-1, keepdims=True))
_CMP = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal}


def evaluate(node: F.Node, env: Mapping[str, np.ndarray]) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _eval(node, env)


def _eval(node: F.Node, env: Mapping[str, np.ndarray]) -> np.ndarray:
    if isinstance(node, F.Num):
        return np.asarray(float(node.text))
    if isinstance(node, F.Name):
        return np.asarray(np.pi) if node.id == "pi" else env[node.id]
    if isinstance(node, F.Neg):
        return -_eval(node.operand, env)
    if isinstance(node, F.BinOp):
        a, b = _eval(node.left, env), _eval(node.right, env)
        return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}[node.op](a, b)
    if isinstance(node, F.Pow):
        e = node.exponent
        return np.power(_eval(node.base, env), env[e.id] if isinstance(e, F.Name) else float(Fraction(e.text)))
    if isinstance(node, F.Compare):
        return _CMP[node.op](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, F.BoolOp):
        parts = [_eval(n, env) for n in node.operands]
        out = parts[0]
        for p in parts[1:]:
            out = np.logical_and(out, p) if node.op == "and" else np.logical_or(out, p)
        return out
    if isinstance(node, F.Index):
        row, k = env[node.value.id], env[node.index.id].astype(np.int64)
        return np.take_along_axis(row, np.clip(k, 0, row.shape[-1] - 1), axis=-1)
    if isinstance(node, F.Call):
        return _call(node, env)
    raise TypeError(f"{type(node).__name__} cannot be evaluated approximately")


def _call(node: F.Call, env: Mapping[str, np.ndarray]) -> np.ndarray:
    name = node.func
    if name == "onehot":
        k = env[node.args[0].id].astype(np.int64)
        width = int(env["width"].ravel()[0])
        return (np.arange(width)[None, :] == k).astype(np.float64)
    args = [_eval(a, env) for a in node.args]
    if name in _UNARY:
        return _UNARY[name](args[0])
    if name == "where":
        return np.where(*args)
    if len(args) == 2:
        return (np.maximum if name == "max" else np.minimum)(*args)
    a = np.atleast_2d(args[0])
    if name == "sum":
        return a.sum(axis=-1, keepdims=True)
    if name == "mean":
        return a.mean(axis=-1, keepdims=True)
    if name == "max":
        return a.max(axis=-1, keepdims=True)
    if name == "min":
        return a.min(axis=-1, keepdims=True)
    return _logsumexp(a)
