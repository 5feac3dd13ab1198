"""A known entry measured in one environment applies there only (its `where:`), and the records say which environment a run had."""

from __future__ import annotations

import json
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
    e = Entry(function="gelu", reason="only on the AVX-512 BF16 kernel", where={"onednn_isa": ["avx512_core_bf16"]})
    assert e.applies_in({"onednn_isa": "avx512_core_bf16"})
    assert not e.applies_in({"onednn_isa": "avx2"}) and not e.applies_in({})
    assert Entry(function="gelu", reason="everywhere the same").applies_in({})


KNOWN = """
format: 2
backend: numpy
findings:
- id: softplus-overflow
  reason: planted, numpy's softplus overflows near the float32 maximum
  where: {onednn_isa: [%s]}
  matches:
  - {function: softplus, dtypes: [float32], checks: [value]}
"""


def run_numpy(pytester: pytest.Pytester, known_text: str, function: str, *options: str) -> tuple[pytest.RunResult, dict]:
    known = pytester.path / "known.yaml"
    known.write_text(known_text)
    result = pytester.runpytest_subprocess(SUITE, "-p", "no:randomly", "-q", "--backend=numpy", f"--functions={function}",
                                           "--dtypes=float32", "--checks=value", f"--known={known}",
                                           f"--report={pytester.path / 'r'}", *options)
    records = json.loads((pytester.path / "r" / "numpy-cpu.json").read_text())
    return result, records


@pytest.mark.parametrize("level, policy, outcome, status", [
    ("HERE", "strict", "xfailed", "known discrepancy"),
    ("HERE", "report", "xfailed", "known discrepancy"),
    ("not-this-machine", "strict", "failed", "fail"),                    # no entry covers this environment
    ("not-this-machine", "report", "xfailed", "known discrepancy")])     # shown as the finding measured elsewhere
def test_a_finding_that_reproduces_is_known_where_measured_and_under_the_report_policy(
        pytester: pytest.Pytester, level: str, policy: str, outcome: str, status: str) -> None:
    """numpy's float32 softplus value check fails without a known entry (its records: wrong inf near the maximum)."""
    here = isa.onednn_isa()
    result, records = run_numpy(pytester, KNOWN % (here if level == "HERE" else level), "softplus",
                                f"--known-policy={policy}")
    result.assert_outcomes(**{outcome: 1})
    assert [r["status"] for r in records["records"]] == [status] and records["known_policy"] == policy
    if level != "HERE" and policy == "report":
        assert "Measured where onednn_isa=not-this-machine, not here" in records["records"][0]["reason"]


# relu's float32 value check passes on numpy: a finding planted for it, measured on numpy 1.0.0, does not reproduce.
ANOTHER_VERSION = """
format: 2
backend: numpy
where: {numpy: "==1.0.0"}
findings:
- id: planted-elsewhere
  reason: planted, a finding of numpy 1.0.0 that this numpy does not have
  matches:
  - {function: relu, dtypes: [float32], checks: [value]}
"""


def test_a_finding_of_another_version_that_does_not_reproduce_is_reported_and_the_run_stays_green(
        pytester: pytest.Pytester) -> None:
    result, records = run_numpy(pytester, ANOTHER_VERSION, "relu", "--known-policy=report")
    assert result.ret == 0
    assert [r["status"] for r in records["records"]] == ["not reproduced"]
    out = result.stdout.str()
    assert "1 known finding(s) of another environment not reproduced here" in out and "numpy==1.0.0" in out
    assert "PASSED" in out


def test_the_same_finding_in_its_own_environment_is_a_strict_xpass_failure(pytester: pytest.Pytester) -> None:
    here = ANOTHER_VERSION.replace("==1.0.0", "==" + isa.versions()["numpy"])
    for policy in ("strict", "report"):
        result, records = run_numpy(pytester, here, "relu", f"--known-policy={policy}")
        assert result.ret == 1 and [r["status"] for r in records["records"]] == ["fixed upstream"], policy


def test_strict_does_not_apply_a_finding_of_another_environment(pytester: pytest.Pytester) -> None:
    """Strict is CI's policy: what is judged is exactly this environment's list, so a lowered-ISA run is green
    where its findings are scoped, and the entry of elsewhere is named in the summary."""
    result, records = run_numpy(pytester, ANOTHER_VERSION, "relu", "--known-policy=strict")
    assert result.ret == 0 and [r["status"] for r in records["records"]] == ["pass"]
    assert "known findings of another environment (--known-policy=strict: not applied here" in result.stdout.str()


def test_the_default_policy_is_strict_in_ci_and_report_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnconform.conformance import known
    monkeypatch.setenv("CI", "true")
    assert known.default_policy() == "strict"
    monkeypatch.delenv("CI")
    assert known.default_policy() == "report"


def test_a_version_condition_reads_the_packaging_syntax() -> None:
    from nnconform.conformance.known import holds
    env = {"torch": "2.13.0+cpu", "onednn_isa": "avx2"}
    assert holds({"torch": "==2.13.0"}, env)                  # a local label (+cpu) does not change the release
    assert holds({"torch": ">=2.13,<2.14", "onednn_isa": ["avx2", "avx512_core"]}, env)
    assert not holds({"torch": ">=2.14"}, env) and not holds({"onednn_isa": ["avx512_core_bf16"]}, env)
    assert not holds({"jax": "==0.10.2"}, env)                # a package not installed is not that version


def test_xla_cpu_isa_is_the_cpus_level_capped_by_xla_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isa, "cpu_flags", lambda: frozenset({"sse4_2", "avx", "avx2", "avx512f"}))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert isa.xla_cpu_isa() == "AVX512"
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1 --xla_cpu_max_isa=SSE4_2")
    assert isa.xla_cpu_isa() == "SSE4_2"


def test_numpy_simd_follows_npy_disable_cpu_features() -> None:
    import subprocess
    import sys
    code = "from nnconform.adapters import isa; print(isa.numpy_simd())"
    native = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    if native in ("X86_V2", "none", "unknown"):
        pytest.skip(f"NumPy dispatches to its baseline only here ({native}): nothing to lower")
    lowered = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**__import__("os").environ, "NPY_DISABLE_CPU_FEATURES": native}).stdout.strip()
    assert lowered != native


def test_the_records_carry_the_fingerprint(pytester: pytest.Pytester) -> None:
    _, records = run_numpy(pytester, ANOTHER_VERSION, "relu")
    env = records["environment"]
    assert env["numpy"] == isa.versions()["numpy"] and env["device"] == "cpu"
    assert {"platform", "onednn_isa", "xla_cpu_isa", "numpy_simd", "cpu_flags", "denormals"} <= set(env)


def test_two_distinct_failures_of_one_check_are_one_check_failure_not_a_crash() -> None:
    """Hypothesis groups distinct failures (JAX float16 under XLA's SSE4.2 cap raised two in cross_entropy_soft's
    explicit examples): an ExceptionGroup is no AssertionError, so a known entry could not absorb it."""
    import builtins
    import importlib

    from nnconform.conformance.core import CheckFailure, first_failure
    Group = getattr(builtins, "ExceptionGroup", None) or importlib.import_module("exceptiongroup").ExceptionGroup
    group = Group("two", [CheckFailure("mse[float16] value: 3 ULP"), CheckFailure("mse[float16] value: 9 ULP")])
    found = first_failure(group)
    assert isinstance(found, CheckFailure) and str(found).startswith("mse[float16] value: 3 ULP")
    assert "the first of 2 distinct failures" in str(found)
    crash = Group("crash", [CheckFailure("a finding"), ValueError("a bug in the suite")])
    assert first_failure(crash) is crash
