"""Known discrepancies: findings about a backend, scoped to the environment they were measured in.

`conformance/known/<backend>.yaml` (format 2) is a small data file: the environment the list was
measured on (`where:`), then findings, each with one `id`, `kind`, `reason` and `link`, and the
tests it covers (`matches`: function, checks, dtypes, a piece of the test id).  A finding or a
match may narrow `where:` (an instruction set, a device, a framework version range).  The measured
evidence is not in the list: every run measures it again and its records and report show it.

How a matched test is treated depends on the environment of the run (`adapters/isa.py`):

- where `where:` holds, the test is a strict xfail: the finding is a fact about this environment,
  and a fix upstream (an XPASS) fails the run until the entry goes;
- elsewhere, under `--known-policy=report` (the default outside CI), a non-strict xfail: a
  failure is shown as the known finding "measured on ...", a pass as "not reproduced here", and
  the run stays green; under `--known-policy=strict` (CI) the entry is not applied at all, so
  the test is judged as any other and a finding no entry covers here fails.
"""

from __future__ import annotations

import fnmatch
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from nnconform.spec.loader import SpecError

from .core import Case

FORMAT = 2
POLICIES = ("strict", "report")
Kind = Literal["bug", "accuracy", "convention", "default"]
Dtype = Literal["float64", "float32", "float16", "bfloat16"]
# key -> allowed values, or (a string) a version specifier in the `packaging` syntax for a package's version
Where = dict[str, list[str] | str]


def default_policy() -> str:
    """strict in CI (a list that does not fit the machine is a failure to fix), report for a user elsewhere."""
    return "strict" if os.environ.get("CI") else "report"


def _check_where(where: Where | None) -> Where | None:
    for key, cond in (where or {}).items():
        if isinstance(cond, str):
            try:
                SpecifierSet(cond)
            except InvalidSpecifier:
                raise ValueError(f"{key}: {cond!r} is not a version specifier (e.g. '==2.13.0' or '>=2.13,<2.14')") from None
        elif not cond:
            raise ValueError(f"{key}: an empty list of values matches no environment")
    return where


CheckedWhere = Annotated[Where | None, AfterValidator(_check_where)]


def holds(where: Where | None, environment: dict[str, str]) -> bool:
    """Every condition of `where` holds in `environment`; a version compares by its specifier."""
    for key, cond in (where or {}).items():
        value = environment.get(key)
        if value is None:
            return False
        if isinstance(cond, str):
            try:
                if not SpecifierSet(cond).contains(Version(value), prereleases=True):
                    return False
            except InvalidVersion:
                return False
        elif value not in cond:
            return False
    return True


def where_text(where: Where | None) -> str:
    if not where:
        return "any environment"
    return ", ".join(f"{k}{c}" if isinstance(c, str) else f"{k}={'|'.join(c)}" for k, c in where.items())


class Entry(BaseModel):
    """One finding's one match, with the finding's reason and the merged `where:`: the unit tests are matched by."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    function: str
    dtypes: list[Dtype] | None = None
    checks: list[str] | None = None
    case: str | None = None                 # a substring of the test id, to pin one input; a final "$" anchors it at the end
    devices: list[str] | None = None
    where: CheckedWhere = None
    kind: Kind = "accuracy"
    reason: str = Field(min_length=10)
    id: str | None = None
    link: str | None = Field(default=None, pattern=r"^https?://")     # a page to read, never a script
    stale: str | None = None
    evidence: str | None = None             # format 1 kept the evidence in the list; read from old records only

    def applies_in(self, environment: dict[str, str]) -> bool:
        return holds(self.where, environment)

    def covers(self, case: Case, device: str) -> bool:
        """The test is one this entry is about (in any environment)."""
        return ((case.function == self.function or (any(c in self.function for c in "*?[")
                                                    and fnmatch.fnmatchcase(case.function, self.function)))
                and (self.dtypes is None or case.dtype in self.dtypes)
                and (self.checks is None or case.check in self.checks)
                and (self.case is None or (case.id.endswith(self.case[:-1]) if self.case.endswith("$") else self.case in case.id))
                and (self.devices is None or device in self.devices))

    def matches(self, case: Case, device: str, environment: dict[str, str] | None = None) -> bool:
        return self.covers(case, device) and self.applies_in(environment or {})

    def describe(self, here: bool = True) -> str:
        link = f" ({self.link})" if self.link else ""
        where = "" if here else f" Measured where {where_text(self.where)}, not here."
        return f"known {self.kind}: {self.reason}{where}{link}"


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    function: str                           # a name, or a glob for a finding of every function ("*")
    dtypes: list[Dtype] | None = None
    checks: list[str] | None = None
    case: str | list[str] | None = None
    devices: list[str] | None = None
    where: CheckedWhere = None


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: Kind | None = None                # accuracy where not given
    reason: str | None = Field(default=None, min_length=10)
    # the same finding of another backend's list (TensorFlow's optimizers are Keras's): its kind, reason
    # and link, written once there
    same_as: str | None = Field(default=None, pattern=r"^[a-z0-9_]+:[a-z0-9][a-z0-9_.-]*$")
    link: str | None = Field(default=None, pattern=r"^https?://")
    where: CheckedWhere = None
    stale: str | None = None                # set by `nnconform known update`: not reproduced in the run it read
    matches: list[Match] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_reason(self) -> Finding:
        if (self.reason is None) == (self.same_as is None):
            raise ValueError("a finding needs a reason, or same_as naming another list's finding (backend:id); not both")
        if self.same_as is not None and (self.kind is not None or self.link is not None):
            raise ValueError("with same_as, the kind and link are the other finding's")
        return self

    def entries(self, measured: Where | None, explained_by: Finding | None = None) -> list[Entry]:
        why = explained_by or self
        out = []
        for m in self.matches:
            where = {**(measured or {}), **(self.where or {}), **(m.where or {})} or None
            for case in (m.case if isinstance(m.case, list) else [m.case]):
                out.append(Entry(function=m.function, dtypes=m.dtypes, checks=m.checks, case=case, devices=m.devices,
                                 where=where, kind=why.kind or "accuracy", reason=why.reason or f"the finding {self.same_as}", id=self.id,
                                 link=why.link, stale=self.stale))
        return out


class KnownList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal[2]
    backend: str
    where: CheckedWhere = None              # the environment the list was measured on: every finding inherits it
    include: list[str] = []                 # other backends' lists whose findings also hold here (keras_jax: keras)
    findings: list[Finding] = []

    @model_validator(mode="after")
    def _unique_ids(self) -> KnownList:
        ids = [f.id for f in self.findings]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"finding ids must be unique in a list: {', '.join(twice)} more than once")
        return self

    def entries(self, resolve: Callable[[str], Finding] | None = None) -> list[Entry]:
        return [e for f in self.findings
                for e in f.entries(self.where, resolve(f.same_as) if f.same_as and resolve else None)]


def known_dir() -> Path:
    return Path(str(resources.files("nnconform.conformance"))) / "known"


def known_file(backend: str) -> Path:
    return known_dir() / f"{backend}.yaml"


def read(path: Path) -> KnownList:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(str(path), "<yaml>", f"not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), "<file>", f"cannot be read: {exc}") from None
    if data is None:
        data = {"format": FORMAT, "backend": path.stem}
    if isinstance(data, list):
        raise SpecError(str(path), "<document>", "a format-1 known list (a list of entries); this nnconform reads format 2: "
                        "a mapping with format: 2, backend, where and findings (see docs/adding-a-backend.md)")
    if not isinstance(data, dict):
        raise SpecError(str(path), "<document>", "a known-discrepancy file is a mapping with format: 2 and findings")
    try:
        return KnownList.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(str(path), _field(data, err["loc"]), err["msg"]) from None


def _field(data: Any, loc: tuple[Any, ...]) -> str:
    """A field path that names the finding by its id where it has one: findings[bce-clamp].matches.0.dtypes."""
    parts: list[str] = []
    node = data
    for p in loc:
        if isinstance(node, list) and isinstance(p, int) and p < len(node) and isinstance(node[p], dict) and "id" in node[p]:
            parts[-1] = f"{parts[-1]}[{node[p]['id']}]" if parts else str(node[p]["id"])
        else:
            parts.append(str(p))
        node = node[p] if isinstance(node, (list, dict)) and (isinstance(node, dict) and p in node
                                                              or isinstance(node, list) and isinstance(p, int) and p < len(node)) else None
    return ".".join(parts)


def load(backend: str, path: Path | None = None) -> list[Entry]:
    """The entries that judge `backend`: its list's and, after them, those of every list it includes."""
    path = path or known_file(backend)
    if not path.exists():
        if path != known_file(backend):
            raise SpecError(str(path), "<file>", "no such known-discrepancy list")
        return []
    return _entries(path, backend, (path.stem,))


def _beside(path: Path, name: str) -> Path | None:
    """The list named `name` beside `path` (a user's folder of lists), else the shipped one, else None."""
    found = path.parent / f"{name}.yaml"
    found = found if found.exists() else known_file(name)
    return found if found.exists() else None


def _entries(path: Path, backend: str, seen: tuple[str, ...]) -> list[Entry]:
    known = read(path)
    others: dict[str, dict[str, Finding]] = {}          # each list a same_as names, read once

    def resolve(ref: str) -> Finding:
        other, ident = ref.split(":", 1)
        if other not in others:
            found = _beside(path, other)
            others[other] = {f.id: f for f in read(found).findings if f.reason is not None} if found else {}
        if ident not in others[other]:
            raise SpecError(str(path), f"findings[{ref}].same_as", f"no finding {ident!r} with a reason in the {other!r} list")
        return others[other][ident]
    entries = [e for e in (_for(e, backend) for e in known.entries(resolve)) if e is not None]
    for other in known.include:
        if other in seen:
            raise SpecError(str(path), "include", f"includes {other!r}, which includes this list again")
        found = _beside(path, other)
        if found is None:
            raise SpecError(str(path), "include", f"no list named {other!r} beside this one or shipped")
        entries += _entries(found, backend, (*seen, other))
    return entries


def _for(entry: Entry, backend: str) -> Entry | None:
    """`where: {backend: [...]}` scopes a finding of a shared list (keras's, included by keras_jax) to some of
    the backends that read it: not an environment, so an entry for another backend is no entry at all here."""
    where = dict(entry.where or {})
    scope = where.pop("backend", None)
    if scope is None:
        return entry
    if backend not in scope:
        return None
    return entry.model_copy(update={"where": where or None})
