"""pytest plugin: ``pytest conformance --backend=NAME``.

Registered through the ``pytest11`` entry point, so it is loaded wherever the package is
installed; it is inert (no options, no hooks that act) unless the run names the suite
(`asked_for`).  Heavy imports (the reference, a framework) happen only then.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from . import selection
from .kinds import budget_quantity

PROFILES = {"ci": 25, "thorough": 500}   # Hypothesis examples per check
KEY_STATE = pytest.StashKey[dict]()


class _Group:
    """The suite's option group, skipping a name something loaded earlier already defines."""

    def __init__(self, parser: pytest.Parser) -> None:
        self.group = parser.getgroup("nnconform", "nnconform conformance suite")
        groups = [getattr(parser, "_anonymous", None), *getattr(parser, "_groups", [])]     # pytest's own bookkeeping
        self.taken = {n for g in groups if g is not None for o in g.options for n in o.names()}

    def addoption(self, *names: str, **attrs: Any) -> None:
        if not self.taken.intersection(names):      # else a conftest's: its value is the one read
            self.group.addoption(*names, **attrs)


def _add_options(parser: pytest.Parser) -> None:
    g = _Group(parser)
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
    g.addoption("--known-policy", default=None, choices=("strict", "report"),
                help="a known finding measured in another environment (its where:): report = applied as a "
                     "non-strict xfail, shown as 'not reproduced here' when it passes; strict = not applied, the "
                     "check is judged as any other (default: strict when CI is set, else report)")


def asked_for(args: list[str]) -> bool:
    """Whether this pytest run names the conformance suite: a path inside this package, or
    `--pyargs nnconform.conformance...`, or NNCONFORM_PLUGIN=1.

    Why: the pytest11 entry point loads this module into every pytest run where nnconform is
    installed, and options such as --device and --backend are common in users' own conftest.py
    files (two registrations of one option stop pytest).  So the options exist only in runs
    that ask for the suite.
    """
    if os.environ.get("NNCONFORM_PLUGIN") == "1":
        return True
    here = Path(__file__).resolve().parent
    pyargs = "--pyargs" in args
    for arg in args:
        if arg.startswith("-"):
            continue
        target = arg.split("::")[0]
        if pyargs and target.split(".")[:2] == ["nnconform", "conformance"]:
            return True
        try:
            path = Path(target).resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if path == here or here in path.parents:
            return True
    return False


ASKED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> Iterator[None]:
    # After the initial conftests: an option a user's conftest already defines (--device is common)
    # is theirs, and this suite reads the same value, instead of pytest stopping on a duplicate.
    result = yield
    if asked_for(list(args)):
        early_config.stash[ASKED] = True
        _add_options(parser)
    return result



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

    if not config.stash.get(ASKED, False):
        raise pytest.UsageError("the conformance suite runs as: pytest conformance --backend=NAME "
                                "(or pytest --pyargs nnconform.conformance --backend=NAME)")
    backend = config.getoption("backend")
    if not backend:
        raise pytest.UsageError("the conformance suite needs --backend=NAME (available: "
                                + ", ".join(available()) + ")")
    try:
        adapter = load(backend, config.getoption("device"))
    except BackendUnavailable as exc:
        raise pytest.UsageError(str(exc)) from None
    dtypes = selection.split(config.getoption("dtypes"))
    bad = [d for d in dtypes if d not in ("float64", "float32", "float16", "bfloat16")]
    if bad:
        raise pytest.UsageError(f"unknown dtype(s) {bad}; choose from float64, float32, float16, bfloat16")
    checks = [c for c in CHECKS if any(fnmatch.fnmatch(c, p) for p in selection.split(config.getoption("checks")))]
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
             "known": entries, "matched": set(), "profile": profile,
             "policy": config.getoption("known_policy") or known.default_policy()}
    config.stash[KEY_STATE] = state
    return state


def pytest_configure(config: pytest.Config) -> None:
    """Every user error is found here, before collection, and is one line (pytest's UsageError)."""
    if not config.stash.get(ASKED, False):
        return
    from nnconform.spec import load_all

    from .kinds import NAMES as CHECKS
    for option, choices in (("functions", sorted(load_all())), ("checks", list(CHECKS))):
        error = selection.unmatched(option, config.getoption(option), choices)
        if error:
            raise pytest.UsageError(error)
    _hypothesis_options(config)
    _state(config)


def _hypothesis_options(config: pytest.Config) -> None:
    """Hypothesis's own flags, read rather than silently overridden.

    Each check runs under a fixed seed of its own (the verdicts must not depend on the run), so
    --hypothesis-seed cannot be honoured: it is refused, pointing to --conformance-seed.  The two
    profiles are registered with Hypothesis as nnconform-ci and nnconform-thorough, and
    --hypothesis-profile=nnconform-... selects one like --conformance-profile does.
    """
    from hypothesis import settings
    for name, examples in PROFILES.items():
        settings.register_profile(f"nnconform-{name}", max_examples=examples, deadline=None)
    if config.getoption("hypothesis_seed", None) is not None:
        raise pytest.UsageError("--hypothesis-seed: each conformance check runs under its own fixed seed, so that "
                                "verdicts do not depend on the run; use --conformance-seed=N to vary them")
    profile = config.getoption("hypothesis_profile", None)
    if profile is not None:
        wanted = profile.removeprefix("nnconform-")
        if not profile.startswith("nnconform-") or wanted not in PROFILES:
            raise pytest.UsageError(f"--hypothesis-profile={profile}: the conformance suite runs under its own profiles; "
                                    f"use --hypothesis-profile=nnconform-ci|nnconform-thorough or --conformance-profile")
        config.option.conformance_profile = wanted


def _active(config: pytest.Config) -> bool:
    return config.stash.get(ASKED, False) and config.getoption("backend") is not None


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _active(config):
        return None
    s = _state(config)
    a = s["adapter"]
    from nnconform.adapters import isa
    env = ", ".join(f"{k}={v}" for k, v in sorted(isa.environment_of(a).items()))
    return [f"nnconform: backend {a.name} {a.version}, device {a.device}, dtypes {','.join(s['dtypes'])}, "
            f"profile {s['profile']}, reference {config.getoption('reference')}, known policy {s['policy']}",
            f"nnconform: numerics environment: {env or 'nothing recorded'}"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" not in metafunc.fixturenames:
        return
    s = _state(metafunc.config)
    from nnconform.spec import load_all

    from .families import CaseBuilder
    family = getattr(metafunc.module, "FAMILY", "activation")
    patterns = selection.split(metafunc.config.getoption("functions"))
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
    from nnconform.adapters import isa
    environment = isa.environment_of(s["adapter"])
    s["collected"] = {(c.function, c.dtype, c.check) for c in map(_case, items) if c is not None}
    s["environment"] = environment
    here = [e.applies_in(environment) for e in s["known"]]
    s["elsewhere"] = {i for i, ok in enumerate(here) if not ok}
    for item in items:
        case = _case(item)
        if case is None or case.skip:
            continue
        covering = [i for i, e in enumerate(s["known"]) if e.covers(case, device)]
        inside = [i for i in covering if here[i]]
        if inside:
            s["matched"].add(inside[0])
            item.add_marker(pytest.mark.xfail(strict=True, reason=s["known"][inside[0]].describe(), raises=AssertionError))
        elif covering and s["policy"] == "report":
            # Measured elsewhere: shown as that finding if it fails here, as "not reproduced here" if it passes.
            s["matched"].add(covering[0])
            item.add_marker(pytest.mark.xfail(strict=False, reason=s["known"][covering[0]].describe(here=False),
                                              raises=AssertionError))


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
    if status == "known discrepancy" and report.passed:          # a non-strict xfail that passed
        status = "not reproduced"
    worst = s["ctx"].results.get(case.id)
    message = ""
    if status == "fixed upstream":
        message = f"passed, but listed as a known discrepancy: {getattr(report, 'wasxfail', '') or report.longrepr}"
    elif status == "not reproduced":
        message = f"passed here; listed as a finding of another environment: {report.wasxfail}"
    elif report.failed or hasattr(report, "wasxfail"):
        message = str(call.excinfo.value) if call.excinfo else ""
    elif report.skipped and isinstance(report.longrepr, tuple):
        message = str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed and call.excinfo is not None and _is_check_failure(call.excinfo.value):
        # The message is the report: no traceback of the suite's internals, no Hypothesis dump.
        report.longrepr = short_message(message) + "\n  rerun:    " + rerun_command(item.config, case)
    s["records"].append({
        "id": case.id, "function": case.function, "dtype": case.dtype, "check": case.check,
        "params": {k: v for k, v in case.params.items()}, "status": status,
        "max_ulp": worst.max_ulp if worst else None, "max_relative": worst.max_relative if worst else None,
        "budget_ulp": _budget(case),
        "worst": _hexed(worst.detail) if worst and worst.detail else None,
        "reason": getattr(report, "wasxfail", "") or "", "message": message,
    })


MAX_LISTED = 40    # entries of one terminal section; the records have every one
MAX_LINE = 300     # characters of one message line in the terminal (a cotangent of 1,797 ones was 5,450)


def known_where(e: Any) -> str:
    from .known import where_text
    return where_text(e.where)


def _is_check_failure(exc: BaseException) -> bool:
    from .core import CheckFailure
    return isinstance(exc, CheckFailure)


def short_message(message: str) -> str:
    return "\n".join(line if len(line) <= MAX_LINE else f"{line[:MAX_LINE]}... ({len(line):,} characters)"
                     for line in message.splitlines())


def rerun_command(config: pytest.Config, case: Any) -> str:
    """The command that runs this check again, alone, with this run's options."""
    parts = ["pytest", "--pyargs", "nnconform.conformance", f"--backend={config.getoption('backend')}",
             f"--functions={case.function}", f"--checks={case.check}"]
    if case.dtype:
        parts.append(f"--dtypes={case.dtype}")
    for option, default in (("device", "cpu"), ("reference", "mpmath"), ("conformance_profile", "ci"),
                            ("conformance_seed", 0), ("known", None)):
        value = config.getoption(option)
        if value != default:
            parts.append(f"--{option.replace('_', '-')}={value}")
    return " ".join(parts)


def _status(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        # skipped: it failed as listed; passed: a non-strict (elsewhere) entry, see the caller; failed: strict XPASS
        return "known discrepancy" if report.skipped or report.passed else "fixed upstream"
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
    not_here = [r for r in s["records"] if r["status"] == "not reproduced"]
    if not_here:
        terminalreporter.section(f"nnconform: {len(not_here)} known finding(s) of another environment not reproduced "
                                 "here (--known-policy=report: not a failure)", yellow=True)
        for r in not_here[:MAX_LISTED]:
            terminalreporter.write_line(f"  {r['id']}: {r['reason'].split(' Measured where ')[-1]}")
        if len(not_here) > MAX_LISTED:
            terminalreporter.write_line(f"  ... and {len(not_here) - MAX_LISTED} more (the records list them all)")
    elsewhere = [e for i, e in enumerate(s["known"]) if i in s.get("elsewhere", set()) and i not in s["matched"]
                 and could_match(e)]
    if elsewhere and s["policy"] == "strict":
        terminalreporter.section("nnconform: known findings of another environment (--known-policy=strict: not applied "
                                 "here; their checks were judged as any other)", yellow=True)
        for e in elsewhere[:MAX_LISTED]:
            terminalreporter.write_line(f"  {e.function} {e.dtypes or ''} {e.checks or ''} {e.case or ''}: measured where "
                                        + known_where(e))
        if len(elsewhere) > MAX_LISTED:
            terminalreporter.write_line(f"  ... and {len(elsewhere) - MAX_LISTED} more")
    unmatched = [e for i, e in enumerate(s["known"]) if i not in s["matched"] and i not in s.get("elsewhere", set())
                 and could_match(e)]
    if unmatched:
        terminalreporter.section("nnconform: known discrepancies that matched no test", yellow=True)
        for e in unmatched:
            terminalreporter.write_line(f"  {e.function} {e.dtypes or ''} {e.checks or ''} {e.case or ''}: {e.reason}")
    disagreed = getattr(s["ctx"].reference, "disagreements", 0) + s.get("workers_disagreed", 0)
    if disagreed:
        terminalreporter.section("nnconform: the reference tiers disagree", red=True)
        terminalreporter.write_line(f"  mpmath and arb gave different results at {disagreed} outputs; no backend was judged "
                                    "there (a reference bug: please report it with the records file)")
    _summary_matrix(terminalreporter, s["records"], s["dtypes"])
    from nnconform.adapters import isa
    a = s["adapter"]
    terminalreporter.write_line(f"nnconform: measured on {a.name} {a.version}, {a.device}, "
                                f"{isa.isa_text(s.get('environment') or isa.environment_of(a))}; known policy {s['policy']}")
    counts = summary_counts(s["records"])
    failed = counts.get("fail", 0) + counts.get("fixed upstream", 0)
    verdict = "FAILED" if failed else "PASSED"
    line = f"nnconform: {verdict}, {len(s['records'])} checks: " + ", ".join(f"{n} {k}" for k, n in counts.items())
    if s.get("written"):
        line += "; report: " + ", ".join(str(p) for p in s["written"])
    terminalreporter.write_line(line, red=bool(failed), green=not failed, bold=True)


PROGRESS = {"path": None, "done": 0, "total": 0, "failed": 0}


def pytest_collection_finish(session: pytest.Session) -> None:
    path = os.environ.get("NNCONFORM_PROGRESS")
    if path and _active(session.config):
        PROGRESS.update(path=Path(path), total=len(session.items), done=0, failed=0)
        _write_progress()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Tests done, of how many, and failures so far, for `nnconform report run` to show while pytest runs."""
    if PROGRESS["path"] is None or not (report.when == "call" or (report.when == "setup" and not report.passed)):
        return
    PROGRESS["done"] += 1
    PROGRESS["failed"] += int(report.failed)
    _write_progress()


def _write_progress() -> None:
    path = PROGRESS["path"]
    assert isinstance(path, Path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{PROGRESS['done']} {PROGRESS['total']} {PROGRESS['failed']}\n")
    os.replace(tmp, path)


CELL_MARKUP = {"fail": {"red": True, "bold": True}, "fixed upstream": {"red": True, "bold": True},
               "known discrepancy": {"yellow": True}, "pass": {"green": True}}


def summary_counts(recs: list[dict[str, Any]]) -> dict[str, int]:
    from .report.records import STATUSES
    counts = {k: sum(1 for r in recs if r["status"] == k) for k in STATUSES}
    return {k: n for k, n in counts.items() if n}


def matrix_cell(statuses: list[str]) -> tuple[str, str]:
    """(text, the status that colours it): the worst of a function's checks in one dtype."""
    if not statuses:
        return "", ""
    for worst, label in (("fail", "FAIL"), ("fixed upstream", "XPASS"), ("known discrepancy", "known")):
        n = statuses.count(worst)
        if n:
            return f"{label} {n}", worst
    judged = statuses.count("pass") + statuses.count("not reproduced")     # passed; the second also listed elsewhere
    return (f"ok {judged}", "pass") if judged else ("-", "")


def _summary_matrix(tr: Any, recs: list[dict[str, Any]], dtypes: list[str]) -> None:
    by: dict[str, dict[str, list[str]]] = {}
    for r in recs:
        by.setdefault(r["function"], {}).setdefault(r["dtype"] or "", []).append(r["status"])
    if not by:
        return
    columns = [d for d in dtypes if any(d in cells for cells in by.values())]
    if any("" in cells for cells in by.values()):
        columns.append("")                       # checks of no one dtype (the defaults)
    tr.section("nnconform: function x dtype (worst check; ok N = N checks judged and passed)")
    width = max(len(f) for f in by) + 2
    tr.write_line(" " * width + "".join(f"{d or 'any dtype':<12}" for d in columns))
    for function in sorted(by):
        tr.write(f"{function:<{width}}")
        for d in columns:
            text, status = matrix_cell(by[function].get(d, []))
            tr.write(f"{text:<12}", **CELL_MARKUP.get(status, {}))
        tr.write("\n")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, on the controller: one worker's records, joined to the others'."""
    output = getattr(node, "workeroutput", {}).get("nnconform")
    if output is None or KEY_STATE not in node.config.stash:
        return
    s = node.config.stash[KEY_STATE]
    part = json.loads(output)
    s["records"].extend(part["records"])
    s["matched"].update(part["matched"])
    s["elsewhere"] = s.get("elsewhere", set()) | set(part["elsewhere"])
    s.setdefault("collected", set()).update(tuple(c) for c in part["collected"])
    s["workers"] = s.get("workers", 0) + 1
    s["workers_disagreed"] = s.get("workers_disagreed", 0) + part["disagreements"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _active(config) or KEY_STATE not in config.stash:
        return
    s = config.stash[KEY_STATE]
    s["ctx"].reference.flush()
    if hasattr(config, "workerinput"):
        # A pytest-xdist worker hands its records to the controller, which writes the one records file.
        config.workeroutput["nnconform"] = json.dumps({  # type: ignore[attr-defined]
            "records": s["records"], "matched": sorted(s["matched"]), "elsewhere": sorted(s.get("elsewhere", set())),
            "collected": sorted([list(c) for c in s.get("collected", set())], key=str),
            "disagreements": getattr(s["ctx"].reference, "disagreements", 0)})
        return
    target = config.getoption("report")
    if target and s["records"]:
        from nnconform.reference import tiers

        from .report import records
        header = records.run_header(s["adapter"], s["dtypes"])
        header["profile"] = s["profile"]
        header["seed"] = config.getoption("conformance_seed")
        header["reference"] = tiers.describe(s["ctx"].reference)
        header["known"] = [e.model_dump(exclude_none=True) for e in s["known"]]   # what the verdicts were judged by
        header["known_policy"] = s["policy"]
        if s.get("workers"):
            s["records"].sort(key=lambda r: r["id"])      # workers finish in any order: the file does not depend on it
            if s["workers_disagreed"]:
                header["reference"]["disagreements"] = s["workers_disagreed"]
        s["written"] = records.write(Path(target), header, s["records"])
