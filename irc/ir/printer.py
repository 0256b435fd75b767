"""A readable text form of the IR, one line per op, for `irc inspect` and pass dumps.

    graph lenet (inputs: x float32[N,1,28,28])
      %conv1 = Conv(%x, $conv1.weight float32[8,1,5,5], $conv1.bias) {pads=[2,2,2,2]} -> float32[N,8,28,28]   # from conv1
"""
from __future__ import annotations

from irc.ir.activations import TAKES_ALPHA
from irc.ir.graph import Graph


def _fmt_attr(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt_attr(v) for v in value) + "]"
    return str(value)


def _fmt_input(graph: Graph, name: str) -> str:
    if not name:
        return "_"
    value = graph.value(name)
    if value.is_const:
        return f"${name} {value.type}"
    return f"%{name}"


def _shown_attrs(node) -> dict:
    """Attributes worth reading: a fused identity activation and an unused alpha are noise."""
    act = node.attrs.get("activation", "identity")
    shown = {}
    for key, value in sorted(node.attrs.items()):
        if key == "activation" and value == "identity":
            continue
        if key == "activation_alpha" and act not in TAKES_ALPHA:
            continue
        shown[key] = value
    return shown


def format_graph(graph: Graph, provenance: bool = True) -> str:
    ins = ", ".join(f"%{n} {graph.value(n).type}" for n in graph.inputs)
    lines = [f"graph {graph.name} ({ins})"]
    for node in graph.nodes():
        args = ", ".join(_fmt_input(graph, i) for i in node.inputs)
        attrs = _shown_attrs(node)
        attr_text = (" {" + ", ".join(f"{k}={_fmt_attr(v)}" for k, v in attrs.items()) + "}"
                     if attrs else "")
        outs = ", ".join(f"%{o}" for o in node.outputs)
        types = ", ".join(str(graph.value(o).type) for o in node.outputs)
        line = f"  {outs} = {node.op_type}({args}){attr_text} -> {types}"
        if provenance and node.provenance.sources:
            line += "   # from " + ", ".join(node.provenance.sources)
            if node.provenance.pass_name:
                line += f" [{node.provenance.pass_name}]"
        lines.append(line)
    lines.append("  return " + ", ".join(f"%{o}" for o in graph.outputs))
    return "\n".join(lines)
