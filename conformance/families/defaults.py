"""The defaults check, which every family has: a framework's native defaults against the canonical ones."""

from __future__ import annotations

from typing import Any, Callable

from nnconform.adapters.base import REQUIRED

from ..core import Case, CheckFailure, Context


def check_defaults(ctx: Context, case: Case) -> None:
    nd = case.extra
    spec = case.spec
    try:
        native = nd.value()
    except Exception as exc:   # noqa: BLE001
        raise CheckFailure(f"{case.id}: could not read the default: {type(exc).__name__}: {exc}") from exc
    canonical = nd.canonical
    if canonical is None:
        canonical = spec.canonical(nd.spec_name)
    if native is REQUIRED:
        return     # the API makes the caller choose: no silent default to differ
    same = _same(native, canonical)
    if not same:
        where = "parameter" if nd.spec_name in spec.doc.params else "convention"
        note = f" ({nd.note})" if nd.note else ""
        raise CheckFailure(f"{case.id}: {ctx.adapter.op(spec.name).api} defaults {nd.framework_name}={native!r}{note}; "
                           f"the canonical {where} {nd.spec_name} is {canonical!r}. A model ported without passing "
                           f"{nd.framework_name} explicitly computes something else.")


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).lower() == str(b).lower()



RUNNERS: dict[str, Callable[[Context, Case], None]] = {"defaults": check_defaults}
