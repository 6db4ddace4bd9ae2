"""The package's shape: no import cycle anywhere in mmemo/, no module past the size one can read at once,
and recipes that never import one another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mmemo"
#: "No file over ~400 lines" (docs/architecture.md): the margin is for a docstring, not for a second concept.
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _owner(name: str) -> str | None:
    """The mmemo module ``name`` refers to (``a.b.func`` -> ``a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every mmemo module ``module`` imports, at the top or inside a function (not under TYPE_CHECKING)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(filter(None, (_owner(a.name) for a in node.names if a.name.startswith("mmemo"))))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if base.startswith("mmemo"):
                for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                    found.add(_owner(f"{base}.{alias.name}") or _owner(base))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(module)
    found.discard(None)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_mmemo():
    graph = {module: imports_of(module) for module in MODULES}
    assert "mmemo.recipes.common" in graph["mmemo.recipes.train"]  # the walk sees imports at all
    assert import_cycles(graph) == []


def test_recipes_are_peers():
    recipes = {m for m in MODULES if m.startswith("mmemo.recipes.") and m != "mmemo.recipes.common"}
    assert {"mmemo.recipes.train", "mmemo.recipes.evaluate", "mmemo.recipes.crossval",
            "mmemo.recipes.classical", "mmemo.recipes.extract"} <= recipes
    for recipe in recipes:
        assert not imports_of(recipe) & recipes, f"{recipe} imports another recipe"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_longer_than_one_can_read_at_once(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines: split it by concept"
