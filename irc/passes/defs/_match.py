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


def has_identity_act(node: Node) -> bool:
    return node.attrs.get("activation", "identity") == "identity"


def bypass(graph: Graph, node: Node) -> None:
    """Remove a one-in one-out op, making its readers read its input."""
    graph.replace_uses(node.outputs[0], node.inputs[0])
    graph.remove_node(node)
