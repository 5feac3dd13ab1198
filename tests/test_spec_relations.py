"""Relations between specs: declared in the YAML, checked by the reference, refused when they name nothing.

huber(d; delta) = 0.5 d^2 for |d| < delta, delta (|d| - delta / 2) beyond; smooth_l1(d; beta) =
0.5 d^2 / beta for |d| < beta, |d| - beta / 2 beyond.  With beta = delta, delta * smooth_l1 is
0.5 d^2 and delta |d| - delta^2 / 2: Huber's, term for term (torch's HuberLoss documentation
states the same factor).  With the factor left out the identity holds at delta = 1 only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nnconform.reference import Reference
from nnconform.reference.relations import verify, verify_all
from nnconform.spec import SpecError, load_all, parse_document
from nnconform.spec.loader import check_relations, spec_root

SPECS = load_all()


def huber_with(related: list[dict]) -> dict:
    data = yaml.safe_load((spec_root() / "losses" / "huber.yaml").read_text())
    return {**data, "related": related}


def test_huber_is_delta_times_smooth_l1_with_beta_delta() -> None:
    [check] = verify_all(SPECS)["huber"]
    assert check.holds and check.points == 192 and check.relation.function == "smooth_l1"


def test_the_relation_without_its_factor_is_refuted() -> None:
    wrong = parse_document(huber_with([{"function": "smooth_l1", "params": {"beta": "delta"}, "identity": "huber = smooth_l1",
                                        "why": "planted: the factor delta is missing"}]), "huber.yaml")
    check = verify(wrong, SPECS["smooth_l1"], wrong.relations[0], Reference())
    assert not check.holds and check.worst["params"]["delta"] != 1.0


@pytest.mark.parametrize("related, field", [
    ([{"function": "smooth_l2", "identity": "x", "why": "planted"}], "related.0.function"),
    ([{"function": "smooth_l1", "params": {"gamma": "delta"}, "identity": "x", "why": "planted"}], "related.0.params.gamma"),
    ([{"function": "relu", "identity": "x", "why": "planted"}], "related.0.function"),
])
def test_a_relation_that_names_nothing_is_a_spec_error_naming_the_field(related: list[dict], field: str) -> None:
    planted = parse_document(huber_with(related), "spec/losses/huber.yaml")
    with pytest.raises(SpecError) as err:
        check_relations({**SPECS, "huber": planted})
    assert err.value.file == "spec/losses/huber.yaml" and err.value.field == field


def test_a_relation_formula_is_parsed_like_any_formula() -> None:
    with pytest.raises(SpecError) as err:
        parse_document(huber_with([{"function": "smooth_l1", "scale": "__import__('os')", "identity": "x", "why": "planted"}]),
                       "huber.yaml")
    assert err.value.field == "related.0.scale"
    assert Path(SPECS["huber"].path).name == "huber.yaml"
