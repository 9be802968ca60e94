"""The shape of the package: import graph, layers and sizes (docs/architecture.md).

These tests read the source with :mod:`ast`; they import nothing of the package, so they
also cover imports written inside functions (which run only on some paths).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "napari_galam"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE

#: Each layer and the layers it may import (besides itself and the top-level helpers).
LAYERS = {
    "sps": set(),
    "simulate": {"sps"},
    "core": {"sps"},
    "io": {"core", "sps"},
    "models": {"core", "sps", "io"},
    "plots": {"core", "sps", "io"},
    "pipeline": {"core", "sps", "io", "models", "simulate", "plots"},
}
#: Top-level modules any layer may import: they import nothing of the package's layers
#: (None: the package's own ``__init__``, which holds the version).
HELPERS = {"errors", "progress", "parameters", None}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """Modules of the package that ``name`` imports anywhere in its source."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` imports the submodule `pkg.sub` when there is one
            targets = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    return components


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_walk_sees_function_level_imports() -> None:
    # the maps pipeline imports the model inference inside a function only
    assert any(target.startswith(f"{PACKAGE}.models") for target in GRAPH[f"{PACKAGE}.pipeline.maps"])


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_only_downwards(layer: str) -> None:
    allowed = LAYERS[layer] | {layer} | HELPERS
    wrong = sorted(
        f"{name} -> {target}"
        for name in GRAPH
        if _layer(name) == layer
        for target in GRAPH[name]
        if _layer(target) not in allowed
    )
    assert wrong == []


def test_no_gui_or_tensorflow_import_below_the_widgets() -> None:
    below = [n for n in MODULES if _layer(n) in LAYERS or _layer(n) in HELPERS]
    wrong = []
    for name in below:
        tree = ast.parse(MODULES[name].read_text())
        for node in tree.body:  # module level: what importing the module loads
            if isinstance(node, ast.Import | ast.ImportFrom):
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if mod and mod.split(".")[0] in {"napari", "qtpy", "magicgui", "tensorflow", "keras"}:
                    wrong.append(f"{name}: {mod}")
    assert wrong == []


def test_no_dock_imports_another_dock() -> None:
    docks = {n for n in MODULES if n.startswith(f"{PACKAGE}._widgets.") and n.endswith("_dock")}
    assert sorted(f"{a} -> {b}" for a in docks for b in GRAPH[a] if b in docks) == []


def test_module_and_function_sizes() -> None:
    long_modules = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert {n: k for n, k in long_modules.items() if k > 700} == {}
    long_functions = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 100:
                    long_functions.append(f"{name}.{node.name}: {length}")
    assert len(long_functions) <= 5, long_functions


def test_every_iter_function_speaks_the_progress_protocol() -> None:
    """``iter_*`` means a long job that yields ``Progress`` and returns its result."""
    others = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("iter_"):
                annotation = ast.unparse(node.returns) if node.returns else ""
                if "ProgressGenerator" not in annotation:
                    others.append(f"{name}.{node.name} -> {annotation or 'unannotated'}")
    assert others == []
