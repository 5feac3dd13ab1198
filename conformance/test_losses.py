"""Loss functions: every check generated from spec/losses/*.yaml (see plugin.py and families/loss.py)."""

from nnconform.conformance.core import Case, Context
from nnconform.conformance.families import run

FAMILY = "loss"


def test_loss(conformance_case: Case, conformance_context: Context) -> None:
    run(conformance_context, conformance_case)
