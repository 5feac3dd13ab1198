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


def test_the_test_command_runs_every_registered_backend() -> None:
    ran = set(re.findall(r"--backend=(\w+)", commands()[1]))
    assert ran == set(registry.available())


def test_the_test_command_sweeps_every_registered_backend_and_writes_the_pages() -> None:
    swept = set(re.findall(r"nnconform sweep (\w+)", commands()[1]))
    assert swept == set(registry.available())
    assert commands()[1].endswith("nnconform report html report")
