"""The gradient conditions allow what the textbook backward pass, rounded in the dtype, makes.

Each row is one where an earlier condition was too tight and accused a correct computation
(docs/NOTES.md, issue 8).  The expected values are the reference's (mpmath, correctly rounded);
the textbook formulas share no code with it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from nnconform.conformance.compare import measure
from nnconform.reference import Reference
from nnconform.spec import load_all

from .test_fixed_grids import textbook_log_softmax_vjp, textbook_softmax_vjp

SPECS = load_all(["activation"])
REFERENCE = Reference()
VJPS: dict[str, Callable[..., np.ndarray]] = {"softmax": textbook_softmax_vjp, "log_softmax": textbook_log_softmax_vjp}


@pytest.mark.parametrize("function, dtype, x, g", [
    # <g, y> = -y_0 = -e^-370.74: x_0 - max carries eps x 370 into y_0 and from there into every
    # entry (the textbook is 105 ULP off); with |<g, y>| alone the condition was 2.
    ("softmax", "float64", [-5.031854390321691, 365.71098257268386, 4.262987839096752], [-1.0, 0.0, 3.179966049960126e-24]),
    # sum(g) = 1 - 1.18e-36 - 1 rounds to 0; the middle entry is then g_1, not g_1 (1 - e^y_1),
    # 0.5% off (3.5e13 ULP) where the exact sum is -1.18e-36; with |sum(g)| the condition was 8.
    ("log_softmax", "float64", [-1253.2339570894874, 19.045337702997656, 24.348559250672906], [1.0, -1.1757143521875874e-36, -1.0]),
])
def test_the_textbook_backward_pass_is_within_the_condition(function: str, dtype: str, x: list[float],
                                                            g: list[float]) -> None:
    spec = SPECS[function]
    xs, gs = np.asarray([x], dtype=dtype), np.asarray([g], dtype=dtype)
    params = {"axis": -1}
    got = VJPS[function](xs, gs, -1)
    ref = REFERENCE.vjp(spec, "x", {"x": xs}, gs, params, dtype)
    cond = REFERENCE.condition(spec, "gradient", {"x": xs}, params, cotangent=gs, dtype=dtype)
    m = measure(got, ref, dtype, spec.doc.tolerance.for_dtype(dtype).gradient_ulp, cond, [xs, gs])
    assert m.ulp.max() > 16, "the row no longer shows a rounding error worth a condition"
    assert m.ok, f"{m.ulp} ULP against {m.allowed}"
