"""`--reference=mpmath|arb|both`: which tier judges, and `both` judging only where the tiers agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnconform.reference import ReferenceCache, RefResult, tiers
from nnconform.spec import load_all

pytest.importorskip("flint", reason="python-flint is in the dev extra")
pytest_plugins = ["pytester"]
SUITE = str(Path(__file__).resolve().parents[1] / "conformance")
SPECS = load_all()


def test_both_refuses_to_judge_where_the_tiers_disagree(monkeypatch: pytest.MonkeyPatch) -> None:
    ref = tiers.make("both", ReferenceCache(persistent=False))
    assert isinstance(ref, tiers.TieredReference)
    x = np.array([0.0, 1.0, -2.0])
    honest = ref.arb.value

    def one_wrong(spec, inputs, params=None, dtype="float64") -> RefResult:    # a planted arb-tier bug at x = 1
        r = honest(spec, inputs, params, dtype)
        v = r.values.copy()
        v[1] = np.nextafter(v[1], 2.0)
        return RefResult(v, r.uncertain)
    monkeypatch.setattr(ref.arb, "value", one_wrong)
    got = ref.value(SPECS["sigmoid"], {"x": x})
    # sigmoid(0) = 1/2 exactly; sigmoid(-2) = 1/(1 + e^2), mpmath dps=50: 0.11920292202211755594...,
    # whose nearest float64 is float("0.11920292202211755594") = 0.11920292202211756.
    assert got.uncertain.tolist() == [False, True, False]
    assert got.values[0] == 0.5 and got.values[2] == float("0.11920292202211755594") and np.isnan(got.values[1])
    assert ref.disagreements == 1


def test_both_counts_no_disagreement_when_the_tiers_agree_on_signed_zeros() -> None:
    ref = tiers.make("both", ReferenceCache(persistent=False))
    # tanh(-0.0) is -0.0 (zero_sign: preserve), tanh(+0.0) is +0.0; relu(-3) = max(-3, 0) = +0.0, an exact zero.
    got = ref.value(SPECS["tanh"], {"x": np.array([-0.0, 0.0, 2.5])})
    assert not got.uncertain.any() and np.signbit(got.values).tolist() == [True, False, False]
    got = ref.value(SPECS["relu"], {"x": np.array([-3.0])})
    assert got.values[0] == 0 and not np.signbit(got.values[0])
    assert ref.disagreements == 0


def test_the_arb_tier_judges_losses_too() -> None:
    ref = tiers.make("arb", ReferenceCache(persistent=False))
    losses = tiers.losses_for(ref)
    # mse mean of (1 - 0)^2 and (3 - 1)^2 = (1 + 4) / 2 = 2.5, exactly.
    got = losses.value(SPECS["mse"], {"input": np.array([1.0, 3.0]), "target": np.array([0.0, 1.0])}, None, "mean")
    assert float(got.values) == 2.5 and not got.uncertain.any()


@pytest.mark.parametrize("tier", ["arb", "both"])
def test_a_run_judged_by_another_tier_says_so_in_its_records(pytester: pytest.Pytester, tmp_path: Path, tier: str) -> None:
    result = pytester.runpytest_subprocess(SUITE, "-p", "no:randomly", "-q", "--backend=numpy", "--functions=softplus",
                                           "--dtypes=float32", "--checks=value,gradient", f"--reference={tier}",
                                           f"--report={tmp_path}")
    assert result.ret == 0, "\n".join(result.outlines[-30:])
    header = json.loads((tmp_path / "numpy-cpu.json").read_text())
    assert header["reference"]["tier"] == tier and header["reference"].get("disagreements", 0) == 0


def test_an_unknown_tier_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(SUITE, "-q", "--backend=numpy", "--reference=maple")
    assert result.ret != 0 and "maple" in "\n".join(result.errlines + result.outlines)
