"""Read spec files: YAML with `safe_load`, the pydantic schema, then every formula.

Every failure, whatever its cause, becomes one `SpecError` that names the file,
the field and what is wrong: a spec is untrusted input, and the person who wrote
it needs to know where to look.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from . import formula as F
from .schema import DTYPES, RESERVED_OPTIMIZER_NAMES, Interval, OptimizerDocument, SpecDocument, number, parse_interval

MAX_SPEC_BYTES = 256 * 1024
M = TypeVar("M", bound=BaseModel)
FAMILIES = ("activation", "loss", "optimizer")
_FAMILY_DIRS = {"activation": "activations", "loss": "losses", "optimizer": "optimizers"}


@dataclass(frozen=True)
class Budget:
    """What a check of one quantity in one dtype may be off by, as the spec declares it.

    `ulp` ULPs of the dtype, times max(1, condition) where the spec declares a condition number
    (a formula of the inputs); for an optimizer, `factor` times the running error bound.
    """

    ulp: float = 0.0
    condition: F.Node | None = None
    factor: float = 0.0


@dataclass(frozen=True)
class Relation:
    """f(inputs; params) = scale * other(inputs; params of other), with the formulas parsed."""

    function: str
    params: Mapping[str, F.Node]
    scale: F.Node
    identity: str
    why: str
    where: str                 # where it is declared, for errors ("related.0")


class SpecError(ValueError):
    def __init__(self, file: str, field: str, message: str) -> None:
        self.file, self.field, self.message = file, field, message
        super().__init__(f"{file}: field '{field}': {message}")


@dataclass(frozen=True)
class Spec:
    """A validated spec: the document, its parsed formulas and where it came from."""

    doc: SpecDocument
    path: str
    fingerprint: str                       # sha256 of the file: cache key and report provenance
    formula: F.Node
    derivatives: Mapping[str, F.Node]
    kink_points: tuple[tuple[str, F.Node, F.Node], ...]   # (input, at, derivative)
    condition: F.Node | None
    gradient_condition: F.Node | None
    zero_probability: F.Node | None
    limits: Mapping[str, float | F.Node] = field(default_factory=dict)   # "+inf"/"-inf" -> number or formula
    defaults: Mapping[str, str] = field(default_factory=dict)  # param -> default as exact decimal text
    count: F.Node | None = None            # losses: a kept sample's weight in mean's denominator
    ignore: F.Node | None = None           # losses: the condition that leaves a sample out
    gradient_conditions: Mapping[str, F.Node] = field(default_factory=dict)   # per input, overriding gradient_condition
    relations: tuple["Relation", ...] = ()   # this function in terms of other specs (checked by the reference)

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def family(self) -> str:
        return self.doc.family

    @property
    def shape(self) -> str:
        return self.doc.shape

    @property
    def tensor_inputs(self) -> tuple[str, ...]:
        return tuple(self.doc.inputs)

    @property
    def differentiable_inputs(self) -> tuple[str, ...]:
        return tuple(n for n, s in self.doc.inputs.items() if s.differentiable)

    @property
    def differentiable_params(self) -> tuple[str, ...]:
        return tuple(n for n, p in self.doc.params.items() if p.differentiable)

    @property
    def is_stochastic(self) -> bool:
        return self.doc.stochastic is not None

    def domain(self, input_name: str) -> Interval:
        return parse_interval(self.doc.inputs[input_name].domain)

    def budget(self, dtype: str, quantity: str, wrt: str | None = None) -> Budget:
        """The only way a tolerance is read: `quantity` is "value" or "gradient" (with respect to `wrt`)."""
        tol = self.doc.tolerance.for_dtype(dtype)
        if quantity == "value":
            return Budget(ulp=tol.ulp, condition=self.condition)
        if quantity != "gradient":
            raise ValueError(f"no budget for {quantity!r}: value or gradient")
        return Budget(ulp=tol.gradient_ulp, condition=self.gradient_conditions.get(wrt or "", self.gradient_condition))

    def param_domain(self, name: str) -> Interval:
        return parse_interval(self.doc.params[name].domain)

    def canonical(self, name: str) -> str | None:
        """The canonical default of a parameter, or of a loss's reduction (what a native default is compared with)."""
        if name == "reduction" and self.doc.reduction is not None:
            return self.doc.reduction.default
        return self.defaults.get(name)

    def default_params(self) -> dict[str, float | int]:
        """Defaults as numbers: integers for integer and axis parameters, floats otherwise."""
        return {k: int(float(v)) if self.doc.params[k].kind != "real" else float(v) for k, v in self.defaults.items()}


def _uses_rows(tree: F.Node) -> bool:
    return any(isinstance(n, F.Index) or (isinstance(n, F.Call) and n.func == "onehot") for n in F.walk(tree))


_TYPE_TAG = re.compile(r"^(int|float|str|bool|none|(list|dict|union|literal|tagged-union|function-\w+)\[.*\])$")


def _field_path(loc: Iterable[object]) -> str:
    """pydantic's error location, without the union-member tags it appends (".int", ".str")."""
    parts = [str(p) for p in loc]
    while parts and _TYPE_TAG.match(parts[-1]):
        parts.pop()
    return ".".join(parts) or "<document>"


def _parse(path: str, where: str, text: object, allowed: Iterable[str], index: Iterable[str] = (),
           exponent_names: Iterable[str] = ()) -> F.Node:
    try:
        return F.parse(text, allowed, index, exponent_names)
    except F.FormulaError as exc:
        raise SpecError(path, where, str(exc)) from None


def _validate(model: type[M], data: dict, path: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise SpecError(path, _field_path(first["loc"]), first["msg"] + more) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise SpecError(path, "<document>", str(exc)) from None


def _defaults(doc: SpecDocument | OptimizerDocument, path: str) -> dict[str, str]:
    defaults = {k: str(p.default) for k, p in doc.params.items()}
    for k, v in defaults.items():
        if not math.isfinite(float(v)):
            raise SpecError(path, f"params.{k}.default", "must be finite")
    return defaults


def parse_document(data: object, path: str, fingerprint: str = "") -> "Spec | OptimizerSpec":
    """Validate an already-loaded YAML document; `path` is used in error messages."""
    if not isinstance(data, dict):
        raise SpecError(path, "<document>", f"expected a mapping at the top level, got {type(data).__name__}")
    if data.get("family") == "optimizer":
        return parse_optimizer(data, path, fingerprint)
    doc = _validate(SpecDocument, data, path)

    inputs, params = list(doc.inputs), list(doc.params)
    shaped = doc.shape != "elementwise"
    # `width` is the length of the class axis of a vector function (label smoothing's 1/C).
    base_names = inputs + params + (["width"] if shaped else [])
    index = [n for n, s in doc.inputs.items() if s.kind == "class_index"]
    tree = _parse(path, "formula", doc.formula, base_names, index)
    if not shaped and (F.has_reduction(tree) or _uses_rows(tree)):
        raise SpecError(path, "formula", "an elementwise function cannot use a reduction (sum, mean, max(x), ...), "
                                         "onehot or indexing")

    # Elementwise derivatives are partial derivatives; vector ones are vector-Jacobian
    # products written with the cotangent g and the output y.
    deriv_names = base_names + (["y", "g"] if shaped else ["y"])
    derivatives: dict[str, F.Node] = {}
    for wrt, text in doc.derivatives.items():
        if wrt not in doc.inputs and wrt not in doc.params:
            raise SpecError(path, f"derivatives.{wrt}", f"{wrt!r} is neither an input nor a parameter")
        derivatives[wrt] = _parse(path, f"derivatives.{wrt}", text, deriv_names, index)
    needed = [n for n, s in doc.inputs.items() if s.differentiable and doc.stochastic is None]
    needed += [n for n, p in doc.params.items() if p.differentiable]
    for wrt in needed:
        if wrt not in derivatives:
            raise SpecError(path, f"derivatives.{wrt}", f"{wrt!r} is differentiable but has no derivative formula")

    kinks = []
    for i, k in enumerate(doc.kinks):
        if k.input not in doc.inputs:
            raise SpecError(path, f"kinks.{i}.input", f"{k.input!r} is not an input")
        kinks.append((k.input, _parse(path, f"kinks.{i}.at", k.at, params),
                      _parse(path, f"kinks.{i}.derivative", k.derivative, params + [n for n in inputs if n != k.input])))

    condition = gradient_condition = None
    if doc.tolerance.condition is not None:
        condition = _parse(path, "tolerance.condition", doc.tolerance.condition, base_names + ["y", "eps", "tiny"], index)
    if doc.tolerance.gradient_condition is not None:
        gradient_condition = _parse(path, "tolerance.gradient_condition", doc.tolerance.gradient_condition,
                                    base_names + ["y", "g", "eps", "tiny"], index)
    gradient_conditions: dict[str, F.Node] = {}
    if doc.tolerance.gradient_conditions and doc.family != "loss":
        # Per-input conditions exist for losses (a prediction and a target differ); an activation's
        # gradient_condition serves every input, so a per-input one would silently do nothing.
        raise SpecError(path, "tolerance.gradient_conditions", "only losses take per-input gradient conditions; "
                        "use tolerance.gradient_condition")
    for wrt, text in doc.tolerance.gradient_conditions.items():
        if wrt not in derivatives:
            raise SpecError(path, f"tolerance.gradient_conditions.{wrt}", f"{wrt!r} has no derivative formula")
        gradient_conditions[wrt] = _parse(path, f"tolerance.gradient_conditions.{wrt}", text,
                                          base_names + ["y", "g", "eps", "tiny"], index)
    zero_probability = None
    if doc.stochastic is not None:
        zero_probability = _parse(path, "stochastic.zero_probability", doc.stochastic.zero_probability, params)

    for i, case in enumerate(doc.stability):
        for p in case.params:
            if p not in doc.params:
                raise SpecError(path, f"stability.{i}.params.{p}", f"{p!r} is not a parameter")
        rows = [isinstance(item, list) for item in case.x]
        if shaped and not all(rows):
            raise SpecError(path, f"stability.{i}.x", "a vector function's stability inputs are rows (lists)")
        if not shaped and any(rows):
            raise SpecError(path, f"stability.{i}.x", "an elementwise function's stability inputs are numbers")
    limits: dict[str, float | F.Node] = {}
    for key, label in (("pos_inf", "+inf"), ("neg_inf", "-inf")):
        value = getattr(doc.limits, key)
        if value is None:
            continue
        try:
            limits[label] = number(value)
        except ValueError:
            limits[label] = _parse(path, f"limits.{label}", value, params)
    count = ignore = None
    if doc.reduction is not None:
        if doc.reduction.count is not None:
            count = _parse(path, "reduction.count", doc.reduction.count, base_names, index)
        if doc.reduction.ignore is not None:
            ignore = _parse(path, "reduction.ignore", doc.reduction.ignore, base_names, index)
        for i, case in enumerate(doc.stability):
            if case.target is None and any(s.kind != "class_weight" for s in list(doc.inputs.values())[1:]):
                raise SpecError(path, f"stability.{i}.target", "a loss's stability inputs need their targets")
    relations = tuple(
        Relation(r.function, MappingProxyType({k: _parse(path, f"related.{i}.params.{k}", v, params) for k, v in r.params.items()}),
                 _parse(path, f"related.{i}.scale", r.scale, params), r.identity, r.why, f"related.{i}")
        for i, r in enumerate(doc.related))
    defaults = _defaults(doc, path)
    return Spec(doc=doc, path=path, fingerprint=fingerprint, formula=tree,
                derivatives=MappingProxyType(derivatives), kink_points=tuple(kinks),
                condition=condition, gradient_condition=gradient_condition,
                zero_probability=zero_probability, limits=MappingProxyType(limits), defaults=MappingProxyType(defaults),
                count=count, ignore=ignore, gradient_conditions=MappingProxyType(gradient_conditions), relations=relations)


@dataclass(frozen=True)
class OptimizerSpec:
    """A validated optimizer spec: the step's assignments parsed, in order."""

    doc: OptimizerDocument
    path: str
    fingerprint: str
    step: tuple[tuple[str, F.Node], ...]          # (target, formula) in the order written
    initial: Mapping[str, F.Node]                  # state -> formula of the hyperparameters
    defaults: Mapping[str, str] = field(default_factory=dict)

    family = "optimizer"

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(n for n, p in self.doc.params.items() if p.kind == "flag")

    def param_domain(self, name: str) -> Interval:
        return parse_interval(self.doc.params[name].domain)

    def budget(self, dtype: str) -> Budget:
        """A trajectory may be off by `factor` times the running error bound of the spec's own order."""
        return Budget(factor=self.doc.tolerance.for_dtype(dtype).factor)

    def canonical(self, name: str) -> str | None:
        return self.defaults.get(name)

    def default_params(self) -> dict[str, float | int]:
        return {k: int(float(v)) if self.doc.params[k].kind != "real" else float(v) for k, v in self.defaults.items()}


def parse_optimizer(data: dict, path: str, fingerprint: str = "") -> OptimizerSpec:
    doc = _validate(OptimizerDocument, data, path)
    if "lr" not in doc.params:
        raise SpecError(path, "params.lr", "an optimizer needs the hyperparameter 'lr' (schedules change it between steps)")
    for section, names in (("params", set(doc.params) - {"lr"}), ("state", set(doc.state))):
        for name in sorted(names & RESERVED_OPTIMIZER_NAMES):
            raise SpecError(path, f"{section}.{name}", "param, grad, t and lr are reserved names")
    for name in sorted(set(doc.params) & set(doc.state)):
        raise SpecError(path, f"state.{name}", f"{name!r} is also a hyperparameter")
    for name, p in doc.params.items():
        if p.kind == "axis":
            raise SpecError(path, f"params.{name}.kind", "an optimizer has no axis")
    if list(doc.step)[-1] != "param":
        where = "step" if "param" not in doc.step else f"step.{list(doc.step)[-1]}"
        raise SpecError(path, where, "the step must assign 'param', in its last line")
    hyper = list(doc.params)
    initial = {name: _parse(path, f"state.{name}.initial", s.initial, [h for h in hyper if h != "lr"])
               for name, s in doc.state.items()}
    known = set(hyper) | set(doc.state) | RESERVED_OPTIMIZER_NAMES
    step = []
    for target, text in doc.step.items():
        if target in hyper or target in ("grad", "t", "lr"):
            raise SpecError(path, f"step.{target}", f"{target!r} is an input of the step, not something it assigns")
        tree = _parse(path, f"step.{target}", text, sorted(known), exponent_names=["t"])
        if F.has_reduction(tree):
            raise SpecError(path, f"step.{target}", "an optimizer's step is elementwise: no reductions")
        step.append((target, tree))
        known.add(target)
    for i, case in enumerate(doc.stability):
        for given in case.params:
            if given not in doc.params:
                raise SpecError(path, f"stability.{i}.params.{given}", f"{given!r} is not a hyperparameter")
    return OptimizerSpec(doc=doc, path=path, fingerprint=fingerprint, step=tuple(step),
                         initial=MappingProxyType(initial), defaults=MappingProxyType(_defaults(doc, path)))


def load_spec(path: str | Path, display: str | None = None) -> "Spec | OptimizerSpec":
    """Load one spec file; every error is a SpecError naming the file and field."""
    shown = display or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SpecError(shown, "<file>", f"cannot read: {exc.strerror or exc}") from None
    return load_text(raw, shown)


def load_text(raw: bytes | str, display: str) -> "Spec | OptimizerSpec":
    data_bytes = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data_bytes) > MAX_SPEC_BYTES:
        raise SpecError(display, "<file>", f"{len(data_bytes)} bytes; a spec is at most {MAX_SPEC_BYTES}")
    try:
        text = data_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(display, "<file>", f"not UTF-8: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SpecError(display, "<yaml>", f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except (RecursionError, ValueError, TypeError) as exc:   # absurd nesting, bad timestamps, ...
        raise SpecError(display, "<yaml>", f"YAML could not be read: {exc.__class__.__name__}") from None
    return parse_document(data, display, hashlib.sha256(data_bytes).hexdigest()[:16])


def spec_root() -> Path:
    return Path(str(resources.files("nnconform.spec")))


def spec_files(families: Iterable[str] = FAMILIES) -> list[Path]:
    root = spec_root()
    return sorted(p for fam in families for p in (root / _FAMILY_DIRS[fam]).glob("*.yaml"))


def load_all(families: Iterable[str] = FAMILIES) -> "dict[str, Spec | OptimizerSpec]":
    """Every spec shipped with the package, by name; a duplicate name is an error."""
    specs: dict[str, Spec | OptimizerSpec] = {}
    root = spec_root()
    for path in spec_files(families):
        display = str(path.relative_to(root.parent)) if path.is_relative_to(root.parent) else str(path)
        spec = load_spec(path, display)
        if spec.name in specs:
            raise SpecError(display, "name", f"{spec.name!r} is also defined in {specs[spec.name].path}")
        if Path(display).stem != spec.name:
            raise SpecError(display, "name", f"the file of spec {spec.name!r} must be named {spec.name}.yaml")
        specs[spec.name] = spec
    check_relations(specs)
    return specs


def check_relations(specs: Mapping[str, "Spec | OptimizerSpec"]) -> None:
    """A relation names a spec that exists, of the same inputs, and only parameters it has."""
    for spec in specs.values():
        if not isinstance(spec, Spec):
            continue
        for r in spec.relations:
            other = specs.get(r.function)
            if not isinstance(other, Spec):
                raise SpecError(spec.path, f"{r.where}.function", f"no activation or loss spec named {r.function!r}")
            if other.tensor_inputs != spec.tensor_inputs:
                raise SpecError(spec.path, f"{r.where}.function",
                                f"{r.function} takes {list(other.tensor_inputs)}, not {list(spec.tensor_inputs)}")
            for k in r.params:
                if k not in other.doc.params:
                    raise SpecError(spec.path, f"{r.where}.params.{k}", f"{r.function} has no parameter {k!r}")


__all__ = ["DTYPES", "OptimizerSpec", "Spec", "SpecError", "load_all", "load_spec", "load_text", "parse_document", "spec_files"]
