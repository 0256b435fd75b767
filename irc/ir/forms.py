"""Forms of IR ops that passes establish and later stages rely on, each tested in one place.

A pass that brings ops into a form (normalize_gemm: canonical Gemm) and every pass or lowering
handler that requires the form ask the same predicate, so the form cannot drift between them.
"""
from __future__ import annotations

from irc.ir.graph import Graph, Node

def canonical_gemm_problem(graph: Graph, node: Node) -> str:
    """Why ``node`` is not a Gemm in normalize_gemm's form, or "" when it is: transB=1, alpha =
    beta = 1, no transA, W (out, in) and a bias, if any, of shape (out,). That form is exactly
    Viya's fc layer y = W·v + b (viya-semantics §7)."""
    if node.op_type != "Gemm":
        return f"{node.name} is a {node.op_type}, not a Gemm"
    a = node.attrs
    if a.get("transB") != 1 or a.get("transA", 0) != 0 or a.get("alpha", 1.0) != 1.0 \
            or a.get("beta", 1.0) != 1.0:
        return "Gemm is not in canonical form (transB=1, alpha=beta=1, transA=0)"
    if len(node.inputs) > 2 and node.inputs[2]:
        out = graph.value(node.inputs[1]).type.shape[0]
        shape = graph.value(node.inputs[2]).type.shape
        if shape != (out,):
            return f"bias of shape {shape}, expected ({out},)"
    return ""


def is_canonical_gemm(graph: Graph, node: Node) -> bool:
    return not canonical_gemm_problem(graph, node)


def reads_as_canonical_gemm(graph: Graph, node: Node, value: str) -> bool:
    """``node`` is a canonical Gemm reading ``value`` as A only (not as a weight too)."""
    return node.inputs[0] == value and value not in node.inputs[1:] \
        and is_canonical_gemm(graph, node)
