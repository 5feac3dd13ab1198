"""The check kinds: one row each, read by the families, the plugin, the report and the known-list tooling.

A check kind is a claim a test makes about one function in one dtype ("the value is within
budget", "the derivative at the kink follows the convention").  Everything that needs to know
about kinds asks this table: which families have it, which report matrix shows it, which of
the spec's budgets judges it, and whether its tests are labelled by a single input (so that a
known entry for it must name the case).  Adding a check is one row here and one function in
its family module (docs/how-to.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["activation", "loss", "optimizer"]
Group = Literal["values", "gradients", "trajectories", "native defaults"]
Quantity = Literal["value", "gradient"]     # the spec's two budgets (Spec.budget); optimizers: a factor
Label = Literal["input", "config"] | None    # one input, parameter or property; or a configuration

ACTIVATION: tuple[Family, ...] = ("activation",)
FUNCTIONS: tuple[Family, ...] = ("activation", "loss")
ALL: tuple[Family, ...] = ("activation", "loss", "optimizer")
OPTIMIZER: tuple[Family, ...] = ("optimizer",)

# The quantities a budget is declared for: "value" and "gradient" also name quantities of the
# sweeps and the reference's condition numbers; they are the spec's words, spelled once here.
VALUE: Quantity = "value"
GRADIENT: Quantity = "gradient"


@dataclass(frozen=True)
class Kind:
    name: str
    families: tuple[Family, ...]
    group: Group                 # the report matrix the kind's verdicts go into
    budget: Quantity | None      # the spec budget that judges it (None: no ULP budget)
    label: Label                 # what a test's label names, which a known entry must pin (None: nothing)
    fixed_input: bool            # the same input in every run and backend: outputs comparable across runs
    claim: str                   # what a passing test says, for README and docs


KINDS: tuple[Kind, ...] = (
    Kind("provided", ALL, "values", VALUE, None, False, "the backend provides the function in this dtype"),
    Kind("value", FUNCTIONS, "values", VALUE, None, False,
         "drawn inputs and a fixed grid agree with the exact value within the spec's ULP budget"),
    Kind("gradient", FUNCTIONS, "gradients", GRADIENT, None, False,
         "the vector-Jacobian product through the backend's autodiff agrees with the exact derivative"),
    Kind("stability", ALL, "values", VALUE, "input", True,
         "each input the spec names (overflow, thresholds, saturation) gives the exact result"),
    Kind("extremes", ACTIVATION, "values", VALUE, None, False,
         "generated extremes of the dtype and points either side of every kink"),
    Kind("subnormal", ACTIVATION, "values", VALUE, None, False,
         "inputs and results below the smallest normal: IEEE gradual underflow"),
    Kind("special", FUNCTIONS, "values", VALUE, "input", True,
         "NaN propagates, limits at +-inf, -0.0 where the spec keeps the sign, masked rows"),
    Kind("dtype", FUNCTIONS, "values", VALUE, None, False, "the output has the input's dtype and the expected shape"),
    Kind("properties", ACTIVATION, "values", VALUE, "input", False,
         "range, monotonicity, symmetry, rows summing to one, idempotence, over drawn inputs and the fixed grid"),
    Kind("convexity", ACTIVATION, "values", VALUE, None, False,
         "a function the spec calls convex lies below the chord of its neighbours at every grid point"),
    Kind("defaults", ALL, "native defaults", None, "input", False,
         "the framework's default parameters and conventions equal the canonical ones"),
    Kind("kink", ACTIVATION, "gradients", GRADIENT, "input", False,
         "the derivative at a kink follows the spec's convention"),
    Kind("statistics", ACTIVATION, "values", VALUE, None, False,
         "dropout zeroes a fraction p, scales the rest by 1/(1-p), and is the identity in evaluation mode"),
    Kind("shapes", ("loss",), "values", VALUE, "config", False,
         "a batch of one, an empty batch, a class axis that is not last"),
    Kind("large_batch", ("loss",), "values", VALUE, "config", False,
         "a reduction over a large batch stays within the pairwise-summation bound"),
    Kind("trajectory", OPTIMIZER, "trajectories", None, "config", False,
         "every step's parameters agree with the exact trajectory within the running error bound"),
    Kind("schedule", OPTIMIZER, "trajectories", None, "config", False, "as trajectory, with a learning rate changing every step"),
    Kind("weight_decay", OPTIMIZER, "trajectories", None, "config", False, "as trajectory, with weight decay"),
    Kind("objective", OPTIMIZER, "trajectories", None, "config", False,
         "as trajectory, on a quadratic whose gradients come from the backend's own parameters"),
)

BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)

# The kinds every family's case builder uses by name outside its own module.
PROVIDED = BY_NAME["provided"].name
DEFAULTS = BY_NAME["defaults"].name


def in_group(group: Group) -> tuple[str, ...]:
    return tuple(k.name for k in KINDS if k.group == group)


def of_family(family: str) -> tuple[str, ...]:
    return tuple(k.name for k in KINDS if family in k.families)


VALUE_CHECKS = in_group("values")
GRADIENT_CHECKS = in_group("gradients")
TRAJECTORY_CHECKS = in_group("trajectories")
# The optimizer matrix: every optimizer kind but the native defaults, which have a table of their own.
OPTIMIZER_TABLE = tuple(n for n in of_family("optimizer") if BY_NAME[n].group != "native defaults")
FIXED_INPUT_CHECKS = tuple(k.name for k in KINDS if k.fixed_input)
LABELLED_BY_INPUT = tuple(k.name for k in KINDS if k.label == "input")
LABELLED = tuple(k.name for k in KINDS if k.label is not None)


def budget_quantity(check: str) -> Quantity | None:
    return BY_NAME[check].budget
