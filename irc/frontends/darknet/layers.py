"""One handler per darknet layer section, registered on DARKNET_SECTIONS (`irc ops darknet`).

A handler reads the converter's current section (``cv.section``, typed reads through
``cv.options()``), takes its arrays from the .weights stream in darknet's order, emits ONNX
nodes computing darknet's numbers and appends the layer's output to ``cv.layer_out``.
Facts from darknet's sources (parser.c and the layers' forward functions):

- [convolutional]: ``pad=1`` means padding size/2, else ``padding=`` (default 0); arrays are
  biases, then with batch_normalize scales, rolling mean, rolling variance, then the kernel
  (filters, channels/groups, size, size).
- batch normalisation divides by ``sqrt(variance) + 1e-6`` (blas.c ``normalize_cpu``): the
  epsilon is added to the standard deviation, not the variance. It is emitted exactly as a
  BatchNormalization of epsilon 0 whose variance is ``(sqrt(variance) + 1e-6)^2``.
- [maxpool]: ``padding`` defaults to size-1; the window starts at ``-padding/2`` (C integer
  division), so an odd padding puts its extra cell after the input; padded cells never win.
- [connected]: y = W x + b with W (outputs, inputs) over x flattened as C, H, W; with
  batch_normalize, biases then weights then scales, mean, variance.
"""
from __future__ import annotations

import math

import numpy as np

from irc.frontends.darknet.convert import Tensor
from irc.frontends.darknet.registry import DARKNET_SECTIONS as reg

DARKNET_BN_EPS = 1e-6  # added to the standard deviation (blas.c normalize_cpu)
ACTIVATIONS = {"linear": None, "leaky": ("LeakyRelu", {"alpha": 0.1}), "relu": ("Relu", {}),
               "logistic": ("Sigmoid", {})}


def _image(cv, t: Tensor) -> tuple:
    if len(t.shape) != 3:
        cv.refuse(f"needs an image (C, H, W) input, got a vector of {t.shape[0]}")
    return t.shape


def _activation(cv, x: str, default: str = "logistic") -> str:
    act = cv.options().str("activation", default)  # darknet's default differs per section
    if act not in ACTIVATIONS:
        cv.refuse(f"activation={act}: irc converts {', '.join(ACTIVATIONS)}")
    if ACTIVATIONS[act] is None:
        return x
    op, attrs = ACTIVATIONS[act]
    return cv.op(op, x, suffix=act, **attrs)


def _batchnorm(cv, x: str, scales, mean, variance, biases) -> str:
    """Darknet's inference batch norm, (x - mean) / (sqrt(var) + 1e-6) * scale + bias."""
    std = np.sqrt(variance.astype(np.float64)) + DARKNET_BN_EPS
    return cv.op("BatchNormalization", x, cv.const("scales", scales), cv.const("biases", biases),
                 cv.const("mean", mean), cv.const("variance", std * std), suffix="bn",
                 epsilon=0.0)


def _nondefault(cv, **defaults) -> None:
    """Refuse options darknet reads whose non-default values irc does not convert."""
    opts = cv.options()
    for key, default in defaults.items():
        value = opts.str(key)
        if value is not None and value != str(default):
            cv.problem(f"{key}={value} (irc converts only {key}={default})")


@reg.register("convolutional", "conv")
def convolutional(cv):
    """Conv (+ BatchNormalization) + activation; pad=1 -> size/2, groups -> group."""
    c, h, w = _image(cv, cv.previous())
    x = cv.previous().name
    opts = cv.options()
    n, size = opts.int("filters", 1), opts.int("size", 1)
    stride, groups = opts.int("stride", 1), opts.int("groups", 1)
    pad = size // 2 if opts.int("pad", 0) else opts.int("padding", 0)
    bn = opts.int("batch_normalize", 0)
    _nondefault(cv, binary=0, xnor=0, dilation=1, flipped=0)
    if min(n, size, stride, groups) <= 0 or pad < 0 or c % groups or n % groups:
        cv.refuse(f"filters={n}, size={size}, stride={stride}, groups={groups}, padding={pad} "
                  f"on {c} channels is not a valid convolution")
    oh, ow = [(d + 2 * pad - size) // stride + 1 for d in (h, w)]
    if oh <= 0 or ow <= 0:
        cv.refuse(f"a {size}x{size} kernel does not fit the {h}x{w} input padded by {pad}")
    specs = [("biases", (n,))]
    if bn:
        specs += [("scales", (n,)), ("rolling_mean", (n,)), ("rolling_variance", (n,))]
    specs.append(("weights", (n, c // groups, size, size)))
    arrays = cv.take(specs)
    biases, kernel = arrays[0], arrays[-1]
    inputs = [x, cv.const("weights", kernel)] + ([] if bn else [cv.const("biases", biases)])
    y = cv.op("Conv", *inputs, kernel_shape=[size, size], strides=[stride, stride],
              pads=[pad] * 4, group=groups)
    if bn:
        y = _batchnorm(cv, y, arrays[1], arrays[2], arrays[3], biases)
    y = _activation(cv, y)
    cv.layer_out.append(Tensor(y, (n, oh, ow)))


@reg.register("connected")
def connected(cv):
    """Flatten (C, H, W) + Gemm transB=1 (+ BatchNormalization) + activation."""
    t = cv.previous()
    opts = cv.options()
    n, n_in = opts.int("output", 1), math.prod(t.shape)
    bn = opts.int("batch_normalize", 0)
    if n <= 0:
        cv.refuse(f"output={n}")
    header = cv.weights_file.header if cv.weights_file is not None else None
    transposed = header is not None and header.transposed
    specs = [("biases", (n,)), ("weights", (n_in, n) if transposed else (n, n_in))]
    if bn:
        specs += [("scales", (n,)), ("rolling_mean", (n,)), ("rolling_variance", (n,))]
    arrays = cv.take(specs)
    weights = np.ascontiguousarray(arrays[1].T) if transposed else arrays[1]
    x = t.name if len(t.shape) == 1 else cv.op("Flatten", t.name, suffix="flatten", axis=1)
    inputs = [x, cv.const("weights", weights)] + ([] if bn else [cv.const("biases", arrays[0])])
    y = cv.op("Gemm", *inputs, transB=1)
    if bn:
        y = _batchnorm(cv, y, arrays[2], arrays[3], arrays[4], arrays[0])
    y = _activation(cv, y)
    cv.layer_out.append(Tensor(y, (n,)))


@reg.register("maxpool", "max")
def maxpool(cv):
    """MaxPool with darknet's padding: size-1 by default, the odd cell after the input."""
    c, h, w = _image(cv, cv.previous())
    opts = cv.options()
    stride = opts.int("stride", 1)
    size = opts.int("size", stride)
    padding = opts.int("padding", size - 1)
    _nondefault(cv, maxpool_depth=0, antialiasing=0)
    if min(size, stride) <= 0 or padding < 0:
        cv.refuse(f"size={size}, stride={stride}, padding={padding}")
    out = [(d + padding - size) // stride + 1 for d in (h, w)]
    before = padding // 2
    # ONNX floor-mode output size with pads (before, after) equals darknet's with this after:
    after = [max(0, (o - 1) * stride + size - d - before) for o, d in zip(out, (h, w))]
    onnx_out = [(d + before + a - size) // stride + 1 for d, a in zip((h, w), after)]
    if min(out) <= 0 or onnx_out != out or any(a >= size or before >= size for a in after):
        cv.refuse(f"maxpool size={size} stride={stride} padding={padding} on {h}x{w}: no "
                  "pooling window layout matches darknet's")
    y = cv.op("MaxPool", cv.previous().name, kernel_shape=[size, size], strides=[stride] * 2,
              pads=[before, before, after[0], after[1]])
    cv.layer_out.append(Tensor(y, (c, *out)))


@reg.register("avgpool")
def avgpool(cv):
    """GlobalAveragePool: darknet's [avgpool] averages each whole channel."""
    c, _, _ = _image(cv, cv.previous())
    y = cv.op("GlobalAveragePool", cv.previous().name)
    cv.layer_out.append(Tensor(y, (c, 1, 1)))


@reg.register("softmax")
def softmax(cv):
    """Flatten + Softmax over all C*H*W values (groups=1, temperature=1)."""
    t = cv.previous()
    _nondefault(cv, groups=1, temperature=1)
    if len(t.shape) == 3 and t.shape[1] * t.shape[2] > 1:
        # measured: OpenCV normalises each position over the channels instead, so irc
        # could not verify the conversion
        cv.refuse(f"softmax of a {t.shape[1]}x{t.shape[2]} image: darknet takes it over all "
                  f"{t.shape[0]}x{t.shape[1]}x{t.shape[2]} values at once, which irc's oracle "
                  "(OpenCV) does not; irc converts [softmax] after [avgpool] or [connected]")
    x = t.name if len(t.shape) == 1 else cv.op("Flatten", t.name, suffix="flatten", axis=1)
    y = cv.op("Softmax", x, axis=1)
    cv.layer_out.append(Tensor(y, (math.prod(t.shape),)))


@reg.register("dropout")
def dropout(cv):
    """Nothing at inference (darknet scales only while training)."""
    cv.options().float("probability", 0.5)  # read (and checked), used only in training
    cv.layer_out.append(cv.previous())


@reg.register("cost")
def cost(cv):
    """Nothing at inference: a training loss; the net's output is its input."""
    cv.section.used.update(cv.section.options)  # training settings, all of them
    cv.layer_out.append(cv.previous())


@reg.register("route")
def route(cv):
    """One layer: that layer's output; several: Concat on channels (same H, W)."""
    opts = cv.options()
    refs = opts.ints("layers")
    _nondefault(cv, groups=1, group_id=0)
    if not refs:
        cv.refuse("layers= is missing or empty")
    sources = [cv.layer(cv.resolve(r)) for r in refs]
    if len(sources) == 1:
        cv.layer_out.append(sources[0])
        return
    shapes = [s.chw for s in sources]
    if len({s[1:] for s in shapes}) != 1 or any(len(s.shape) != 3 for s in sources):
        cv.refuse(f"concatenates outputs of different sizes {[list(s) for s in shapes]}")
    y = cv.op("Concat", *[s.name for s in sources], axis=1)
    cv.layer_out.append(Tensor(y, (sum(s[0] for s in shapes), *shapes[0][1:])))


@reg.register("shortcut")
def shortcut(cv):
    """Add of the previous layer and layer from= (same shape) + activation."""
    opts = cv.options()
    ref = opts.int("from")
    _nondefault(cv, alpha=1, beta=1, weights_type="none")
    if ref is None:
        cv.refuse("from= is missing")
    other, prev = cv.layer(cv.resolve(ref)), cv.previous()
    if other.shape != prev.shape:
        cv.refuse(f"adds outputs of different shapes {list(other.shape)} and "
                  f"{list(prev.shape)} (darknet then pools or pads one; irc converts equal "
                  "shapes only)")
    y = _activation(cv, cv.op("Add", prev.name, other.name), default="linear")
    cv.layer_out.append(Tensor(y, prev.shape))
