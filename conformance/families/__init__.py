"""The families of functions the suite checks, one module each: its cases and its checks.

Each family module has NAME, `cases(build, spec)` and RUNNERS (check kind -> check).  Adding a
family is one module and one entry in FAMILIES; nothing else dispatches on a family.
"""

from __future__ import annotations

from typing import Iterable

import pytest

from nnconform.adapters.base import Adapter
from nnconform.reference import Reference
from nnconform.spec import OptimizerSpec, Spec

from ..core import Build, Case, Context
from . import activation, loss, optimizer

FAMILIES = {m.NAME: m for m in (activation, loss, optimizer)}


class CaseBuilder(Build):
    """Every case of the selected checks for the given specs, in the dtypes the backend supports."""

    def __init__(self, adapter: Adapter, reference: Reference, dtypes: Iterable[str], checks: Iterable[str]) -> None:
        super().__init__(adapter, reference, [d for d in dtypes if d in adapter.dtypes])
        self.checks = set(checks)

    def build(self, specs: Iterable[Spec | OptimizerSpec]) -> list[Case]:
        cases: list[Case] = []
        for spec in specs:
            cases.extend(FAMILIES[spec.family].cases(self, spec))
        return [c for c in cases if c.check in self.checks]


def run(ctx: Context, case: Case) -> None:
    if case.skip:
        pytest.skip(case.skip)
    FAMILIES[case.spec.family].RUNNERS[case.check](ctx, case)
