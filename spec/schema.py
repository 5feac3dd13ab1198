"""The schema of a spec file, as pydantic models (strict, frozen, no unknown keys).

Formulas are stored here as text; `loader` parses them with `formula.parse`
once the structure is valid, so that every error names its file and field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

DTYPES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
FormulaText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
_NUMBER_WORDS = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])\s*$")


def number(value: object) -> float:
    """A YAML number, or one of the words inf, -inf, nan (YAML has no portable spelling)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _NUMBER_WORDS:
            return _NUMBER_WORDS[key]
        if _DECIMAL.match(key):
            return float(key)
    raise ValueError(f"expected a number (or inf, -inf, nan), got {value!r}")


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    def __contains__(self, v: float) -> bool:
        above = v >= self.lo if self.lo_closed else v > self.lo
        below = v <= self.hi if self.hi_closed else v < self.hi
        return above and below

    def mask(self, v: np.ndarray) -> np.ndarray:
        """Elementwise membership, for grids of a few hundred thousand points."""
        above = v >= self.lo if self.lo_closed else v > self.lo
        below = v <= self.hi if self.hi_closed else v < self.hi
        return above & below

    def __str__(self) -> str:
        return f"{'[' if self.lo_closed else '('}{self.lo:g}, {self.hi:g}{']' if self.hi_closed else ')'}"


def parse_interval(text: object) -> Interval:
    if isinstance(text, list) and len(text) == 2:
        text = f"[{text[0]}, {text[1]}]"
    if not isinstance(text, str):
        raise ValueError(f"expected an interval such as '(0, inf)', got {text!r}")
    m = _INTERVAL.match(text)
    if not m:
        raise ValueError(f"expected an interval such as '(0, inf)' or '[-1, 1]', got {text!r}")
    lo, hi = number(m.group(2)), number(m.group(3))
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"empty or malformed interval {text!r}")
    return Interval(lo, hi, m.group(1) == "[", m.group(4) == "]")


def _inside(inner: Interval, outer: Interval) -> bool:
    return (inner.lo in outer or (inner.lo == outer.lo and not inner.lo_closed)) and \
        (inner.hi in outer or (inner.hi == outer.hi and not inner.hi_closed))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class InputSpec(Strict):
    # class_index: integer class targets, shaped like the predictions without the class axis;
    # class_weight: one weight per class (losses), like channel_weight for activations.
    kind: Literal["tensor", "channel_weight", "class_index", "class_weight"] = "tensor"
    domain: str = "(-inf, inf)"
    differentiable: bool = True
    channel_axis: int = Field(default=1, ge=0, le=7)   # for channel_weight: the axis of x it follows
    why: Text | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        parse_interval(v)
        return v

    @model_validator(mode="after")
    def _index_not_differentiable(self) -> "InputSpec":
        if self.kind == "class_index" and self.differentiable:
            raise ValueError("a class_index input is an integer: set differentiable: false")
        return self


class ParamSpec(Strict):
    # flag: a 0/1 switch for a detail the frameworks decide differently (optimizers: where
    # epsilon goes, whether weight decay is decoupled); formulas test it with `flag == 1`.
    kind: Literal["real", "integer", "axis", "flag"] = "real"
    # A decimal string keeps every digit (selu's constants); a float is read exactly as float64.
    default: Union[int, float, str]
    domain: str = "(-inf, inf)"
    differentiable: bool = False
    # Optimizers: the range the checks draw from (log-uniform where it spans decades), where
    # the domain is too wide to sample usefully (eps in (0, inf)).
    typical: str | None = None
    why: Text | None = None

    @field_validator("domain", "typical")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None:
            parse_interval(v)
        return v

    @field_validator("default")
    @classmethod
    def _default(cls, v: object) -> object:
        if isinstance(v, bool):
            raise ValueError("expected a number, got a boolean")
        if isinstance(v, str) and not _DECIMAL.match(v.strip()):
            raise ValueError(f"a default given as text must be a decimal number, got {v!r}")
        return v

    @model_validator(mode="after")
    def _default_in_domain(self) -> "ParamSpec":
        if self.kind == "flag" and float(self.default) not in (0.0, 1.0):
            raise ValueError(f"a flag's default is 0 or 1, got {self.default}")
        if self.typical is not None and not _inside(parse_interval(self.typical), parse_interval(self.domain)):
            raise ValueError(f"typical range {self.typical} lies outside the domain {self.domain}")
        if self.kind not in ("axis", "flag") and float(self.default) not in parse_interval(self.domain):
            raise ValueError(f"default {self.default} lies outside the domain {self.domain}")
        if self.kind in ("integer", "axis") and float(self.default) != int(float(self.default)):
            raise ValueError(f"an {self.kind} parameter needs an integer default, got {self.default}")
        return self


class Kink(Strict):
    input: Identifier = "x"
    at: Union[float, int, str]          # a number or a formula of the parameters
    derivative: Union[float, int, str]  # the canonical one-sided choice the derivative formula makes there
    why: Text


class Convention(Strict):
    canonical: Union[str, float, int, bool]
    why: Text
    alternatives: dict[str, Text] = Field(default_factory=dict)   # framework -> what it does


class Relation(Strict):
    """This function in terms of another spec: f(inputs; params) = scale * other(inputs; other's params).

    Frameworks name related functions differently and users confuse them (Huber's delta and
    smooth L1's beta differ by a factor); the reference checks the identity at a sample of points
    and the report shows it beside both functions.
    """

    function: Identifier
    params: dict[Identifier, FormulaText] = Field(default_factory=dict)   # the other's params, formulas of ours
    scale: FormulaText = "1"                                              # a formula of our params
    identity: Text                                                        # as a person writes it
    why: Text


class Symmetry(Strict):
    kind: Literal["odd", "even", "point"]
    value: float = 0.0     # for point: f(-x) + f(x) == value


class Properties(Strict):
    range: str | None = None
    monotone: Literal["increasing", "nondecreasing", "decreasing", "nonincreasing"] | None = None
    symmetry: Symmetry | None = None
    convex: bool | None = None
    rows_sum_to: float | None = None   # vector functions whose rows are probability vectors
    idempotent: bool | None = None

    @field_validator("range")
    @classmethod
    def _range(cls, v: str | None) -> str | None:
        if v is not None:
            parse_interval(v)
        return v


NumberList = list[Union[float, int, str, list[Union[float, int, str]]]]


class StabilityCase(Strict):
    # Elementwise: a list of numbers.  Vector functions: a list of rows.
    x: NumberList = Field(min_length=1, max_length=64)
    # Losses: the targets (and class weights) that go with x, one per element or row of x.
    target: NumberList | None = Field(default=None, min_length=1, max_length=64)
    weight: list[Union[float, int, str]] | None = Field(default=None, min_length=1, max_length=64)
    reduction: Literal["none", "sum", "mean"] = "none"
    params: dict[Identifier, Union[float, int, str]] = Field(default_factory=dict)
    why: Text

    @field_validator("x", "target", "weight")
    @classmethod
    def _numbers(cls, v: list | None) -> list | None:
        for item in v or []:
            for n in item if isinstance(item, list) else [item]:
                number(n)
        return v

    @model_validator(mode="after")
    def _paired(self) -> "StabilityCase":
        if self.target is not None and len(self.target) != len(self.x):
            raise ValueError(f"target has {len(self.target)} entries for {len(self.x)} entries of x")
        return self


class DtypeTolerance(Strict):
    ulp: float = Field(gt=0, le=1e6)
    gradient_ulp: float = Field(gt=0, le=1e6)


class Tolerance(Strict):
    float64: DtypeTolerance
    float32: DtypeTolerance
    float16: DtypeTolerance
    bfloat16: DtypeTolerance
    # Optional condition numbers (formulas): the budget is multiplied by max(1, condition)
    # where the mathematics amplifies the half-ULP uncertainty of a rounded intermediate.
    condition: FormulaText | None = None
    gradient_condition: FormulaText | None = None
    # Per differentiable input, where one formula cannot serve them all (a loss's prediction and target).
    gradient_conditions: dict[Identifier, FormulaText] = Field(default_factory=dict)
    why: Text

    def for_dtype(self, dtype: str) -> DtypeTolerance:
        return getattr(self, dtype)


class Stochastic(Strict):
    zero_probability: FormulaText     # formula of the parameters
    why: Text


class Limits(Strict):
    pos_inf: Union[float, int, str, None] = Field(default=None, alias="+inf")
    neg_inf: Union[float, int, str, None] = Field(default=None, alias="-inf")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Reduction(Strict):
    """How a loss turns per-sample losses into one number (losses only).

    `count` is what one kept sample adds to the denominator of "mean" (default 1: the
    number of samples); `ignore` is a condition under which a sample is left out of the
    sum, of the mean and of its denominator, and its "none" entry is 0.  Both are
    formulas over one sample (its inputs and the parameters).
    """

    default: Literal["none", "sum", "mean"]
    count: FormulaText | None = None
    ignore: FormulaText | None = None
    mean_of_nothing: Literal["nan", "zero"] = "nan"
    why: Text


class SpecDocument(Strict):
    name: Identifier
    family: Literal["activation", "loss"]   # optimizers: OptimizerDocument
    summary: Text
    shape: Literal["elementwise", "vector", "grouped"] = "elementwise"
    output: Literal["same", "reduced"] = "same"     # vector/grouped: one value per row/group, or a row
    axis_param: Identifier | None = None             # vector/grouped: the parameter naming the axis
    group_param: Identifier | None = None            # grouped: the parameter giving the group size
    inputs: dict[Identifier, InputSpec] = Field(min_length=1)
    params: dict[Identifier, ParamSpec] = Field(default_factory=dict)
    formula: FormulaText
    derivatives: dict[Identifier, FormulaText] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    kinks: list[Kink] = Field(default_factory=list)
    zero_sign: Literal["preserve", "positive", "unchecked"] = "unchecked"
    conventions: dict[Identifier, Convention] = Field(default_factory=dict)
    properties: Properties = Field(default_factory=Properties)
    stability: list[StabilityCase] = Field(default_factory=list)
    stochastic: Stochastic | None = None
    reduction: Reduction | None = None               # losses: none, sum, mean and what mean divides by
    related: list[Relation] = Field(default_factory=list)
    tolerance: Tolerance
    sources: list[Text] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> "SpecDocument":
        overlap = set(self.inputs) & set(self.params)
        if overlap:
            raise ValueError(f"{sorted(overlap)} named both as input and as parameter")
        if self.shape != "elementwise" and self.axis_param not in self.params:
            raise ValueError(f"a {self.shape} function needs axis_param naming one of its params")
        if self.shape == "grouped" and self.group_param not in self.params:
            raise ValueError("a grouped function needs group_param naming one of its params")
        if (self.family == "loss") != (self.reduction is not None):
            raise ValueError("a loss needs a 'reduction' section, and only a loss may have one")
        if self.family == "loss" and (self.shape == "grouped" or (self.shape == "vector" and self.output != "reduced")):
            raise ValueError("a loss is elementwise (one loss per element) or vector with output: reduced (one per row)")
        kinds = [s.kind for s in self.inputs.values()]
        if kinds[0] != "tensor":
            raise ValueError("the first input (the predictions) must be a tensor")
        if self.family != "loss" and any(k in ("class_index", "class_weight") for k in kinds):
            raise ValueError("class_index and class_weight inputs belong to losses")
        return self


# ---------------------------------------------------------------- optimizers

class StateSpec(Strict):
    initial: FormulaText = "0"     # a formula of the hyperparameters (Adagrad's initial accumulator)
    why: Text | None = None


class TrajectoryTolerance(Strict):
    """How far a trajectory may drift: `factor` times the first-order running error bound
    of the spec's own evaluation order (see docs/optimizers.md), per dtype."""

    factor: float = Field(ge=1, le=1e3)


class OptimizerTolerance(Strict):
    float64: TrajectoryTolerance
    float32: TrajectoryTolerance
    why: Text

    def for_dtype(self, dtype: str) -> TrajectoryTolerance:
        if dtype not in ("float64", "float32"):
            raise ValueError(f"optimizers are specified for float64 and float32, not {dtype}")
        return getattr(self, dtype)


class TrajectoryCase(Strict):
    """A fixed gradient sequence (one row per step) from fixed initial parameters."""

    initial: list[Union[float, int, str]] = Field(min_length=1, max_length=16)
    grads: list[list[Union[float, int, str]]] = Field(min_length=1, max_length=64)
    params: dict[Identifier, Union[float, int, str]] = Field(default_factory=dict)
    why: Text

    @field_validator("initial")
    @classmethod
    def _numbers(cls, v: list) -> list:
        for n in v:
            if not math.isfinite(number(n)):
                raise ValueError(f"initial parameters must be finite, got {n!r}")
        return v

    @model_validator(mode="after")
    def _rows(self) -> "TrajectoryCase":
        for i, row in enumerate(self.grads):
            if len(row) != len(self.initial):
                raise ValueError(f"grads row {i} has {len(row)} entries for {len(self.initial)} parameters")
            for n in row:
                number(n)
        return self


RESERVED_OPTIMIZER_NAMES = frozenset({"param", "grad", "t", "lr"})


class OptimizerDocument(Strict):
    """An optimizer: hyperparameters, state with its initial value, and the equations of one step.

    `step` is an ordered mapping: each line assigns a formula to the parameter (`param`), to a
    state variable, or to a temporary that later lines use.  On the right-hand side `param`,
    `grad` and the state names mean their current values (updated by earlier lines of the
    same step), `t` is the step number from 1 and `lr` this step's learning rate.
    """

    name: Identifier
    family: Literal["optimizer"]
    summary: Text
    params: dict[Identifier, ParamSpec] = Field(min_length=1)
    state: dict[Identifier, StateSpec] = Field(default_factory=dict)
    step: dict[Identifier, FormulaText] = Field(min_length=1, max_length=32)
    conventions: dict[Identifier, Convention] = Field(default_factory=dict)
    stability: list[TrajectoryCase] = Field(default_factory=list)
    tolerance: OptimizerTolerance
    sources: list[Text] = Field(min_length=1)

    # The structural rules (lr present, reserved names, the step ending with param) are checked
    # in loader.parse_optimizer, where each error can name its own field.
