"""pytest plugin: --backend and friends (filled in by the conformance suite)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nnconform")
    group.addoption("--backend", default=None, help="backend to test (numpy, torch, tensorflow, jax, ...)")
