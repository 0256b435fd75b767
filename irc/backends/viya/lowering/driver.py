"""lower(): the optimised IR graph to a :class:`ViyaModel`, or one error naming every node
Viya cannot compute.

The driver lowers the graph input, then walks the nodes in topological order and calls the
handler registered for each op (registry.py), chosen by what the node reads: the recurrent
ops whatever they read, a recurrent final state, a per-time-step sequence, or ordinary
tensors. Problems are collected, not raised, so the error lists them all; nothing is written
when lowering fails.
"""
from __future__ import annotations

from irc.backends.viya.channel_order import read_rgb_as_bgr
from irc.backends.viya.lowering import recurrent, unit_axis
from irc.backends.viya.lowering.catalog import LOWERINGS   # every handler and hook, registered
from irc.backends.viya.lowering.context import LoweringContext
from irc.backends.viya.lowering.inputs import lower_input
from irc.backends.viya.lowering.registry import ANY, SEQUENCE, STATE, TENSOR
from irc.backends.viya.model import ViyaModel
from irc.backends.viya.names import sanitize
from irc.errors import ViyaCannotExpress
from irc.input_spec import InputSpec
from irc.ir.graph import Graph, Node


def lower(graph: Graph, name: str | None = None, input_spec: InputSpec | dict | None = None,
          label: str = "", refusals=(), *, input_options: InputSpec | dict | None = None
          ) -> ViyaModel:
    """The Viya model of an optimised IR graph, or :class:`ViyaCannotExpress` listing why not.

    ``input_spec``: the input preprocessing (an :class:`InputSpec`; a dict of its fields, also
    accepted as ``input_options``, is converted once). ``refusals``: (pass, node, reason)
    triples from the passes, appended to the problems of the nodes they name.
    """
    spec = InputSpec.of(input_spec if input_spec is not None else input_options)
    ctx = LoweringContext(graph, sanitize(name or graph.name, "model"), spec, refusals)
    if len(graph.inputs) != 1:
        raise ViyaCannotExpress(f"the model has {len(graph.inputs)} inputs; a Viya CNN has one "
                                "input layer", file=label or None,
                                hint="export the model with a single image input")
    for value in graph.inputs:
        lower_input(ctx, value)
    for hook in LOWERINGS.hooks("before"):
        hook(ctx)
    for node in graph.nodes():
        if node.name in ctx.claimed:
            continue  # lowered as part of a per-time-step dense layer
        handler, reads = _handler(ctx, node)
        if reads == TENSOR and not all(ctx.computed(i) for i in node.inputs):
            if not ctx.problems:
                ctx.problem(node, "reads a value no Viya layer computes")
            continue  # an earlier problem already reported; don't cascade
        handler(ctx, node)
    for hook in LOWERINGS.hooks("after"):   # sequence outputs, detection heads, output layers
        hook(ctx)
    if spec.channel_order == "rgb" and not ctx.problems:
        for text in read_rgb_as_bgr(ctx.model):
            ctx.problems.add(None, text)
    ctx.problems.raise_if_any(
        ViyaCannotExpress, f"{len(ctx.problems)} node(s) cannot become Viya layers:\n  ",
        sep="\n  ", file=label or None, name_node=False,
        hint="Viya would compute something else for these; change them in the source model "
             "(see `irc inspect MODEL` for the graph irc sees)")
    ctx.model.source = label
    return ctx.model


def _handler(ctx: LoweringContext, node: Node):
    """(the function lowering ``node``, what it reads)."""
    op = node.op_type
    found = LOWERINGS.get(op, ANY)
    if found is not None:
        return found, ANY
    if node.inputs and node.inputs[0] in ctx.states and LOWERINGS.get(op, STATE):
        return LOWERINGS.get(op, STATE), STATE
    if any(i in ctx.seq for i in node.inputs):
        return LOWERINGS.get(op, SEQUENCE) or recurrent.not_per_step, SEQUENCE
    return LOWERINGS.get(op, TENSOR) or _no_layer, TENSOR


def _no_layer(ctx: LoweringContext, node: Node) -> None:
    ctx.problem(node, unit_axis.no_layer_message(ctx.graph, node))
