"""Every shipped spec loads, and what the issue requires of each one is there."""

from __future__ import annotations

import pytest

from nnconform.spec import DTYPES, load_all, spec_files
from nnconform.spec import formula as F

ALL = load_all()
SPECS = load_all(["activation", "loss"])
OPTIMIZERS = load_all(["optimizer"])
ACTIVATIONS = ["sigmoid", "log_sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "prelu",
               "gelu", "gelu_tanh", "silu", "mish", "softplus", "softsign", "hardtanh", "hardsigmoid",
               "hardswish", "softmax", "log_softmax", "logsumexp", "maxout", "dropout"]


def test_every_file_is_loaded_once() -> None:
    assert len(spec_files()) == len(ALL) == len(SPECS) + len(OPTIMIZERS)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_is_specified(name: str) -> None:
    assert SPECS[name].family == "activation"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_dtype_has_a_justified_tolerance(name: str) -> None:
    tol = SPECS[name].doc.tolerance
    assert all(tol.for_dtype(d).ulp > 0 for d in DTYPES)
    assert len(tol.why.split()) >= 8, "a tolerance needs a reason"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_differentiable_input_and_parameter_has_a_derivative(name: str) -> None:
    spec = SPECS[name]
    wanted = set(spec.differentiable_params) | set(spec.differentiable_inputs)
    assert wanted <= set(spec.derivatives)


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if s.shape == "elementwise" and len(s.tensor_inputs) == 1))
def test_unary_spec_declares_its_limits(name: str) -> None:
    # The reference never guesses at +-inf: a unary function must state both limits.
    assert set(SPECS[name].limits) == {"+inf", "-inf"}


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if not s.is_stochastic))
def test_every_spec_names_stability_inputs_or_is_exact(name: str) -> None:
    spec = SPECS[name]
    exact = spec.doc.tolerance.float64.ulp < 1
    assert spec.doc.stability or exact


def test_softplus_threshold_is_a_documented_convention_not_mathematics() -> None:
    spec = SPECS["softplus"]
    assert "threshold" in spec.doc.conventions
    assert "threshold" not in spec.doc.params
    assert "torch" in spec.doc.conventions["threshold"].alternatives


def test_spec_objects_are_immutable() -> None:
    spec = SPECS["softplus"]
    with pytest.raises(Exception):
        spec.doc.name = "other"        # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.derivatives["x"] = F.Num("1")   # type: ignore[index]


def test_specs_are_package_data(tmp_path, monkeypatch) -> None:
    # Loading does not depend on the working directory (an installed package finds its specs).
    monkeypatch.chdir(tmp_path)
    assert "sigmoid" in load_all()


@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "sgd_nesterov", "adagrad", "rmsprop", "rmsprop_centered",
                                  "adam", "amsgrad", "adamw"])
def test_optimizer_is_specified(name: str) -> None:
    spec = OPTIMIZERS[name]
    assert spec.family == "optimizer"
    assert [t for t, _ in spec.step][-1] == "param"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_flag_and_hyperparameter_says_why(name: str) -> None:
    # A convention the mathematics leaves open is a flag with a canonical choice and a source.
    for pname, p in OPTIMIZERS[name].doc.params.items():
        assert p.why and len(p.why.split()) >= 4, f"{name}.{pname}"
        if p.kind == "real" and pname != "lr":
            assert p.typical is not None, f"{name}.{pname}: the checks need a range to draw from"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_has_a_justified_trajectory_tolerance_and_stability_inputs(name: str) -> None:
    spec = OPTIMIZERS[name]
    tol = spec.doc.tolerance
    assert tol.float64.factor >= 1 and tol.float32.factor >= 1
    assert "running error bound" in " ".join(tol.why.split())
    assert spec.doc.stability
