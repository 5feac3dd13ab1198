"""Known discrepancies: findings about a backend, kept as strict xfails.

`conformance/known/<backend>.yaml` lists entries; each matches tests by
function, dtypes, checks and (optionally) a piece of the test id, and says why,
with the measured evidence and an upstream link where one exists.  A matched
test is marked xfail(strict=True): CI stays green, the report shows the
finding, and a fix upstream turns it into an XPASS that fails the run, so the
entry gets removed.  An entry that matches no test is reported as a warning.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nnconform.spec.loader import SpecError

from .core import Case


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    function: str
    dtypes: list[Literal["float64", "float32", "float16", "bfloat16"]] | None = None
    checks: list[str] | None = None
    case: str | None = None                 # a substring of the test id, to pin one input; a final "$" anchors it at the end
    devices: list[str] | None = None
    # The environment the finding was measured in, as the records' `environment` names it:
    # key -> the values where it holds (e.g. onednn_isa: [avx512_core_bf16]).  Elsewhere the
    # entry does not apply: the test runs as any other, and the entry is "not in this environment".
    where: dict[str, list[str]] | None = None
    kind: Literal["bug", "accuracy", "convention", "default"] = "accuracy"
    reason: str = Field(min_length=10)
    evidence: str = Field(min_length=5)
    link: str | None = Field(default=None, pattern=r"^https?://")     # a page to read, never a script

    def applies_in(self, environment: dict[str, str]) -> bool:
        return self.where is None or all(environment.get(k) in values for k, values in self.where.items())

    def matches(self, case: Case, device: str, environment: dict[str, str] | None = None) -> bool:
        return (case.function == self.function
                and self.applies_in(environment or {})
                and (self.dtypes is None or case.dtype in self.dtypes)
                and (self.checks is None or case.check in self.checks)
                and (self.case is None or (case.id.endswith(self.case[:-1]) if self.case.endswith("$") else self.case in case.id))
                and (self.devices is None or device in self.devices))

    def describe(self) -> str:
        link = f" ({self.link})" if self.link else ""
        where = "" if self.where is None else " Measured where " + ", ".join(f"{k} in {v}" for k, v in self.where.items()) + "."
        return f"known {self.kind}: {self.reason}{where} Evidence: {self.evidence}{link}"


def known_file(backend: str) -> Path:
    return Path(str(resources.files("nnconform.conformance"))) / "known" / f"{backend}.yaml"


def load(backend: str, path: Path | None = None) -> list[Entry]:
    path = path or known_file(backend)
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except yaml.YAMLError as exc:
        raise SpecError(str(path), "<yaml>", f"not valid YAML: {exc}") from None
    if not isinstance(data, list):
        raise SpecError(str(path), "<document>", "a known-discrepancy file is a list of entries")
    entries = []
    for i, item in enumerate(data):
        try:
            entries.append(Entry.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise SpecError(str(path), f"{i}." + ".".join(str(p) for p in err["loc"]), err["msg"]) from None
    return entries
