"""The shape of the house, read from the source: no import circles, short files, a few entries per floor."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the dotted name it is installed as
PACKAGES = {ROOT / "pyro_lfads": "pyro_lfads", ROOT / "models": "pyro_lfads.models",
            ROOT / "guides": "pyro_lfads.guides"}
MAX_LINES = 450
MAX_TOP_ENTRIES = 13  # config, errors, version, __init__ and nine folders by role


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the installed package."""
    modules = {}
    for folder, dotted in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((dotted, *parts))] = path
    return modules


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` (source ``path``) names in an import, at any depth of its code.

    ``from a.b import c`` imports ``a.b.c`` when that is a module, else the package face ``a.b``. The
    parents that Python initialises on the way are not counted: a module that names a package face
    (``from pyro_lfads.data import X``) depends on all that face imports, one that names a leaf does not.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        found.update(target for target in targets if target in modules)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return stack[stack.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle():
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_sees_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("path", sorted(p for folder in PACKAGES for p in folder.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_source_file_over_the_limit(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_a_few_entries_under_the_package():
    entries = [p.name for p in (ROOT / "pyro_lfads").iterdir() if p.name != "__pycache__"]
    assert len(entries) <= MAX_TOP_ENTRIES, sorted(entries)
