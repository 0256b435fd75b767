"""Small graph queries shared by the rewrite passes."""
from __future__ import annotations

from irc.ir.graph import Graph, Node

# Ops whose Viya layer has an `act` option (see ops.SCHEMAS carries_activation).
CARRIERS = ("Conv", "Gemm", "BatchNormalization", "Sum", "Concat")


def sole_consumer(graph: Graph, value: str) -> Node | None:
    """The one op reading ``value``, if exactly one op reads it once and it is no graph output."""
    if graph.use_count(value) != 1:
        return None
    consumers = graph.consumers(value)
    return consumers[0] if consumers else None


def single_use_producer(graph: Graph, value: str) -> Node | None:
    """The producer of ``value`` when ``value`` has no other reader and no graph-output role."""
    producer = graph.producer(value)
    if producer is None or graph.use_count(value) != 1:
        return None
    return producer


def reads_as_canonical_gemm(node: Node, value: str) -> bool:
    """``node`` is a Gemm in normalize_gemm's form (transB=1, alpha = beta = 1, no transA)
    reading ``value`` as A only."""
    return (node.op_type == "Gemm" and node.inputs[0] == value and value not in node.inputs[1:]
            and node.attrs.get("transB") == 1 and node.attrs.get("transA", 0) == 0
            and node.attrs.get("alpha", 1.0) == 1.0 and node.attrs.get("beta", 1.0) == 1.0)


def has_identity_act(node: Node) -> bool:
    return node.attrs.get("activation", "identity") == "identity"


def remove_noop(graph, node) -> bool:
    """Remove an op whose output equals its input; the output's name survives. False if the
    name cannot survive (the input is a graph input or output, or has other readers)."""
    src, out = node.inputs[0], node.outputs[0]
    if out not in graph.outputs:
        graph.replace_uses(out, src)
        graph.remove_node(node)
        return True
    if graph.producer(src) is None or graph.use_count(src) != 1:
        return False
    graph.replace_uses(out, src)
    graph.remove_node(node)
    graph.rename_value(src, out)
    return True
