"""Reshape, Flatten, Identity and Dropout: a Viya reshape layer, or no layer at all.

Flatten is absorbed: Viya's fc/output layers flatten their input (C, H, W order) themselves.
Identity and Dropout compute nothing at inference. Squeeze/Unsqueeze are in unit_axis.py.
"""
from __future__ import annotations

from irc.backends.viya.lowering.context import LoweringContext
from irc.backends.viya.lowering.merge import is_fc_concat
from irc.backends.viya.lowering.registry import LOWERINGS
from irc.ir.graph import Node


@LOWERINGS.register("Reshape", emits=("reshape",))
def lower_reshape(ctx: LoweringContext, node: Node) -> None:
    out = ctx.graph.value(node.outputs[0]).type.shape
    if len(out) != 4:
        ctx.problem(node, f"Reshape to {out}: Viya reshapes to (depth, height, width) only")
        return
    ctx.add(node, "reshape", {"width": out[3], "height": out[2], "depth": out[1],
                              "act": "identity"}, [node.inputs[0]], node.outputs[0])


@LOWERINGS.register("Flatten")
def lower_flatten(ctx: LoweringContext, node: Node) -> None:
    """No layer: fc/output layers flatten their input (C,H,W order) themselves."""
    x, out = node.inputs[0], node.outputs[0]
    bad = [c for c in ctx.graph.consumers(out)
           if c.op_type not in ("Gemm", "Softmax") and not is_fc_concat(ctx.graph, c)]
    if bad:
        ctx.problem(node, f"the flattened tensor is read by {bad[0].op_type} "
                          f"({bad[0].name}); Viya flattens only into fc/output layers")
        return
    ctx.alias(out, x)
    ctx.flattened.add(out)


@LOWERINGS.register("Identity", "Dropout")
def lower_no_op(ctx: LoweringContext, node: Node) -> None:
    ctx.alias(node.outputs[0], node.inputs[0])  # computes nothing at inference
