"""Writing a format-2 known list: one line per match, each reason once, so that a change reads as a diff."""

from __future__ import annotations

from typing import Any

import yaml

from .known import FORMAT

HEADER = """\
# Known discrepancies of {backend}: findings of the suite, each with why and a link.
# Format 2 (conformance/known.py): `where:` is the environment the list was measured on; a finding
# or a match may narrow it. Matched tests are strict xfails where `where:` holds; elsewhere see
# --known-policy. The measured evidence is in each run's records and report, not here.
# Written by `nnconform known update`; reasons and links are a person's, kept across updates.
"""


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20, allow_unicode=True, sort_keys=False).strip()


def _scalar(value: str) -> str:
    text = yaml.safe_dump(value, width=1 << 20, allow_unicode=True).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text


def dump(data: dict[str, Any]) -> str:
    """The list as text: `data` is a KnownList's fields (format, backend, where, include, findings)."""
    lines = [HEADER.format(backend=data["backend"]).rstrip("\n"), f"format: {FORMAT}", f"backend: {data['backend']}"]
    if data.get("where"):
        lines.append(f"where: {_flow(data['where'])}")
    if data.get("include"):
        lines.append(f"include: {_flow(list(data['include']))}")
    lines.append("findings:" if data.get("findings") else "findings: []")
    for f in data.get("findings") or []:
        lines.append(f"- id: {f['id']}")
        for key in ("same_as", "kind", "reason", "link", "where", "stale"):
            if f.get(key):
                lines.append(f"  {key}: {_flow(f[key]) if key == 'where' else _scalar(f[key])}")
        lines.append("  matches:")
        for m in f["matches"]:
            lines.append(f"  - {_flow({k: v for k, v in m.items() if v is not None})}")
    return "\n".join(lines) + "\n"
