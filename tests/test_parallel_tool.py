"""tools/parallel.py, which runs CI's backend streams side by side: every command runs, none is lost, failures count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "parallel.py"


def run(*commands: str, jobs: int = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), "--jobs", str(jobs), *commands], capture_output=True, text=True)


def test_every_command_runs_after_one_fails_and_the_run_fails() -> None:
    proc = run("echo first; exit 3", "echo second", "echo third")
    assert proc.returncode == 1
    assert all(word in proc.stdout for word in ("first", "second", "third"))
    assert "FAILED (exit 3)" in proc.stdout and proc.stdout.rstrip().endswith("echo first; exit 3")


def test_all_passing_is_exit_zero() -> None:
    assert run("true", "true", "true").returncode == 0


def test_each_output_is_printed_in_one_piece() -> None:
    # Two streams printing line by line at the same time: each block stays together under its header.
    a = "for i in 1 2 3; do echo a$i; sleep 0.1; done"
    b = "for i in 1 2 3; do echo b$i; sleep 0.1; done"
    lines = run(a, b).stdout.splitlines()
    for tag in ("a", "b"):
        start = lines.index(next(line for line in lines if line.startswith("==== ") and f"echo {tag}$i" in line))
        assert lines[start + 1:start + 4] == [f"{tag}1", f"{tag}2", f"{tag}3"]


def test_commands_run_side_by_side(tmp_path: Path) -> None:
    # The first waits (up to 3 s) for a file the second writes: one after the other, it would give up first.
    flag = tmp_path / "flag"
    wait = f"for i in $(seq 30); do [ -e {flag} ] && exit 0; sleep 0.1; done; exit 1"
    assert run(wait, f"touch {flag}", jobs=2).returncode == 0
    flag.unlink()
    assert run(wait, f"touch {flag}", jobs=1).returncode == 1
