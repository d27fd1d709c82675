"""The package's layout: no import cycles (function-level imports included), every module
importable on its own, and the layers of docs/architecture.md kept."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "evolve"
PROBLEMS = ROOT / "problems"  # installed as evolve.problems

# Each subpackage may import only from those listed (and from the language, ``evolve.*``
# modules at the top). The command line sits above everything.
LAYERS = {
    "eval": set(),
    "search": {"eval"},
    "runs": {"eval", "search"},
    "results": {"eval", "search", "runs"},
    "problems": set(),
}


def _modules() -> dict[str, Path]:
    out = {}
    for base, prefix in ((PACKAGE, "evolve"), (PROBLEMS, "evolve.problems")):
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((prefix, *parts))] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every evolve module that ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
            visit(v)
    return out


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def test_the_graph_sees_function_level_imports():
    graph = _graph()
    assert "evolve.runs.islands.ray_actors" in graph["evolve.runs.driver"]  # inside a function
    assert "evolve.results.certify" in graph["evolve.cli"]


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles (function-level imports included): {cycles}"


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_subpackages_import_only_the_layers_below():
    wrong = []
    for name, targets in _graph().items():
        layer = _layer(name)
        if layer is None:
            continue
        for t in targets:
            other = _layer(t)
            if other is not None and other != layer and other not in LAYERS[layer]:
                wrong.append(f"{name} -> {t}")
    assert not wrong, f"imports of a layer above: {wrong}"


def test_the_language_imports_no_subpackage():
    """ops, program, text, problem and errors are what the subpackages build on."""
    for name in ("evolve.ops", "evolve.program", "evolve.text", "evolve.problem",
                 "evolve.errors"):
        assert all(_layer(t) is None for t in _graph()[name]), name


@pytest.mark.slow
@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_every_module_imports_in_any_order(order):
    names = sorted(n for n in _modules() if n != "evolve.__main__")  # __main__ runs the CLI
    if order == "reversed":
        names.reverse()
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT.parent)
    assert done.returncode == 0, done.stderr[-2000:]
