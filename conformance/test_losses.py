"""Loss functions: every check generated from spec/losses/*.yaml (see plugin.py and loss_cases.py)."""

from nnconform.conformance.cases import Case
from nnconform.conformance.checks import Context, run

FAMILY = "loss"


def test_loss(conformance_case: Case, conformance_context: Context) -> None:
    run(conformance_context, conformance_case)
