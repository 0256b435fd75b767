"""ONNX for one Keras layer at a time: the handlers of irc's direct (tf2onnx-free) route.

Each handler gets the emitter, the layer, its config and its input values, and returns its
output values. A value is an ONNX name plus its Keras shape without the batch axis: (H, W, C)
images live in ONNX as N,C,H,W (the one layout change happens at the model input, as tf2onnx's
``inputs_as_nchw`` does), (F,) vectors as N,F. Shapes are computed here from the fixed input
shape, not read from Keras, so a model with dynamic input sizes converts at the size given.

Weights are converted to ONNX's layouts: a Conv2D kernel (kH, kW, Cin, Cout) becomes
(Cout, Cin, kH, kW); a depthwise kernel (kH, kW, C, M) becomes (C·M, 1, kH, kW) with output
channel c·M + m, as Keras orders them. 'same' padding is TensorFlow's: the total
max((ceil(n/s) - 1)·s + k - n, 0), its smaller half before.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from irc.errors import UnsupportedAttribute
from irc.frontends.registry import HandlerRegistry

DIRECT_LAYERS = HandlerRegistry("Keras (direct)")
TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]
ONNX_ACTIVATION = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu",
                   "softplus": "Softplus", "softmax": "Softmax"}


@dataclass(frozen=True)
class Value:
    name: str  # the ONNX value
    shape: tuple[int, ...]  # the Keras shape without batch: (H, W, C) or (F,)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def window(layer_name: str, shape, kernel, strides, padding):
    """(ONNX pads [top, left, bottom, right], output (H, W)) of a Keras 2-D window."""
    (h, w, _), (kh, kw), (sh, sw) = shape, _pair(kernel), _pair(strides)
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
    attrs = {"axis": -1} if act == "softmax" else {"alpha": 1.0} if act == "elu" else {}
    (out,) = e.node(ONNX_ACTIVATION[act], [value.name], f"{name}_{act}", **attrs)
    return Value(out, value.shape)


def clip(e, name: str, value: Value, low: float, high: float) -> Value:
    """min(max(x, low), high) as ONNX Clip (irc rewrites it into batchnorm layers exactly)."""
    bounds = [e.const(f"{name}/{k}", np.array(v, np.float32)) for k, v in (("min", low),
                                                                            ("max", high))]
    (out,) = e.node("Clip", [value.name, *bounds], name)
    return Value(out, value.shape)


def _conv(e, layer, x: Value, kernel_onnx, bias, strides, padding, group: int,
          name: str | None = None) -> Value:
    name = name or layer.name
    cout, _, kh, kw = kernel_onnx.shape
    pads, (oh, ow) = window(layer.name, x.shape, (kh, kw), strides, padding)
    inputs = [x.name, e.weight(layer, f"{name}/kernel", kernel_onnx)]
    if bias is not None:
        inputs.append(e.weight(layer, f"{name}/bias", bias))
    (out,) = e.node("Conv", inputs, name, kernel_shape=[kh, kw], strides=list(_pair(strides)),
                    pads=pads, group=group)
    return Value(out, (oh, ow, cout))


def _weights(layer, cfg, names: list[str]) -> dict[str, np.ndarray]:
    """The layer's weights by role; roles switched off in the config are skipped."""
    arrays = [np.asarray(w, np.float32) for w in layer.get_weights()]
    return dict(zip(names, arrays))


# ---- handlers --------------------------------------------------------------------------------


@DIRECT_LAYERS.register("Conv2D")
def conv2d(e, layer, cfg, inputs):
    """Conv2D -> Conv (kernel to Cout,Cin,kH,kW), then its activation."""
    w = _weights(layer, cfg, ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"])
    groups = int(cfg.get("groups", 1) or 1)
    y = _conv(e, layer, inputs[0], w["kernel"].transpose(3, 2, 0, 1), w.get("bias"),
              cfg.get("strides", 1), cfg.get("padding", "valid"), groups)
    return [activation(e, layer.name, y, cfg.get("activation"))]


@DIRECT_LAYERS.register("DepthwiseConv2D")
def depthwise_conv2d(e, layer, cfg, inputs):
    """DepthwiseConv2D -> Conv with one group per input channel."""
    names = ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"]
    w = _weights(layer, cfg, names)
    kh, kw, c, m = w["kernel"].shape
    kernel = w["kernel"].transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    y = _conv(e, layer, inputs[0], kernel, w.get("bias"), cfg.get("strides", 1),
              cfg.get("padding", "valid"), c)
    return [activation(e, layer.name, y, cfg.get("activation"))]


@DIRECT_LAYERS.register("SeparableConv2D")
def separable_conv2d(e, layer, cfg, inputs):
    """SeparableConv2D -> a depthwise Conv, then a 1x1 Conv with the bias and activation."""
    names = ["depthwise", "pointwise"] + (["bias"] if cfg.get("use_bias", True) else [])
    w = _weights(layer, cfg, names)
    kh, kw, c, m = w["depthwise"].shape
    depthwise = w["depthwise"].transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    mid = _conv(e, layer, inputs[0], depthwise, None, cfg.get("strides", 1),
                cfg.get("padding", "valid"), c, name=f"{layer.name}_depthwise")
    y = _conv(e, layer, mid, w["pointwise"].transpose(3, 2, 0, 1), w.get("bias"), 1, "valid", 1)
    return [activation(e, layer.name, y, cfg.get("activation"))]


@DIRECT_LAYERS.register("Dense")
def dense(e, layer, cfg, inputs):
    """Dense on a vector -> Gemm with transB=1 (kernel as Out x In, the layout irc's passes
    and Viya keep, so no pass copies it again), then its activation."""
    w = _weights(layer, cfg, ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"])
    args = [inputs[0].name, e.weight(layer, f"{layer.name}/kernel", w["kernel"].T)]
    if "bias" in w:
        args.append(e.weight(layer, f"{layer.name}/bias", w["bias"]))
    (out,) = e.node("Gemm", args, layer.name, transB=1)
    return [activation(e, layer.name, Value(out, (w["kernel"].shape[1],)), cfg.get("activation"))]


@DIRECT_LAYERS.register("BatchNormalization")
def batch_normalization(e, layer, cfg, inputs):
    """BatchNormalization (inference) -> BatchNormalization over the channel axis."""
    names = (["gamma"] if cfg.get("scale", True) else []) + \
        (["beta"] if cfg.get("center", True) else []) + ["mean", "variance"]
    w = _weights(layer, cfg, names)
    channels = w["mean"].shape[0]
    args = [inputs[0].name]
    for role, default in (("gamma", 1.0), ("beta", 0.0), ("mean", None), ("variance", None)):
        array = w.get(role, np.full(channels, default, np.float32))
        args.append(e.weight(layer, f"{layer.name}/{role}", array))
    (out,) = e.node("BatchNormalization", args, layer.name,
                    epsilon=float(cfg.get("epsilon", 1e-3)))
    return [Value(out, inputs[0].shape)]


@DIRECT_LAYERS.register("Activation")
def activation_layer(e, layer, cfg, inputs):
    """Activation -> the ONNX activation op."""
    return [activation(e, layer.name, inputs[0], cfg.get("activation"))]


@DIRECT_LAYERS.register("ReLU")
def relu(e, layer, cfg, inputs):
    """ReLU -> Relu; with max_value, Clip(0, max_value); with a negative slope, LeakyRelu."""
    x, slope = inputs[0], float(cfg.get("negative_slope", 0.0) or 0.0)
    if cfg.get("max_value") is not None:
        return [clip(e, layer.name, x, 0.0, float(cfg["max_value"]))]
    if slope:
        (out,) = e.node("LeakyRelu", [x.name], layer.name, alpha=slope)
        return [Value(out, x.shape)]
    return [activation(e, layer.name, x, "relu")]


@DIRECT_LAYERS.register("PReLU")
def prelu(e, layer, cfg, inputs):
    """PReLU with per-channel slopes -> PRelu with the slopes as (C, 1, 1)."""
    x = inputs[0]
    (alpha,) = _weights(layer, cfg, ["alpha"]).values()
    slope = alpha.reshape(-1, 1, 1) if len(x.shape) == 3 else alpha.reshape(-1)
    (out,) = e.node("PRelu", [x.name, e.weight(layer, f"{layer.name}/alpha", slope)], layer.name)
    return [Value(out, x.shape)]


@DIRECT_LAYERS.register("Softmax")
def softmax(e, layer, cfg, inputs):
    """Softmax over the feature axis of a vector -> Softmax."""
    return [activation(e, layer.name, inputs[0], "softmax")]


@DIRECT_LAYERS.register("LeakyReLU")
def leaky_relu(e, layer, cfg, inputs):
    """LeakyReLU -> LeakyRelu with Keras's slope."""
    slope = float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))
    (out,) = e.node("LeakyRelu", [inputs[0].name], layer.name, alpha=slope)
    return [Value(out, inputs[0].shape)]


@DIRECT_LAYERS.register("ELU")
def elu(e, layer, cfg, inputs):
    """ELU -> Elu with Keras's alpha."""
    (out,) = e.node("Elu", [inputs[0].name], layer.name, alpha=float(cfg.get("alpha", 1.0)))
    return [Value(out, inputs[0].shape)]


@DIRECT_LAYERS.register("Add")
def add(e, layer, cfg, inputs):
    """Add -> a chain of Add in Keras's order."""
    total = inputs[0].name
    for k, other in enumerate(inputs[1:]):
        (total,) = e.node("Add", [total, other.name], layer.name if k == 0 else
                          f"{layer.name}_{k + 1}")
    return [Value(total, inputs[0].shape)]


@DIRECT_LAYERS.register("Concatenate")
def concatenate(e, layer, cfg, inputs):
    """Concatenate along the channels (Keras's last axis) -> Concat on ONNX axis 1."""
    (out,) = e.node("Concat", [v.name for v in inputs], layer.name, axis=1)
    shape = inputs[0].shape[:-1] + (sum(v.shape[-1] for v in inputs),)
    return [Value(out, shape)]


def _pool(e, layer, cfg, x: Value, op: str, **attrs) -> Value:
    size = _pair(cfg.get("pool_size", 2))
    strides = cfg.get("strides") or size
    pads, (oh, ow) = window(layer.name, x.shape, size, strides, cfg.get("padding", "valid"))
    (out,) = e.node(op, [x.name], layer.name, kernel_shape=list(size),
                    strides=list(_pair(strides)), pads=pads, **attrs)
    return Value(out, (oh, ow, x.shape[2]))


@DIRECT_LAYERS.register("MaxPooling2D")
def max_pooling2d(e, layer, cfg, inputs):
    """MaxPooling2D -> MaxPool (padded cells never win)."""
    return [_pool(e, layer, cfg, inputs[0], "MaxPool")]


@DIRECT_LAYERS.register("AveragePooling2D")
def average_pooling2d(e, layer, cfg, inputs):
    """AveragePooling2D -> AveragePool, padded cells left out of the divisor as in Keras."""
    return [_pool(e, layer, cfg, inputs[0], "AveragePool", count_include_pad=0)]


@DIRECT_LAYERS.register("GlobalAveragePooling2D", "GlobalMaxPooling2D")
def global_pooling2d(e, layer, cfg, inputs):
    """Global pooling -> GlobalAveragePool/GlobalMaxPool, then Flatten unless keepdims."""
    op = "GlobalMaxPool" if type(layer).__name__.startswith("GlobalMax") else "GlobalAveragePool"
    x = inputs[0]
    (out,) = e.node(op, [x.name], layer.name)
    if cfg.get("keepdims"):
        return [Value(out, (1, 1, x.shape[2]))]
    (flat,) = e.node("Flatten", [out], f"{layer.name}_flatten", axis=1)
    return [Value(flat, (x.shape[2],))]


@DIRECT_LAYERS.register("ZeroPadding2D")
def zero_padding2d(e, layer, cfg, inputs):
    """ZeroPadding2D -> Pad with zeros (folded into the next conv/pool by irc's passes)."""
    pad = cfg.get("padding", 1)
    if isinstance(pad, (int, float)):
        (t, b), (l, r) = (pad, pad), (pad, pad)
    else:
        (t, b), (l, r) = (_pair(p) for p in pad)
    x = inputs[0]
    pads = e.const(f"{layer.name}/pads", np.array([0, 0, t, l, 0, 0, b, r], np.int64))
    (out,) = e.node("Pad", [x.name, pads], layer.name, mode="constant")
    h, w, c = x.shape
    return [Value(out, (h + t + b, w + l + r, c))]


@DIRECT_LAYERS.register("Cropping2D")
def cropping2d(e, layer, cfg, inputs):
    """Cropping2D -> Slice on H and W."""
    crop = cfg.get("cropping", ((0, 0), (0, 0)))
    if isinstance(crop, (int, float)):
        (t, b), (l, r) = (crop, crop), (crop, crop)
    else:
        (t, b), (l, r) = (_pair(c) for c in crop)
    x = inputs[0]
    h, w, c = x.shape
    if t + b >= h or l + r >= w:
        raise UnsupportedAttribute(f"{layer.name}: cropping {crop} leaves nothing of a {h}x{w} "
                                   "input", hint="give a larger input shape")
    starts = e.const(f"{layer.name}/starts", np.array([t, l], np.int64))
    ends = e.const(f"{layer.name}/ends", np.array([h - b, w - r], np.int64))
    axes = e.const(f"{layer.name}/axes", np.array([2, 3], np.int64))
    (out,) = e.node("Slice", [x.name, starts, ends, axes], layer.name)
    return [Value(out, (h - t - b, w - l - r, c))]


@DIRECT_LAYERS.register("CustomScaleLayer")
def custom_scale_layer(e, layer, cfg, inputs):
    """InceptionResNetV2's CustomScaleLayer: x + scale*y -> Mul by a constant, then Add."""
    x, y = inputs
    scale = e.const(f"{layer.name}/scale", np.array(float(cfg["scale"]), np.float32))
    (scaled,) = e.node("Mul", [y.name, scale], f"{layer.name}_scale")
    (out,) = e.node("Add", [x.name, scaled], layer.name)
    return [Value(out, x.shape)]


@DIRECT_LAYERS.register("Flatten")
def flatten(e, layer, cfg, inputs):
    """Flatten in Keras's H,W,C order -> Transpose to N,H,W,C, then Flatten (irc moves the
    transpose into the next Dense's rows)."""
    x = inputs[0]
    if len(x.shape) == 1:
        return [x]
    (nhwc,) = e.node("Transpose", [x.name], f"{layer.name}_nhwc", perm=TO_NHWC)
    (out,) = e.node("Flatten", [nhwc], layer.name, axis=1)
    return [Value(out, (math.prod(x.shape),))]


@DIRECT_LAYERS.register("Reshape")
def reshape(e, layer, cfg, inputs):
    """Reshape in Keras's channels-last order -> Transpose/Reshape/Transpose (collapsed into
    a flatten or Viya's reshape by the layout clean-up, or refused there)."""
    x = inputs[0]
    target = tuple(int(d) for d in cfg["target_shape"])
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        target = tuple(math.prod(x.shape) // known if d == -1 else d for d in target)
    if math.prod(target) != math.prod(x.shape) or len(target) not in (1, 3):
        raise UnsupportedAttribute(f"{layer.name}: Reshape {x.shape} -> {target} is not a "
                                   "reshape irc converts (to a vector or an (H, W, C) image)")
    current = x.name
    if len(x.shape) == 3:
        (current,) = e.node("Transpose", [current], f"{layer.name}_nhwc", perm=TO_NHWC)
    shape = e.const(f"{layer.name}/shape", np.array((0,) + target, np.int64))
    (current,) = e.node("Reshape", [current, shape], layer.name)
    if len(target) == 3:
        (current,) = e.node("Transpose", [current], f"{layer.name}_nchw", perm=TO_NCHW)
    return [Value(current, target)]


def channel_constant(value, shape: tuple[int, ...]) -> np.ndarray | None:
    """A Keras constant that broadcasts over the last (channel) axis, as an array that
    broadcasts the same way in N,C,H,W (C,1,1) or N,F (F,); None if it varies otherwise."""
    a = np.asarray(value, np.float32)
    channels = shape[-1]
    if a.size == 1:
        return a.reshape(())
    if a.size != channels or (a.ndim and a.shape[-1] != channels):
        return None
    return a.reshape((channels, 1, 1) if len(shape) == 3 else (channels,))


def _affine(e, layer, x: Value, subtract, multiply, add) -> Value:
    """((x - subtract) * multiply) + add with per-channel constants; identities skipped."""
    current = x.name
    for op, value, role in (("Sub", subtract, "mean"), ("Mul", multiply, "scale"),
                            ("Add", add, "offset")):
        identity = 1.0 if op == "Mul" else 0.0
        if value is None or np.all(value == identity):
            continue
        const = e.const(f"{layer.name}/{role}", value)
        (current,) = e.node(op, [current, const], f"{layer.name}_{role}")
    if current == x.name:
        (current,) = e.node("Identity", [current], layer.name)
    return Value(current, x.shape)


@DIRECT_LAYERS.register("Rescaling")
def rescaling(e, layer, cfg, inputs):
    """Rescaling -> Mul and Add by constants (folded into the next conv or a batchnorm)."""
    x = inputs[0]
    scale = channel_constant(cfg.get("scale", 1.0), x.shape)
    offset = channel_constant(cfg.get("offset", 0.0), x.shape)
    return [_affine(e, layer, x, None, scale, offset)]


@DIRECT_LAYERS.register("Normalization")
def normalization(e, layer, cfg, inputs):
    """Normalization -> Sub mean, Mul by 1/max(sqrt(variance), epsilon), as Keras computes."""
    from irc.frontends.keras.runtime import tf_modules

    x = inputs[0]
    mean = channel_constant(np.asarray(layer.mean), x.shape)
    variance = channel_constant(np.asarray(layer.variance), x.shape)
    epsilon = 1e-7
    try:
        epsilon = float(tf_modules().keras.backend.epsilon())
    except Exception:  # a tf-keras-only install: Keras's default
        pass
    inverse = (1.0 / np.maximum(np.sqrt(variance.astype(np.float64)), epsilon)).astype(np.float32)
    return [_affine(e, layer, x, mean, inverse, None)]


@DIRECT_LAYERS.register("Dropout")
def dropout(e, layer, cfg, inputs):
    """Dropout -> nothing (inference)."""
    return [inputs[0]]
