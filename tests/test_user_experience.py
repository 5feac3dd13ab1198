"""What a new user meets first: an inert plugin, one-line errors, readable failures, a summary, packaging basics.

Each test holds one row of the review's table "Expected by users vs present"
(../shared/reviews/user-experience.md, section 7).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import nnconform
import nnconform.conformance
from nnconform.conformance import cache_admin, cli

pytest_plugins = ["pytester"]
SUITE = str(Path(nnconform.conformance.__file__).parent)
ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "onnxruntime")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(SUITE, "-p", "no:randomly", "-q", *args)


def text(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


# ---------------------------------------------------------------- the plugin is inert unless asked

USER_CONFTEST = """
def pytest_addoption(parser):
    parser.addoption("--device", default="cpu")
    parser.addoption("--backend", default="mine")
"""
USER_TEST = """
def test_the_users_own_options(request):
    assert request.config.getoption("device") == "cuda" and request.config.getoption("backend") == "mine"
"""


def test_a_project_whose_conftest_defines_device_and_backend_still_runs(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-q", "--device=cuda")
    assert result.ret == 0, text(result)
    result.assert_outcomes(passed=1)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nnconform built as a wheel and installed into a fresh environment (its dependencies come from this one's
    site-packages through a .pth line, so nothing is downloaded; this checkout's editable install is not seen)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                    str(source)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("nnconform-*.whl"))
    env = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python*/site-packages"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    ours = next(p for p in sys.path if p.endswith("site-packages") and (Path(p) / "pytest").is_dir())
    (site / "zz_dependencies.pth").write_text(ours + "\n")
    return env


def in_env(env: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "NNCONFORM_PLUGIN", "PYTHONPATH"))}
    return subprocess.run([str(env / "bin" / "python"), *args], cwd=cwd, capture_output=True, text=True, env=clean,
                          timeout=600)


def test_the_installed_wheel_leaves_a_users_suite_alone_and_still_runs_its_own(installed_wheel: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(USER_CONFTEST)
    (project / "test_user.py").write_text(USER_TEST)
    users = in_env(installed_wheel, project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--device=cuda")
    assert users.returncode == 0 and "1 passed" in users.stdout, users.stdout + users.stderr
    ours = in_env(installed_wheel, project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "nnconform.conformance",
                  "--backend=numpy", "--functions=relu", "--dtypes=float64")
    assert ours.returncode == 0 and " passed" in ours.stdout, ours.stdout + ours.stderr
    where = in_env(installed_wheel, project, "-c", "import nnconform.conformance.plugin as p; print(p.__file__)")
    assert str(installed_wheel) in where.stdout         # the wheel's code ran, not this checkout's


def test_the_wheel_carries_its_version_types_and_licence(installed_wheel: Path) -> None:
    wheel = next(installed_wheel.parent.glob("dist/nnconform-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "nnconform/__init__.py" in names and "nnconform/py.typed" in names and "nnconform/conformance/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert any(n.startswith("nnconform/reference/tables/") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Dist: torch==" not in metadata     # exact pins live in constraints.txt, not in an extra


def test_version_is_exposed_and_printed(capsys: pytest.CaptureFixture) -> None:
    assert nnconform.__version__[0].isdigit()
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"nnconform {nnconform.__version__}"


# ---------------------------------------------------------------- one-line errors

@pytest.mark.parametrize("args, says", [
    (["--backend=nosuch"], "unknown backend 'nosuch'"),
    ([], "needs --backend=NAME"),
    (["--backend=numpy", "--functions=softplsu"], "--functions: 'softplsu' matches nothing; did you mean softplus"),
    (["--backend=numpy", "--checks=valeu"], "--checks: 'valeu' matches nothing; did you mean value"),
    (["--backend=numpy", "--dtypes=float8"], "unknown dtype(s) ['float8']"),
    (["--backend=numpy", "--hypothesis-seed=3"], "use --conformance-seed"),
])
def test_a_user_error_is_one_line_and_a_nonzero_exit(pytester: pytest.Pytester, args: list[str], says: str) -> None:
    result = run(pytester, *args)
    errors = [line for line in result.errlines if line.strip()]
    assert result.ret != 0 and len(errors) == 1 and says in errors[0], text(result)


def test_the_cli_says_when_a_selection_matches_nothing(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["sweep", "numpy", "--functions=nosuch", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_backends_are_listed_without_importing_a_framework() -> None:
    probe = ("import sys; from nnconform.conformance.cli import main; main(['backends']); "
             f"print('imported:', [m for m in {FRAMEWORKS!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[-1] == "imported: []", done.stdout + done.stderr
    numpy_line = next(line for line in lines if line.startswith("numpy "))
    assert "ready" in numpy_line and "numpy " in numpy_line.split("ready", 1)[1]


# ---------------------------------------------------------------- output a person reads

EMPTY_KNOWN = "format: 2\nbackend: numpy\nfindings: []\n"


def test_a_failure_shows_the_message_and_a_rerun_command_not_a_traceback(pytester: pytest.Pytester) -> None:
    known = pytester.path / "none.yaml"
    known.write_text(EMPTY_KNOWN)          # numpy's softplus overflows near the float32 maximum: a listed finding
    result = run(pytester, "--backend=numpy", "--functions=softplus", "--dtypes=float32", "--checks=value", f"--known={known}")
    out = result.stdout.str()
    assert result.ret == 1 and "softplus[float32] value:" in out
    assert "rerun:    pytest --pyargs nnconform.conformance --backend=numpy --functions=softplus --checks=value " \
           "--dtypes=float32 --known=" in out
    assert "Traceback" not in out and "core.py" not in out and "Falsifying" not in out
    assert max(len(line) for line in out.splitlines()) < 400
    assert "beyond:" in out and "elements over their allowance" in out


def test_the_summary_matrix_and_the_closing_line(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--backend=numpy", "--functions=relu,softplus", "--dtypes=float32,float64", "--checks=value")
    out = result.stdout.str()
    assert result.ret == 0 and "nnconform: function x dtype" in out
    row = next(line for line in out.splitlines() if line.startswith("relu "))
    assert row.split() == ["relu", "ok", "1", "ok", "1"]           # one value check per dtype, each judged and passed
    assert any(line.startswith("nnconform: PASSED, ") for line in out.splitlines())


def test_progress_is_written_for_report_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    progress = pytester.path / "progress"
    monkeypatch.setenv("NNCONFORM_PROGRESS", str(progress))
    result = run(pytester, "--backend=numpy", "--functions=relu", "--dtypes=float64")
    done, total, failed = (int(v) for v in progress.read_text().split())
    assert result.ret == 0 and done == total > 0 and failed == 0


def test_hypothesis_profiles_are_registered_and_selectable(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--backend=numpy", "--functions=relu", "--dtypes=float64", "--checks=value",
                 "--hypothesis-profile=nnconform-thorough", "-v")
    assert result.ret == 0 and "profile thorough" in result.stdout.str()
    bad = run(pytester, "--backend=numpy", "--hypothesis-profile=default")
    assert bad.ret != 0 and "nnconform-ci|nnconform-thorough" in text(bad)


def test_xdist_writes_one_records_file_with_the_serial_verdicts(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    serial, parallel = pytester.path / "serial", pytester.path / "parallel"
    args = ["--backend=numpy", "--functions=softplus,relu,mse", "--dtypes=float32,float64"]
    assert run(pytester, *args, f"--report={serial}").ret == 0
    assert run(pytester, *args, f"--report={parallel}", "-n", "2").ret == 0
    assert sorted(p.name for p in parallel.iterdir()) == ["numpy-cpu.json", "numpy-cpu.md"]
    a, b = (json.loads((d / "numpy-cpu.json").read_text()) for d in (serial, parallel))
    verdicts = [{r["id"]: (r["status"], r["max_ulp"]) for r in d["records"]} for d in (a, b)]
    assert verdicts[0] == verdicts[1] and len(verdicts[0]) > 50


def test_records_hold_what_verdicts_depend_on(pytester: pytest.Pytester) -> None:
    out = pytester.path / "r"
    assert run(pytester, "--backend=numpy", "--functions=relu", "--dtypes=float64", "--conformance-seed=7",
               f"--report={out}").ret == 0
    header = json.loads((out / "numpy-cpu.json").read_text())
    assert header["tools"]["nnconform"] == nnconform.__version__ and header["tools"]["hypothesis"]
    assert header["seed"] == 7 and header["profile"] == "ci" and header["reference"]["tier"] == "mpmath"


# ---------------------------------------------------------------- the cache

def test_cache_info_prune_and_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNCONFORM_CACHE_DIR", str(tmp_path))
    current = cache_admin.default_directory()
    assert current is not None
    old = tmp_path / "reference-0123456789abcdef"
    for folder, size in ((current, 10), (old, 1000)):
        folder.mkdir(parents=True)
        (folder / "t.npz").write_bytes(b"x" * size)
    shown = "\n".join(cache_admin.info())
    assert str(tmp_path) in shown and "(current)" in shown and "reference-0123456789abcdef: 1 files" in shown
    assert cache_admin.remove("prune") == [f"removed 1 folder(s) from {tmp_path}, 0.0 MB"]
    assert current.exists() and not old.exists()
    cache_admin.remove("clear")
    assert not current.exists()
