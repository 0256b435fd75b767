"""No import circles among irc's modules, counting imports inside functions too.

A circle means two modules each need the other: neither can be read, tested or moved alone,
and a top-level one breaks at import time depending on which side is imported first. The
graph is read from the source (ast), so the test needs no import of irc and sees the imports
inside functions that only run later. Importing ``a.b.c`` also runs ``a/__init__`` and
``a/b/__init__``; those implicit edges are not counted (every package would then be in a
circle with its own modules).
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2] / "irc"

# Edges allowed to close a circle, each with why. Remove an entry once its circle is gone.
# None today: the pass, ONNX and Caffe registries each have a module of their own that imports
# nothing back, and a catalog module (irc/passes/catalog.py, irc/frontends/onnx/catalog.py)
# imports the handler modules that fill them.
ALLOWED: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> nx.DiGraph:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:   # relative: from .x import y
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``
                # imports mod
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in files]
                targets = subs + ([base] if len(subs) < len(node.names) else [])
            for target in targets:
                if target in files and target != module:
                    graph.add_edge(module, target)
    return graph


def test_the_import_graph_is_read():
    # The reader itself must see known edges, or an empty graph would pass the test below.
    graph = import_graph()
    assert graph.has_edge("irc.backends.viya.model", "irc.backends.viya.schema")
    assert graph.has_edge("irc.passes.catalog", "irc.passes.defs")
    assert graph.has_edge("irc.backends.viya.executor.run", "irc.backends.viya.executor.kernels")


def test_no_import_circles():
    graph = import_graph()
    graph.remove_edges_from(ALLOWED)
    circles = sorted((c for c in nx.simple_cycles(graph)), key=len)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c + c[:1])
                                                       for c in circles[:20])
