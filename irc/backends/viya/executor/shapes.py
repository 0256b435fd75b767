"""Static shapes of a model read from disk: each layer's output and each weight's shape.

Computed before anything runs, from the layer options: each kind's ``output_shape`` and
``weight_shapes`` facets (irc/backends/viya/kinds/); sequences (recurrent layers, fc per time
step) are rnn.py's. A kind irc does not compute is refused with the reason its entry gives.
"""
from __future__ import annotations

from irc.backends.viya import schema
from irc.errors import InvalidModel, IrcError, UnsupportedOp

from . import rnn
from .options import ExecutorOptions


def output_shape(layer, src_shapes: list, options) -> tuple:
    """Per-example output shape of ``layer`` ((C, H, W) or (n,)) from its sources' shapes.

    Raises InvalidModel for inconsistent layers and UnsupportedOp for kinds not computed.
    """
    kind = schema.KINDS.get(layer.type)
    if kind is None:
        raise UnsupportedOp(f"layer type {layer.type!r} is not a Viya layer kind the executor "
                            "knows", node=layer.name)
    if kind.scope != schema.IN:
        raise UnsupportedOp(f"{kind.name} layers are not supported by the executor yet "
                            f"({kind.why})", node=layer.name)
    if layer.type == "recurrent" or any(rnn.is_sequence(s) for s in src_shapes):
        # sequences: (T, n) per example (viya-semantics.md §13)
        return rnn.output_shape(layer, src_shapes)
    if layer.type != "input" and not src_shapes:
        raise InvalidModel(f"{layer.type} layer has no srcLayers", node=layer.name)
    return kind.output_shape(layer, src_shapes, options)


def infer_shapes(model, options: ExecutorOptions | None = None) -> dict:
    """Per-example output shape of every layer, (C, H, W) or (n,), under ``options``."""
    options = options or ExecutorOptions()
    shapes = {}
    for layer in model.layers:
        try:
            shapes[layer.name] = output_shape(
                layer, [shapes[s] for s in layer.src_layers], options)
        except IrcError as err:
            err.file = err.file or str(model.model_path)
            raise
    return shapes


def expected_weight_shapes(model, options: ExecutorOptions | None = None) -> dict:
    """{layer: {param: shape}} in canonical dataset order (viya-target.md §5.3)."""
    shapes = infer_shapes(model, options)
    expected = {}
    for layer in model.layers:
        src = [shapes[s] for s in layer.src_layers]
        if layer.type == "recurrent" or any(rnn.is_sequence(s) for s in src):
            if layer.type == "recurrent" or layer.type == "fc" or layer.options["fullconnect"]:
                expected[layer.name] = rnn.weight_shapes(layer, src, options)
            continue
        params = schema.KINDS[layer.type].weight_shapes(layer, src, options)
        if params:
            expected[layer.name] = params
    return expected
