"""The public route for a new backend works end to end, from outside this project's adapters folder.

An outside author runs `nnconform new-adapter NAME`, fills in entries, registers the module
under the `nnconform.adapters` entry-point group in their own package, pip-installs it and
runs the suite.  This test does exactly that with a tiny NumPy-backed package: it is built
and installed by pip (into a temporary --target directory, so the environment is not
changed), then the conformance suite runs in a fresh process that finds it only through
its entry point.  The adapter is filled in twice, correctly and with a planted error, so
the test also shows the suite really calls the outside module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnconform.conformance import cli
from nnconform.conformance.scaffold import ScaffoldError, render
from nnconform.spec.loader import load_all

# relu, written the way an author fills in the scaffold (x <= 0, not x > 0, so that NaN passes
# through: the first draft of this test wrote x > 0 and the special check caught it); the
# planted error is a slope of 2**-7 below zero (a leaky relu), which the value check must reject.
RELU = '    "relu": Op(lambda x: np.where(x <= 0, np.zeros_like(x), x), "numpy.where", "numpy.where({x} <= 0, 0, {x})"),\n'
LEAKY = '    "relu": Op(lambda x: np.where(x > 0, x, x * x.dtype.type(2**-7)), "numpy.where"),\n'


def build_package(root: Path, relu_entry: str) -> Path:
    """Scaffold `toy`, fill in relu, and pip-install the package; returns the install directory."""
    source = root / "src"
    assert cli.main(["new-adapter", "toy", "--dir", str(source)]) == 0
    module = source / "toy_adapter.py"
    text = module.read_text()
    assert '    "relu": Missing(TODO),\n' in text
    module.write_text(text.replace('    "relu": Missing(TODO),\n', relu_entry))
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "toy-nnconform-backend"\nversion = "0.1"\n\n'
        '[tool.setuptools]\npy-modules = ["toy_adapter"]\n\n'
        '[project.entry-points."nnconform.adapters"]\ntoy = "toy_adapter:make_adapter"\n')
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True, capture_output=True, text=True)
    return target


def run_suite(site: Path, report: Path, cwd: Path) -> dict[str, dict]:
    """The suite as an outside author runs it (`pytest --pyargs`), in a process that sees the package."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "nnconform.conformance", "-q", "-p",
                           "no:cacheprovider", "--backend=toy", "--functions=relu,sigmoid", "--checks=provided,value,dtype,special",
                           "--dtypes=float64,float32", f"--report={report}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    files = list(report.glob("toy-*.json"))
    assert files, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {r["id"]: r for r in json.loads(files[0].read_text())["records"]}


@pytest.fixture(scope="module")
def correct(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("toy")
    return run_suite(build_package(root, RELU), root / "report", root)


def test_an_outside_adapter_is_found_through_its_entry_point_and_passes(correct: dict[str, dict]) -> None:
    relu = {cid: r for cid, r in correct.items() if r["function"] == "relu"}
    assert relu and all(r["status"] == "pass" for r in relu.values()), relu


def test_what_the_author_has_not_filled_in_is_reported_not_provided(correct: dict[str, dict]) -> None:
    sigmoid = [r for r in correct.values() if r["function"] == "sigmoid"]
    assert sigmoid and all(r["status"] == "not provided" for r in sigmoid)
    assert all("not yet provided by the toy adapter" in r["message"] for r in sigmoid)


def test_a_planted_error_in_the_outside_adapter_fails_its_value_check(tmp_path: Path) -> None:
    records = run_suite(build_package(tmp_path, LEAKY), tmp_path / "report", tmp_path)
    value = [r for r in records.values() if r["function"] == "relu" and r["check"] == "value"]
    assert value and all(r["status"] == "fail" for r in value)


def test_the_scaffold_lists_every_spec_function_as_missing() -> None:
    text = render("newbackend")
    for name in load_all():
        assert f'    "{name}": Missing(TODO),\n' in text, name


def test_the_scaffold_refuses_a_name_that_is_not_a_module_name(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="lower case letters"):
        render("my-backend")
    assert cli.main(["new-adapter", "class", "--dir", str(tmp_path)]) == 2


def test_the_scaffold_does_not_overwrite_an_adapter(tmp_path: Path) -> None:
    assert cli.main(["new-adapter", "mine", "--dir", str(tmp_path)]) == 0
    (tmp_path / "mine_adapter.py").write_text("# filled in by hand\n")
    assert cli.main(["new-adapter", "mine", "--dir", str(tmp_path)]) == 2
    assert (tmp_path / "mine_adapter.py").read_text() == "# filled in by hand\n"
