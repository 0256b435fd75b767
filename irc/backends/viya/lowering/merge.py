"""BatchNormalization, Sum and Concat as Viya batchnorm, residual and concat layers.

A Concat of flattened maps read only by dense layers is no layer: its inputs become the
srcLayers of those fc/output layers (Viya flattens each source, then concatenates them in
srcLayers order: viya-semantics §1).
"""
from __future__ import annotations

import numpy as np

from irc.backends.viya.lowering.context import LoweringContext
from irc.backends.viya.lowering.registry import LOWERINGS
from irc.ir.graph import Graph, Node


@LOWERINGS.register("BatchNormalization", emits=("batchnorm",))
def lower_batchnorm(ctx: LoweringContext, node: Node) -> None:
    x, scale, bias, mean, var = node.inputs
    eps = float(node.attrs.get("epsilon", 1e-5))
    weights = {"gamma": ctx.const_weight(scale), "beta": ctx.const_weight(bias),
               "moving_mean": ctx.const_weight(mean),
               # Viya computes sigma = sqrt(v) and adds no eps of its own (trap 3).
               "moving_variance": ctx.const_weight(
                   var, lambda v: np.asarray(v, np.float64) + eps)}
    ctx.add(node, "batchnorm", {"act": ctx.act(node)}, [x], node.outputs[0], weights)


@LOWERINGS.register("Sum", emits=("residual",))
def lower_sum(ctx: LoweringContext, node: Node) -> None:
    shapes = {ctx.graph.value(i).type.shape for i in node.inputs}
    if len(shapes) != 1:
        ctx.problem(node, f"residual inputs have different shapes {sorted(shapes)}")
        return
    if len(node.inputs) < 2:
        ctx.problem(node, "a residual layer needs at least 2 sources")
        return
    ctx.add(node, "residual", {"act": ctx.act(node)}, node.inputs, node.outputs[0])


def is_fc_concat(graph: Graph, node: Node) -> bool:
    """A Concat of vectors read only by Gemms (as their data input): no layer of its own."""
    out = node.outputs[0]
    readers = graph.consumers(out)
    return (node.op_type == "Concat" and node.attrs.get("axis") in (1, -1)
            and graph.value(out).type.rank == 2 and out not in graph.outputs
            and bool(readers) and all(r.op_type == "Gemm" and r.inputs[0] == out
                                      and out not in r.inputs[1:] for r in readers))


@LOWERINGS.register("Concat", emits=("concat",))
def lower_concat(ctx: LoweringContext, node: Node) -> None:
    if any(i in ctx.flattened for i in node.inputs):
        if not is_fc_concat(ctx.graph, node):
            ctx.problem(node, "a Concat of flattened maps read by something other than "
                              "dense layers; Viya flattens only into fc/output layers")
            return
        out = node.outputs[0]
        sources = [name for i in node.inputs for name in ctx.sources_of(i)]
        if len(set(sources)) != len(sources):
            ctx.problem(node, f"a Concat into dense layers reads layer(s) "
                              f"{sorted({s for s in sources if sources.count(s) > 1})} "
                              "more than once; what Viya does with a repeated srcLayer "
                              "is not documented")
            return
        ctx.multi[out] = sources
        ctx.layer_of[out] = sources[0]
        ctx.flattened.add(out)
        return
    rank = ctx.graph.value(node.outputs[0]).type.rank
    if node.attrs.get("axis") != 1 or rank not in (2, 4):
        ctx.problem(node, f"Concat along axis {node.attrs.get('axis')} of a rank-{rank} "
                          "tensor; Viya concatenates channels only")
        return
    ctx.add(node, "concat", {"act": ctx.act(node)}, node.inputs, node.outputs[0])
