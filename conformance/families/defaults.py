"""The defaults check, which every family has: a framework's native defaults against the canonical ones."""

from __future__ import annotations

from typing import Any, Callable

from nnconform.adapters.base import REQUIRED

from ..core import Case, CheckFailure, Context, Worst


def check_defaults(ctx: Context, case: Case) -> None:
    """The framework's default, as the framework states it, against the canonical value, by meaning."""
    nd = case.extra
    spec = case.spec
    try:
        native = nd.read()
    except Exception as exc:   # noqa: BLE001
        raise CheckFailure(f"{case.id}: could not read the default: {type(exc).__name__}: {exc}") from exc
    canonical = nd.canonical
    if canonical is None:
        canonical = spec.canonical(nd.spec_name)
    meaning = nd.meaning(native)
    stated = str(canonical) if nd.canonical is None else repr(canonical)      # the spec's text, or the adapter's value
    ctx.results[case.id] = Worst(detail={"native": repr(native), "canonical": stated,
                                         **({"means": repr(meaning)} if meaning is not native else {})})
    if native is REQUIRED:
        return     # the API makes the caller choose: no silent default to differ
    api = ctx.adapter.op(spec.name).api
    if meaning is not native and not nd.source:
        raise CheckFailure(f"{case.id}: the adapter reads {api}'s default {nd.framework_name}={native!r} as {meaning!r} "
                           "without saying where the framework documents that: a default is recorded as the framework "
                           "states it (NativeDefault.source names the documentation of a meaning)")
    if not _same(meaning, canonical):
        where = "parameter" if nd.spec_name in spec.doc.params else "convention"
        means = f" (which means {meaning!r})" if meaning is not native else ""
        note = f" ({nd.note})" if nd.note else ""
        raise CheckFailure(f"{case.id}: {api} defaults {nd.framework_name}={native!r}{means}{note}; "
                           f"the canonical {where} {nd.spec_name} is {canonical!r}. A model ported without passing "
                           f"{nd.framework_name} explicitly computes something else.")


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).lower() == str(b).lower()


RUNNERS: dict[str, Callable[[Context, Case], None]] = {"defaults": check_defaults}
