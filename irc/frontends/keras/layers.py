"""The Keras layers irc converts: one handler per layer class, registered with a decorator.

A handler checks one layer's configuration and reports what Viya cannot compute (the numbers
themselves go through tf2onnx and the ONNX frontend). :func:`scan` runs every handler over the
whole model, nested models included, before any conversion work, and raises ONE error listing
each unsupported layer class (count and names) and each refused configuration.
"""
from __future__ import annotations

import math

import numpy as np

from irc.errors import UnsupportedAttribute, UnsupportedOp
from irc.frontends.keras.model_graph import all_layers, model_tensors, output_layer_names
from irc.frontends.registry import HandlerRegistry, format_unsupported

KERAS_LAYERS = HandlerRegistry("Keras")

RECURRENT = ("SimpleRNN", "LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU", "RNN", "Bidirectional",
             "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "SimpleRNNCell", "LSTMCell", "GRUCell",
             "StackedRNNCells")
# Keras activation name -> what Viya calls it (softmax only in an output layer).
# relu6 and leaky_relu (slope 0.2) reach Viya through exact rewrites (legalize_clip,
# legalize_prelu): two batchnorm layers, or relu(x) - a*relu(-x).
ACTIVATIONS = {"linear": "identity", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh",
               "elu": "elu", "softplus": "softplus", "softmax": "softmax", "relu6": "relu6",
               "leaky_relu": "leaky_relu"}
_ACTIVATION_WHY = {
    "hard_sigmoid": "Viya has no hard sigmoid",
    "hard_silu": "Viya has no hard swish", "hard_swish": "Viya has no hard swish",
    "swish": "Viya has no swish", "silu": "Viya has no swish", "gelu": "Viya has no gelu",
    "selu": "Viya's elu has no scale", "exponential": "Viya's exp is not offered here",
}


class ScanContext:
    """What a handler needs besides the layer, and the problems it reports."""

    def __init__(self, output_layers: set[str], allow_lambda: bool, flavor: str,
                 through_tf2onnx: bool = True):
        self.output_layers = output_layers
        self.allow_lambda = allow_lambda
        self.flavor = flavor  # "keras3" or "tf_keras"
        self.through_tf2onnx = through_tf2onnx  # False: irc's direct emitter writes the ONNX
        self.problems: list[tuple[str, str]] = []
        self.layer_name = ""

    def problem(self, message: str) -> None:
        self.problems.append((self.layer_name, message))


# ---- helpers ---------------------------------------------------------------------------------


def _shape(layer, which: str):
    """The layer's input or output shape without the batch axis, or None if unknown."""
    try:
        shape = getattr(layer, which).shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, list):  # several tensors
        return None
    shape = tuple(shape)[1:]
    return None if any(d is None for d in shape) else tuple(int(d) for d in shape)


def _channels_last(cfg, ctx):
    if cfg.get("data_format") == "channels_first":
        ctx.problem("data_format='channels_first': TensorFlow cannot run it on the CPU, so irc "
                    "cannot prove the conversion; use channels_last")


def _no_dilation(cfg, ctx):
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
    if name not in ACTIVATIONS:
        why = _ACTIVATION_WHY.get(name, "Viya has no such activation")
        ctx.problem(f"activation {name!r}: {why}")
        return
    if name == "softmax":
        _softmax_at_output(layer, ctx)


def _softmax_at_output(layer, ctx):
    if layer.name not in ctx.output_layers:
        ctx.problem("softmax before the end of the model: Viya applies softmax only in an "
                    "output layer")
        return
    out = _shape(layer, "output")
    if out is not None and len(out) != 1:
        ctx.problem(f"softmax over a tensor of shape {out}: Viya's output layer applies it to a "
                    "vector; put a Flatten or global pooling before it")


def reshape_expressible(in_shape, out_shape) -> bool:
    """Whether a channels-last Keras Reshape equals a flatten or Viya's reshape (a plain C,H,W
    reinterpretation): labelled elements land where both layouts agree."""
    if len(out_shape) == 1:
        return True
    if len(out_shape) != 3 or len(in_shape) not in (1, 3):
        return False
    n = math.prod(in_shape)
    if n != math.prod(out_shape) or n > 1 << 22:
        return False
    labels = np.arange(n).reshape(in_shape)
    keras_out = labels.reshape(out_shape)

    def chw(a):
        return a.transpose(2, 0, 1) if a.ndim == 3 else a

    out_chw = (out_shape[2], out_shape[0], out_shape[1])
    return bool(np.array_equal(chw(labels).reshape(out_chw), chw(keras_out)))


# ---- handlers --------------------------------------------------------------------------------


@KERAS_LAYERS.register("InputLayer")
def input_layer(layer, cfg, ctx):
    """InputLayer -> the Viya input layer (N,H,W,C becomes C,H,W)."""


@KERAS_LAYERS.register("Conv2D")
def conv2d(layer, cfg, ctx):
    """Conv2D -> convo; its activation joins the layer."""
    _channels_last(cfg, ctx)
    if int(cfg.get("groups", 1)) != 1 and ctx.flavor == "keras3" and ctx.through_tf2onnx:
        ctx.problem(f"Conv2D groups={cfg['groups']}: Keras 3 computes a grouped convolution in a "
                    "nested TensorFlow function that tf2onnx cannot convert")
    _no_dilation(cfg, ctx)
    check_activation(cfg.get("activation"), layer, ctx)


@KERAS_LAYERS.register("DepthwiseConv2D")
def depthwise_conv2d(layer, cfg, ctx):
    """DepthwiseConv2D -> groupconvo with one group per input channel."""
    _channels_last(cfg, ctx)
    _no_dilation(cfg, ctx)
    check_activation(cfg.get("activation"), layer, ctx)


@KERAS_LAYERS.register("SeparableConv2D")
def separable_conv2d(layer, cfg, ctx):
    """SeparableConv2D -> groupconvo (depthwise) then a 1x1 convo (pointwise)."""
    _channels_last(cfg, ctx)
    _no_dilation(cfg, ctx)
    check_activation(cfg.get("activation"), layer, ctx)


@KERAS_LAYERS.register("Dense")
def dense(layer, cfg, ctx):
    """Dense -> fc (or the output layer); after a Flatten its rows are permuted to C,H,W."""
    in_shape = _shape(layer, "input")
    if in_shape is not None and len(in_shape) != 1:
        ctx.problem(f"Dense on a tensor of shape {in_shape} (not a vector): Viya's fc layer "
                    "flattens its input; put a Flatten before it")
    check_activation(cfg.get("activation"), layer, ctx)


@KERAS_LAYERS.register("Activation")
def activation(layer, cfg, ctx):
    """Activation -> the act of the layer before it (or an identity batchnorm carrier)."""
    check_activation(cfg.get("activation"), layer, ctx)


@KERAS_LAYERS.register("ReLU")
def relu(layer, cfg, ctx):
    """ReLU -> act relu; with max_value, a clip (two batchnorm layers); with a negative slope,
    relu(x) - a*relu(-x) (exact rewrites)."""
    max_value = cfg.get("max_value")
    if max_value is not None and float(max_value) < 0:
        ctx.problem(f"ReLU max_value={max_value} is negative: Keras itself refuses it")
    if float(cfg.get("threshold", 0.0) or 0.0) != 0.0:
        ctx.problem(f"ReLU threshold={cfg['threshold']}: Viya's relu is max(0, x), and a "
                    "thresholded relu has a step at the threshold no Viya layer computes")
    if float(cfg.get("negative_slope", 0.0) or 0.0) != 0.0 and max_value is not None:
        ctx.problem(f"ReLU negative_slope={cfg['negative_slope']} together with max_value: "
                    "use a LeakyReLU or a ReLU(max_value) layer, not both in one")


@KERAS_LAYERS.register("LeakyReLU")
def leaky_relu(layer, cfg, ctx):
    """LeakyReLU -> act leaky for slope 0.1 (Viya's fixed slope); any other slope through the
    exact rewrite relu(x) - a*relu(-x)."""


@KERAS_LAYERS.register("PReLU")
def prelu(layer, cfg, ctx):
    """PReLU with one slope per channel (shared_axes=[1, 2]) -> relu(x) - a*relu(-x)."""
    _per_channel_slope(layer, cfg, ctx)


def _per_channel_slope(layer, cfg, ctx) -> None:
    shape = _shape(layer, "input")
    shared = sorted(int(a) for a in (cfg.get("shared_axes") or []))
    if shape is not None and len(shape) == 3 and shared != [1, 2]:
        ctx.problem(f"PReLU shared_axes={shared or None}: a slope per position; Viya's "
                    "per-channel layers can apply one slope per channel only (shared_axes=[1, 2])")


@KERAS_LAYERS.register("ELU")
def elu(layer, cfg, ctx):
    """ELU(alpha=1) -> act elu."""
    alpha = float(cfg.get("alpha", 1.0))
    if not math.isclose(alpha, 1.0, rel_tol=1e-6):
        ctx.problem(f"ELU alpha={alpha:g}: only alpha=1 is known to match Viya's elu")


@KERAS_LAYERS.register("Softmax")
def softmax(layer, cfg, ctx):
    """Softmax over the last axis of a vector at the model output -> act softmax of the output
    layer."""
    axis = cfg.get("axis", -1)
    if axis not in (-1, 1, [-1], [1]):
        ctx.problem(f"Softmax axis={axis}: only the feature axis of a vector is supported")
    _softmax_at_output(layer, ctx)


@KERAS_LAYERS.register("BatchNormalization")
def batch_normalization(layer, cfg, ctx):
    """BatchNormalization (any scale/center/epsilon) -> folded into the conv/fc before it, or a
    batchnorm layer."""
    axis = cfg.get("axis", -1)
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    shape = _shape(layer, "input")
    rank = len(shape) + 1 if shape is not None else None
    channel = [-1] + ([rank - 1] if rank else [])
    if len(axes) != 1 or axes[0] not in channel:
        ctx.problem(f"BatchNormalization axis={axis}: Viya normalises per channel (the last "
                    "axis) only")


@KERAS_LAYERS.register("Add")
def add(layer, cfg, ctx):
    """Add -> residual (the inputs must have identical shapes)."""


@KERAS_LAYERS.register("Concatenate")
def concatenate(layer, cfg, ctx):
    """Concatenate along channels (the last axis) -> concat."""
    shape = _shape(layer, "output")
    axis = cfg.get("axis", -1)
    if axis != -1 and (shape is None or axis != len(shape)):
        ctx.problem(f"Concatenate axis={axis}: Viya concatenates channels (the last axis) only")


@KERAS_LAYERS.register("MaxPooling2D")
def max_pooling2d(layer, cfg, ctx):
    """MaxPooling2D (valid/same) -> pool max; 'same' padding mapped exactly or refused."""
    _channels_last(cfg, ctx)


@KERAS_LAYERS.register("AveragePooling2D")
def average_pooling2d(layer, cfg, ctx):
    """AveragePooling2D (valid/same) -> pool mean (padded cells left out of the divisor)."""
    _channels_last(cfg, ctx)


@KERAS_LAYERS.register("GlobalAveragePooling2D", "GlobalMaxPooling2D")
def global_pooling2d(layer, cfg, ctx):
    """Global pooling -> pool with width = height = 0."""
    _channels_last(cfg, ctx)


@KERAS_LAYERS.register("ZeroPadding2D")
def zero_padding2d(layer, cfg, ctx):
    """ZeroPadding2D -> folded into the padding of the conv/pool that reads it (a padded average
    pool becomes a depthwise convolution)."""
    _channels_last(cfg, ctx)


@KERAS_LAYERS.register("Cropping2D")
def cropping2d(layer, cfg, ctx):
    """Cropping2D -> a depthwise convolution with a one-hot kernel (exact)."""
    _channels_last(cfg, ctx)


@KERAS_LAYERS.register("CustomScaleLayer")
def custom_scale_layer(layer, cfg, ctx):
    """InceptionResNetV2's x + scale*y -> the scale folded into the layer producing y, then a
    residual."""
    if "scale" not in cfg:
        ctx.problem("CustomScaleLayer without a 'scale' in its configuration")


@KERAS_LAYERS.register("Flatten")
def flatten(layer, cfg, ctx):
    """Flatten -> absorbed: the next fc's rows are permuted from H,W,C to C,H,W."""
    _channels_last(cfg, ctx)


@KERAS_LAYERS.register("Dropout")
def dropout(layer, cfg, ctx):
    """Dropout -> removed (inference); its rate is never copied into Viya."""


@KERAS_LAYERS.register("Reshape")
def reshape(layer, cfg, ctx):
    """Reshape to a vector (a flatten) or to (H,W,C) where it equals Viya's C,H,W reshape."""
    in_shape, out_shape = _shape(layer, "input"), _shape(layer, "output")
    if in_shape is None or out_shape is None:
        return  # checked again on the ONNX graph once shapes are fixed
    if not reshape_expressible(in_shape, out_shape):
        ctx.problem(f"Reshape {in_shape} -> {out_shape} moves elements differently in Keras's "
                    "H,W,C layout and Viya's C,H,W layout; Viya can express reshapes to a "
                    "vector, and to (H,W,C) only where both layouts agree")


def _per_channel(name: str, value, layer, ctx) -> None:
    from irc.frontends.keras.direct_layers import channel_constant

    shape = _shape(layer, "input")
    if shape is not None and value is not None and channel_constant(value, shape) is None:
        ctx.problem(f"{name} of shape {np.shape(value)} does not broadcast per channel (the "
                    f"last axis of {shape}); Viya scales inputs per channel only")


@KERAS_LAYERS.register("Rescaling")
def rescaling(layer, cfg, ctx):
    """Rescaling (scalar or per-channel scale and offset) -> folded into the next conv, or a
    batchnorm layer."""
    _per_channel("scale", cfg.get("scale", 1.0), layer, ctx)
    _per_channel("offset", cfg.get("offset", 0.0), layer, ctx)


@KERAS_LAYERS.register("Normalization")
def normalization(layer, cfg, ctx):
    """Normalization over the channel axis (invert=False) -> as Rescaling, with Keras's
    1/max(sqrt(variance), epsilon)."""
    if cfg.get("invert"):
        ctx.problem("Normalization invert=True (a de-normalisation): not supported")
    if ctx.through_tf2onnx:
        ctx.problem("Normalization: tf2onnx turns its mean and variance into extra model "
                    "inputs; only irc's direct route converts it (remove what sends the model "
                    "through tf2onnx, e.g. a Lambda)")
    axis = cfg.get("axis", -1)
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    shape = _shape(layer, "input")
    if axes not in ([-1], [len(shape)] if shape is not None else [-1]):
        ctx.problem(f"Normalization axis={axis}: Viya normalises per channel (the last axis)")
        return
    for name in ("mean", "variance"):
        value = getattr(layer, name, None)
        if value is None:
            ctx.problem(f"Normalization has no {name} (adapt() it, or give mean and variance)")
        else:
            _per_channel(name, np.asarray(value), layer, ctx)


@KERAS_LAYERS.register("Lambda")
def lambda_layer(layer, cfg, ctx):
    """Lambda (only with allow_lambda=True) -> whatever tf2onnx makes of it, if irc supports
    those ONNX ops."""
    if not ctx.allow_lambda:
        ctx.problem("a Lambda layer runs arbitrary Python code; pass allow_lambda=True to "
                    "convert models you trust")


# ---- the scan --------------------------------------------------------------------------------


def _float32_compute(layer, ctx) -> None:
    """Viya computes in float32: a layer Keras runs in float16/bfloat16/float64 (a dtype
    policy) gives numbers irc cannot match, so it is refused up front, not at verification."""
    compute = str(getattr(layer, "compute_dtype", None) or "float32")
    if compute != "float32":
        policy = getattr(getattr(layer, "dtype_policy", None), "name", compute)
        ctx.problem(f"computes in {compute} (dtype policy {policy!r}); Viya computes in float32, "
                    "so Keras's numbers cannot be reproduced: rebuild the model with float32 "
                    "layers (keras.mixed_precision.set_global_policy('float32'), then "
                    "clone_model and set_weights)")


def scan(model, allow_lambda: bool, label: str, flavor: str = "keras3",
         through_tf2onnx: bool = True) -> None:
    """Check every layer of ``model``; raise one error listing every problem found."""
    ctx = ScanContext(output_layer_names(model), allow_lambda, flavor, through_tf2onnx)
    n_inputs = len(model_tensors(model, "inputs"))
    if n_inputs != 1:
        ctx.layer_name = model.name
        ctx.problem(f"the model has {n_inputs} inputs; a Viya CNN has one input layer")
    items = []
    for layer in all_layers(model):
        cls = type(layer).__name__
        items.append((cls, layer.name))
        handler = KERAS_LAYERS.get(cls)
        if handler is None:
            continue
        ctx.layer_name = layer.name
        _float32_compute(layer, ctx)
        handler.fn(layer, layer.get_config(), ctx)
    missing = KERAS_LAYERS.unsupported(items)
    lines = []
    if missing:
        recurrent = sorted(c for c in missing if c in RECURRENT)
        hint = "irc converts these Keras layers: " + ", ".join(KERAS_LAYERS.op_types()) + "."
        if recurrent:
            hint += (f"\nrecurrent layers ({', '.join(recurrent)}): irc converts SimpleRNN, LSTM, "
                     "GRU (and Bidirectional of them) in sequence models, not these.")
        lines.append(format_unsupported("Keras", missing, hint))
    if ctx.problems:
        lines.append(f"{len(ctx.problems)} layer configuration(s) Viya cannot compute:")
        lines += [f"  {name}: {msg}" for name, msg in ctx.problems]
    if not lines:
        return
    error = UnsupportedOp if missing else UnsupportedAttribute
    raise error("\n".join(lines), file=label,
                hint="change these layers in the Keras model (see `irc ops` for the support list)")
