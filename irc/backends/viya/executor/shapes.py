"""Static shapes of a model read from disk: each layer's output and each weight's shape.

Computed before anything runs, from the layer options and the geometry rules of
viya-semantics.md (kernels.axis_geometry); sequences (recurrent layers, fc per time step) are
rnn.py's. Which kinds exist and which are refused is the vocabulary's (schema.py).
"""
from __future__ import annotations

import math

from irc.backends.viya import schema
from irc.errors import InvalidModel, IrcError, UnsupportedOp

from . import rnn
from .kernels import spatial_geometry
from .options import ExecutorOptions


def output_shape(layer, src_shapes: list, options) -> tuple:
    """Per-example output shape of ``layer`` ((C, H, W) or (n,)) from its sources' shapes.

    Raises InvalidModel for inconsistent layers and UnsupportedOp for kinds not implemented.
    """
    kind, opts, name = layer.type, layer.options, layer.name

    def bad(message):
        return InvalidModel(message, node=name)

    if kind in UNSUPPORTED_KINDS:
        raise UnsupportedOp(UNSUPPORTED_KINDS[kind], node=name)
    if kind == "recurrent" or any(len(s) == 2 for s in src_shapes):
        # sequences: (T, n) per example (viya-semantics.md §13)
        return rnn.output_shape(layer, src_shapes)
    if kind == "input":
        return (opts["nchannels"], opts["height"], opts["width"])
    if kind not in SHAPE_KINDS:
        raise UnsupportedOp(f"layer type {kind!r} is not supported by the executor", node=name)
    if not src_shapes:
        raise bad(f"{kind} layer has no srcLayers")
    images = [s for s in src_shapes if len(s) == 3]
    if kind in ("convo", "groupconvo", "pool", "batchnorm") and len(src_shapes) != 1:
        raise bad(f"{kind} layer needs exactly one source, got {len(src_shapes)}")
    if kind in ("convo", "groupconvo", "pool"):
        if len(images) != 1:
            raise bad(f"{kind} layer needs a (C, H, W) source, got a vector")
        c, h, w = images[0]
        if kind == "pool" and opts["height"] == 0 and opts["width"] == 0:
            return (c, 1, 1)
        geo = spatial_geometry(opts, h, w, kind == "pool", options)
        if geo[0][3] < 1 or geo[1][3] < 1:
            raise bad(f"a {opts['height']}x{opts['width']} window does not fit the "
                      f"{h}x{w} input with this padding")
        if kind == "pool":
            return (c, geo[0][3], geo[1][3])
        groups = opts["ngroups"]
        if c % groups or opts["nfilters"] % groups:
            raise bad(f"ngroups={groups} must divide the input channels ({c}) and nfilters "
                      f"({opts['nfilters']})")
        return (opts["nfilters"], geo[0][3], geo[1][3])
    if kind in ("fc", "output"):
        total = sum(math.prod(s) for s in src_shapes)
        if kind == "output" and not opts["fullconnect"]:
            if opts["n"] not in (0, total):
                raise bad(f"output layer without fullconnect has n={opts['n']} but receives "
                          f"{total} values")
            return (total,)
        if opts["n"] < 1:
            raise bad(f"{kind} layer has n={opts['n']}; the executor needs the neuron count")
        return (opts["n"],)
    if kind == "batchnorm":
        return tuple(src_shapes[0])
    if kind == "residual":
        if any(tuple(s) != tuple(src_shapes[0]) for s in src_shapes):
            raise bad(f"residual sources must have identical shapes, got {list(src_shapes)}")
        return tuple(src_shapes[0])
    if kind == "concat":
        if len(images) == len(src_shapes):
            if len({s[1:] for s in images}) != 1:
                raise bad(f"concat sources must have equal H x W, got {images}")
            return (sum(s[0] for s in images), images[0][1], images[0][2])
        if images:
            raise bad(f"concat cannot join images and vectors, got {list(src_shapes)}")
        return (sum(s[0] for s in src_shapes),)
    # reshape
    target = (opts["depth"], opts["height"], opts["width"])
    if math.prod(target) != sum(math.prod(s) for s in src_shapes) or len(src_shapes) != 1:
        raise bad(f"reshape to {target} does not match its source {list(src_shapes)}")
    return target


# Kind lists come from the vocabulary (irc.backends.viya.schema); the computation above does not.
SHAPE_KINDS = tuple(k for k in schema.kinds(schema.IN) if k not in ("input", "recurrent"))
UNSUPPORTED_KINDS = {  # kinds whose semantics are an open point: refused with the reason
    k.name: f"{k.name} layers are not supported by the executor yet ({k.why})"
    for k in schema.KINDS.values() if k.scope == schema.OPEN}


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
        opts, src = layer.options, [shapes[s] for s in layer.src_layers]
        if layer.type == "recurrent" or any(len(s) == 2 for s in src):
            if layer.type == "recurrent" or layer.type == "fc" or opts["fullconnect"]:
                expected[layer.name] = rnn.weight_shapes(layer, src, options)
            continue
        if layer.type in ("convo", "groupconvo"):
            params = {"kernel": (opts["nfilters"], src[0][0] // opts["ngroups"],
                                 opts["height"], opts["width"])}
            n_out = opts["nfilters"]
        elif layer.type == "fc" or (layer.type == "output" and opts["fullconnect"]):
            params = {"kernel": (opts["n"], sum(math.prod(s) for s in src))}
            n_out = opts["n"]
        elif layer.type == "batchnorm":
            channels = src[0][0]
            expected[layer.name] = {p: (channels,) for p in BN_PARAMS}
            continue
        else:
            continue
        if opts["include_bias"]:
            params["bias"] = (n_out,)
        expected[layer.name] = params
    return expected


BN_PARAMS = schema.weight_order("batchnorm")
