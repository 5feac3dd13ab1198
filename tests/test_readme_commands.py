"""README keeps exactly two copy-paste commands, and CI runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

from nnconform.adapters import registry

ROOT = Path(__file__).resolve().parent.parent


def commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```\n(.*?)\n```", section, re.S)


def test_readme_has_exactly_two_commands() -> None:
    assert len(commands()) == 2


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    assert commands()[1] in (ROOT / ".ci" / "run").read_text()


SCRIPT = ROOT / "tools" / "test-everything"


def test_the_test_command_runs_the_script_that_tests_everything() -> None:
    assert commands()[1].endswith("tools/test-everything") and "pytest tests -q" in SCRIPT.read_text()


def _loops(text: str) -> list[set[str]]:
    return [set(m.split()) for m in re.findall(r"for backend in ([\w ]+); do", text)]


def test_the_script_runs_and_sweeps_every_registered_backend_and_writes_the_pages() -> None:
    text = SCRIPT.read_text()
    runs, sweeps = _loops(text)
    assert runs == sweeps == set(registry.available())
    assert 'pytest conformance -q --backend="$backend" --known-policy=strict --report=report' in text
    assert 'nnconform sweep "$backend" --out report --no-progress' in text
    assert text.rstrip().endswith("nnconform report html report")
