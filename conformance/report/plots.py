"""Figures for the HTML reports, as PNG bytes (the page links them from its figures folder, or embeds them).

One figure per function: the value and the derivative over [-6, 6] for every run over the
exact reference (drawn thick, grey, underneath), and the largest error in ULPs against the
input for every run and dtype (symmetric-log input axis: the grid spans from the smallest
subnormal to the largest float).  The data are the sweeps' `curve` and `profile` fields.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib
import matplotlib.colors
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nnconform.reference.dtypes import info

from ..kinds import GRADIENT, VALUE

DTYPE_STYLE = {"float64": "-", "float32": "--", "float16": ":", "bfloat16": "-."}
CURVE_DTYPE = "float32"          # the curves are drawn from the float32 sweep (present in every backend but ORT's f16-only ops)


DPI = 100         # 1,400 x 620 pixels: legible at print size; 72 dpi gave 6-pixel tick labels


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})     # no timestamps: byte-stable output
    plt.close(fig)
    return buf.getvalue()


def _darker(colour: str) -> tuple[float, float, float]:
    """The derivative's line: the run's colour, darker, so that value and derivative are told apart in print."""
    r, g, b = matplotlib.colors.to_rgb(colour)
    return (r * 0.55, g * 0.55, b * 0.55)


def _num(v: Any) -> float:
    return math.nan if v is None else (math.inf if v == "inf" else float(v))


MAGNITUDE_TICKS = {"float64": (-150, 0, 150, 300), "float32": (-20, 0, 20, 38), "float16": (-3, 0, 4),
                   "bfloat16": (-20, 0, 20, 38)}


def _offset(dtype: str) -> float:
    """log10 of a tenth of the dtype's smallest subnormal: the axis origin, so every nonzero input plots at |t| > 1."""
    return math.log10(2.0 ** info(dtype).min_subnormal_exp) - 1


def _signed_log(x: float, offset: float) -> float:
    """The input axis: sign(x) * (log10|x| - offset), zero at zero; from the smallest subnormal to the largest float."""
    if not math.isfinite(x):
        return math.nan
    return 0.0 if x == 0 else math.copysign(math.log10(abs(x)) - offset, x)


def _log_ticks(ax: Any, dtype: str, offset: float) -> None:
    ks = MAGNITUDE_TICKS[dtype]
    pos = [(k - offset, f"1e{k}") for k in ks]
    ticks = [(-t, "-" + lab) for t, lab in reversed(pos)] + [(0.0, "0")] + pos
    ax.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks], rotation=90)


def function_figure(function: str, sweeps: dict[str, list[dict[str, Any]]]) -> bytes | None:
    """`sweeps`: run label -> that run's measured sweeps of `function`.  None when there is nothing to draw.

    Top row: value and derivative curves.  Bottom row: one panel per dtype, the largest error
    per input bin for every run, value solid and derivative dashed.
    """
    curves = {q: [(lab, s) for lab, ss in sweeps.items() for s in ss if s["quantity"] == q and s["dtype"] == CURVE_DTYPE
                  and s.get("curve", {}).get("x")] for q in (VALUE, GRADIENT)}
    profiles = [(lab, s) for lab, ss in sweeps.items() for s in ss if s.get("profile", {}).get("x")]
    if not profiles and not any(curves.values()):
        return None
    dtypes = [d for d in DTYPE_STYLE if any(s["dtype"] == d for _, s in profiles)]
    colours = {lab: f"C{i % 10}" for i, lab in enumerate(sweeps)}
    fig = plt.figure(figsize=(14, 6.2))
    grid = fig.add_gridspec(2, max(4, len(dtypes)))
    half = max(4, len(dtypes)) // 2
    for col, (q, title) in enumerate(((VALUE, "value"), (GRADIENT, "derivative"))):
        ax = fig.add_subplot(grid[0, col * half:(col + 1) * half])
        shown = curves[q]
        if shown:
            ref = shown[0][1]["curve"]
            ax.plot(ref["x"], [_num(v) for v in ref["expected"]], color="0.75", linewidth=5, label="exact")
            for lab, s in shown:
                ax.plot(s["curve"]["x"], [_num(v) for v in s["curve"]["got"]], linewidth=1.2, color=colours[lab], label=lab)
            ax.legend(fontsize=9, loc="best")
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{function}: {title} ({CURVE_DTYPE}) against the exact curve", fontsize=11)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    for col, d in enumerate(dtypes):
        ax = fig.add_subplot(grid[1, col])
        offset = _offset(d)
        top = 0.0
        for lab, s in profiles:
            if s["dtype"] != d:
                continue
            ys = [_num(v) for v in s["profile"]["max_ulp"]]
            top = max([top] + [y for y in ys if math.isfinite(y)])
            ax.plot([_signed_log(_num(x), offset) for x in s["profile"]["x"]], [y if math.isfinite(y) else math.nan for y in ys],
                    "-" if s["quantity"] == VALUE else "--", color=colours[lab] if s["quantity"] == VALUE else _darker(colours[lab]),
                    linewidth=1.2,
                    label=f"{lab} {'value' if s['quantity'] == VALUE else 'derivative'}")
        budgets = sorted({float(s["budget_ulp"]) for _, s in profiles if s["dtype"] == d and s.get("budget_ulp") is not None})
        for b in budgets:          # the spec's budget(s) in this dtype: value and derivative may differ
            ax.axhline(b, color="0.2", linestyle=":", linewidth=1.2)
            top = max(top, b)
        _log_ticks(ax, d, offset)
        ax.set_yscale("symlog", linthresh=1.0)
        ceiling = max(10.0, top * 2)
        decades = [0.0, 1.0] + [10.0 ** k for k in range(1, int(math.log10(ceiling)) + 1, max(1, int(math.log10(ceiling)) // 4))]
        ax.set_yticks(decades, ["0", "1"] + [f"1e{round(math.log10(d))}" for d in decades[2:]])
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_ylim(0, ceiling)
        ax.set_title(f"{d}: largest error (ULP), dotted: budget", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
        if col == 0:
            ax.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(left=0.05, right=0.99, top=0.95, bottom=0.14, wspace=0.25, hspace=0.4)
    return _png(fig)
