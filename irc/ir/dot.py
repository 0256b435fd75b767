"""The IR as a Graphviz picture: one box per op with its key attributes and output shape.

Constants (weights) are not drawn as nodes: their shapes appear inside the op that reads them,
which keeps large graphs legible. SVG is rendered by Graphviz's `dot` program.
"""
from __future__ import annotations

import shutil
import subprocess

from irc.errors import IrcIOError
from irc.ir.graph import Graph

_KEY_ATTRS = ("kernel_shape", "strides", "pads", "group", "axis", "activation", "epsilon",
              "ceil_mode", "count_include_pad", "perm", "transB", "alpha")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(graph: Graph, node) -> str:
    lines = [f"{node.op_type}  {node.name}"]
    for key in _KEY_ATTRS:
        value = node.attrs.get(key)
        if value is None or (key == "activation" and value == "identity"):
            continue
        lines.append(f"{key}={value}")
    for inp in node.inputs:
        if inp and graph.is_const(inp):
            lines.append(f"w {graph.value(inp).type}")
    lines.append("-> " + ", ".join(str(graph.value(o).type) for o in node.outputs))
    return "\\n".join(line.replace('"', "'") for line in lines)


def to_dot(graph: Graph) -> str:
    out = [f"digraph {_quote(graph.name)} {{", "  rankdir=TB;",
           '  node [shape=box, fontname="Helvetica", fontsize=10];']
    for name in graph.inputs:
        out.append(f"  {_quote('in:' + name)} [shape=ellipse, label={_quote(name + chr(10) + str(graph.value(name).type))}];")
    producers = {}
    for node in graph.nodes():
        out.append(f'  {_quote("op:" + node.name)} [label="{_label(graph, node)}"];')
        for o in node.outputs:
            producers[o] = "op:" + node.name
    for node in graph.nodes():
        for inp in node.inputs:
            if not inp or graph.is_const(inp):
                continue
            src = producers.get(inp, "in:" + inp)
            out.append(f"  {_quote(src)} -> {_quote('op:' + node.name)};")
    for name in graph.outputs:
        out.append(f"  {_quote('out:' + name)} [shape=ellipse, label={_quote(name)}];")
        out.append(f"  {_quote(producers.get(name, 'in:' + name))} -> {_quote('out:' + name)};")
    out.append("}")
    return "\n".join(out) + "\n"


def render_svg(dot_text: str) -> str:
    """SVG text from DOT text, through Graphviz's `dot`."""
    exe = shutil.which("dot")
    if exe is None:
        raise IrcIOError("Graphviz's `dot` program is not installed",
                         hint="install it (Debian: apt-get install graphviz) or use txt/onnx dumps")
    result = subprocess.run([exe, "-Tsvg"], input=dot_text, capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        raise IrcIOError(f"dot failed: {result.stderr.strip()[:500]}")
    return result.stdout
