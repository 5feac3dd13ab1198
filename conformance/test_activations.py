"""Activation functions: every check generated from spec/activations/*.yaml (see plugin.py)."""

from nnconform.conformance.checks import Context, run
from nnconform.conformance.cases import Case

FAMILY = "activation"


def test_activation(conformance_case: Case, conformance_context: Context) -> None:
    run(conformance_context, conformance_case)
