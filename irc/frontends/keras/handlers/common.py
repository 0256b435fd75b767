"""What the Keras layer handlers share: the scan context, shapes, activations, ONNX helpers.

A value of the direct route is an ONNX name plus its Keras shape without the batch axis: (H, W, C)
images live in ONNX as N,C,H,W (the one layout change happens at the model input, as tf2onnx's
``inputs_as_nchw`` does), (F,) vectors as N,F. Shapes are computed from the fixed input shape,
not read from Keras, so a model with dynamic input sizes converts at the size given. Weights are
converted to ONNX's layouts; 'same' padding is TensorFlow's: the total
max((ceil(n/s) - 1)·s + k - n, 0), its smaller half before.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from irc.errors import UnsupportedAttribute
from irc.ir.activations import KERAS
from irc.problems import Problems
from irc.refusals import KERAS_ACTIVATION, reason

TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]
RECURRENT = ("SimpleRNN", "LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU", "RNN", "Bidirectional",
             "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "SimpleRNNCell", "LSTMCell", "GRUCell",
             "StackedRNNCells")


# Keras functions besides the activation table's (ir/activations.py KERAS): relu6 and
# leaky_relu (slope 0.2) reach Viya through exact rewrites (legalize_clip, legalize_prelu): two
# batchnorm layers, or relu(x) - a*relu(-x).
REWRITTEN = ("relu6", "leaky_relu")


class ScanContext:
    """What a handler needs besides the layer, and the problems it reports."""

    def __init__(self, output_layers: set[str], allow_lambda: bool, flavor: str,
                 through_tf2onnx: bool = True):
        self.output_layers = output_layers
        self.allow_lambda = allow_lambda
        self.flavor = flavor  # "keras3" or "tf_keras"
        self.through_tf2onnx = through_tf2onnx  # False: irc's direct emitter writes the ONNX
        self.problems = Problems()   # (layer, message); keras/layers.py raises them
        self.layer_name = ""

    def problem(self, message: str) -> None:
        self.problems.add(self.layer_name, message)


@dataclass(frozen=True)
class Value:
    name: str  # the ONNX value
    shape: tuple[int, ...]  # the Keras shape without batch: (H, W, C) or (F,)


def shape_of(layer, which: str):
    """The layer's input or output shape without the batch axis, or None if unknown."""
    try:
        shape = getattr(layer, which).shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, list):  # several tensors
        return None
    shape = tuple(shape)[1:]
    return None if any(d is None for d in shape) else tuple(int(d) for d in shape)


def channels_last(cfg, ctx):
    if cfg.get("data_format") == "channels_first":
        ctx.problem("data_format='channels_first': TensorFlow cannot run it on the CPU, so irc "
                    "cannot prove the conversion; use channels_last")


def no_dilation(cfg, ctx):
    rate = cfg.get("dilation_rate", 1)
    rates = list(rate) if isinstance(rate, (list, tuple)) else [rate]
    if any(int(r) != 1 for r in rates):
        ctx.problem(f"dilation_rate={tuple(rates)}: Viya has no dilated convolution")


def check_activation(activation, layer, ctx) -> None:
    """Refuse activations Viya lacks; softmax only where the layer is a model output."""
    if activation is None:
        return
    if isinstance(activation, dict):  # a serialised function object
        activation = activation.get("config", {}).get("name") or activation.get("class_name")
    name = str(activation)
    if name not in KERAS and name not in REWRITTEN:
        why = reason(KERAS_ACTIVATION, name, "Viya has no such activation")
        ctx.problem(f"activation {name!r}: {why}")
        return
    if name == "softmax":
        softmax_at_output(layer, ctx)


def softmax_at_output(layer, ctx):
    if layer.name not in ctx.output_layers:
        ctx.problem("softmax before the end of the model: Viya applies softmax only in an "
                    "output layer")
        return
    out = shape_of(layer, "output")
    if out is not None and len(out) != 1:
        ctx.problem(f"softmax over a tensor of shape {out}: Viya's output layer applies it to a "
                    "vector; put a Flatten or global pooling before it")


def pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def window(layer_name: str, shape, kernel, strides, padding):
    """(ONNX pads [top, left, bottom, right], output (H, W)) of a Keras 2-D window."""
    (h, w, _), (kh, kw), (sh, sw) = shape, pair(kernel), pair(strides)
    padding = str(padding).lower()
    if padding == "valid":
        out = ((h - kh) // sh + 1, (w - kw) // sw + 1)
        pads = [0, 0, 0, 0]
    elif padding == "same":
        out = (math.ceil(h / sh), math.ceil(w / sw))
        th = max((out[0] - 1) * sh + kh - h, 0)
        tw = max((out[1] - 1) * sw + kw - w, 0)
        pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
    else:
        raise UnsupportedAttribute(f"{layer_name}: padding={padding!r} is not a 2-D padding irc "
                                   "knows (valid, same)")
    if min(out) < 1:
        raise UnsupportedAttribute(f"{layer_name}: a {kh}x{kw} window does not fit the {h}x{w} "
                                   "input", hint="give a larger input shape")
    return pads, out


def activation(e, name: str, value: Value, act) -> Value:
    """``value`` through the Keras activation ``act`` (already checked by the layer scan)."""
    if isinstance(act, dict):
        act = act.get("config", {}).get("name") or act.get("class_name")
    act = str(act or "linear")
    if act == "linear":
        return value
    if act == "relu6":
        return clip(e, f"{name}_{act}", value, 0.0, 6.0)
    if act == "leaky_relu":  # Keras's function form: slope 0.2
        (out,) = e.node("LeakyRelu", [value.name], f"{name}_{act}", alpha=0.2)
        return Value(out, value.shape)
    found = KERAS[act]
    attrs = {"axis": -1} if found.name == "softmax" else \
        {} if found.alpha is None else {"alpha": found.alpha}
    (out,) = e.node(found.onnx_op, [value.name], f"{name}_{act}", **attrs)
    return Value(out, value.shape)


def clip(e, name: str, value: Value, low: float, high: float) -> Value:
    """min(max(x, low), high) as ONNX Clip (irc rewrites it into batchnorm layers exactly)."""
    bounds = [e.const(f"{name}/{k}", np.array(v, np.float32)) for k, v in (("min", low),
                                                                            ("max", high))]
    (out,) = e.node("Clip", [value.name, *bounds], name)
    return Value(out, value.shape)


def layer_weights(layer, cfg, names: list[str]) -> dict[str, np.ndarray]:
    """The layer's weights by role; roles switched off in the config are skipped."""
    arrays = [np.asarray(w, np.float32) for w in layer.get_weights()]
    return dict(zip(names, arrays))

