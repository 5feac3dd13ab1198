"""`nnconform known update`: refresh a backend's known list from a run's records (their fields, never their messages).

What a person wrote stays: ids, kinds, reasons and links.  From the records:

- a failure no entry covers becomes a match: under the finding that already explains that
  function and check (another dtype, another environment), else under a new TODO finding that a
  person must give a reason;
- a failure an entry covers but whose `where:` excludes this environment widens that `where:` by
  this environment's values (the finding holds here too);
- a new match is scoped to this run's instruction-set level and device (SCOPED), because a finding
  measured on one machine is not known to hold on another;
- a finding with a passing test it covers (an XPASS, or "not reproduced" here) is marked `stale:`
  with the environment, for a person to remove or scope.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from . import kinds
from .known import Entry, KnownList, holds, read
from .known_format import dump

# The environment keys a new finding is scoped to: the dispatch level of each library and the device.
SCOPED = ("device", "cpu_capability", "onednn_isa", "xla_cpu_isa", "numpy_simd")
RELEVANT = {"torch": ("device", "cpu_capability", "onednn_isa"), "tensorflow": ("device", "onednn_isa"),
            "keras": ("device", "onednn_isa"), "jax": ("device", "xla_cpu_isa"), "keras_jax": ("device", "xla_cpu_isa"),
            "numpy": ("device", "numpy_simd"), "onnxruntime": ("device",)}
TODO = "TODO: say why this differs (a reason a reader can check), then remove this TODO."


class RecordCase:
    """The fields of a record that an entry matches on."""

    def __init__(self, r: dict[str, Any]) -> None:
        self.function, self.dtype, self.check, self.id = r["function"], r["dtype"], r["check"], r["id"]


def case_pattern(r: dict[str, Any]) -> str | None:
    """The piece of the test id that pins one labelled case ("stability x=20.5", anchored with $ where the
    label is the whole rest of the id), or None for a check over all inputs."""
    parts = r["id"].split(" ", 2)
    check = r["check"]
    loss = check in (kinds.BY_NAME["value"].name, kinds.BY_NAME["gradient"].name) and len(parts) == 3 \
        and "reduction=" in parts[2]
    if len(parts) < 3 or not (check in kinds.LABELLED or loss):
        return None
    label = parts[2].split(" -> ")[0]
    whole = r["id"].endswith(f" {check} {label}")
    anchored = ("reduction=" in label and check != kinds.BY_NAME["stability"].name) \
        or kinds.BY_NAME[check].group == "trajectories" or whole
    return f"{check} {label}" + ("$" if anchored else "")


def update(known: KnownList, run: dict[str, Any], today: str) -> tuple[dict[str, Any], list[str]]:
    """The refreshed list (as data for known_format.dump) and what changed, one line each."""
    env = {k: str(v) for k, v in (run.get("environment") or {}).items()}
    env.setdefault("device", str(run.get("device", "cpu")).split(":")[0])
    scope_keys = RELEVANT.get(known.backend, SCOPED)
    here = {k: [env[k]] for k in scope_keys if k in env}
    data = known.model_dump(exclude_none=True)
    findings: list[dict[str, Any]] = data.setdefault("findings", [])
    entries = [(fi, mi, e) for fi, f in enumerate(known.findings)
               for mi, m in enumerate(f.matches) for e in f.model_copy(update={"matches": [m]}).entries(known.where)]
    changes: list[str] = []
    covered: dict[int, list[str]] = {}        # finding -> statuses of the records it covers
    for r in run["records"]:
        case = RecordCase(r)
        device = env["device"]
        hits = [(fi, mi, e) for fi, mi, e in entries if e.covers(case, device)]  # type: ignore[arg-type]
        for fi, _, _ in hits[:1]:
            covered.setdefault(fi, []).append(r["status"])
        if r["status"] != "fail":
            continue
        if hits:
            fi, mi, e = hits[0]
            if not holds(e.where, env):
                match = findings[fi]["matches"][mi]
                widened = _widen(match.get("where") or {}, e, env)
                if widened is not None:
                    match["where"] = widened
                    changes.append(f"widened {findings[fi]['id']}: {r['id']} fails here too ({_env_line(here)})")
            continue
        _add(findings, r, here, today, changes)
    for fi, statuses in covered.items():
        passed = sum(s in ("fixed upstream", "not reproduced") for s in statuses)
        if passed:
            findings[fi]["stale"] = (f"{passed} of {len(statuses)} tests it covers passed on {run.get('backend')} "
                                     f"{run.get('version')}, {_env_line(here)} ({today})")
            changes.append(f"stale {findings[fi]['id']}: {findings[fi]['stale']}")
    return data, changes


def _widen(where: dict[str, Any], entry: Entry, env: dict[str, str]) -> dict[str, Any] | None:
    """The match's where with this environment's values added to every value list that excludes it."""
    out = dict(where)
    for key, cond in (entry.where or {}).items():
        if isinstance(cond, list) and env.get(key) is not None and env[key] not in cond:
            out[key] = [*cond, env[key]]
        elif isinstance(cond, str) and not holds({key: cond}, env):
            return None          # another version: a re-measurement, not a widening (the list's where changes)
    return out


def _add(findings: list[dict[str, Any]], r: dict[str, Any], here: dict[str, list[str]], today: str,
         changes: list[str]) -> None:
    match: dict[str, Any] = {"function": r["function"]}
    if r["dtype"]:
        match["dtypes"] = [r["dtype"]]
    match["checks"] = [r["check"]]
    pattern = case_pattern(r)
    if pattern:
        match["case"] = pattern
    if here:
        match["where"] = here
    same = [f for f in findings if not (f.get("reason") or "").startswith("TODO")
            and any(m["function"] == r["function"] and r["check"] in (m.get("checks") or [r["check"]])
                    and (pattern is None or _cases(m.get("case")) & {pattern.rstrip("$"), None}) for m in f["matches"])]
    if same:
        same[0]["matches"].append(match)
        changes.append(f"added {r['id']} under {same[0]['id']} (its reason: read it, it may not fit)")
        return
    ident = f"todo-{r['function']}-{r['check']}".replace("_", "-")
    todo = next((f for f in findings if f["id"] == ident), None)
    if todo is None:
        todo = {"id": ident, "kind": "accuracy", "reason": TODO, "matches": []}
        findings.append(todo)
    todo["matches"].append(match)
    changes.append(f"new {ident}: {r['id']} (found {today}; needs a reason)")


def _cases(case: str | list[str] | None) -> set[str | None]:
    return {c.rstrip("$") if c else None for c in (case if isinstance(case, list) else [case])}


def _env_line(here: dict[str, list[str]]) -> str:
    return ", ".join(f"{k}={v[0]}" for k, v in here.items()) or "this environment"


def write(path: Path, data: dict[str, Any]) -> None:
    data["findings"] = [_ordered(f) for f in data.get("findings") or []]
    path.write_text(dump(data), encoding="utf-8")
    read(path)      # what was written reads back as a valid list


def _ordered(f: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "same_as", "kind", "reason", "link", "where", "stale", "matches")
    return OrderedDict((k, f[k]) for k in keys if k in f)
