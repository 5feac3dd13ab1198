"""Generated hostile input: whatever a spec file holds, loading it either gives a valid spec
or a SpecError naming the file and a field; nothing else escapes, and nothing is executed.

Hypothesis generates whole documents, real specs with one field replaced, formulas from
a grammar that mixes the language with what it forbids, and raw bytes.  Derandomized, so
the same examples run every time (the suite's own tests must not be flaky either).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnconform.spec import SpecError, load_text, spec_files
from nnconform.spec import formula as F

FUZZ = settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
MARKER = Path("/tmp/nnconform-fuzz-executed")
ATTACKS = [f"__import__('pathlib').Path('{MARKER}').touch()", "().__class__.__bases__[0].__subclasses__()",
           "(lambda: 1)()", "x.__class__", "open('/etc/passwd')", "eval('1')", "exec('x=1')", "globals()",
           "[y for y in x]", "f'{x}'", "x if x else x", "x @ x", "x << 2", "not x", "x[::-1]", "*x", "x := 1",
           "9**9**9**9", "1e999999", "x**99", "(" * 60 + "x" + ")" * 60, "-" * 500 + "x", "é + ∑", "x\x00", "\u202ex"]
NAMES = ["x", "beta", "param", "grad", "t", "m", "target", "input", "g", "y", "eps", "width", "pi", "unknown",
         "__builtins__", "sum", "where", "onehot"]


def _formulas() -> st.SearchStrategy[str]:
    atom = st.one_of(st.sampled_from(NAMES), st.integers(-10**30, 10**30).map(str),
                     st.floats(allow_nan=False).map(repr), st.sampled_from(ATTACKS), st.text(max_size=12))
    return st.recursive(atom, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", "<", "==", " and ", " or ", "%", "//"]), inner)
        .map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(st.sampled_from(list(F.FUNCTIONS) + ["len", "print", "getattr"]), st.lists(inner, max_size=4))
        .map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
    ), max_leaves=40)


def _values() -> st.SearchStrategy[Any]:
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40), st.floats(), st.text(max_size=30),
                       _formulas(), st.sampled_from(["inf", "-inf", "nan", "(0, inf)", "[1, 0]", "float32"]))
    return st.recursive(scalar, lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)), max_leaves=25)


REAL = {p.stem: yaml.safe_load(p.read_text()) for p in spec_files() if p.stem in ("softplus", "cross_entropy", "adam")}


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _replace(doc: Any, path: tuple, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    here = doc
    for key in path[:-1]:
        here = here[key]
    here[path[-1]] = value
    return doc


def _load(text: str | bytes) -> None:
    """Loading may succeed or raise SpecError (naming a file and a field); anything else fails the test."""
    try:
        load_text(text, "fuzz.yaml")
    except SpecError as err:
        assert err.file == "fuzz.yaml" and err.field and err.message, err


@pytest.fixture(autouse=True)
def nothing_executed() -> Any:
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists(), "a spec's text was executed"


@FUZZ
@given(st.dictionaries(st.sampled_from(["name", "family", "summary", "inputs", "params", "formula", "derivatives",
                                        "tolerance", "sources", "step", "state", "reduction", "stability"])
                       | st.text(max_size=10), _values(), max_size=8))
def test_random_documents_load_or_name_a_field(doc: dict) -> None:
    _load(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(st.sampled_from(sorted(REAL)), st.data())
def test_a_real_spec_with_one_field_replaced_loads_or_names_a_field(name: str, data: st.DataObject) -> None:
    doc = REAL[name]
    path = data.draw(st.sampled_from(_paths(doc)))
    value = data.draw(st.one_of(_values(), _formulas()))
    _load(yaml.safe_dump(_replace(doc, path, value), allow_unicode=True))


@FUZZ
@given(st.sampled_from(sorted(REAL)), st.sampled_from(["formula", "step", "derivatives", "tolerance"]), _formulas())
def test_generated_formulas_in_every_formula_field(name: str, where: str, text: str) -> None:
    doc = copy.deepcopy(REAL[name])
    if where == "step" and "step" in doc:
        doc["step"] = {**doc["step"], "param": text}
    elif where == "derivatives" and "derivatives" in doc:
        doc["derivatives"] = {k: text for k in doc["derivatives"]}
    elif where == "tolerance" and "condition" in doc.get("tolerance", {}):
        doc["tolerance"] = {**doc["tolerance"], "condition": text}
    elif "formula" in doc:
        doc["formula"] = text
    _load(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(_formulas(), st.lists(st.sampled_from(NAMES), max_size=6))
def test_the_formula_parser_raises_only_formula_errors(text: str, allowed: list[str]) -> None:
    try:
        F.parse(text, allowed, ["target"], ["t"])
    except F.FormulaError as err:
        assert str(err)


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=400).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_raw_bytes_load_or_name_a_field(raw: bytes) -> None:
    _load(raw)
