"""A known entry measured in one environment applies there only (its `where:`), and the records say which environment a run had."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnconform.adapters import isa
from nnconform.conformance.known import Entry

pytest_plugins = ["pytester"]
SUITE = str(Path(__file__).resolve().parents[1] / "conformance")


def test_onednn_isa_is_the_cpus_level_capped_by_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isa, "cpu_flags", lambda: frozenset({"sse4_1", "avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert isa.onednn_isa() == "avx512_core_bf16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert isa.onednn_isa() == "avx2"
    monkeypatch.setattr(isa, "cpu_flags", lambda: frozenset({"sse4_1", "avx", "avx2"}))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")      # a cap above the CPU changes nothing
    assert isa.onednn_isa() == "avx2"
    monkeypatch.setattr(isa, "cpu_flags", lambda: frozenset({"neon", "asimd"}))
    assert isa.onednn_isa() == "unknown"


def test_an_entry_applies_only_where_it_was_measured() -> None:
    e = Entry(function="gelu", reason="only on the AVX-512 BF16 kernel", evidence="planted",
              where={"onednn_isa": ["avx512_core_bf16"]})
    assert e.applies_in({"onednn_isa": "avx512_core_bf16"})
    assert not e.applies_in({"onednn_isa": "avx2"}) and not e.applies_in({})
    assert Entry(function="gelu", reason="everywhere the same", evidence="planted").applies_in({})


KNOWN = """
- function: softplus
  dtypes: [float32]
  checks: [value]
  where: {onednn_isa: [%s]}
  reason: planted, numpy's softplus overflows near the float32 maximum
  evidence: planted
"""


@pytest.mark.parametrize("level, outcome", [("not-this-machine", "failed"), ("HERE", "xfailed")])
def test_a_finding_of_another_environment_is_not_applied(pytester: pytest.Pytester, level: str, outcome: str) -> None:
    """numpy's float32 softplus value check fails without a known entry (its records: wrong inf near the maximum).
    The entry applies, and the check is a known discrepancy, only where `where:` holds."""
    here = isa.onednn_isa()
    known = pytester.path / "known.yaml"
    known.write_text(KNOWN % (here if level == "HERE" else level))
    result = pytester.runpytest_subprocess(SUITE, "-p", "no:randomly", "-q", "--backend=numpy", "--functions=softplus",
                                           "--dtypes=float32", "--checks=value", f"--known={known}")
    result.assert_outcomes(**{outcome: 1})
    if level != "HERE":
        assert "known discrepancies of another environment" in result.stdout.str()
