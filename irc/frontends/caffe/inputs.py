"""Input handlers: how a Caffe net declares its input (Input, Data, MemoryData layers; the
top-level ``input`` + ``input_dim``/``input_shape`` fields are read by the converter)."""
from __future__ import annotations

from irc.frontends.caffe.registry import CAFFE_LAYERS as reg
from irc.frontends.caffe.registry import LABEL
from irc.frontends.caffe.geometry import input_override


def declared_input_shape(cv, top: str, declared) -> tuple | None:
    """The input's full shape (batch first): as declared, or as the caller's input_shape says."""
    declared = tuple(int(d) for d in declared) if declared else None
    shape = input_override(cv, top, declared)
    if shape is None:
        shape = declared
    if shape is None:
        return None
    if len(shape) < 2 or any(d <= 0 for d in shape[1:]):
        cv.problem(f"input {top!r} has shape {list(shape)}; irc needs (N, C, H, W) or (N, D) "
                   "with positive sizes")
        return None
    return shape


def _preprocessing_warning(cv, layer) -> None:
    t = layer.param("transform_param")
    d = layer.param("data_param")
    found = []
    if t.scale != 1 or d.scale != 1:
        found.append(f"scale={t.scale if t.scale != 1 else d.scale:g}")
    if len(t.mean_value):
        found.append(f"mean_value={list(t.mean_value)}")
    if t.mean_file or d.mean_file:
        found.append(f"mean_file={t.mean_file or d.mean_file!r}")
    if t.crop_size or d.crop_size:
        found.append(f"crop_size={t.crop_size or d.crop_size}")
    if found:
        cv.warn(f"preprocessing {', '.join(found)} happens before the net and is not part of "
                "the conversion: give it to Viya as input options (scale/offsets)")


@reg.register("Input")
def input_layer(cv, i):
    """Input -> a graph input (input_param.shape: one per top, or one shared)."""
    layer = cv.net.layers[i]
    shapes = [tuple(s.dim) for s in layer.param("input_param").shape]
    for k, (top, t) in enumerate(zip(layer.tops, cv.layer_out[i])):
        declared = shapes[k] if len(shapes) == len(layer.tops) else \
            (shapes[0] if len(shapes) == 1 else None)
        shape = declared_input_shape(cv, top, declared)
        if shape is None and declared is None:
            cv.problem(f"input {top!r} has no shape; pass input_shape=(C, H, W)")
        if shape is not None:
            cv.declare_input(t, shape)


@reg.register("Data")
def data_layer(cv, i):
    """Data -> a graph input shaped by input_shape=(C, H, W) (the database is not read)."""
    layer = cv.net.layers[i]
    _preprocessing_warning(cv, layer)
    shape = declared_input_shape(cv, layer.tops[0], None)
    if shape is None:
        cv.problem("a Data layer takes its image size from its database; pass "
                   "input_shape=(C, H, W)")
    else:
        cv.declare_input(cv.layer_out[i][0], shape)
    for t in cv.layer_out[i][1:]:
        cv.define(t, LABEL)


@reg.register("MemoryData")
def memory_data_layer(cv, i):
    """MemoryData -> a graph input of (batch_size, channels, height, width)."""
    layer = cv.net.layers[i]
    _preprocessing_warning(cv, layer)
    p = layer.param("memory_data_param")
    declared = (max(p.batch_size, 1), p.channels, p.height, p.width)
    shape = declared_input_shape(cv, layer.tops[0], declared)
    if shape is not None:
        cv.declare_input(cv.layer_out[i][0], shape)
    for t in cv.layer_out[i][1:]:
        cv.define(t, LABEL)
