"""tools/compare_known.py: a change to the known lists that drops, moves or rescopes a match is found."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nnconform.conformance.known import Entry

spec = importlib.util.spec_from_file_location("compare_known", Path(__file__).parents[1] / "tools" / "compare_known.py")
assert spec and spec.loader
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

GELU = Entry(function="gelu", dtypes=["bfloat16"], checks=["subnormal"], reason="bfloat16 gelu flushes to zero")
SOFTPLUS = Entry(function="softplus", checks=["stability"], case="stability x=20.5", reason="returns x above 20")
RUN = {"device": "cpu", "environment": {"onednn_isa": "avx2"}, "records": [
    {"id": "gelu[bfloat16] subnormal", "function": "gelu", "dtype": "bfloat16", "check": "subnormal"},
    {"id": "softplus[float64] stability x=20.5 -> 20.5000000012", "function": "softplus", "dtype": "float64",
     "check": "stability"},
    {"id": "relu[float32] value", "function": "relu", "dtype": "float32", "check": "value"}]}


def test_the_same_findings_regrouped_judge_the_same() -> None:
    merged = Entry(function="softplus", dtypes=["float64", "float32"], checks=["stability"], case="stability x=20.5",
                   reason="returns   x above 20")           # another layout of the same reason
    assert tool.differences([GELU, SOFTPLUS], [merged, GELU], RUN) == []


def test_a_dropped_or_rescoped_match_is_a_difference() -> None:
    assert [d.split(":")[0] for d in tool.differences([GELU, SOFTPLUS], [SOFTPLUS], RUN)] == ["gelu[bfloat16] subnormal"]
    elsewhere = GELU.model_copy(update={"where": {"onednn_isa": ["avx512_core_bf16"]}})
    assert len(tool.differences([GELU, SOFTPLUS], [elsewhere, SOFTPLUS], RUN)) == 1
