"""Optimizers: every check generated from spec/optimizers/*.yaml (see plugin.py and optimizer_cases.py)."""

from nnconform.conformance.core import Case, Context
from nnconform.conformance.families import run

FAMILY = "optimizer"


def test_optimizer(conformance_case: Case, conformance_context: Context) -> None:
    run(conformance_context, conformance_case)
