"""A pytest plugin that splits a conformance run's wall time; loaded by conformance_split.py, never by the suite.

    pytest conformance --backend=torch -p conformance_timing      (with benchmarks/ on PYTHONPATH)

Where the seconds go: collection (which builds the cases, and evaluates the reference for the
expected values in the ids), the reference evaluations made inside the tests, the framework
calls (every call a check makes goes through `core.time_limit`), and the rest of the test
bodies (Hypothesis drawing and shrinking, measuring, messages); pytest's own time around the
tests is what is left of the wall time.  The split is written as one JSON object to the file
named by NNCONFORM_TIMING_OUT.  Wrapping costs about a microsecond a call: noise beside
a reference evaluation or a framework call.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from typing import Any, Callable, Iterator

import pytest

from nnconform.conformance import core
from nnconform.reference.engine import Reference
from nnconform.reference.losses import LossReference
from nnconform.reference.optimizers import OptimizerReference

TOTALS: dict[str, float] = {"collection": 0.0, "reference in collection": 0.0, "reference": 0.0,
                            "framework": 0.0, "tests": 0.0}
_state = {"depth": 0, "collecting": False, "start": 0.0}

WRAPPED = {Reference: ("value", "vjp", "condition", "evaluate_params"),
           LossReference: ("value", "vjp", "condition", "counts", "approximate"),
           OptimizerReference: ("trajectory",)}


def _timed_reference(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _state["depth"]:                   # nested in another reference call: counted by the outer one
            return fn(*args, **kwargs)
        _state["depth"] += 1
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _state["depth"] -= 1
            TOTALS["reference in collection" if _state["collecting"] else "reference"] += time.perf_counter() - start
    return wrapper


_time_limit = core.time_limit


@contextlib.contextmanager
def _timed_call(seconds: float, what: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        with _time_limit(seconds, what):
            yield
    finally:
        TOTALS["framework"] += time.perf_counter() - start


def pytest_configure(config: pytest.Config) -> None:
    _state["start"] = time.perf_counter()
    for cls, names in WRAPPED.items():
        for name in names:
            setattr(cls, name, _timed_reference(getattr(cls, name)))
    core.time_limit = _timed_call     # type: ignore[assignment]   # call_backend looks it up at each call


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    _state["collecting"] = True
    start = time.perf_counter()
    yield
    TOTALS["collection"] += time.perf_counter() - start
    _state["collecting"] = False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    start = time.perf_counter()
    yield
    TOTALS["tests"] += time.perf_counter() - start


def pytest_unconfigure(config: pytest.Config) -> None:
    out = os.environ.get("NNCONFORM_TIMING_OUT")
    if not out:
        return
    wall = time.perf_counter() - _state["start"]
    split = {"wall": wall, "collection": TOTALS["collection"],
             "reference": TOTALS["reference"] + TOTALS["reference in collection"],
             "framework": TOTALS["framework"],
             "hypothesis and checks": TOTALS["tests"] - TOTALS["reference"] - TOTALS["framework"],
             "pytest and setup": wall - TOTALS["collection"] - TOTALS["tests"]}
    with open(out, "w") as f:
        json.dump(split, f)
