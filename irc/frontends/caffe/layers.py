"""One handler per Caffe layer type, registered on CAFFE_LAYERS (`irc ops` lists them).

A handler reads layer ``i`` of the converter (its SSA tensors ``cv.layer_in[i]`` /
``cv.layer_out[i]``), reports refused parameter values with ``cv.problem`` and emits ONNX nodes
whose numbers equal Caffe's. Input layers are in ``inputs.py``, window geometry in
``geometry.py``.
"""
from __future__ import annotations

import math

import numpy as np

from irc.frontends.caffe import caffe_subset_pb2 as pb
from irc.frontends.caffe.registry import CAFFE_LAYERS as reg
from irc.frontends.caffe.registry import Skip
from irc.frontends.caffe.geometry import caffe_pool_size, hw
from irc.ir.activations import VIYA_FIXED_ALPHA

# ---- helpers --------------------------------------------------------------------------------


def _single(cv, i):
    """(input tensor, its shape, output tensor) of a one-bottom, one-top layer."""
    layer = cv.net.layers[i]
    if len(layer.bottoms) != 1 or len(layer.tops) != 1:
        cv.problem(f"{layer.type} with {len(layer.bottoms)} bottoms and {len(layer.tops)} tops; "
                   "irc handles one of each")
        raise Skip
    ((x, shape),) = cv.ins(i)
    return x, shape, cv.layer_out[i][0]


def _spatial(cv, layer, shape) -> None:
    if len(shape) != 4:
        cv.problem(f"{layer.type} needs a 4-D (N, C, H, W) input, got {list(shape)}")
        raise Skip


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


# ---- convolution, pooling, inner product ----------------------------------------------------


@reg.register("Convolution")
def convolution(cv, i):
    """Convolution -> Conv with explicit pads (trap 23) and group (trap 24); OIHW weights."""
    layer = cv.net.layers[i]
    x, (_, c, h, w), out = _conv_input(cv, i)
    p = layer.param("convolution_param")
    k = hw(cv, p, "kernel_size", "kernel_h", "kernel_w", None)
    pad = hw(cv, p, "pad", "pad_h", "pad_w", (0, 0))
    stride = hw(cv, p, "stride", "stride_h", "stride_w", (1, 1))
    dilation = ([int(d) for d in p.dilation] or [1]) * 2
    dilated = any(d != 1 for d in dilation)
    if dilated:
        cv.problem(f"dilation {list(p.dilation)}: Viya has no dilated convolution")
    if p.axis != 1:
        cv.problem(f"convolution axis {p.axis}; irc handles channel axis 1 only")
    n, g = int(p.num_output), int(p.group)
    if k is None or n <= 0 or g <= 0 or c % g or n % g:
        cv.problem(f"kernel {k}, num_output {n}, group {g} on {c} input channels is invalid")
        raise Skip
    extent = [d * (kk - 1) + 1 for d, kk in zip(dilation, k)]
    oh, ow = [(size + 2 * pd - e) // s + 1 for size, e, pd, s in zip((h, w), extent, pad, stride)]
    if oh <= 0 or ow <= 0:
        cv.problem(f"kernel {list(extent)} is larger than the padded {h}x{w} input")
        raise Skip
    if dilated:
        cv.define(out, (1, n, oh, ow))  # so that later layers are still checked
        raise Skip
    specs = [("weights", (n, c // g, *k))] + ([("bias", (n,))] if p.bias_term else [])
    arrays = cv.weights(specs)
    inputs = [x] + [cv.const(what, a) for (what, _), a in zip(specs, arrays)]
    cv.node("Conv", inputs, [out], kernel_shape=list(k), strides=list(stride),
            pads=[pad[0], pad[1], pad[0], pad[1]], dilations=[1, 1], group=g)
    cv.define(out, (1, n, oh, ow))


def _conv_input(cv, i):
    x, shape, out = _single(cv, i)
    _spatial(cv, cv.net.layers[i], shape)
    return x, shape, out


@reg.register("Pooling")
def pooling(cv, i):
    """Pooling MAX/AVE -> MaxPool/AveragePool sized as Caffe rounds (up); global -> Global*Pool."""
    layer = cv.net.layers[i]
    x, (_, c, h, w), out = _conv_input(cv, i)
    p = layer.param("pooling_param")
    if p.pool not in (pb.PoolingParameter.MAX, pb.PoolingParameter.AVE):
        cv.problem(f"pool {pb.PoolingParameter.PoolMethod.Name(p.pool)}: only MAX and AVE exist "
                   "in Viya")
        raise Skip
    is_max = p.pool == pb.PoolingParameter.MAX
    pad = hw(cv, p, "pad", "pad_h", "pad_w", (0, 0))
    stride = hw(cv, p, "stride", "stride_h", "stride_w", (1, 1))
    if p.global_pooling:
        if any(pad) or any(s != 1 for s in stride):
            cv.problem("global pooling with padding or stride (Caffe refuses it too)")
        cv.node("GlobalMaxPool" if is_max else "GlobalAveragePool", [x], [out])
        cv.define(out, (1, c, 1, 1))
        return
    k = hw(cv, p, "kernel_size", "kernel_h", "kernel_w", None)
    if k is None or any(pd >= kk for pd, kk in zip(pad, k)):
        cv.problem(f"kernel {k} with pad {list(pad)}: Caffe needs a kernel and pad < kernel")
        raise Skip
    ceil = p.round_mode == pb.PoolingParameter.CEIL
    geo = caffe_pool_size((h, w), k, pad, stride, ceil)
    if geo is None:
        cv.problem(f"pooling {list(k)}/{list(stride)} pad {list(pad)} on {h}x{w}: no ONNX "
                   "pooling gives Caffe's output size")
        raise Skip
    attrs = {"kernel_shape": list(k), "strides": list(stride), "ceil_mode": geo.ceil_mode,
             "pads": [pad[0], pad[1], geo.end_pads[0], geo.end_pads[1]]}
    if not is_max:
        # Caffe divides by the window clipped to the padded input (pad cells count, the ceil
        # overhang does not): ONNX count_include_pad=1 is exactly that, and with no padding
        # count_include_pad=0 is (the clipped window holds only real cells).
        if any(pad) and geo.end_pads != tuple(pad):
            cv.problem("average pooling with padding and a rounding that ONNX cannot express "
                       "(the ceil rule differs between axes)")
            raise Skip
        attrs["count_include_pad"] = 1 if any(pad) else 0
    cv.node("MaxPool" if is_max else "AveragePool", [x], [out], **attrs)
    cv.define(out, (1, c, *geo.out))


@reg.register("InnerProduct")
def inner_product(cv, i):
    """InnerProduct -> Flatten(axis 1) for a 4-D input, then Gemm transB=1 (weights (out, in))."""
    layer = cv.net.layers[i]
    x, shape, out = _single(cv, i)
    p = layer.param("inner_product_param")
    if _axis(p.axis, len(shape)) != 1:
        cv.problem(f"InnerProduct axis {p.axis}; irc handles axis 1 (all of C, H, W) only")
        raise Skip
    n_in, n_out = math.prod(shape[1:]), int(p.num_output)
    w_shape = (n_in, n_out) if p.transpose else (n_out, n_in)
    specs = [("weights", w_shape)] + ([("bias", (n_out,))] if p.bias_term else [])
    arrays = cv.weights(specs)
    if p.transpose:
        arrays[0] = np.ascontiguousarray(arrays[0].T)
    if len(shape) > 2:
        flat = cv.temp("flatten")
        cv.node("Flatten", [x], [flat], suffix="flatten", axis=1)
        x = flat
    inputs = [x] + [cv.const(what, a) for (what, _), a in zip(specs, arrays)]
    cv.node("Gemm", inputs, [out], transB=1)
    cv.define(out, (1, n_out))


# ---- normalisation --------------------------------------------------------------------------


def _following_scale(cv, i) -> int | None:
    """The Scale layer that alone reads BatchNorm ``i``'s output (merged into it), if any."""
    readers = cv.consumers.get(cv.layer_out[i][0], [])
    if len(readers) != 1:
        return None
    j = readers[0]
    layer = cv.net.layers[j]
    p = layer.param("scale_param")
    if layer.type == "Scale" and len(layer.bottoms) == 1 and len(layer.tops) == 1 \
            and p.axis == 1 and p.num_axes == 1:
        return j
    return None


@reg.register("BatchNorm")
def batch_norm(cv, i):
    """BatchNorm (+ the Scale after it) -> BatchNormalization; mean/var = blob0/blob2, blob1/blob2."""
    layer = cv.net.layers[i]
    x, shape, out = _single(cv, i)
    if len(shape) not in (2, 4):
        cv.problem(f"BatchNorm of a {len(shape)}-D blob; irc handles (N, C) and (N, C, H, W)")
        raise Skip
    c = shape[1]
    p = layer.param("batch_norm_param")
    if p.HasField("use_global_stats") and not p.use_global_stats:
        # Caffe then normalizes each batch with its own mean and variance: the output depends on
        # the other examples of the batch, which no inference layer of Viya computes.
        cv.problem("BatchNorm with use_global_stats: false normalizes with the statistics of "
                   "each batch (training behaviour), not the stored ones; set use_global_stats: "
                   "true (or remove the field) in the deploy prototxt")
        cv.define(out, shape)
        raise Skip
    mean, var, factor = cv.weights([("mean", (c,)), ("variance", (c,)),
                                    ("moving-average factor", (1,))])
    f = float(factor.reshape(-1)[0])
    s = 0.0 if f == 0 else 1.0 / f
    mean, var = (mean * s).astype(np.float32), (var * s).astype(np.float32)
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    j = _following_scale(cv, i)
    if j is not None:
        scale = cv.net.layers[j]
        bias_term = scale.param("scale_param").bias_term
        specs = [("scale", (c,))] + ([("bias", (c,))] if bias_term else [])
        arrays = cv.weights(specs, source=scale)
        gamma = arrays[0]
        beta = arrays[1] if bias_term else beta
        cv.skip.add(j)
        out = cv.layer_out[j][0]
    names = [cv.const(n, a) for n, a in
             (("gamma", gamma), ("beta", beta), ("mean", mean), ("variance", var))]
    cv.node("BatchNormalization", [x, *names], [out], epsilon=float(p.eps))
    cv.define(out, shape)


@reg.register("Scale")
def scale_layer(cv, i):
    """Scale (learned, per channel) -> Mul (+ Add with bias_term); after BatchNorm: merged."""
    layer = cv.net.layers[i]
    if len(layer.bottoms) != 1:
        cv.problem("Scale by a second bottom blob is an element-wise product, which Viya lacks")
        raise Skip
    x, shape, out = _single(cv, i)
    p = layer.param("scale_param")
    if _axis(p.axis, len(shape)) != 1 or p.num_axes != 1:
        cv.problem(f"Scale axis {p.axis}, num_axes {p.num_axes}; irc handles per-channel "
                   "(axis 1, num_axes 1) only")
        raise Skip
    c = shape[1]
    specs = [("scale", (c,))] + ([("bias", (c,))] if p.bias_term else [])
    arrays = cv.weights(specs)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    scaled = cv.temp("scaled") if p.bias_term else out
    cv.node("Mul", [x, cv.const("scale", arrays[0].reshape(bshape))], [scaled])
    if p.bias_term:
        cv.node("Add", [scaled, cv.const("bias", arrays[1].reshape(bshape))], [out],
                suffix="bias")
    cv.define(out, shape)


# ---- element-wise, activations, structure ---------------------------------------------------


@reg.register("Eltwise")
def eltwise(cv, i):
    """Eltwise SUM (coefficients as Mul by constants) -> Sum; MAX -> pairwise Max (irc's exact
    rewrite a + relu(b - a)); PROD is refused."""
    layer = cv.net.layers[i]
    p = layer.param("eltwise_param")
    if len(layer.tops) != 1:
        cv.problem("Eltwise with several tops")
        raise Skip
    ins = cv.ins(i)
    if len(ins) < 2:  # Caffe's EltwiseLayer: MinBottomBlobs() == 2, the net would not load
        cv.problem(f"Eltwise with {len(ins)} bottom(s): Caffe needs at least two")
        if ins:
            cv.define(cv.layer_out[i][0], ins[0][1])  # later layers are still checked
        raise Skip
    if p.operation == pb.EltwiseParameter.MAX and len({s for _, s in ins}) == 1:
        _eltwise_max(cv, i, ins)
        return
    if p.operation != pb.EltwiseParameter.SUM:
        cv.problem(f"Eltwise {pb.EltwiseParameter.EltwiseOp.Name(p.operation)}: an "
                   "element-wise product, which Viya lacks (its residual layer adds)"
                   if p.operation == pb.EltwiseParameter.PROD else
                   "Eltwise MAX of bottoms of different shapes")
        cv.define(cv.layer_out[i][0], ins[0][1])  # later layers are still checked
        raise Skip
    shapes = {s for _, s in ins}
    coeffs = [float(v) for v in p.coeff] or [1.0] * len(ins)
    if len(shapes) != 1 or len(coeffs) != len(ins):
        cv.problem(f"Eltwise SUM of shapes {sorted(shapes)} with {len(coeffs)} coefficients for "
                   f"{len(ins)} bottoms")
        raise Skip
    terms = []
    for k, ((t, _), coeff) in enumerate(zip(ins, coeffs)):
        if coeff == 1.0:
            terms.append(t)
            continue
        scaled = cv.temp(f"coeff{k}")
        cv.node("Mul", [t, cv.const(f"coeff{k}", np.array(coeff, np.float32))], [scaled],
                suffix=f"coeff{k}")
        terms.append(scaled)
    out = cv.layer_out[i][0]
    cv.node("Sum" if len(terms) > 1 else "Identity", terms, [out])
    cv.define(out, shapes.pop())


def _eltwise_max(cv, i, ins) -> None:
    """max(a, b, c, ...) as a chain of two-input Max, in bottom order."""
    out = cv.layer_out[i][0]
    current = ins[0][0]
    for k, (t, _) in enumerate(ins[1:], start=1):
        last = k == len(ins) - 1
        target = out if last else cv.temp(f"max{k}")
        cv.node("Max", [current, t], [target], suffix="" if last else f"max{k}")
        current = target
    cv.define(out, ins[0][1])


@reg.register("ReLU")
def relu(cv, i):
    """ReLU -> Relu (negative_slope 0) or LeakyRelu(slope): Viya's leaky activation fixes the
    slope at 0.1; any other slope becomes exact batchnorm/residual layers (legalize_prelu)."""
    x, shape, out = _single(cv, i)
    slope = float(cv.net.layers[i].param("relu_param").negative_slope)
    if slope == 0:
        cv.node("Relu", [x], [out])
    else:
        viya = VIYA_FIXED_ALPHA["leaky"]
        cv.node("LeakyRelu", [x], [out],
                alpha=viya if math.isclose(slope, viya, rel_tol=1e-6) else slope)
    cv.define(out, shape)


@reg.register("PReLU")
def prelu(cv, i):
    """PReLU (one slope per channel, or shared) -> PRelu (irc's exact rewrite
    relu(x) - a*relu(-x))."""
    x, shape, out = _single(cv, i)
    shared = cv.net.layers[i].param("prelu_param").channel_shared
    (slope,) = cv.weights([("slope", (1,) if shared else (shape[1],))])
    per_channel = slope.reshape((-1,) + (1,) * (len(shape) - 2)) if not shared else slope
    cv.node("PRelu", [x, cv.const("slope", per_channel)], [out])
    cv.define(out, shape)


@reg.register("Sigmoid")
def sigmoid(cv, i):
    """Sigmoid -> Sigmoid."""
    _elementwise(cv, i, "Sigmoid")


@reg.register("TanH")
def tanh(cv, i):
    """TanH -> Tanh."""
    _elementwise(cv, i, "Tanh")


@reg.register("Dropout")
def dropout(cv, i):
    """Dropout -> Dropout in inference mode (identity; the ratio is not carried, trap 30)."""
    _elementwise(cv, i, "Dropout")


def _elementwise(cv, i, op_type: str) -> None:
    x, shape, out = _single(cv, i)
    cv.node(op_type, [x], [out])
    cv.define(out, shape)


@reg.register("Softmax")
def softmax(cv, i):
    """Softmax over channels of (N, C) or (N, C, 1, 1) -> (Flatten +) Softmax."""
    x, shape, out = _single(cv, i)
    axis = _axis(cv.net.layers[i].param("softmax_param").axis, len(shape))
    if axis != 1 or any(d != 1 for d in shape[2:]):
        cv.problem(f"Softmax over axis {axis} of a {list(shape)} blob; Viya's softmax covers "
                   "all values of its output layer: only (N, C) or (N, C, 1, 1) along C")
        raise Skip
    if len(shape) > 2:
        flat = cv.temp("flatten")
        cv.node("Flatten", [x], [flat], suffix="flatten", axis=1)
        x = flat
    cv.node("Softmax", [x], [out], axis=1)
    cv.define(out, shape[:2])


@reg.register("Concat")
def concat(cv, i):
    """Concat along channels (axis 1) -> Concat."""
    layer = cv.net.layers[i]
    p = layer.param("concat_param")
    ins = cv.ins(i)
    rank = len(ins[0][1])
    axis = _axis(p.axis, rank) if p.HasField("axis") or not p.HasField("concat_dim") \
        else int(p.concat_dim)
    rest = {s[:1] + s[2:] for _, s in ins}
    if axis != 1 or len(rest) != 1 or len(layer.tops) != 1:
        cv.problem(f"Concat along axis {axis} of {[list(s) for _, s in ins]}; Viya concatenates "
                   "channels (axis 1) of equal-sized blobs only")
        raise Skip
    out = cv.layer_out[i][0]
    cv.node("Concat", [t for t, _ in ins], [out], axis=1)
    cv.define(out, (1, sum(s[1] for _, s in ins)) + ins[0][1][2:])


@reg.register("Split")
def split(cv, i):
    """Split -> one Identity per top (removed by irc)."""
    ((x, shape),) = cv.ins(i)
    for k, out in enumerate(cv.layer_out[i]):
        cv.node("Identity", [x], [out], suffix=f"top{k}" if k else "")
        cv.define(out, shape)


@reg.register("Flatten")
def flatten(cv, i):
    """Flatten (axis 1 to the end) -> Flatten(axis=1)."""
    x, shape, out = _single(cv, i)
    p = cv.net.layers[i].param("flatten_param")
    if _axis(p.axis, len(shape)) != 1 or _axis(p.end_axis, len(shape)) != len(shape) - 1:
        cv.problem(f"Flatten axis {p.axis}..{p.end_axis}; irc handles axis 1 to the end only")
        raise Skip
    cv.node("Flatten", [x], [out], axis=1)
    cv.define(out, (1, math.prod(shape[1:])))


def drop_lrn(cv, i):
    """LRN with drop_lrn=True: an Identity, and a warning (the numbers change)."""
    x, shape, out = _single(cv, i)
    cv.warn("LRN dropped (drop_lrn=True): outputs deviate from Caffe's")
    cv.node("Identity", [x], [out])
    cv.define(out, shape)
