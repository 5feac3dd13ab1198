"""A records file is data, never a path or a script (../shared/reviews/reliability.md, D1).

Records are what users exchange (`nnconform report html report/ other-machine/`), so a crafted
one must not choose where pages are written, nor put a script behind a link: the names that
become file names are plain names, checked by the schema, and links are http(s) only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnconform.conformance import cli

from .test_report_pages import write_run


def crafted(tmp_path: Path, **changes: object) -> Path:
    directory = write_run(tmp_path / "in")
    for name in ("numpy-cpu.json", "numpy-cpu.sweep.json"):
        data = json.loads((directory / name).read_text())
        (directory / name).write_text(json.dumps({**data, **changes}))
    return directory


@pytest.mark.parametrize("field, value", [
    ("backend", "../escaped"), ("backend", "/usr/lib/x86_64"), ("backend", "javascript:alert(document.domain);void"),
    ("backend", ".hidden"), ("device", "linux-gnu/../../NOTES"), ("device", ""),
])
def test_a_name_that_is_a_path_or_a_scheme_is_refused_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                       field: str, value: str) -> None:
    directory = crafted(tmp_path, **{field: value})
    out = tmp_path / "out"
    assert cli.main(["report", "html", str(directory), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{field} is" in err and "plain name" in err
    assert not any(p.suffix in (".html", ".md") for p in tmp_path.rglob("*") if p.parent != directory)


def test_a_cuda_device_is_a_plain_name_and_its_page_stays_in_out(tmp_path: Path) -> None:
    directory = crafted(tmp_path, device="cuda:0")
    out = tmp_path / "out"
    assert cli.main(["report", "html", str(directory), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["numpy-cuda_0.html", "numpy-cuda_0.md"]
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


def test_a_known_entry_linking_a_script_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    directory = crafted(tmp_path)
    data = json.loads((directory / "numpy-cpu.json").read_text())
    data["known"] = [{"function": "relu", "reason": "a planted entry with a script link", "evidence": "planted",
                      "link": "javascript:alert(1)"}]
    (directory / "numpy-cpu.json").write_text(json.dumps(data))
    assert cli.main(["report", "html", str(directory), "--out", str(tmp_path / "out")]) == 2
    assert "known[0].link" in capsys.readouterr().err
