"""The opt-in exhaustive float32 sweep: one unary function, all 2**32 inputs.

The mpmath reference gives ~50,000 values a second; 2**32 of them would take a day.  So
the sweep measures every input against a *screen* and every input that matters against
mpmath:

1. Screen: the spec's formula evaluated in float64 with NumPy (53 bits for a 24-bit
   result), after four rewrites that avoid float64's own overflow and cancellation:
   log1p(exp(a)) -> logaddexp(0, a), 1 + erf(a) -> erfc(-a), 1 - erf(a) -> erfc(a),
   1 - sigmoid(a) -> sigmoid(-a).  Where the screen is not finite for a finite input it is
   not trusted: those inputs go to mpmath (when a chunk has too many, they are counted as
   unmeasured and the report says so, nothing is guessed).
2. mpmath re-measures the worst inputs (the largest screened errors of every chunk) and
   a fixed sample (every 65,536th bit pattern that is a finite number).  The result states the largest
   disagreement between the screen and mpmath on that sample: it bounds how far the
   screened errors can be off.
3. NaN inputs expect NaN; the two infinities are measured with mpmath like any other
   input.

Both cores work on chunks of 2**22 inputs; a tqdm bar shows progress.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from nnconform.adapters.registry import load
from nnconform.reference import Reference, ReferenceCache, approx
from nnconform.spec import Spec, load_all
from nnconform.spec import formula as F

from ..compare import measure
from ..kinds import VALUE
from .sweep import histogram, in_processes, num

CHUNK = 1 << 22
SAMPLE_STRIDE = 1 << 16
KEEP = 8                    # worst inputs per chunk re-measured with mpmath
UNSCREENED_LIMIT = 4096     # per chunk, beyond that counted as unmeasured


def _screen_tree(node: F.Node) -> F.Node:
    """The four rewrites, applied bottom-up; F.Call('logaddexp0'|'erfc'|'sigmoid', ...) nodes."""
    if isinstance(node, F.Call):
        args = [_screen_tree(a) for a in node.args]
        if node.func == "log1p" and isinstance(args[0], F.Call) and args[0].func == "exp":
            return F.Call("logaddexp0", (args[0].args[0],))
        return F.Call(node.func, tuple(args))
    if isinstance(node, F.BinOp):
        left, right = _screen_tree(node.left), _screen_tree(node.right)
        one = isinstance(left, F.Num) and float(left.text) == 1.0
        if one and isinstance(right, F.Call) and right.func in ("erf", "sigmoid") and node.op in "+-":
            a = right.args[0]
            if right.func == "erf":
                return F.Call("erfc", (F.Neg(a) if node.op == "+" else a,))
            if node.op == "-":
                return F.Call("sigmoid", (F.Neg(a),))
        return F.BinOp(node.op, left, right)
    if isinstance(node, F.Neg):
        return F.Neg(_screen_tree(node.operand))
    if isinstance(node, F.Pow):
        return F.Pow(_screen_tree(node.base), node.exponent)
    if isinstance(node, F.Compare):
        return F.Compare(node.op, _screen_tree(node.left), _screen_tree(node.right))
    if isinstance(node, F.BoolOp):
        return F.BoolOp(node.op, tuple(_screen_tree(n) for n in node.operands))
    return node


def screen(spec: Spec, x: np.ndarray) -> np.ndarray:
    env = {"x": x[:, None], **{k: np.asarray(float(v)) for k, v in spec.default_params().items()}}
    return np.asarray(approx.evaluate(_screen_tree(spec.formula), env), dtype=np.float64).reshape(x.shape)


def _inputs(start: int, n: int) -> np.ndarray:
    return (np.uint64(start) + np.arange(n, dtype=np.uint64)).astype(np.uint32).view(np.float32)


_W: dict[str, Any] = {}


def _init(backend: str | Callable[[], Any], device: str, function: str) -> None:
    _W.update(adapter=backend() if callable(backend) else load(backend, device), spec=load_all()[function])


def _chunk(start: int, n: int) -> dict[str, Any]:
    adapter, spec = _W["adapter"], _W["spec"]
    x = _inputs(start, n)
    got = np.asarray(adapter.value(spec.name, {"x": x}, spec.default_params(), "float32"))
    if got.shape != x.shape:
        raise ValueError(f"{spec.name} returned shape {got.shape} for {x.shape} inputs")
    x64, g64 = x.astype(np.float64), got.astype(np.float64)
    with np.errstate(all="ignore"):
        s = screen(spec, x64).astype(np.float32)         # rounded once, as the correctly rounded reference is
        err = np.abs(g64 - s) / np.spacing(np.abs(s)).astype(np.float64)
    nan_in = np.isnan(x64)
    same = (g64 == s) | (nan_in & np.isnan(g64))
    err[same] = 0.0
    err[~same & (np.isnan(g64) | np.isinf(g64) | np.isinf(s))] = np.inf
    # Not trusted: a finite input whose screen is not finite (float64 overflowed or gave NaN), and the infinities.
    unscreened = np.flatnonzero(~nan_in & (np.isinf(x64) | (np.isnan(s) | (np.isinf(s) & (g64 != s)))))
    errm = err.copy()
    errm[unscreened] = -1.0
    bins = 256 if n % 256 == 0 else 1
    by_bin = errm.reshape(bins, -1)
    per_bin = by_bin.max(axis=1)
    # The worst input of each of the KEEP worst bins (argpartition over all n is slow on many ties).
    top = np.argsort(-per_bin, kind="stable")[:KEEP]
    worst = top * by_bin.shape[1] + by_bin[top].argmax(axis=1)
    # The same for the finite errors, so that a wrong NaN/inf somewhere does not hide the largest finite error.
    finite_bins = np.where(np.isfinite(by_bin), by_bin, -1.0)
    top_finite = np.argsort(-finite_bins.max(axis=1), kind="stable")[:KEEP]
    worst = np.unique(np.concatenate([worst, top_finite * by_bin.shape[1] + finite_bins[top_finite].argmax(axis=1)]))
    sample = np.arange((-start) % SAMPLE_STRIDE, n, SAMPLE_STRIDE)
    sample = sample[np.isfinite(x64[sample])]        # the infinities and NaNs are not screened (see above)
    hist = histogram(errm[errm >= 0])
    return {"start": start, "n": n, "max": float(errm.max()), "per_bin": per_bin.tolist(),
            "hist": hist, "unscreened": x[unscreened[:UNSCREENED_LIMIT]].view(np.uint32).tolist(),
            "unscreened_got": got[unscreened[:UNSCREENED_LIMIT]].astype(np.float64).tolist(),
            "unmeasured": int(max(0, unscreened.size - UNSCREENED_LIMIT)),
            "worst": [(int(x[i].view(np.uint32)), float(g64[i]), float(err[i])) for i in worst],
            "sample": [(int(x[i].view(np.uint32)), float(g64[i]), float(s[i])) for i in sample]}


def run(backend: str | Callable[[], Any], function: str, device: str = "cpu", jobs: int = 2, first: int = 0, count: int = 1 << 32,
        progress: bool = True) -> dict[str, Any]:
    """Sweep bit patterns first .. first+count-1 (all of them by default) and return one sweep record."""

    spec = load_all()[function]
    if spec.family != "activation" or spec.shape != "elementwise" or len(spec.tensor_inputs) != 1 \
            or spec.doc.stochastic is not None:
        raise ValueError(f"{function} is not a unary elementwise function; the float32 exhaustive sweep takes one")
    begin = time.perf_counter()
    chunks = [(s, min(CHUNK, first + count - s)) for s in range(first, first + count, CHUNK)]
    parts: list[dict[str, Any]] = []
    bar = tqdm(total=count, desc=f"{function} float32, all inputs", unit="in", unit_scale=True, disable=not progress)
    for part in in_processes(_chunk, chunks, jobs, _init, (backend, device, function)):
        parts.append(part)
        bar.update(part["n"])
    bar.close()
    parts.sort(key=lambda p: p["start"])
    ref = Reference(ReferenceCache())
    budget = spec.budget("float32", VALUE).ulp

    def exact(bits: list[int], got: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inputs, mpmath's values and the errors of `got` (NaN where the reference is uncertain)."""
        with np.errstate(invalid="ignore"):
            xs = np.asarray(bits, dtype=np.uint32).view(np.float32).astype(np.float64)
            m = measure(np.asarray(got, dtype=np.float32), ref.value(spec, {"x": xs}, spec.default_params(), "float32"),
                        "float32", budget)
        return xs, m.expected.astype(np.float64), np.where(m.certain, m.ulp, np.nan)

    worst_bits = [w[0] for p in parts for w in p["worst"]] + [b for p in parts for b in p["unscreened"]]
    worst_got = [w[1] for p in parts for w in p["worst"]] + [g for p in parts for g in p["unscreened_got"]]
    xs, e, u = exact(worst_bits, worst_got)
    sample = [s for p in parts for s in p["sample"]]
    _, _, su = exact([s[0] for s in sample], [s[2] for s in sample])        # the rounded screen against mpmath
    _, _, bu = exact([s[0] for s in sample], [s[1] for s in sample])        # the backend on the sample
    screened_max = max(p["max"] for p in parts)
    mp_max = float(np.nanmax(u)) if np.isfinite(u).any() or np.isinf(u).any() else 0.0
    i = int(np.nanargmax(u)) if u.size and not np.isnan(u).all() else 0
    hist = np.sum([p["hist"] for p in parts], axis=0).tolist()
    bins_x = [float(_inputs(p["start"] + k * (p["n"] // len(p["per_bin"])), 1)[0]) for p in parts
              for k in range(len(p["per_bin"]))]
    bins_u = [v for p in parts for v in p["per_bin"]]
    finite_bins = [(bx, bu_) for bx, bu_ in zip(bins_x, bins_u) if math.isfinite(bx)]
    finite_bins.sort()
    step = max(1, len(finite_bins) // 400)
    return {"function": function, "dtype": "float32", "quantity": VALUE, "grid": "exhaustive float32",
            "status": "measured", "budget_ulp": budget, "message": "",
            "points": count, "first_bits": first, "seconds": round(time.perf_counter() - begin, 1), "jobs": jobs,
            "max_ulp": num(max(mp_max, 0.0)), "max_ulp_screened": num(screened_max),
            "max_ulp_finite": float(np.max(u[np.isfinite(u)], initial=0.0)),
            "worst": [{"input_hex": float(xs[i]).hex(), "input": repr(float(xs[i])), "expected_hex": float(e[i]).hex(),
                       "got_hex": float(worst_got[i]).hex(), "ulp": num(float(u[i]))}] if u.size else [],
            "remeasured": int(u.size), "unmeasured": int(sum(p["unmeasured"] for p in parts)),
            "screen_check": {"sample": len(sample), "screen_differs_from_mpmath": int((su != 0).sum()),
                             "screen_max_ulp_vs_mpmath": num(float(np.nanmax(su)) if su.size else 0.0),
                             "backend_max_ulp_on_sample": num(float(np.nanmax(bu)) if bu.size else 0.0)},
            "histogram": hist,
            "profile": {"x": [b[0] for b in finite_bins[::step]],
                        "max_ulp": [num(max(bu_ for _, bu_ in finite_bins[k:k + step])) for k in range(0, len(finite_bins), step)]}}

