"""No import circle inside `portal/`, `server/` or `supervisor/`, and no import across the
lines DESIGN.md draws. Every import counts: at the top, inside functions, and under
`TYPE_CHECKING` (a circle there is still two modules that know each other)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("portal", "server", "supervisor")
MAY_IMPORT = {"ipc": set(), "portal": {"ipc"}, "server": {"ipc"}, "supervisor": {"ipc"},
              "game": {"server"}}


def imports_of(path: Path, package: str) -> set[str]:
    """The modules (dotted names) that the module at `path` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package itself
                base = f"{package}.{base}" if base else package
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph(package: str) -> dict[str, set[str]]:
    modules = {f"{package}.{p.stem}": p for p in (REPO / package).glob("*.py")}
    return {name: {m for m in imports_of(path, package) if m in modules and m != name}
            for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle_inside_the_package(package: str) -> None:
    cycle = find_cycle(graph(package))
    assert cycle is None, f"import circle: {' -> '.join(cycle or [])}"


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_packages_import_only_what_the_design_allows(package: str) -> None:
    ours = set(MAY_IMPORT)
    wrong = {}
    for path in (REPO / package).glob("*.py"):
        for module in imports_of(path, package):
            top = module.split(".")[0]
            if top in ours and top != package and top not in MAY_IMPORT[package]:
                wrong[path.name] = module
    assert not wrong, f"{package} imports what DESIGN.md forbids: {wrong}"
