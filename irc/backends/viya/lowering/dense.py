"""Gemm and Softmax as Viya fc and output layers, and the output layer every graph output
ends in (trap 29: a loss-only output layer where no layer of the model is one).

A canonical Gemm (transB=1, alpha=beta=1) is an fc layer, or the output layer when it is the
graph's output; a Gemm read only by a Softmax at the output is one softmax output layer.
"""
from __future__ import annotations

import math

from irc.backends.viya import schema
from irc.backends.viya.lowering.context import LoweringContext
from irc.backends.viya.lowering.registry import LOWERINGS
from irc.backends.viya.model import LoweredLayer
from irc.ir.forms import canonical_gemm_problem
from irc.ir.graph import Graph, Node


def _error() -> str:
    """The output layer's loss: Viya picks it from the task (the schema's default)."""
    return schema.default("output", "error")


@LOWERINGS.hook("before", order=50)
def merge_softmax_gemms(ctx: LoweringContext) -> None:
    ctx.merged_gemms = softmax_output_gemms(ctx.graph)
    ctx.merged_values = {ctx.graph.node(n).outputs[0] for n in ctx.merged_gemms}


def softmax_output_gemms(graph: Graph) -> set[str]:
    """Gemm nodes that lowering merges into a softmax output layer."""
    merged = set()
    for node in graph.nodes():
        if node.op_type == "Softmax" and node.outputs[0] in graph.outputs:
            producer = graph.producer(node.inputs[0])
            if producer is not None and producer.op_type == "Gemm" \
                    and graph.use_count(node.inputs[0]) == 1 \
                    and producer.attrs.get("activation", "identity") == "identity":
                merged.add(producer.name)
    return merged


def gemm_layer(ctx: LoweringContext, node: Node, as_output: bool, act: str) -> LoweredLayer | None:
    why = canonical_gemm_problem(ctx.graph, node)   # the form normalize_gemm ensures
    if why:
        ctx.problem(node, why)
        return None
    x, w = node.inputs[0], node.inputs[1]
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    n = ctx.graph.value(w).type.shape[0]
    options = {"n": n, "act": act, "includebias": has_bias}
    if as_output:
        options.update(fullconnect=True, error=_error())
    weights = {"kernel": ctx.const_weight(w)}
    if has_bias:
        weights["bias"] = ctx.const_weight(node.inputs[2])
    return ctx.add(node, "output" if as_output else "fc", options, [x], node.outputs[0],
                   weights)


@LOWERINGS.register("Gemm", emits=("fc", "output"))
def lower_gemm(ctx: LoweringContext, node: Node) -> None:
    if node.name in ctx.merged_gemms:
        return  # lowered with its Softmax
    graph = ctx.graph
    is_output = node.outputs[0] in graph.outputs and graph.use_count(node.outputs[0]) == 1
    gemm_layer(ctx, node, is_output, ctx.act(node))


@LOWERINGS.register("Softmax")
def lower_softmax(ctx: LoweringContext, node: Node) -> None:
    graph = ctx.graph
    if node.outputs[0] not in graph.outputs:
        ctx.problem(node, "Softmax in the middle of the graph; Viya applies softmax only "
                          "in the output layer")
        return
    x = node.inputs[0]
    shape = graph.value(x).type.shape
    if len(shape) > 2 and (any(d != 1 for d in shape[2:]) or node.attrs.get("axis") != 1):
        ctx.problem(node, f"Softmax over axis {node.attrs.get('axis')} of {shape[1:]}: "
                          "Viya's output layer takes the softmax of all the values; "
                          "put a Flatten before the Softmax")
        return
    producer = graph.producer(x)
    if producer is not None and producer.op_type == "Gemm" and graph.use_count(x) == 1 \
            and producer.attrs.get("activation", "identity") == "identity":
        if any(i and not graph.is_const(i) and i not in ctx.layer_of
               for i in producer.inputs):
            if not ctx.problems:
                ctx.problem(producer, "reads a value no Viya layer computes")
            return  # the dense layer's input failed to lower; that is reported
        layer = gemm_layer(ctx, producer, as_output=True, act="softmax")
        if layer is not None:
            ctx.layer_of[node.outputs[0]] = layer.name
            layer.source_nodes += node.provenance.sources
            layer.tensor = node.outputs[0]
        return
    n = graph.value(x).type.numel_per_example()
    ctx.add(node, "output", {"n": n, "act": "softmax", "includebias": False,
                             "fullconnect": False, "error": _error()}, [x], node.outputs[0])


@LOWERINGS.hook("after", order=90)
def add_output_layers(ctx: LoweringContext) -> None:
    """Every graph output ends in a Viya output layer (trap 29: loss-only when needed)."""
    for out in ctx.graph.outputs:
        layer_name = ctx.layer_of.get(out)
        if layer_name is None:
            continue
        if out in ctx.model.outputs:
            continue  # a sequence output, placed by the recurrent lowering
        layer = ctx.model.layer(layer_name)
        if layer.kind == "output" and out not in ctx.multi:
            ctx.model.outputs[out] = layer.name
            continue
        sources = ctx.sources_of(out)
        n = sum(math.prod(ctx.model.layer(s).out_shape) for s in sources)
        name = ctx.names.claim(f"{layer.name}_output", "output")
        new = ctx.append(LoweredLayer(name, "output",
                                      {"n": n, "act": "identity", "includebias": False,
                                       "fullconnect": False, "error": _error()},
                                      sources, {}, layer.source_nodes, (n,), tensor=layer.tensor))
        ctx.model.outputs[out] = new.name
