"""The package's import structure: one direction, no cycles (docs/architecture.md).

Reads every module of `rmtl_tf/` with `ast` (nothing is imported) and checks
three rules: no `rmtl_tf` import inside a function (such imports hide cycles),
no import from a lower tier to a higher one, and no cycle at all.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rmtl_tf"

# The tiers, lowest first; a module may import its own tier and lower ones.
# export < evaluation < training within the libraries tier: training reports
# and exports, evaluation scores exports.
TIERS = {
    "_startup": 0, "_version": 0, "atomic_files": 0, "layers": 0, "tasks": 1, "models": 2,
    "data": 3, "metrics": 3, "visualization": 3, "testing": 3,
    "export": 4.0, "evaluation": 4.1, "training": 4.2,
    "cli": 5, "tools": 5, "evaluate": 5, "__init__": 5,
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(name, path, modules):
    """(imported rmtl_tf module, line, inside a function) of one module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, True)
                continue
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.rsplit(".", child.level - 1)[0]
                    base = f"{up}.{base}" if base else up
                targets = [f"{base}.{alias.name}"
                           if f"{base}.{alias.name}" in modules else base
                           for alias in child.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("rmtl_tf") and target != name:
                    found.append((target, child.lineno, in_function))
            visit(child, in_function)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def _tier(module):
    parts = module.split(".")
    return TIERS[parts[1] if len(parts) > 1 else "__init__"]


@pytest.fixture(name="graph", scope="module")
def _graph():
    modules = dict(_modules())
    return {name: _imports(name, path, modules)
            for name, path in modules.items()}


def test_every_subpackage_has_a_tier(graph):
    unknown = {m.split(".")[1] for m in graph if "." in m} - set(TIERS)
    assert not unknown, f"Give these a tier in TIERS: {sorted(unknown)}"


def test_no_rmtl_tf_import_inside_a_function(graph):
    found = sorted(f"{name}:{line} -> {target}"
                   for name, edges in graph.items()
                   for target, line, in_function in edges if in_function)
    assert not found, found


def test_no_import_against_the_layering(graph):
    found = sorted(f"{name}:{line} -> {target}"
                   for name, edges in graph.items() if name != "rmtl_tf"
                   for target, line, _ in edges
                   if _tier(target) > _tier(name))
    assert not found, found


def test_no_import_cycle(graph):
    edges = {name: {t for t, _, _ in found} for name, found in graph.items()}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("Import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
