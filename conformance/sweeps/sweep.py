"""Measurement sweeps: how far a backend is from the exact answer over fixed inputs, not pass/fail.

The pass/fail checks draw examples and stop at the first failure; a sweep measures every
input of a fixed set, so a report can say "the largest error over all inputs":

- float16 and bfloat16, elementwise functions of one input: every one of the 65,536 bit
  patterns (NaNs and infinities included), values and derivatives;
- every other function and dtype: a deterministic grid (`grid_points`): zero, both signs
  of log-spaced magnitudes from the smallest subnormal to the largest finite number (four
  per binade; two in float64, one for rows), a fine linear grid over [-40, 40] where activations bend, every kink and
  stability input the spec names with its three neighbours on each side, and the special
  values.  Vector functions take rows [v, 0, -1] for each grid value v.

Losses and optimizers are not swept: their inputs are pairs and trajectories with no one
natural grid; the checks' records measure them.  Dropout is random and has its statistical
check instead.

A sweep result (`SweepResult.record`) keeps the largest error (all inputs, and normal range
only, because flushing subnormals to zero is a separate, reported choice), the worst inputs
as exact hex, a histogram of errors, the largest error per bin of the input range (for the
error plot) and the curve over [-6, 6] (for the value and derivative plots).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
from tqdm import tqdm

from nnconform.adapters.base import Adapter, NotProvided
from nnconform.adapters.registry import load
from nnconform.reference import Reference, ReferenceCache
from nnconform.reference.dtypes import all_bit_patterns, cast, info
from nnconform.spec import Spec, load_all

from ..compare import measure
from ..inputs.grids import fixed_cotangent, fixed_inputs, grid_points, shape_point
from ..kinds import GRADIENT, VALUE

HISTOGRAM_EDGES = (0.0, 0.5, 1.0, 2.0, 4.0, 16.0, 256.0, 65536.0)   # ULP; last bucket: above, then wrong NaN/inf
PROFILE_BINS = 160
T = TypeVar("T")
CURVE_RANGE = 6.0
WORST_KEPT = 5


def sweepable(spec: Spec) -> str:
    """'' if the function is swept, else why not."""
    if spec.family != "activation":
        return f"a {spec.family}: measured by the checks' records, not swept"
    if spec.doc.stochastic is not None:
        return "random: measured by its statistical check"
    return ""


def exhaustive(spec: Spec, dtype: str) -> bool:
    return dtype in ("float16", "bfloat16") and spec.shape == "elementwise" and len(spec.tensor_inputs) == 1


@dataclass
class Quantity:
    """One sweep of one quantity (value, or derivative with respect to the first input)."""

    x: np.ndarray            # the swept input, float64
    expected: np.ndarray     # float64, NaN where uncertain (per swept point; a row's worst entry for vectors)
    got: np.ndarray
    ulp: np.ndarray          # per swept point, inf for a wrong NaN/inf
    certain: np.ndarray
    normal: np.ndarray       # neither the input nor the exact output is subnormal
    over: np.ndarray         # beyond the spec's allowance (budget x condition, as the checks apply it)


@dataclass
class SweepResult:
    function: str
    dtype: str
    quantity: str            # "value" | "gradient"
    grid: str                # "exhaustive" | "grid"
    status: str              # "measured" | "not provided" | "failed"
    budget_ulp: float | None
    message: str = ""
    data: Quantity | None = None
    curve: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None    # x, exact, got of the first output entry
    monotone: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"function": self.function, "dtype": self.dtype, "quantity": self.quantity,
                               "grid": self.grid, "status": self.status, "budget_ulp": self.budget_ulp,
                               "message": self.message}
        q = self.data
        if q is None:
            return out
        finite = np.where(q.certain, q.ulp, -1.0)
        normal = np.where(q.certain & q.normal, q.ulp, -1.0)
        order = np.argsort(-finite, kind="stable")[:WORST_KEPT]
        out.update({
            "points": int(q.x.size), "uncertain": int((~q.certain).sum()),
            "max_ulp": num(finite.max()) if q.certain.any() else None,
            "max_ulp_finite": float(np.where(np.isfinite(finite), finite, -1.0).max()) if q.certain.any() else None,
            "max_ulp_normal": num(normal.max()) if (q.certain & q.normal).any() else None,
            "mean_ulp": num(float(np.mean(np.minimum(q.ulp[q.certain], 1e300)))) if q.certain.any() else None,
            "over_allowance": int(q.over.sum()),
            "histogram": histogram(q.ulp[q.certain]),
            # A NaN input whose output is a number: counted apart, as 16-bit formats have 2,046 or 254 NaN patterns.
            "nan_not_propagated": int((np.isnan(q.x) & ~np.isnan(q.got) & q.certain).sum()),
            "worst": [{"input_hex": float(q.x[i]).hex(), "input": repr(float(q.x[i])), "expected_hex": float(q.expected[i]).hex(),
                       "got_hex": float(q.got[i]).hex(), "ulp": num(q.ulp[i])} for i in order if finite[i] > 0],
            "profile": _profile(q.x, finite),
            "curve": _curve(*(self.curve or (q.x, q.expected, q.got))),
        })
        if self.monotone is not None:
            out["monotone"] = self.monotone
        return out


def monotone_violations(x: np.ndarray, y: np.ndarray, direction: str) -> dict[str, Any]:
    """Neighbouring swept inputs (finite, in increasing order) where the output moves against the spec's monotonicity.

    Every pair of neighbours of the grid, or of all 65,536 16-bit inputs, is compared: a
    fixed set, so the count does not depend on any draw.
    """
    keep = np.isfinite(x)
    order = np.argsort(x[keep], kind="stable")
    xs, ys = x[keep][order], y[keep][order]
    if direction in ("decreasing", "nonincreasing"):
        ys = -ys
    with np.errstate(invalid="ignore"):               # inf - inf: judged below, not a warning
        step = np.diff(ys)
    bad = np.flatnonzero(((step < 0) | np.isnan(step) & ~(np.isinf(ys[1:]) & (ys[1:] == ys[:-1]))) & (np.diff(xs) > 0))
    first = {"x_hex": [float(xs[bad[0]]).hex(), float(xs[bad[0] + 1]).hex()],
             "y_hex": [float(y[keep][order][bad[0]]).hex(), float(y[keep][order][bad[0] + 1]).hex()]} if bad.size else None
    return {"direction": direction, "pairs": int(max(0, xs.size - 1)), "violations": int(bad.size), "first": first}


def num(v: float) -> float | str:
    """JSON has no infinity: a wrong NaN/inf is the string 'inf'."""
    return "inf" if math.isinf(v) else float(v)


def histogram(ulp: np.ndarray) -> list[int]:
    """Counts per bucket: exactly 0, then (lo, hi] for each pair of HISTOGRAM_EDGES, above the last, wrong NaN/inf."""
    bucket = np.searchsorted(np.asarray(HISTOGRAM_EDGES + (math.inf,)), ulp, side="left")
    bucket[~np.isfinite(ulp)] = len(HISTOGRAM_EDGES) + 1
    return np.bincount(bucket, minlength=len(HISTOGRAM_EDGES) + 2)[: len(HISTOGRAM_EDGES) + 2].tolist()


HISTOGRAM_LABELS = ("0", "(0, 0.5]", "(0.5, 1]", "(1, 2]", "(2, 4]", "(4, 16]", "(16, 256]", "(256, 65536]",
                    "> 65536", "wrong NaN/inf")


def _profile(x: np.ndarray, err: np.ndarray) -> dict[str, list]:
    """Largest error per bin of the input, bins equal in count over the finite inputs in increasing order."""
    keep = np.isfinite(x)
    xs, es = x[keep], err[keep]
    order = np.argsort(xs, kind="stable")
    xs, es = xs[order], es[order]
    if xs.size == 0:
        return {"x": [], "max_ulp": []}
    parts = np.array_split(np.arange(xs.size), min(PROFILE_BINS, xs.size))
    return {"x": [float(xs[p[len(p) // 2]]) for p in parts],
            "max_ulp": [num(float(es[p].max())) if es[p].max() >= 0 else None for p in parts]}


def _curve(x: np.ndarray, expected: np.ndarray, got: np.ndarray) -> dict[str, list]:
    inside = np.isfinite(x) & (np.abs(x) <= CURVE_RANGE)
    idx = np.flatnonzero(inside)
    idx = idx[np.argsort(x[idx], kind="stable")]
    if idx.size > 241:
        idx = idx[np.linspace(0, idx.size - 1, 241).round().astype(int)]

    def clean(a: np.ndarray) -> list:
        return [float(v) if math.isfinite(v) else None for v in a[idx]]
    return {"x": clean(x), "expected": clean(expected), "got": clean(got)}


class Sweeper:
    def __init__(self, adapter: Adapter, reference: Reference | None = None) -> None:
        self.adapter = adapter
        self.reference = reference or Reference(ReferenceCache())

    def inputs(self, spec: Spec, dtype: str) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
        """The swept points (float64), the inputs the function gets, and the grid's name."""
        if exhaustive(spec, dtype):
            x = all_bit_patterns(dtype)
            grid = "exhaustive"
        else:
            x = grid_points(spec, dtype)
            grid = "grid"
        with np.errstate(invalid="ignore"):
            x64 = x.astype(np.float64)
        if grid == "exhaustive":                  # the bit patterns themselves: NaN payloads do not survive float64
            return x64, {spec.tensor_inputs[0]: x}, grid
        if spec.shape == "elementwise":
            return x64, fixed_inputs(spec, shape_point(spec, x64), dtype), grid
        params = spec.default_params()
        group = int(params[spec.doc.group_param]) if spec.shape == "grouped" else 1
        base = [x64, np.zeros_like(x64), -np.ones_like(x64)] if group == 1 else \
            [x64] + [np.full_like(x64, v) for v in (0.0, -1.0, 0.5)][: 2 * group - 1]
        rows = np.stack(base, axis=-1)
        finite = np.isfinite(x64) | (spec.shape == "elementwise")
        return x64[finite], fixed_inputs(spec, rows[finite], dtype), grid

    def run(self, spec: Spec, dtype: str, quantity: str) -> SweepResult:
        budget = spec.budget(dtype, quantity, spec.tensor_inputs[0]).ulp
        x, inputs, grid = self.inputs(spec, dtype)
        result = SweepResult(spec.name, dtype, quantity, grid, "measured", budget)
        params = spec.default_params()
        name = spec.tensor_inputs[0]
        try:
            with np.errstate(invalid="ignore", over="ignore"):     # NaN payloads and overflow are inputs here
                got, g = self._backend(spec, quantity, inputs, params, dtype, name)
        except NotProvided as exc:
            return SweepResult(spec.name, dtype, quantity, grid, "not provided", budget, str(exc))
        except Exception as exc:   # noqa: BLE001 - a backend error is a result of the sweep
            return SweepResult(spec.name, dtype, quantity, grid, "failed", budget, f"{type(exc).__name__}: {exc}")
        with np.errstate(invalid="ignore", over="ignore"):
            ref = self.reference.value(spec, inputs, params, dtype) if g is None else \
                self.reference.vjp(spec, name, inputs, g, params, dtype)
        if not isinstance(got, np.ndarray) or got.shape != ref.values.shape:
            shape = getattr(got, "shape", type(got).__name__)
            return SweepResult(spec.name, dtype, quantity, grid, "failed", budget,
                               f"returned {shape}, expected an array of shape {ref.values.shape}")
        m = measure(got, ref, dtype, budget)
        ulp = np.where(m.certain, m.ulp, 0.0)
        over = self._beyond_allowance(spec, quantity, inputs, params, g, dtype, m)
        expected, gotten = m.expected.astype(np.float64), m.got.astype(np.float64)
        if ulp.ndim > 1 or ulp.shape != x.shape:                  # rows: the row's worst entry, shown at x
            first = lambda a: a.reshape(len(x), -1)[:, 0]   # noqa: E731
            result.curve = (x, first(expected), first(gotten.astype(np.float64)))
            flat = ulp.reshape(len(x), -1)
            at = np.argmax(flat, axis=1)
            pick = lambda a: a.reshape(len(x), -1)[np.arange(len(x)), at]   # noqa: E731
            ulp, expected, gotten = pick(ulp), pick(expected), pick(gotten.astype(np.float64))
            over = over.reshape(len(x), -1).any(axis=1)
            certain = m.certain.reshape(len(x), -1).all(axis=1)
        else:
            certain = m.certain
        tiny = 2.0 ** info(dtype).emin
        normal = ~(((np.abs(x) > 0) & (np.abs(x) < tiny)) | ((np.abs(expected) > 0) & (np.abs(expected) < tiny)))
        result.data = Quantity(x, expected, gotten, ulp, certain, normal, over & certain)
        if quantity == VALUE and spec.shape == "elementwise" and spec.doc.properties.monotone:
            result.monotone = monotone_violations(x, gotten, spec.doc.properties.monotone)
        return result

    def _backend(self, spec: Spec, quantity: str, inputs: dict[str, np.ndarray], params: dict[str, Any], dtype: str,
                 name: str) -> tuple[Any, np.ndarray | None]:
        """The backend's result, and the cotangent of a gradient."""
        if quantity == VALUE:
            return self.adapter.value(spec.name, inputs, params, dtype), None
        shape = self.reference.output_shape(spec, inputs, params)
        g = np.ones(shape) if spec.shape == "elementwise" else fixed_cotangent(shape, dtype)
        g = cast(g, dtype).astype(np.float64)
        return self.adapter.vjp(spec.name, name, inputs, g, params, dtype), g

    def _beyond_allowance(self, spec: Spec, quantity: str, inputs: dict[str, np.ndarray], params: dict[str, Any],
                          g: np.ndarray | None, dtype: str, m: Any) -> np.ndarray:
        """Elements beyond budget x condition.  The condition (an mpmath evaluation, slow for rows of huge
        numbers) is only needed where the error exceeds the bare budget: it is evaluated there alone."""
        over = m.certain & (m.ulp > m.allowed)
        tree = spec.budget(dtype, quantity, spec.tensor_inputs[0]).condition
        if tree is None or not over.any():
            return over
        x = inputs[spec.tensor_inputs[0]]
        rows = over.reshape(x.shape[0], -1).any(axis=1) if over.ndim and x.ndim and over.shape[0] == x.shape[0] else None
        if rows is None:                                  # points laid out otherwise (a channel axis): all of them
            sub, gsub, osub = inputs, g, slice(None)
        else:
            sub = {k: (v[rows] if k == spec.tensor_inputs[0] else v) for k, v in inputs.items()}
            gsub, osub = (g[rows] if g is not None else None), rows
        cond = self.reference.condition(spec, quantity, sub, params,
                                        cotangent=gsub, dtype=dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            allowed = m.allowed[osub] * np.maximum(1.0, np.nan_to_num(cond, nan=np.inf))
        out = over.copy()
        out[osub] = over[osub] & (m.ulp[osub] > allowed)
        return out


def tasks(specs: Iterable[Spec], dtypes: Iterable[str]) -> list[tuple[str, str, str]]:
    """(function, dtype, quantity), exhaustive ones first: they are the long ones, and start the pool."""
    out = [(s.name, d, q) for s in specs if not sweepable(s) for d in dtypes for q in (VALUE, GRADIENT)]
    specs_by = {s.name: s for s in specs}
    return sorted(out, key=lambda t: (not exhaustive(specs_by[t[0]], t[1]), t))


_WORKER: dict[str, Any] = {}


def _init(backend: str, device: str) -> None:
    _WORKER["sweeper"] = Sweeper(load(backend, device))
    _WORKER["specs"] = load_all()


def _work(task: tuple[str, str, str]) -> dict[str, Any]:
    fn, dtype, quantity = task
    sweeper: Sweeper = _WORKER["sweeper"]
    spec = _WORKER["specs"][fn]
    if dtype not in sweeper.adapter.dtypes:
        return SweepResult(fn, dtype, quantity, "grid", "not provided", None,
                           f"{sweeper.adapter.name} does not support {dtype}").record()
    start = time.perf_counter()
    out = sweeper.run(spec, dtype, quantity).record()
    sweeper.reference.flush()
    out["seconds"] = round(time.perf_counter() - start, 2)     # most of it the reference, on a first run
    return out


def sweep(backend: str, device: str, specs: list[Spec], dtypes: list[str], jobs: int = 2,
          progress: bool = True) -> list[dict[str, Any]]:
    """Every (function, dtype, quantity) of the sweepable specs, over `jobs` processes."""
    todo = tasks(specs, dtypes)
    results: list[dict[str, Any]] = []
    bar = tqdm(total=len(todo), desc=f"sweep {backend}", unit="sweep", disable=not progress)
    for r in in_processes(_work, [(t,) for t in todo], jobs, _init, (backend, device)):
        results.append(r)
        bar.set_postfix_str(f"{r['function']} {r['dtype']} {r['quantity']}")
        bar.update()
    bar.close()
    return sorted(results, key=lambda r: (r["function"], r["dtype"], r["quantity"]))


def in_processes(work: Callable[..., T], args: list[tuple], jobs: int, init: Callable[..., None],
                 init_args: tuple) -> Iterator[T]:
    """work(*a) for every a, in `jobs` spawned processes (each runs init first), yielded as they finish.

    Spawned, not forked: a framework's thread pools do not survive a fork.  With jobs <= 1 it
    all runs here, in order (tests, and a debugger).
    """
    if jobs <= 1:
        init(*init_args)
        for a in args:
            yield work(*a)
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=init,
                             initargs=init_args) as pool:
        for future in as_completed([pool.submit(work, *a) for a in args]):
            yield future.result()
