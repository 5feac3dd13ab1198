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


TOOLS = ROOT / "tools"
SCRIPT, MATRIX = TOOLS / "test", TOOLS / "test-matrix"


def test_the_test_command_runs_the_own_tests_then_conformance_on_numpy_and_torch() -> None:
    text = SCRIPT.read_text()
    assert commands()[1].endswith("tools/test") and "pytest tests -q" in text
    assert _streams(text) == ["torch", "numpy"]


def test_ci_runs_the_rest_of_the_matrix_after_the_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index(commands()[1]) < ci.index("tools/test-matrix")


def _streams(text: str) -> list[str]:
    return [b for line in re.findall(r"^tools/conformance-streams ([\w ]+)$", text, re.M) for b in line.split()]


def _loops(text: str) -> list[set[str]]:
    return [set(m.split()) for m in re.findall(r"for backend in ([\w ]+); do", text)]


def test_every_registered_backend_is_run_once_and_swept_and_the_pages_are_written() -> None:
    runs = _streams(SCRIPT.read_text()) + _streams(MATRIX.read_text())
    assert sorted(runs) == sorted(registry.available())
    text = MATRIX.read_text()
    assert _loops(text) == [set(registry.available())]
    assert 'nnconform sweep "$backend" --out report --no-progress' in text
    assert text.rstrip().endswith("nnconform report html report")
    streams = (TOOLS / "conformance-streams").read_text()
    assert "pytest conformance -q --backend=$backend --known-policy=strict --report=report" in streams
