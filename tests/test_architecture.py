"""The shape of the code, held by tests: imports point one way, check kinds and budgets have one home.

docs/design.md says why: the families reach the shared machinery and never each other, a check
kind is a row of conformance/kinds.py, and a tolerance is read only through `Spec.budget`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nnconform.conformance.kinds import NAMES
from nnconform.conformance.selftest.mutation import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spec", "reference", "adapters", "conformance")     # mapped to nnconform.<name> (pyproject's package-dir)
FRAMEWORKS = {"torch", "tensorflow", "jax", "jaxlib", "keras", "optax", "onnx", "onnxruntime"}

# Imports inside functions, each with its reason.  Nothing else may import at call time.
LAZY_IMPORTS_ALLOWED = {
    "conformance/plugin.py": "the pytest11 plugin loads into every pytest run: the suite is imported only when asked for",
    "reference/approx.py": "scipy is an optional dependency, and the reference must import cheaply",
}


def _modules() -> dict[str, Path]:
    out = {}
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT / top).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(["nnconform", top, *parts])] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The project modules an import statement reaches (a `from package import submodule` reaches the submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    if node.level:
        base = module.split(".") if _is_package(module) else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target not in MODULES:
        return []
    subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    return subs + ([target] if len(subs) < len(node.names) else [])


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for n in nodes:
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                found.append(n)
            elif isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING":
                continue          # annotations only: no import at run time
            elif isinstance(n, (ast.If, ast.Try)):
                visit(n.body)
                visit(getattr(n, "orelse", []))
                for h in getattr(n, "handlers", []):
                    visit(h.body)
                visit(getattr(n, "finalbody", []))
    visit(tree.body)
    return found


def _function_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    return [n for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        graph[name] = {t for n in _module_level_imports(tree) for t in _resolve(name, n) if t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_import_graph_has_no_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_point_one_way_between_the_packages() -> None:
    # spec <- reference <- conformance -> adapters -> spec (docs/design.md): never the other way.
    forbidden = {"spec": ("reference", "adapters", "conformance"), "reference": ("adapters", "conformance"),
                 "adapters": ("reference", "conformance")}
    bad = [(m, t) for m, targets in import_graph().items() for t in targets
           if any(t.startswith(f"nnconform.{f}") for f in forbidden.get(m.split(".")[1], ()))]
    assert bad == []


def test_no_import_hides_inside_a_function() -> None:
    """Except the plugin's lazy loading, an optional dependency, and adapters loading their framework."""
    bad = []
    for name, path in MODULES.items():
        rel = path.relative_to(ROOT).as_posix()
        if rel in LAZY_IMPORTS_ALLOWED:
            continue
        for n in _function_level_imports(ast.parse(path.read_text())):
            top = (n.names[0].name if isinstance(n, ast.Import) else (n.module or "")).split(".")[0]
            loads_framework = rel.startswith("adapters/") and (
                top in FRAMEWORKS or (isinstance(n, ast.ImportFrom) and n.level == 1 and (n.module or "").endswith("_adapter")))
            if not loads_framework:
                bad.append(f"{rel}:{n.lineno}")
    assert bad == []


# ---------------------------------------------------------------- check kinds and budgets have one home

# The table, the families, and the mutation catalogue, which says which kinds must kill each mutant
# (test_every_mutant_names_kinds_of_the_table holds it to the table).
KIND_HOMES = ("conformance/kinds.py", "conformance/families/", "conformance/selftest/mutation.py")


def kind_literals(source: str) -> list[int]:
    """Lines where a check kind is named as a bare string: compared with, or listed beside another.

    A kind is spoken of through the table (`kinds.BY_NAME["kink"]`, `kinds.VALUE_CHECKS`); a
    record's field of the same name (`r["dtype"]`) is not a kind.
    """
    names = set(NAMES)
    lines = []

    def is_kind(n: ast.AST) -> bool:
        return isinstance(n, ast.Constant) and n.value in names

    for n in ast.walk(ast.parse(source)):
        if isinstance(n, ast.Compare):
            for side in [n.left, *n.comparators]:
                items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                lines += [i.lineno for i in items if is_kind(i)]
        elif isinstance(n, (ast.Tuple, ast.List, ast.Set)) and sum(map(is_kind, n.elts)) >= 2:
            lines.append(n.lineno)
        elif isinstance(n, ast.Dict) and sum(map(is_kind, [k for k in n.keys if k is not None])) >= 2:
            lines.append(n.lineno)
    return sorted(set(lines))


def test_the_kind_finder_finds_a_kind_named_by_hand() -> None:
    assert kind_literals('budget = tol.gradient if case.check in ("gradient", "kink") else tol.ulp') == [1]
    assert kind_literals('RUNNERS = {"value": a, "gradient": b}') == [1]
    assert kind_literals('x = r["dtype"]; y = kinds.BY_NAME["kink"].name') == []


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT).as_posix() for p in
                                        [*(ROOT / "conformance").rglob("*.py"), *(ROOT / "tools").rglob("*.py")]))
def test_check_kinds_are_named_only_in_the_table_and_the_families(path: str) -> None:
    if path.startswith(KIND_HOMES):
        return
    assert kind_literals((ROOT / path).read_text()) == []


def test_every_mutant_names_kinds_of_the_table() -> None:
    assert {k for m in CATALOGUE for k in m.expect} <= set(NAMES)


def test_a_tolerance_is_read_only_through_spec_budget() -> None:
    readers = [f"{p.relative_to(ROOT)}:{i}" for top in ("conformance", "reference", "adapters", "tools", "benchmarks")
               for p in sorted((ROOT / top).rglob("*.py"))
               for i, line in enumerate(p.read_text().splitlines(), 1) if "tolerance.for_dtype" in line]
    assert readers == []
