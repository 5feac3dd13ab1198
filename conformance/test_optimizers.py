"""Optimizers: every check generated from spec/optimizers/*.yaml (see plugin.py and optimizer_cases.py)."""

from nnconform.conformance.cases import Case
from nnconform.conformance.checks import Context, run

FAMILY = "optimizer"


def test_optimizer(conformance_case: Case, conformance_context: Context) -> None:
    run(conformance_context, conformance_case)
