"""Keras -> ONNX through tf2onnx, and Keras itself as the oracle for verification.

Keras 3 models go through ``tf2onnx.convert.from_function`` on a ``tf.function`` calling
``model(x, training=False)`` (``from_keras`` fails on Keras 3); tf-keras models through
``from_keras``. Both with ``inputs_as_nchw``, so the one NHWC -> NCHW change happens at the
input; :mod:`onnx_cleanup` then removes what irc cannot take.
"""
from __future__ import annotations

import logging

import numpy as np
import onnx

from irc.errors import InputShapeNeeded, UnsupportedAttribute, UnsupportedOp
from irc.frontends.keras import layers as keras_layers
from irc.frontends.keras import direct, recurrent, recurrent_emit
from irc.frontends.keras.model_graph import all_layers, model_tensors
from irc.frontends.keras.model_io import input_name, output_names
from irc.frontends.keras.loading import KerasSource, load
from irc.frontends.keras.onnx_cleanup import clean
from irc.frontends.keras.runtime import native_stderr_silenced, tf_modules
from irc.ir.opset import OPSET
from irc.progress import report

ROUTES = ("auto", "direct", "tf2onnx")


def _input_dims(model, input_shape, label: str) -> tuple[int, ...]:
    """The input shape without batch, channels last, every dimension fixed.

    ``input_shape``: the Keras shape without batch (H, W, C), or with batch in irc's N,C,H,W
    layout (as ``irc compile --input-shape``).
    """
    (tensor,) = model_tensors(model, "inputs")[:1]
    shape = tuple(None if d is None else int(d) for d in tuple(tensor.shape)[1:])
    if isinstance(input_shape, dict):  # --input-shape NAME:dims; a Keras model has one input
        if len(input_shape) != 1:
            raise UnsupportedAttribute("a Keras model takes one --input-shape", file=label)
        (input_shape,) = input_shape.values()
    if input_shape is not None:
        given = tuple(int(d) for d in input_shape)
        if len(given) == len(shape) + 1:
            given = given[1:]
            if len(given) == 3:
                given = (given[1], given[2], given[0])  # C,H,W -> H,W,C
        if len(given) != len(shape) or any(m is not None and m != d for m, d in zip(shape, given)):
            raise UnsupportedAttribute(f"input_shape {tuple(input_shape)} does not fit the model "
                                       f"input (None, {', '.join(str(d) for d in shape)}) "
                                       "(channels last)", file=label,
                                       hint="give (H, W, C), or (N, C, H, W) as for ONNX models")
        shape = given
    if len(shape) not in (1, 3):
        raise UnsupportedAttribute(f"model input of shape {shape}: Viya takes (H, W, C) images or "
                                   "feature vectors", file=label)
    if any(d is None for d in shape):
        raise InputShapeNeeded(f"the model input has dynamic dimensions {shape}", file=label,
                               hint="give input_shape=(H, W, C): Viya layers have fixed sizes")
    return shape


def to_onnx(src: KerasSource, input_shape=None, allow_lambda: bool = False,
            route: str = "auto") -> onnx.ModelProto:
    """Scan, convert (irc's direct emitter, else tf2onnx) and clean up (see the module
    docstring). ``route``: "auto", "direct" (refuse what the direct emitter lacks) or
    "tf2onnx"."""
    model = src.model
    if route not in ROUTES:
        raise UnsupportedAttribute(f"Keras route {route!r} is not one of {', '.join(ROUTES)}",
                                   file=src.label)
    if recurrent.has_recurrent(model):  # tf2onnx makes Loops of GRU/SimpleRNN: emit directly
        return recurrent_emit.to_onnx(src, input_shape)
    reason = direct.why_not(model) if route != "tf2onnx" else "tf2onnx asked for"
    keras_layers.scan(model, allow_lambda, src.label, src.flavor,
                      through_tf2onnx=reason is not None)
    if reason is not None and route == "direct":
        raise UnsupportedOp(f"the direct Keras route cannot convert this model: {reason}",
                            file=src.label, hint="let tf2onnx convert it: --keras-route auto "
                                                 "(route='auto' in Python)")
    dims = _input_dims(model, input_shape, src.label)
    names = output_names(model)
    if reason is None:
        report(f"writing ONNX for {len(all_layers(model))} Keras layers")
        proto = direct.to_onnx(model, dims, input_name(model), src.label, src.flavor)
        return clean(proto, names, src.label)
    report(f"converting with tf2onnx ({reason}; slow for big models)")
    return _layer_scoped_names(clean(_tf2onnx(src, dims, names), names, src.label))


def _tf2onnx(src: KerasSource, dims: tuple[int, ...], names: list[str]) -> onnx.ModelProto:
    model = src.model
    mods = tf_modules()
    tf, tf2onnx = mods.tf, mods.tf2onnx
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    name = "input"
    spec = (tf.TensorSpec((None,) + dims, tf.float32, name=name),)
    nchw = [name] if len(dims) == 3 else None
    try:
        with native_stderr_silenced():  # grappler's C++ log lines
            if src.flavor == "tf_keras":
                proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec,
                                                      opset=OPSET, inputs_as_nchw=nchw)
            else:
                function = tf.function(lambda x: model(x, training=False),
                                       input_signature=spec)
                proto, _ = tf2onnx.convert.from_function(function, input_signature=spec,
                                                         opset=OPSET, inputs_as_nchw=nchw)
    except Exception as exc:  # tf2onnx raises many types for graphs it cannot convert
        raise UnsupportedOp(f"tf2onnx could not convert the model: {type(exc).__name__}: {exc}",
                            file=src.label, hint="a Lambda layer may use TensorFlow ops tf2onnx "
                                                 "lacks") from None
    if len(proto.graph.output) != len(names):
        raise UnsupportedOp(f"tf2onnx produced {len(proto.graph.output)} outputs for the model's "
                            f"{len(names)}", file=src.label)
    _rename_input(proto, input_name(model))
    proto.graph.name = model.name
    proto.producer_name = f"irc keras frontend ({src.flavor}) via tf2onnx"
    return proto


def _layer_scoped_names(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Name nodes after their Keras layer scope: tf2onnx's ``functional_1/dense_1/MatMul``
    becomes ``dense_1`` (Viya layer names are made from node names)."""
    used: dict[str, int] = {}
    for node in proto.graph.node:
        parts = [p for p in node.name.split("/") if p]
        base = parts[1] if len(parts) >= 3 else node.name
        used[base] = used.get(base, 0) + 1
        node.name = base if used[base] == 1 else f"{base}_{used[base]}"  # ONNX names are unique
    return proto


def _rename_input(proto: onnx.ModelProto, new: str) -> None:
    (inp,) = [i for i in proto.graph.input
              if i.name not in {t.name for t in proto.graph.initializer}][:1]
    old = inp.name
    if new == old or any(new in n.output for n in proto.graph.node):
        return
    inp.name = new
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def run(source, x_nchw, allow_lambda: bool = False,
        float64: bool = False) -> dict[str, np.ndarray]:
    """Keras's own outputs for the N,C,H,W batch ``x_nchw``, keyed by ONNX output name.

    The input goes to the model channels last; 4-D outputs come back N,C,H,W, as the converted
    graph (and Viya) computes them. ``float64``: :func:`float64_model` computes them.
    """
    src = source if isinstance(source, KerasSource) else load(source, allow_lambda)
    if isinstance(src.model, recurrent.SequenceModel):  # a Keras 2 CuDNN file: its equivalent
        src = KerasSource(recurrent.keras_equivalent(src.model), "keras3", src.label)
    x = np.asarray(x_nchw, np.float64 if float64 else np.float32)
    if x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    tf = tf_modules().tf
    model = float64_model(src.model) if float64 else src.model
    outs = tf.nest.flatten(model(x, training=False))  # the order tf2onnx gives outputs
    result = {}
    for name, out in zip(output_names(src.model), outs):
        array = np.asarray(out.numpy() if hasattr(out, "numpy") else out)
        result[name] = array.transpose(0, 3, 1, 2) if array.ndim == 4 else array
    return result


def float64_model(model):
    """``model`` rebuilt from its config with every float32 dtype (layer policies, inputs) set to
    float64, and its weights copied: the same function computed in float64."""
    config = _float64_config(model.get_config())
    clone = type(model).from_config(config)
    clone.set_weights([np.asarray(w, np.float64) if np.asarray(w).dtype == np.float32
                       else np.asarray(w) for w in model.get_weights()])
    return clone


def _float64_config(value):
    if isinstance(value, dict):
        out = {k: _float64_config(v) for k, v in value.items()}
        if out.get("dtype") == "float32":  # tf-keras layers and InputLayers
            out["dtype"] = "float64"
        if out.get("class_name") == "DTypePolicy" and isinstance(out.get("config"), dict) and \
                out["config"].get("name") == "float32":  # Keras 3 layers
            out["config"] = {**out["config"], "name": "float64"}
        return out
    if isinstance(value, list):
        return [_float64_config(v) for v in value]
    return value
