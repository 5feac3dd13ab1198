"""Malformed and malicious spec files are rejected with a message naming the file and the field."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

from nnconform.spec import SpecError, load_spec, load_text, parse_document, spec_files

GOOD = yaml.safe_load(next(p for p in spec_files() if p.stem == "softplus").read_text())
FILE = "hostile.yaml"


def balanced_sum(n: int) -> str:
    """A sum of n terms as a balanced tree: many nodes, little depth."""
    return "x" if n == 1 else f"({balanced_sum(n // 2)}+{balanced_sum(n - n // 2)})"


def rejected(doc: object) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_document(doc, FILE)
    assert info.value.file == FILE
    assert str(info.value).startswith(f"{FILE}: field '")
    return info.value


def with_formula(text: object, where: str = "formula") -> dict:
    doc = copy.deepcopy(GOOD)
    if where == "formula":
        doc["formula"] = text
    else:
        doc["derivatives"][where] = text
    return doc


@pytest.mark.parametrize("formula, token", [
    ("__import__('os').system('true')", "__import__"),
    ("x.__class__", "x.__class__"),
    ("lambda: 1", "lambda"),
    ("[t for t in x]", "comprehensions"),
    ("open('/etc/passwd')", "open"),
    ("scipy_special(x)", "scipy_special"),
    ("exp(x=1)", "keyword"),
    ("9**9**9**9", "exponent"),
    ("x**100", "exponent"),
    ("x ** beta", "exponent"),
    ("1e400 * x", "constant out of range"),
    ("123456789012 * x", "constant out of range"),
    ("x[0]", "index"),
    ("'text'", "numeric"),
    ("0x10 * x", "decimal"),
    ("x if x > 0 else 0", "IfExp"),
    ("(x := 1)", "NamedExpr"),
    ("exp", "without calling"),
    ("exp(x, x)", "takes 1"),
    ("not x", "not"),
    ("0 < x < 1", "chained"),
    ("x @ x", "operator"),
    ("", "at least 1 character"),
    ("x +", "not a valid expression"),
    ("1" * 5000, "at most 2000 characters"),
    ("-" * 100 + "x", "nests deeper"),
    (balanced_sum(300), "parts"),
], ids=lambda v: v[:40] if isinstance(v, str) else None)
def test_bad_formula_is_a_load_error_naming_the_field_and_token(formula: str, token: str) -> None:
    err = rejected(with_formula(formula))
    assert err.field == "formula"
    assert token in err.message


def test_bad_derivative_names_its_field() -> None:
    err = rejected(with_formula("__import__('os')", where="x"))
    assert err.field == "derivatives.x"


def test_formula_that_is_not_text() -> None:
    assert rejected(with_formula({"a": 1})).field == "formula"


def test_missing_field() -> None:
    doc = copy.deepcopy(GOOD)
    del doc["formula"]
    err = rejected(doc)
    assert err.field == "formula" and "required" in err.message.lower()


@pytest.mark.parametrize("path, value, field", [
    (("tolerance", "float32", "ulp"), "four", "tolerance.float32.ulp"),
    (("tolerance", "float32", "ulp"), -1, "tolerance.float32.ulp"),
    (("params", "beta", "default"), [1], "params.beta.default"),
    (("params", "beta", "default"), -1.0, "params.beta"),
    (("params", "beta", "domain"), "(0, oops)", "params.beta.domain"),
    (("family",), "layer", "family"),
    (("name",), "Not An Identifier", "name"),
    (("sources",), [], "sources"),
    (("stability",), [{"x": ["abc"], "why": "w"}], "stability.0.x"),
    (("stability",), [{"x": [1], "params": {"gamma": 1}, "why": "w"}], "stability.0.params.gamma"),
    (("limits",), {"+inf": "__import__('os')"}, "limits.+inf"),
])
def test_wrong_type_or_value_names_the_field(path: tuple, value: object, field: str) -> None:
    doc = copy.deepcopy(GOOD)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert rejected(doc).field == field


def test_unknown_key_is_rejected() -> None:
    doc = copy.deepcopy(GOOD)
    doc["formulae"] = "x"
    assert rejected(doc).field == "formulae"


def test_differentiable_input_without_derivative() -> None:
    doc = copy.deepcopy(GOOD)
    del doc["derivatives"]["x"]
    assert rejected(doc).field == "derivatives.x"


@pytest.mark.parametrize("text, field", [
    ("name: [unclosed", "<yaml>"),
    ("- a list\n- not a mapping\n", "<document>"),
    ("!!python/object/apply:os.system ['true']", "<yaml>"),
    ("a: &a [*a]", "name"),          # a self-referencing alias loads as a cycle, then fails the schema
    ("\udcff", "<file>"),
])
def test_unreadable_documents(text: str, field: str) -> None:
    with pytest.raises(SpecError) as info:
        load_text(text, FILE)
    assert info.value.field == field and info.value.file == FILE


def test_billion_laughs_is_bounded() -> None:
    # YAML aliases expand exponentially only if someone walks them; the loader rejects the document's shape.
    lol = "a: &a ['x','x','x','x','x','x','x','x','x']\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    with pytest.raises(SpecError):
        load_text(lol, FILE)


def test_huge_file_is_rejected_before_parsing() -> None:
    with pytest.raises(SpecError) as info:
        load_text("x: " + "1" * 300_000, FILE)
    assert info.value.field == "<file>"


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "absent.yaml")
    assert "absent.yaml" in info.value.file


def test_nothing_is_executed(tmp_path: Path) -> None:
    # If any of these formulas ran, this module attribute would change or a file would appear.
    marker = tmp_path / "ran"
    attack = f"__import__('pathlib').Path('{marker}').touch()"
    rejected(with_formula(attack))
    assert not marker.exists()
    assert "os" not in [m for m in sys.modules if m == "nnconform_attack"]


LOSS = yaml.safe_load(next(p for p in spec_files() if p.stem == "cross_entropy").read_text())


def changed(base: dict, changes: dict) -> dict:
    """A copy of `base` with top-level fields replaced (None removes one)."""
    doc = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def loss_with(**changes: object) -> dict:
    return changed(LOSS, changes)


@pytest.mark.parametrize("changes, field, words", [
    ({"formula": "onehot(input)"}, "formula", "onehot takes an integer target"),
    ({"formula": "input[weight]"}, "formula", "an index must be an integer target"),
    ({"formula": "input[target][target]"}, "formula", "only an input may be indexed"),
    ({"reduction": None}, "<document>", "a loss needs a 'reduction' section"),
    ({"reduction": {"default": "average", "why": "x"}}, "reduction.default", ""),
    ({"reduction": {"default": "mean", "count": "__import__('os')", "why": "x"}}, "reduction.count", "__import__"),
    ({"output": "same"}, "<document>", "output: reduced"),
    ({"inputs": {"input": {"kind": "tensor"}, "target": {"kind": "class_index", "differentiable": True}}},
     "inputs.target", "class_index"),
    ({"stability": [{"x": [[1, 2]], "why": "no targets"}]}, "stability.0.target", "targets"),
    ({"stability": [{"x": [[1, 2]], "target": [0, 1], "why": "two targets, one row"}]}, "stability.0", "entries"),
])
def test_malformed_loss_specs_name_the_field(changes: dict, field: str, words: str) -> None:
    err = rejected(loss_with(**changes))
    assert err.field.startswith(field), (err.field, str(err))
    assert words in str(err)


def test_activation_may_not_declare_a_reduction() -> None:
    doc = copy.deepcopy(GOOD)
    doc["reduction"] = {"default": "mean", "why": "x"}
    assert "only a loss may have one" in str(rejected(doc))


OPTIMIZER = yaml.safe_load(next(p for p in spec_files() if p.stem == "adam").read_text())


def optimizer_with(**changes: object) -> dict:
    return changed(OPTIMIZER, changes)


def params_without_lr() -> dict:
    return {k: v for k, v in OPTIMIZER["params"].items() if k != "lr"}


@pytest.mark.parametrize("changes, field, words", [
    ({"params": params_without_lr()}, "params.lr", "needs the hyperparameter 'lr'"),
    ({"step": {"grad": "grad * 2", "param": "param - lr * grad"}}, "step.grad", "an input of the step"),
    ({"step": {"param": "param - lr * grad", "m": "m + grad"}}, "step.m", "in its last line"),
    ({"step": {"m": "m + grad"}}, "step", "must assign 'param'"),
    ({"step": {"param": "param - lr * beta1 ** lr"}}, "step.param", "exponent"),
    ({"step": {"m": "m + later", "later": "grad", "param": "param"}}, "step.m", "unknown name"),
    ({"step": {"param": "param - lr * sum(grad)"}}, "step.param", "no reductions"),
    ({"step": {"param": "__import__('os').system('true')"}}, "step.param", "__import__"),
    ({"state": {"m": {"initial": "param"}}}, "state.m.initial", "unknown name"),
    ({"state": {"t": {"initial": "0"}}}, "state.t", "reserved"),
    ({"params": {**OPTIMIZER["params"], "eps_hat": {"kind": "flag", "default": 2, "why": "x"}}}, "params.eps_hat", "0 or 1"),
    ({"params": {**OPTIMIZER["params"], "eps": {"default": 1e-8, "domain": "(0, 1)", "typical": "[1e-10, 10]"}}},
     "params.eps", "outside the domain"),
    ({"stability": [{"initial": [1.0], "grads": [[1.0, 2.0]], "why": "rows of the wrong width"}]}, "stability.0", "entries"),
    ({"stability": [{"initial": ["inf"], "grads": [[1.0]], "why": "an infinite start"}]}, "stability.0.initial", "finite"),
    ({"tolerance": {"float64": {"factor": 4}, "why": "no float32"}}, "tolerance.float32", ""),
])
def test_malformed_optimizer_specs_name_the_field(changes: dict, field: str, words: str) -> None:
    err = rejected(optimizer_with(**changes))
    assert err.field.startswith(field), (err.field, str(err))
    assert words in str(err)
