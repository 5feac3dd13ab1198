"""Every deterministic input set: what every seed runs, for the checks and the sweeps alike.

Hypothesis draws (inputs/strategies.py) find a finding under some seeds only when it sits at
scattered inputs; the sets here are the same under every seed, so a verdict does not move with
it.  They are, scipy-`Arg` style, named by what they cover: the exhaustive 16-bit sets and the
binade and bend grids (`fixed_grid`), the extremes of a dtype and either side of every named
point (`extreme_points`), neighbour runs for properties (`with_neighbours`), hard rows for
vector functions (`gradient_rows`), and fixed samples drawn from the draws' own mixtures
(`sample_rows`, `cotangent_sample`), seeded by what they are for, never by the run.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Sequence

import numpy as np

from nnconform.reference import Reference
from nnconform.reference.dtypes import (
    all_bit_patterns,
    cast,
    info,
    nudge,
    representable,
)
from nnconform.spec import Spec
from nnconform.spec.schema import Interval, number

from ..compare import near_underflow_bound

ROW_RANGES = ((-40.0, 40.0), (-1e4, 1e4))   # rows' entries, besides -inf (the draws and the fixed row sample)
COTANGENT_RANGE = (-2.0, 2.0)
COTANGENT_SIMPLE = [0.0, 1.0, -1.0, 0.5, 2.0, -2.0]      # values Hypothesis favours
BEND_GRID = np.linspace(-40.0, 40.0, 641)     # steps of 1/8 across the region where activations bend
_PARAMETERS = Reference()     # only for parameter-only formulas (kink locations); no cache needed


# ---------------------------------------------------------------- shaping points as a function takes them

def fixed_inputs(spec: Spec, x: np.ndarray, dtype: str) -> dict[str, np.ndarray]:
    """Inputs for a fixed-point check: x, plus any other input at a fixed, documented value."""
    inputs = {spec.tensor_inputs[0]: cast(x, dtype)}
    for name in spec.tensor_inputs[1:]:
        ispec = spec.doc.inputs[name]
        channels = x.shape[ispec.channel_axis] if ispec.kind == "channel_weight" and x.ndim > ispec.channel_axis else 1
        inputs[name] = cast(np.full(channels, 0.25), dtype)   # PyTorch's initial prelu weight
    return inputs


def shape_point(spec: Spec, x: np.ndarray) -> np.ndarray:
    """Elementwise points as the function takes them: (1, 1, n) when a per-channel weight needs an axis 1."""
    if spec.shape == "elementwise" and any(s.kind == "channel_weight" for s in spec.doc.inputs.values()):
        return x.reshape(1, 1, -1)
    return x


def stability_points(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], np.ndarray, str]]:
    """The spec's stability inputs as (params, x in the dtype, why); a row of a vector function is (1, n)."""
    out = []
    defaults = spec.default_params()
    for entry in spec.doc.stability:
        params = {**defaults, **{k: number(v) for k, v in entry.params.items()}}
        for item in entry.x:
            raw = np.asarray([number(v) for v in item] if isinstance(item, list) else [number(item)], dtype=np.float64)
            with np.errstate(over="ignore"):
                x = shape_point(spec, cast(raw, dtype).astype(np.float64))
            if spec.shape != "elementwise":
                x = x.reshape(1, -1)
            out.append((params, x, entry.why))
    return out


# ---------------------------------------------------------------- named points

def finite_bounds(domain: Interval, dtype: str) -> tuple[float, float]:
    big = float(np.finfo(np.float32).max) if dtype == "bfloat16" else float(np.finfo(info(dtype).np_dtype).max)
    if dtype == "bfloat16":
        big = float(cast([3.3e38], "bfloat16")[0])
    return max(domain.lo, -big), min(domain.hi, big)


def anchors(spec: Spec, input_name: str, params: dict[str, float]) -> list[float]:
    """Points the spec singles out for this input: kinks and stability inputs."""
    pts: list[float] = [0.0, 1.0, -1.0]
    for name, at, _ in spec.kink_points:
        if name == input_name:
            pts.append(_PARAMETERS.evaluate_params(spec, at, params))
    for case in spec.doc.stability:
        for item in case.x:
            for v in item if isinstance(item, list) else [item]:
                f = number(v)
                if math.isfinite(f):
                    pts.append(f)
    return pts


def extreme_points(spec: Spec, dtype: str, params: dict[str, Any]) -> np.ndarray:
    d = info(dtype)
    big = float(cast([2.0 ** d.emax * (2 - 2.0 ** (1 - d.precision))], dtype)[0])
    sub = 2.0 ** d.min_subnormal_exp
    tiny = 2.0 ** d.emin
    eps = 2.0 ** (1 - d.precision)
    base = [0.0, sub, 2 * sub, tiny / 2, tiny, eps, 1 - eps / 2, 1.0, 2.0, 10.0, 30.0, big ** 0.5, big / 2, big,
            math.log(big), math.log(tiny), -math.log(tiny), -math.log(sub)]
    pts = set()
    for v in base:
        for s in (1.0, -1.0):
            pts.add(representable(s * v, dtype))
    for a in anchors(spec, spec.tensor_inputs[0], params):
        for k in (-2, -1, 1, 2):
            pts.add(nudge(a, k, dtype))
    domain = spec.domain(spec.tensor_inputs[0])
    return cast(sorted(p for p in pts if math.isfinite(p) and p in domain), dtype).astype(np.float64)


def extreme_inputs(spec: Spec, dtype: str) -> dict[str, np.ndarray]:
    params = spec.default_params()
    pts = extreme_points(spec, dtype, params)
    if spec.shape == "elementwise":
        x = shape_point(spec, pts)
    else:
        group = int(params[spec.doc.group_param]) if spec.shape == "grouped" else 1
        chosen = [p for p in pts if abs(p) > 1 or p == 0][:12]
        pairs = [[a, b] for a in chosen for b in chosen]
        x = np.asarray([(row * group)[: 2 * group] if group > 1 else row + [0.0] for row in pairs])
    return fixed_inputs(spec, x, dtype)


# ---------------------------------------------------------------- grids every seed runs

def stability_rows(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """A vector function's stability rows, for its value check.

    The value check's draws hold -inf and huge entries, so they reach the rows the spec names as
    hard, but under some seeds only: ONNX Runtime's ReduceLogSumExp fails a drawn row like
    [-inf, -8172.8] and passes the others, and the value verdict moved with the seed.  With the
    spec's rows run under every seed, it does not.
    """
    if spec.shape != "vector":
        return []
    return [(params, {spec.tensor_inputs[0]: cast(x, dtype)}) for params, x, _ in stability_points(spec, dtype)]


# Log-spaced magnitudes of the fixed grid: every binade in float32, every 4th in float64 (2,100 binades).
GRID_BINADE_STEP = {"float32": 1, "float64": 4}


def fixed_grid(spec: Spec, dtype: str) -> np.ndarray | None:
    """Inputs that every seed runs, for an elementwise function of one input (None otherwise).

    Every finite float16 and bfloat16 number; in float32 and float64, both signs of log-spaced
    magnitudes from the smallest subnormal to the largest float, a 1/8 grid over [-40, 40], and
    the extreme points.  A backend off by a few ULP at scattered inputs was found by 25 draws
    under some seeds only, and the verdict moved with the seed (docs/design.md, "Determinism").
    In 16 bits this is exhaustive, so the verdict is exact; the 16-bit references ship with the
    package (reference/shipped.py), so it costs milliseconds.
    """
    if spec.shape != "elementwise" or len(spec.tensor_inputs) != 1:
        return None
    first = spec.tensor_inputs[0]
    domain = spec.domain(first)
    if dtype in ("float16", "bfloat16"):
        with np.errstate(invalid="ignore"):
            x = all_bit_patterns(dtype).astype(np.float64)
        pts = x[np.isfinite(x)]
    else:
        d = info(dtype)
        mags = [math.ldexp(1.0, e) for e in range(d.min_subnormal_exp, d.emax + 1, GRID_BINADE_STEP[dtype])]
        pts = np.concatenate([mags, np.negative(mags), BEND_GRID, extreme_points(spec, dtype, spec.default_params())])
    bits = np.unique(cast(pts, dtype).astype(np.float64).view(np.uint64))       # by bits: -0.0 stays beside 0.0
    kept = np.sort(bits.view(np.float64))
    return cast(kept[domain.mask(kept)], dtype)


def fixed_grid_examples(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], np.ndarray]]:
    grid = fixed_grid(spec, dtype)
    return [] if grid is None else [(spec.default_params(), grid)]


def corner_examples(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """The dtype's extreme points at the defaults and at each end of every drawn parameter's range.

    Run under every seed, so that a finding in a corner (beta * x overflowing for beta > 1 and x
    near the largest float) is the same verdict whatever the draws; a corner reached only by
    some seeds made the verdict depend on the seed.
    """
    if spec.shape != "elementwise" or len(spec.tensor_inputs) != 1:
        return []
    defaults = spec.default_params()
    settings_ = [defaults]
    for name, (lo, hi) in param_ranges(spec).items():
        for v in (lo, hi):
            settings_.append({**defaults, name: representable(v, dtype)})
    first = spec.tensor_inputs[0]
    out = []
    for p in settings_:
        x = cast(extreme_points(spec, dtype, p), dtype)
        out.append((p, {first: x}))
    return out


def gradient_corner_examples(spec: Spec, dtype: str) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """The value check's corner examples, plus a fixed grid over the bend region at the defaults.

    Gradients lose accuracy in the middle of the range too (sigmoid' in float16 near x = 2.7,
    mish' in float64 near x = 15): 25 draws reach such a region under some seeds only, and the
    verdict then depended on the seed.  A grid with cotangent 1 reaches it under every seed.
    """
    if spec.shape == "vector":
        return [(spec.default_params(), {spec.tensor_inputs[0]: cast(gradient_rows(dtype), dtype)})]
    corners = corner_examples(spec, dtype)
    if not corners:
        return []
    first = spec.tensor_inputs[0]
    defaults, x = corners[0]
    grid = np.unique(np.concatenate([x[first].astype(np.float64), cast(BEND_GRID, dtype).astype(np.float64)]))
    domain = spec.domain(first)
    grid = np.asarray([v for v in grid if v in domain])
    return [(defaults, {first: cast(grid, dtype)})] + corners[1:]


SAMPLE_ROWS = 1024


def sample_rows(spec: Spec, dtype: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(inputs, cotangent): 1,024 rows of 3 from the draws' own mixtures (|x| < 40, |x| < 1e4, -inf;
    cotangents uniform, simple or tiny), the same under every seed.

    A finding in a few rows of a thousand is then the same verdict whatever the seed.
    """
    rng = fixed_rng(spec.name, dtype, "rows")
    x = mixture(rng, [*ROW_RANGES, -math.inf], 3 * SAMPLE_ROWS)
    rows = rows_without_all_masked(cast(x, dtype).reshape(SAMPLE_ROWS, 3))
    width = 1 if spec.doc.output == "reduced" else 3                       # logsumexp: one value a row
    return {spec.tensor_inputs[0]: rows}, cotangent_sample(rng, (SAMPLE_ROWS, width), dtype)


def gradient_rows(dtype: str) -> np.ndarray:
    """Rows led by entries of growing magnitude, with neighbours 1/2 to 16 below and a -inf.

    Backward passes form exp(x - y) from the rounded output y (logsumexp, log_softmax), which
    costs a relative error of about |y| eps; rows with a large maximum show it under every seed.
    """
    d = info(dtype)
    big = 2.0 ** d.emax
    rows = []
    for m in (0.0, 3.0, 40.0, 1000.0, 8000.0, 60000.0, 1e6, 1e30):
        if m + 16 < big:
            for s in (1.0, -1.0):
                rows += [[s * m, s * m - 0.5, s * m - 3.0], [s * m, s * m - 16.0, -math.inf]]
    return np.asarray(rows)


# The property grid's mantissas per binade: dense where activations bend (|x| in [2^-16, 2^16]), sparse
# elsewhere.  A property check never calls the reference, so a point costs only the backend's call.
PROPERTY_MANTISSAS = {"bend": 256, "elsewhere": 8}
PROPERTY_BEND_BINADES = 16
PROPERTY_NEIGHBOURS = 3


def with_neighbours(spec: Spec, grid: np.ndarray, dtype: str) -> np.ndarray:
    """The fixed grid plus, in float32 and float64, runs of neighbouring numbers.

    A monotonicity break, or a result a ULP outside the range, is a pair of neighbours or a
    scattered point that 25 draws reach under some seeds only (ONNX Runtime's float32 Celu
    steps down at about 1% of neighbouring pairs near x = -0.1; its Softsign exceeds 1 at 16%
    of inputs above 8.5e37, never at a power of two).  So every normal binade holds evenly
    spaced mantissas (256 where |x| is in [2^-16, 2^16], 8 elsewhere), and each point of those
    and of the 1/8 grid over [-40, 40] comes with the next 3 numbers above it.  The 16-bit grid
    has every pair already.
    """
    if dtype in ("float16", "bfloat16"):
        return grid
    d = info(dtype)
    starts = [cast(BEND_GRID, dtype)]
    for e in range(d.emin, d.emax + 1):
        dense = abs(e) <= PROPERTY_BEND_BINADES
        m = PROPERTY_MANTISSAS["bend" if dense else "elsewhere"]
        mags = np.ldexp(1.0 + np.arange(m) / m, e)
        starts += [cast(mags, dtype), cast(-mags, dtype)]
    start = np.concatenate(starts)
    up = np.asarray(np.inf, dtype=start.dtype)
    runs = [start]
    for _ in range(PROPERTY_NEIGHBOURS):
        runs.append(np.nextafter(runs[-1], up))
    pts = np.concatenate([grid.astype(np.float64)] + [r.astype(np.float64) for r in runs])
    domain = spec.domain(spec.tensor_inputs[0])
    pts = np.unique(pts[np.isfinite(pts)])
    return cast(pts[domain.mask(pts)], dtype)


def grid_points(spec: Spec, dtype: str) -> np.ndarray:
    """The deterministic grid for one input (sorted, in the dtype, inside the input's domain)."""
    d = info(dtype)
    params = spec.default_params()
    pts: set[float] = {0.0, -0.0, math.inf, -math.inf}
    # Four magnitudes a binade; two in float64 (2,100 binades), one for rows (a row costs the reference ~10 times more).
    mantissas = (1.0,) if spec.shape != "elementwise" else (1.0, 1.5) if dtype == "float64" else (1.0, 1.25, 1.5, 1.75)
    for e in range(d.min_subnormal_exp, d.emax + 1):
        for m in mantissas:
            v = math.ldexp(m, e)
            pts.update((v, -v))
    pts.update(np.linspace(-40.0, 40.0, 4001).tolist())
    pts.update(float(v) for v in extreme_points(spec, dtype, params))
    for a in anchors(spec, spec.tensor_inputs[0], params):
        for k in range(-3, 4):
            pts.add(nudge(a, k, dtype))
    domain = spec.domain(spec.tensor_inputs[0])
    kept = cast(sorted(p for p in pts if not math.isnan(p) and (p in domain or math.isinf(p))), dtype)
    kept = np.unique(kept.astype(np.float64))                    # unique drops -0.0 beside 0.0: put it back
    kept = np.concatenate([[-0.0], kept, [math.nan]]) if 0.0 in domain else np.concatenate([kept, [math.nan]])
    return cast(kept, dtype)


# ---------------------------------------------------------------- fixed samples from the draws' mixtures

def rows_without_all_masked(a: np.ndarray) -> np.ndarray:
    """Fully masked rows are a convention, checked on their own: give each row one finite entry."""
    a = a.copy()
    masked = np.isneginf(a).all(axis=-1)
    a[masked, 0] = 0
    return a


def cotangent_sample(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Cotangents like the draws': uniform in the cotangent range, simple values, and one in five
    a tiny log-uniform magnitude, as Hypothesis's shrinking towards 0 gives (1e-33 beside 2 in a
    bfloat16 row moved a softmax verdict with the seed).  Not below near_underflow_bound: the
    gradient check leaves those elements out (gradual underflow)."""
    n = int(np.prod(shape))
    g = mixture(rng, [COTANGENT_RANGE, COTANGENT_SIMPLE], n)
    lo = near_underflow_bound(dtype)
    hi = max(1e-3, 16 * lo)                       # float16's bound is 2^-3
    magnitude = np.exp(rng.uniform(math.log(lo), math.log(hi), n)) * rng.choice([-1.0, 1.0], n)
    g = np.where(rng.random(n) < 0.2, magnitude, g)
    return cast(g, dtype).reshape(shape)


def fixed_cotangent(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The cotangent of the explicit examples: not all ones, since softmax's vector-Jacobian
    product is exactly 0 for a constant cotangent."""
    return cast(np.resize(np.asarray([1.0, -0.5, 0.75]), shape), dtype)


def param_ranges(spec: Spec) -> dict[str, tuple[float, float]]:
    """The range each continuous (differentiable) parameter is drawn from: its domain within [-5, 5]."""
    out = {}
    for name, p in spec.doc.params.items():
        if not p.differentiable:
            continue
        dom = spec.param_domain(name)
        lo, hi = max(dom.lo, -5.0), min(dom.hi, 5.0)
        if dom.lo >= 0:
            lo = max(dom.lo, 0.05) if not dom.lo_closed or dom.lo > 0 else 0.0
        if not dom.hi_closed and hi == dom.hi:
            hi = float(np.nextafter(hi, -np.inf))
        out[name] = (lo, hi)
    return out


def fixed_rng(*key: str) -> np.random.Generator:
    """A generator for a fixed sample: seeded by what it is for, never by the run's seed."""
    return np.random.default_rng(zlib.crc32("/".join(key).encode()))


def mixture(rng: np.random.Generator, parts: Sequence[tuple[float, float] | list[float] | float], n: int) -> np.ndarray:
    """n values, each from a part chosen uniformly: uniform over a (lo, hi) range, one of a list, or a constant.

    The fixed samples mirror the draws' mixtures with plain uniform draws: many more values than
    25 examples hold, the same under every seed, so a finding at scattered inputs that the draws
    reach only sometimes is the same verdict whatever the seed.
    """
    which = rng.integers(0, len(parts), n)
    out = np.empty(n)
    for k, part in enumerate(parts):
        sel = which == k
        if isinstance(part, tuple):
            out[sel] = rng.uniform(part[0], part[1], int(sel.sum()))
        elif isinstance(part, list):
            out[sel] = rng.choice(np.asarray(part, dtype=np.float64), int(sel.sum()))
        else:
            out[sel] = part
    return out
