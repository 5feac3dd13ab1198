"""`nnconform known update`: a list refreshed from records keeps what a person wrote and adds what was measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from nnconform.conformance import cli, known, known_update

LIST = """
format: 2
backend: torch
where: {torch: "==2.13.0"}
findings:
- id: gelu-bf16
  kind: accuracy
  reason: torch's bfloat16 gelu flushes tiny results to zero (planted for this test)
  link: https://example.org/gelu
  where: {onednn_isa: [avx512_core_bf16]}
  matches:
  - {function: gelu, dtypes: [bfloat16], checks: [subnormal]}
- id: softplus-threshold
  kind: convention
  reason: torch's softplus returns x above threshold = 20 (planted for this test)
  matches:
  - {function: softplus, dtypes: [float64], checks: [stability], case: stability x=20.5}
- id: relu-fixed
  reason: a finding that a fix upstream removed (planted for this test)
  matches:
  - {function: relu, dtypes: [float32], checks: [value]}
"""
ENV = {"torch": "2.13.0+cpu", "onednn_isa": "avx2", "cpu_capability": "AVX2", "device": "cpu", "platform": "linux-x86_64"}


def record(id_: str, status: str) -> dict:
    name, rest = id_.split("[", 1)
    dtype, check = rest.split("] ", 1)[0], rest.split("] ", 1)[1].split(" ")[0]
    return {"id": id_, "function": name, "dtype": dtype, "check": check, "status": status}


@pytest.fixture
def refreshed(tmp_path: Path) -> tuple[dict, list[str]]:
    path = tmp_path / "torch.yaml"
    path.write_text(LIST)
    run = {"backend": "torch", "version": "2.13.0+cpu", "device": "cpu", "environment": ENV, "records": [
        record("gelu[bfloat16] subnormal", "fail"),                       # the gelu finding, here on AVX2 too
        record("softplus[float32] stability x=20.5", "fail"),             # the threshold, in another dtype
        record("softplus[float64] stability x=20.5", "known discrepancy"),
        record("relu[float32] value", "fixed upstream"),                  # passed where listed
        record("mish[float32] gradient", "fail"),                         # nothing explains it yet
        record("tanh[float32] value", "pass")]}
    return known_update.update(known.read(path), run, "2026-12-04")


def test_a_finding_that_fails_in_a_new_environment_widens_its_where(refreshed: tuple[dict, list[str]]) -> None:
    data, changes = refreshed
    gelu = data["findings"][0]
    assert gelu["where"] == {"onednn_isa": ["avx512_core_bf16"]}        # the finding's own where is kept ...
    assert gelu["matches"][0]["where"] == {"onednn_isa": ["avx512_core_bf16", "avx2"]}   # ... the match is widened
    assert any(c.startswith("widened gelu-bf16") for c in changes)


def test_a_new_dtype_of_a_known_finding_joins_it_scoped_to_this_environment(refreshed: tuple[dict, list[str]]) -> None:
    data, _ = refreshed
    softplus = next(f for f in data["findings"] if f["id"] == "softplus-threshold")
    assert softplus["reason"].startswith("torch's softplus returns x above threshold")     # a person's words, kept
    assert softplus["matches"][1] == {"function": "softplus", "dtypes": ["float32"], "checks": ["stability"],
                                      "case": "stability x=20.5$", "where": {"device": ["cpu"], "cpu_capability": ["AVX2"],
                                                                          "onednn_isa": ["avx2"]}}


def test_an_unexplained_failure_is_a_todo_finding(refreshed: tuple[dict, list[str]]) -> None:
    data, changes = refreshed
    todo = next(f for f in data["findings"] if f["id"] == "todo-mish-gradient")
    assert todo["reason"].startswith("TODO") and todo["matches"][0]["dtypes"] == ["float32"]
    assert any("needs a reason" in c for c in changes)


def test_a_finding_that_passed_is_marked_stale_not_removed(refreshed: tuple[dict, list[str]]) -> None:
    data, _ = refreshed
    relu = next(f for f in data["findings"] if f["id"] == "relu-fixed")
    assert relu["stale"].startswith("1 of 1 tests it covers passed on torch 2.13.0+cpu") and relu["matches"]
    assert "stale" not in next(f for f in data["findings"] if f["id"] == "softplus-threshold")


def test_the_written_list_reads_back_with_links_kept(refreshed: tuple[dict, list[str]], tmp_path: Path) -> None:
    data, _ = refreshed
    out = tmp_path / "out.yaml"
    known_update.write(out, data)
    again = known.read(out)
    assert [f.id for f in again.findings][:3] == ["gelu-bf16", "softplus-threshold", "relu-fixed"]
    assert again.findings[0].link == "https://example.org/gelu" and again.where == {"torch": "==2.13.0"}
    assert yaml.safe_load(out.read_text())["format"] == 2


def test_update_runs_the_suite_and_the_new_list_makes_the_run_green(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """numpy's float32 softplus overflows near the float32 maximum (a real finding): from an empty list the
    update adds it as a TODO, and the suite judged by the written list has it as a known discrepancy."""
    listed = tmp_path / "numpy.yaml"
    assert cli.main(["known", "update", "--backend", "numpy", "--known", str(listed), "--functions", "softplus"]) == 0
    data = yaml.safe_load(listed.read_text())
    todo = [f for f in data["findings"] if f["id"] == "todo-softplus-value"]
    assert todo and {"float32"} <= {d for m in todo[0]["matches"] for d in m["dtypes"]}
    assert "needs a reason" in capsys.readouterr().out
    report = tmp_path / "r"
    import subprocess
    import sys
    status = subprocess.call([sys.executable, "-m", "pytest", "--pyargs", "nnconform.conformance", "-q", "-p",
                              "no:cacheprovider", "--backend=numpy", "--functions=softplus", "--known-policy=strict",
                              f"--known={listed}", f"--report={report}"], stdout=subprocess.DEVNULL)
    statuses = {r["status"] for r in json.loads((report / "numpy-cpu.json").read_text())["records"]}
    assert status == 0 and "fail" not in statuses and "known discrepancy" in statuses


def test_records_of_another_backend_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    records = tmp_path / "jax-cpu.json"
    records.write_text(json.dumps({"schema_version": 99}))
    assert cli.main(["known", "update", "--backend", "numpy", "--from", str(records), "--known", str(tmp_path / "k.yaml")]) == 2
    assert "records schema version" in capsys.readouterr().err


def test_a_bad_where_names_the_finding_and_field(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(LIST.replace('{onednn_isa: [avx512_core_bf16]}', '{torch: "two point thirteen"}'))
    with pytest.raises(known.SpecError, match=r"findings\[gelu-bf16\]\.where.*not a version specifier"):
        known.read(path)


def test_same_as_takes_the_other_lists_reason_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    """TensorFlow's optimizers are Keras's: a finding of both is written once and named from the other list."""
    (tmp_path / "keras.yaml").write_text(LIST.replace("backend: torch", "backend: keras"))
    (tmp_path / "tensorflow.yaml").write_text("""
format: 2
backend: tensorflow
findings:
- id: softplus-threshold
  same_as: keras:softplus-threshold
  matches:
  - {function: softplus, dtypes: [float32], checks: [stability]}
""")
    [entry] = known.load("tensorflow", tmp_path / "tensorflow.yaml")
    assert entry.reason.startswith("torch's softplus returns x above threshold") and entry.kind == "convention"
    (tmp_path / "tensorflow.yaml").write_text((tmp_path / "tensorflow.yaml").read_text().replace(
        "keras:softplus-threshold", "keras:no-such-finding"))
    with pytest.raises(known.SpecError, match=r"same_as.*no finding 'no-such-finding'"):
        known.load("tensorflow", tmp_path / "tensorflow.yaml")


def test_a_list_with_one_id_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(LIST.replace("id: relu-fixed", "id: gelu-bf16"))
    with pytest.raises(known.SpecError, match="gelu-bf16 more than once"):
        known.read(path)
