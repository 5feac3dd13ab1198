"""pytest plugin: ``pytest conformance --backend=NAME``.

Registered through the ``pytest11`` entry point, so it is active wherever the
package is installed; it does nothing unless a conformance test module is
collected.  Heavy imports (the reference, a framework) happen only then.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from .kinds import budget_quantity

PROFILES = {"ci": 25, "thorough": 500}   # Hypothesis examples per check
KEY_STATE = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("nnconform", "nnconform conformance suite")
    g.addoption("--backend", default=None, help="backend to test: numpy, torch, tensorflow, jax, or a registered adapter")
    g.addoption("--device", default="cpu", help="device for the backend (cpu, cuda)")
    g.addoption("--dtypes", default="float64,float32,float16,bfloat16", help="comma-separated dtypes to check")
    g.addoption("--functions", default="*", help="comma-separated function names or globs (e.g. 'soft*,gelu')")
    g.addoption("--checks", default="*", help="comma-separated check kinds (value, gradient, stability, ...)")
    g.addoption("--report", default=None, metavar="DIR", help="write JSON records and a Markdown summary to DIR")
    g.addoption("--conformance-profile", default="ci", choices=sorted(PROFILES),
                help="ci: few examples, fixed seeds (same verdicts every run); thorough: many more examples")
    g.addoption("--conformance-seed", type=int, default=0, help="mixed into every check's fixed seed")
    g.addoption("--call-timeout", type=float, default=60.0, metavar="SECONDS",
                help="a backend call running longer fails its check (0: no limit)")
    g.addoption("--reference", default="mpmath", choices=("mpmath", "arb", "both"),
                help="the exact reference: mpmath (default), arb (the independent tier, needs python-flint), "
                     "or both (judge only where the two agree)")
    g.addoption("--known", default=None, metavar="PATH",
                help="known-discrepancy list to apply (default: the one shipped for the backend)")


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _state(config: pytest.Config) -> dict[str, Any]:
    """Built on first use: loading a framework costs seconds, and most pytest runs never need one."""
    state = config.stash.get(KEY_STATE, None)
    if state is not None:
        return state
    from nnconform.adapters.registry import BackendUnavailable, available, load
    from nnconform.reference import ReferenceCache, tiers
    from nnconform.reference.arb_tier import TierUnavailable

    from . import known
    from .core import Context
    from .kinds import NAMES as CHECKS

    backend = config.getoption("backend")
    if not backend:
        raise pytest.UsageError("the conformance suite needs --backend=NAME (available: "
                                + ", ".join(available()) + ")")
    try:
        adapter = load(backend, config.getoption("device"))
    except BackendUnavailable as exc:
        raise pytest.UsageError(str(exc)) from None
    dtypes = _split(config.getoption("dtypes"))
    bad = [d for d in dtypes if d not in ("float64", "float32", "float16", "bfloat16")]
    if bad:
        raise pytest.UsageError(f"unknown dtype(s) {bad}; choose from float64, float32, float16, bfloat16")
    checks = [c for c in CHECKS if any(fnmatch.fnmatch(c, p) for p in _split(config.getoption("checks")))]
    profile = config.getoption("conformance_profile")
    try:
        reference = tiers.make(config.getoption("reference"), ReferenceCache())
    except TierUnavailable as exc:
        raise pytest.UsageError(str(exc)) from None
    ctx = Context(adapter, reference, max_examples=PROFILES[profile],
                  call_timeout=config.getoption("call_timeout"),
                  seed=config.getoption("conformance_seed"))
    if profile == "thorough":
        from hypothesis import Phase
        ctx.phases = tuple(Phase)
    from nnconform.spec import SpecError
    try:
        entries = known.load(backend, Path(config.getoption("known")) if config.getoption("known") else None)
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None
    state = {"adapter": adapter, "ctx": ctx, "dtypes": dtypes, "checks": checks, "records": [],
             "known": entries, "matched": set(), "profile": profile}
    config.stash[KEY_STATE] = state
    return state


def _active(config: pytest.Config) -> bool:
    return config.getoption("backend") is not None


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _active(config):
        return None
    s = _state(config)
    a = s["adapter"]
    env = ", ".join(f"{k}={v}" for k, v in sorted(a.environment().items()))
    return [f"nnconform: backend {a.name} {a.version}, device {a.device}, dtypes {','.join(s['dtypes'])}, "
            f"profile {s['profile']}, reference {config.getoption('reference')}", f"nnconform: numerics environment: {env or 'nothing recorded'}"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" not in metafunc.fixturenames:
        return
    s = _state(metafunc.config)
    from nnconform.spec import load_all

    from .families import CaseBuilder
    family = getattr(metafunc.module, "FAMILY", "activation")
    patterns = _split(metafunc.config.getoption("functions"))
    specs = [sp for name, sp in sorted(load_all([family]).items()) if any(fnmatch.fnmatch(name, p) for p in patterns)]
    cases = CaseBuilder(s["adapter"], s["ctx"].reference, s["dtypes"], s["checks"]).build(specs)
    metafunc.parametrize("conformance_case", cases, ids=[c.id for c in cases])


@pytest.fixture
def conformance_context(request: pytest.FixtureRequest) -> Any:
    return _state(request.config)["ctx"]


def _case(item: pytest.Item) -> Any:
    from .core import Case
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("conformance_case") if callspec else None
    return case if isinstance(case, Case) else None     # a family with nothing selected parametrizes with NOTSET


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _active(config):
        return
    s = _state(config)
    # A family with no function selected (--functions=sigmoid leaves the losses empty) would show
    # one "empty parameter set" skip: deselect it, it is not a check.
    empty = [i for i in items if "conformance_case" in getattr(i, "fixturenames", ()) and _case(i) is None]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [i for i in items if i not in empty]
    device = s["adapter"].device.split(":")[0]
    s["collected"] = {(c.function, c.dtype, c.check) for c in map(_case, items) if c is not None}
    for item in items:
        case = _case(item)
        if case is None or case.skip:
            continue
        for i, entry in enumerate(s["known"]):
            if entry.matches(case, device):
                s["matched"].add(i)
                item.add_marker(pytest.mark.xfail(strict=True, reason=entry.describe(), raises=AssertionError))
                break


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    case = _case(item)
    if case is None or not _active(item.config):
        return
    if report.when == "setup" and not report.skipped:
        return
    if report.when == "teardown":
        return
    s = _state(item.config)
    status = _status(report)
    worst = s["ctx"].results.get(case.id)
    message = ""
    if status == "fixed upstream":
        message = f"passed, but listed as a known discrepancy: {getattr(report, 'wasxfail', '') or report.longrepr}"
    elif report.failed or hasattr(report, "wasxfail"):
        message = str(call.excinfo.value) if call.excinfo else ""
    elif report.skipped and isinstance(report.longrepr, tuple):
        message = str(report.longrepr[2]).removeprefix("Skipped: ")
    s["records"].append({
        "id": case.id, "function": case.function, "dtype": case.dtype, "check": case.check,
        "params": {k: v for k, v in case.params.items()}, "status": status,
        "max_ulp": worst.max_ulp if worst else None, "max_relative": worst.max_relative if worst else None,
        "budget_ulp": _budget(case),
        "worst": _hexed(worst.detail) if worst and worst.detail else None,
        "reason": getattr(report, "wasxfail", "") or "", "message": message,
    })


def _status(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "known discrepancy" if report.skipped else "fixed upstream"
    if report.passed:
        return "pass"
    if report.failed:
        return "fixed upstream" if "XPASS(strict)" in str(report.longrepr) else "fail"
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
    if "not provided" in reason:
        return "not provided"
    if "reference uncertain" in reason:
        return "reference uncertain"
    return "skipped"


def _budget(case: Any) -> float | None:
    """The spec's ULP budget for this check (before any condition number)."""
    quantity = budget_quantity(case.check)
    if not case.dtype or case.spec.family == "optimizer" or quantity is None:   # optimizers: a factor, not ULPs
        return None
    return case.spec.budget(case.dtype, quantity, case.wrt).ulp


def _hexed(detail: dict[str, Any]) -> dict[str, Any]:
    out = dict(detail)
    for k in ("input", "expected", "got"):
        v = out.get(k)
        if isinstance(v, float):
            out[f"{k}_hex"] = v.hex()
    return out


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _active(config) or KEY_STATE not in config.stash:
        return
    s = config.stash[KEY_STATE]
    collected = s.get("collected", set())

    def could_match(e: Any) -> bool:     # entries for functions, dtypes or checks filtered out of this run are fine
        return any(fn == e.function and (e.dtypes is None or dt in e.dtypes) and (e.checks is None or ck in e.checks)
                   for fn, dt, ck in collected)
    unmatched = [e for i, e in enumerate(s["known"]) if i not in s["matched"] and could_match(e)]
    if unmatched:
        terminalreporter.section("nnconform: known discrepancies that matched no test", yellow=True)
        for e in unmatched:
            terminalreporter.write_line(f"  {e.function} {e.dtypes or ''} {e.checks or ''} {e.case or ''}: {e.reason}")
    disagreed = getattr(s["ctx"].reference, "disagreements", 0)
    if disagreed:
        terminalreporter.section("nnconform: the reference tiers disagree", red=True)
        terminalreporter.write_line(f"  mpmath and arb gave different results at {disagreed} outputs; no backend was judged "
                                    "there (a reference bug: please report it with the records file)")
    if s.get("written"):
        terminalreporter.write_line("nnconform report: " + ", ".join(str(p) for p in s["written"]))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _active(config) or KEY_STATE not in config.stash:
        return
    s = config.stash[KEY_STATE]
    s["ctx"].reference.flush()
    target = config.getoption("report")
    if target and s["records"]:
        from nnconform.reference import tiers

        from .report import records
        header = records.run_header(s["adapter"], s["dtypes"])
        header["profile"] = s["profile"]
        header["reference"] = tiers.describe(s["ctx"].reference)
        header["known"] = [e.model_dump(exclude_none=True) for e in s["known"]]   # what the verdicts were judged by
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        directory = Path(target) / worker if worker else Path(target)
        s["written"] = records.write(directory, header, s["records"])
