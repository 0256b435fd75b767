"""Small graph queries and rewrite helpers shared by the passes (the pass kit).

With the graph's own operations (``replace_node``, ``set_input``/``set_inputs``, ``set_attr``,
``replace_uses``) and the forms in irc/ir/forms.py (``is_canonical_gemm``, ...), these are how a
pass rewrites: never by editing a node's inputs or attributes directly.
"""
from __future__ import annotations

import numpy as np

from irc.ir.activations import NON_NEGATIVE, NON_NEGATIVE_OPS
from irc.ir.graph import Graph, Node, Provenance

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
    graph.replace_node(node, src)
    return True


def replace_with(graph: Graph, old_node: Node, new_value: str) -> None:
    """``new_value`` replaces ``old_node``, keeping its output's name (``Graph.replace_node``)."""
    graph.replace_node(old_node, new_value)




def non_negative(graph: Graph, value: str) -> bool:
    """``value`` is known never to be negative (its producer ends in an activation whose output
    never is: relu, sigmoid, softplus, ...)."""
    producer = graph.producer(value)
    if producer is None:
        return False
    return producer.op_type in NON_NEGATIVE_OPS or \
        producer.attrs.get("activation", "identity") in NON_NEGATIVE


def add_batchnorm(graph: Graph, x: str, gamma, beta, name: str, provenance: Provenance,
                  activation: str = "identity") -> str:
    """A BatchNormalization computing ``activation(gamma·x + beta)`` per channel (mean 0,
    variance 1, epsilon 0: lowering adds epsilon to the variance, so 0 keeps the scale exact);
    ``gamma``/``beta`` are scalars or (C,) vectors. Returns the new output value."""
    ttype = graph.value(x).type
    channels, dtype = ttype.shape[1], np.dtype(ttype.dtype)
    vec = [np.broadcast_to(np.asarray(v, np.float64), (channels,)).astype(dtype)
           for v in (gamma, beta, 0.0, 1.0)]
    consts = [graph.add_const(f"{name}_{what}", arr).name
              for what, arr in zip(("scale", "bias", "mean", "var"), vec)]
    attrs = {"epsilon": 0.0}
    if activation != "identity":
        attrs["activation"] = activation
    node = graph.add_node("BatchNormalization", [x, *consts],
                          [(graph.unique_value_name(name), ttype)], attrs, name=name,
                          provenance=provenance)
    return node.outputs[0]


def add_unary(graph: Graph, op_type: str, x: str, name: str, provenance: Provenance) -> str:
    """A one-input op (Relu, ...) of the same type as ``x``; returns its output value."""
    node = graph.add_node(op_type, [x], [(graph.unique_value_name(name), graph.value(x).type)],
                          name=name, provenance=provenance)
    return node.outputs[0]


def add_sum(graph: Graph, inputs: list[str], name: str, provenance: Provenance,
            activation: str = "identity") -> str:
    """A Sum (Viya's residual layer) of same-typed ``inputs``, applying ``activation``; returns
    its output value."""
    attrs = {} if activation == "identity" else {"activation": activation}
    node = graph.add_node("Sum", list(inputs), [(graph.unique_value_name(name),
                                                 graph.value(inputs[0]).type)], attrs,
                          name=name, provenance=provenance)
    return node.outputs[0]


def insert_after(graph: Graph, value: str, build) -> str:
    """Put new ops between ``value`` and its readers: ``build(value)`` adds them and returns
    their output value, which then takes over every reader (and graph-output role) of ``value``
    and its name. Returns the name ``value`` itself is renamed to."""
    readers = [(n, slot) for n in graph.consumers(value)
               for slot, inp in enumerate(n.inputs) if inp == value]
    new = build(value)
    for node, slot in readers:
        graph.set_input(node, slot, new)
    graph.outputs = [new if o == value else o for o in graph.outputs]
    inner = graph.unique_value_name(value + "_pre")
    graph.rename_value(value, inner)
    graph.rename_value(new, value)
    return inner


def per_channel(c: np.ndarray, shape) -> tuple[np.ndarray | None, str]:
    """Constant ``c`` as a (C,) vector when it broadcasts over a value of ``shape`` per channel
    only, else None and why."""
    rank, channels = len(shape), shape[1]
    if c.ndim > rank:
        return None, f"constant of shape {c.shape} has a higher rank than the value"
    full = (1,) * (rank - c.ndim) + c.shape
    if full[0] != 1:
        return None, f"constant of shape {c.shape} varies along the batch axis"
    if any(d != 1 for d in full[2:]):
        return None, (f"constant of shape {c.shape} varies over the spatial axes (H/W), not per "
                      "channel")
    if full[1] not in (1, channels):
        return None, f"constant of shape {c.shape} does not match {channels} channels"
    return np.broadcast_to(np.asarray(c).reshape(-1), (channels,)), ""
