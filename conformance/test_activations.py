"""Activation functions: every check generated from spec/activations/*.yaml (see plugin.py)."""

from nnconform.conformance.core import Case, Context
from nnconform.conformance.families import run

FAMILY = "activation"


def test_activation(conformance_case: Case, conformance_context: Context) -> None:
    run(conformance_context, conformance_case)
