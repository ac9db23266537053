"""No import circle inside `portal/`, `server/` or `supervisor/` (subpackages included), no
import across the lines DESIGN.md draws, and the portal's rooms: no door (`portal.telnet`,
`portal.ssh`, `portal.web`) imports another door or the move, the move (`portal.move`)
imports no door but telnet (the sessions it moves), and nothing on the shared floor
imports a room. For the lines between packages every import counts: at the top, inside
functions, and under `TYPE_CHECKING`. For circles inside a package, imports inside
functions count (a lazy import is a circle put off, not undone), those under
`TYPE_CHECKING` do not: a class and the container that holds it (a world object and its
world) may name each other's types, as long as neither needs the other to load."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("portal", "server", "supervisor")
MAY_IMPORT = {"ipc": set(), "portal": {"ipc"}, "server": {"ipc"}, "supervisor": {"ipc"},
              "game": {"server"}}


def imports_of(path: Path, package: str, typing: bool = True) -> set[str]:
    """The modules (dotted names) that the module at `path` imports (with `typing`
    False, not counting those under `if TYPE_CHECKING:`)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    skipped = set() if typing else {id(n) for block in ast.walk(tree) if _typing_only(block)
                                     for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package itself
                base = f"{package}.{base}" if base else package
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _typing_only(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING")


def module_name(path: Path) -> str:
    """`portal/telnet/options/naws.py` -> `portal.telnet.options.naws` (a package: its name)."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_of(package: str) -> dict[str, Path]:
    """Every module of `package`, subpackages included, by dotted name."""
    return {module_name(p): p for p in sorted((REPO / package).rglob("*.py"))}


def graph(package: str, typing: bool = True) -> dict[str, set[str]]:
    modules = modules_of(package)
    return {name: {m for m in imports_of(path, relative_base(name, path), typing)
                   if m in modules
                   and m != name} for name, path in modules.items()}


def relative_base(name: str, path: Path) -> str:
    """The package a relative import in module `name` starts from."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


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
    cycle = find_cycle(graph(package, typing=False))
    assert cycle is None, f"import circle: {' -> '.join(cycle or [])}"


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_packages_import_only_what_the_design_allows(package: str) -> None:
    ours = set(MAY_IMPORT)
    wrong = {}
    for name, path in modules_of(package).items():
        for module in imports_of(path, relative_base(name, path)):
            top = module.split(".")[0]
            if top in ours and top != package and top not in MAY_IMPORT[package]:
                wrong[name] = module
    assert not wrong, f"{package} imports what DESIGN.md forbids: {wrong}"


# The portal's rooms (portal/<room>/) and what each may import of the other rooms; every
# room may import the shared floor (the modules directly in portal/) and ipc.
ROOMS = {"telnet": set(), "ssh": set(), "web": set(), "move": {"telnet"}}


def room_of(module: str) -> str | None:
    """The room of a portal module, or None for the shared floor."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else None


def test_every_portal_package_is_a_room() -> None:
    packages = {p.parent.name for p in (REPO / "portal").glob("*/__init__.py")}
    assert packages == set(ROOMS), "a new portal package: say in ROOMS what it may import"


def test_rooms_import_only_the_floor_and_what_they_may() -> None:
    wrong = []
    for name, imported in graph("portal").items():
        room = room_of(name)
        for module in imported:
            other = room_of(module)
            if other is None or other == room:
                continue
            if room is None and name != "portal.main":
                wrong.append(f"{name} (the floor) imports {module}")
            elif room is not None and other not in ROOMS[room]:
                wrong.append(f"{name} imports {module}")
    assert not wrong, "imports across the portal's rooms:\n" + "\n".join(sorted(wrong))


def test_the_room_rule_sees_a_door_importing_another() -> None:
    assert room_of("portal.web.wire") == "web" and room_of("portal.telnet") == "telnet"
    assert room_of("portal.link") is None and room_of("portal.oob") is None
    assert "telnet" not in ROOMS["web"] and "web" not in ROOMS["telnet"]
