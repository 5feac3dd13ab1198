"""The formula language: a whitelisted subset of Python expression syntax.

Spec files are untrusted input written by strangers, so a formula is parsed with
`ast.parse` and every node is checked against a whitelist before it becomes a
tree of plain data (`Node`).  Nothing is ever evaluated by Python: the reference
walks the tree with mpmath, and nothing else reads it.

Why limits on size, depth, constants and exponents: a formula such as
``9**9**9**9`` or a 10,000-level nesting is a denial of service even without
code execution, so it is a load error like any other.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

MAX_FORMULA_CHARS = 2000
MAX_NODES = 400
MAX_DEPTH = 40
MAX_CONSTANT = 1e6          # larger literals in a formula are typos or attacks
MAX_CONSTANT_DIGITS = 40    # enough for selu's constants to 32 digits
MAX_EXPONENT = 8            # x**3 (gelu tanh), x**2, x**0.5: nothing needs more

# name -> number of arguments.  One-argument max/min/sum/mean/logsumexp reduce
# over the function's axis; two-argument max/min are elementwise.
FUNCTIONS: dict[str, tuple[int, ...]] = {
    "exp": (1,), "expm1": (1,), "log": (1,), "log1p": (1,), "sqrt": (1,),
    "tanh": (1,), "erf": (1,), "erfc": (1,), "sigmoid": (1,), "abs": (1,),
    "where": (3,), "max": (1, 2), "min": (1, 2),
    "sum": (1,), "mean": (1,), "logsumexp": (1,),
    "onehot": (1,),      # onehot(target): the row with 1 at the target class, 0 elsewhere
}
REDUCTIONS = frozenset({"sum", "mean", "logsumexp"})  # plus 1-argument max/min
CONSTANTS = frozenset({"pi"})

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class FormulaError(ValueError):
    """A formula is not in the language; `token` is the offending piece of text."""

    def __init__(self, message: str, token: str = "") -> None:
        super().__init__(message)
        self.token = token


@dataclass(frozen=True)
class Num:
    text: str          # the literal as written, so the reference reads it exactly


@dataclass(frozen=True)
class Name:
    id: str


@dataclass(frozen=True)
class Neg:
    operand: "Node"


@dataclass(frozen=True)
class BinOp:
    op: str            # + - * /
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Pow:
    base: "Node"
    exponent: "Num | Name"   # a small literal, or an integer counter (an optimizer's step t)


@dataclass(frozen=True)
class Compare:
    op: str            # < <= > >= == !=
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class BoolOp:
    op: str            # and | or
    operands: tuple["Node", ...]


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple["Node", ...]

    @property
    def is_reduction(self) -> bool:
        return self.func in REDUCTIONS or (self.func in ("max", "min") and len(self.args) == 1)


@dataclass(frozen=True)
class Index:
    """``x[target]``: pick the entry of a class axis named by an integer input."""

    value: Name
    index: Name


Node = Num | Name | Neg | BinOp | Pow | Compare | BoolOp | Call | Index


def children(node: Node) -> Iterator[Node]:
    if isinstance(node, Neg):
        yield node.operand
    elif isinstance(node, (BinOp, Compare)):
        yield node.left
        yield node.right
    elif isinstance(node, Pow):
        yield node.base
        yield node.exponent
    elif isinstance(node, BoolOp):
        yield from node.operands
    elif isinstance(node, Call):
        yield from node.args
    elif isinstance(node, Index):
        yield node.value
        yield node.index


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in children(node):
        yield from walk(child)


def names(node: Node) -> set[str]:
    return {n.id for n in walk(node) if isinstance(n, Name)}


def has_reduction(node: Node) -> bool:
    return any(isinstance(n, Call) and n.is_reduction for n in walk(node))


def _token(source: str, node: ast.AST) -> str:
    segment = ast.get_source_segment(source, node)
    return segment if segment is not None else type(node).__name__


def parse(source: object, allowed_names: Iterable[str], index_names: Iterable[str] = (),
          exponent_names: Iterable[str] = ()) -> Node:
    """Parse `source` into a `Node` tree, or raise FormulaError naming the bad token.

    `allowed_names` are the inputs and parameters (and y, g where they apply);
    `index_names` are the integer inputs that may appear inside ``x[...]``;
    `exponent_names` are integer counters that may be an exponent (``beta1 ** t``).
    """
    if isinstance(source, bool) or not isinstance(source, (str, int, float)):
        raise FormulaError(f"a formula must be a string, not {type(source).__name__}")
    text = str(source).strip()
    if not text:
        raise FormulaError("the formula is empty")
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(f"the formula is {len(text)} characters long; the limit is {MAX_FORMULA_CHARS}")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise FormulaError(f"not a valid expression: {exc.__class__.__name__}: {exc}", text) from None
    return _Converter(text, frozenset(allowed_names), frozenset(index_names),
                      frozenset(exponent_names)).convert(tree.body)


class _Converter:
    def __init__(self, source: str, allowed: frozenset[str], index_names: frozenset[str],
                 exponent_names: frozenset[str] = frozenset()) -> None:
        self.source = source
        self.allowed = allowed
        self.index_names = index_names
        self.exponent_names = exponent_names
        self.count = 0

    def fail(self, message: str, node: ast.AST) -> FormulaError:
        token = _token(self.source, node)
        return FormulaError(f"{message}: {token!r}", token)

    def convert(self, node: ast.AST, depth: int = 0) -> Node:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(f"the formula has more than {MAX_NODES} parts", node)
        if depth > MAX_DEPTH:
            raise self.fail(f"the formula nests deeper than {MAX_DEPTH} levels", node)
        d = depth + 1
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            if node.id in self.allowed or node.id in CONSTANTS:
                return Name(node.id)
            if node.id in FUNCTIONS:
                raise self.fail(f"function {node.id!r} used without calling it", node)
            known = ", ".join(sorted(self.allowed | CONSTANTS))
            raise self.fail(f"unknown name (known here: {known})", node)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return Neg(self.convert(node.operand, d))
            if isinstance(node.op, ast.UAdd):
                return self.convert(node.operand, d)
            if isinstance(node.op, ast.Not):
                raise self.fail("'not' is not allowed; write the opposite comparison", node)
            raise self.fail("operator not allowed", node)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Pow):
                return Pow(self.convert(node.left, d), self.exponent(node.right))
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.fail("operator not allowed (allowed: + - * / **)", node)
            return BinOp(op, self.convert(node.left, d), self.convert(node.right, d))
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise self.fail("chained comparisons are not allowed; combine with 'and'", node)
            op = _CMPOPS.get(type(node.ops[0]))
            if op is None:
                raise self.fail("comparison not allowed", node)
            return Compare(op, self.convert(node.left, d), self.convert(node.comparators[0], d))
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            return BoolOp(op, tuple(self.convert(v, d) for v in node.values))
        if isinstance(node, ast.Call):
            return self.call(node, d)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Attribute):
            raise self.fail("attribute access is not allowed", node)
        if isinstance(node, ast.Lambda):
            raise self.fail("lambda is not allowed", node)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            raise self.fail("comprehensions are not allowed", node)
        raise self.fail(f"{type(node).__name__} is not allowed in a formula", node)

    def number(self, node: ast.Constant) -> Num:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail("only numeric constants are allowed", node)
        text = _token(self.source, node)
        if not _DECIMAL.match(text):
            raise self.fail("numbers must be written in decimal", node)
        digits = sum(ch.isdigit() for ch in text.split("e")[0].split("E")[0])
        if digits > MAX_CONSTANT_DIGITS or not abs(value) <= MAX_CONSTANT:
            raise self.fail(f"constant out of range (at most {MAX_CONSTANT:g} and {MAX_CONSTANT_DIGITS} digits)", node)
        return Num(text)

    def exponent(self, node: ast.AST) -> Num | Name:
        if isinstance(node, ast.Name) and node.id in self.exponent_names:
            return Name(node.id)
        negative = False
        inner = node
        if isinstance(inner, ast.UnaryOp) and isinstance(inner.op, ast.USub):
            negative, inner = True, inner.operand
        if not (isinstance(inner, ast.Constant) and isinstance(inner.value, (int, float))
                and not isinstance(inner.value, bool)):
            raise self.fail(f"an exponent must be a number between -{MAX_EXPONENT} and {MAX_EXPONENT}", node)
        num = self.number(inner)
        if abs(float(num.text)) > MAX_EXPONENT:
            raise self.fail(f"an exponent must be a number between -{MAX_EXPONENT} and {MAX_EXPONENT}", node)
        return Num(("-" if negative else "") + num.text)

    def call(self, node: ast.Call, depth: int) -> Call:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only the listed functions may be called", node.func)
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.fail(f"unknown function (allowed: {', '.join(sorted(FUNCTIONS))})", node.func)
        if node.keywords:
            raise self.fail("keyword arguments are not allowed", node)
        if name == "onehot" and (len(node.args) != 1 or not isinstance(node.args[0], ast.Name)
                                 or node.args[0].id not in self.index_names):
            allowed = ", ".join(sorted(self.index_names)) or "none in this spec"
            raise self.fail(f"onehot takes an integer target input ({allowed})", node)
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail("starred arguments are not allowed", node)
        if len(node.args) not in FUNCTIONS[name]:
            counts = " or ".join(str(n) for n in FUNCTIONS[name])
            raise self.fail(f"{name} takes {counts} argument(s), got {len(node.args)}", node)
        return Call(name, tuple(self.convert(a, depth) for a in node.args))

    def subscript(self, node: ast.Subscript) -> Index:
        if not isinstance(node.value, ast.Name) or node.value.id not in self.allowed:
            raise self.fail("only an input may be indexed", node)
        if not isinstance(node.slice, ast.Name) or node.slice.id not in self.index_names:
            allowed = ", ".join(sorted(self.index_names)) or "none in this spec"
            raise self.fail(f"an index must be an integer target input ({allowed})", node)
        return Index(Name(node.value.id), Name(node.slice.id))
