"""Lowering of unit axes: 1-D layers as height-1 2-D layers, and the refusal of an op no Viya
layer computes.

The ONNX frontend writes a 1-D layer over (N, C, L) as the 2-D layer over (N, C, 1, L) between
``Unsqueeze(axis 2)`` and ``Squeeze(axis 2)`` (irc/frontends/onnx/one_d_layers.py). Neither
moves a value: the layer computing the height-1 tensor computes the rank-3 one too, in the same
order (C, then L). So a Squeeze or Unsqueeze is an alias of its input's layer wherever its
readers see that order: a rank-4 result with the layer's own (C, H, W), or a result read only by
what flattens it (fc/output layers, a Flatten/Reshape, the graph output).
"""
from __future__ import annotations

from irc.backends.viya.lowering.registry import LOWERINGS
from irc.ir.graph import Graph, Node
from irc.ir.ops import RECURRENT_OPS
from irc.refusals import BETWEEN_LAYERS, reason

UNIT_AXIS_OPS = ("Squeeze", "Unsqueeze")
FLATTENING_READERS = ("Flatten", "Reshape", "Gemm", "Squeeze", "Unsqueeze", "Identity",
                      "Dropout")
NOTE_1D = ("1-D layers: the input (N, C, L) is Viya's input layer nchannels C, height 1, width L "
           "(or height L, width 1 where the source unsqueezes the last axis); each 1-D "
           "convolution, pooling or batchnorm is the 2-D layer with a height-1 window (kernel "
           "1 x k, stride 1 x s, padding 0 x p) on C x 1 x L maps")


def image_of_1d_input(graph: Graph, value: str) -> tuple[int, int, int] | None:
    """The (C, H, W) a rank-3 graph input (N, C, L) is read as, where it is read only by
    Unsqueezes giving one height-1 (C, 1, L) or width-1 (C, L, 1) map; else None."""
    readers = graph.consumers(value)
    c, length = graph.value(value).type.shape[1:]
    shapes = {tuple(graph.value(r.outputs[0]).type.shape[1:]) for r in readers
              if r.op_type == "Unsqueeze"}
    if not readers or value in graph.outputs or len(shapes) != 1 \
            or any(r.op_type != "Unsqueeze" for r in readers):
        return None
    (shape,) = shapes
    return shape if shape in ((c, 1, length), (c, length, 1)) else None


def recurrent_model(graph: Graph) -> bool:
    return any(n.op_type in RECURRENT_OPS for n in graph.nodes())


def not_a_sequence_message(graph: Graph, value: str) -> str:
    a, b = graph.value(value).type.shape[1:]
    readers = sorted({f"{r.op_type} ({r.name})" for r in graph.consumers(value)})
    return (f"input {value!r} has shape (N, {a}, {b}) and no recurrent layer reads it (read by "
            f"{', '.join(readers) or 'nothing'}): Viya takes a 3-D input as a sequence (N, T, d) "
            "into recurrent layers, or as (N, C, L) into 1-D convolution, pooling or batchnorm "
            "layers; export the model with a 4-D image input (N, C, H, W) or a flat (N, d) one")


@LOWERINGS.register(*UNIT_AXIS_OPS)
def lower_unit_axis(ctx, node: Node) -> None:
    """Squeeze/Unsqueeze as an alias of the layer computing its input (see the module doc)."""
    graph = ctx.graph
    x, out = node.inputs[0], node.outputs[0]
    out_shape = graph.value(out).type.shape[1:]
    sources = ctx.sources_of(x)
    layer_shape = None
    if len(sources) == 1:
        layer_shape = ctx.model.layer(sources[0]).out_shape
    if len(out_shape) == 3 and tuple(out_shape) == tuple(layer_shape or ()):
        ctx.alias(out, x)
        return
    bad = [r for r in graph.consumers(out) if r.op_type not in FLATTENING_READERS]
    if not bad and x not in ctx.flattened:
        ctx.alias(out, x)
        return
    what = f"{bad[0].op_type} ({bad[0].name})" if bad else "a flattened value"
    ctx.problem(node, f"{node.op_type} of {_shape(graph, x)} -> {_shape(graph, out)} read by "
                      f"{what}: Viya has no layer that removes or adds an axis, and this reader "
                      "needs the new shape; change this part of the source model")


def _shape(graph: Graph, value: str) -> str:
    return "x".join(str(d) for d in graph.value(value).type.shape[1:]) or "scalar"


def no_layer_message(graph: Graph, node: Node) -> str:
    """The refusal of an op no Viya layer computes: the op, its shapes, what Viya lacks, what the
    user can do (the reasons irc's rewrites did not apply are appended by ``problem``)."""
    computed = [i for i in node.inputs if i and not graph.is_const(i)]
    where = f"{', '.join(_shape(graph, i) for i in computed) or 'constants'} -> " \
            f"{', '.join(_shape(graph, o) for o in node.outputs if o)} (per example)"
    # what Viya lacks for an op left between layers (the rewrites that absorb it did not apply)
    lacks = reason(BETWEEN_LAYERS, node.op_type,
                   f"Viya has no layer computing {node.op_type} on its own")
    return (f"{node.op_type} of {where}: {lacks}; change this part of the source model (or "
            "compute it outside the Viya model)")
