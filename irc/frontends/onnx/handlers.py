"""One handler per ONNX op. A handler checks the node's attributes (reporting problems to the
importer, which lists them all at the end) and emits IR ops with ONNX semantics, normalised:
``auto_pad`` becomes explicit ``pads``, opset-dependent attributes/inputs take one form, and
subtract/divide by a constant become add/multiply so later passes see fewer patterns.
"""
from __future__ import annotations

import math

import numpy as np

from irc.frontends.onnx.handlers_rnn import reads_sequence
from irc.frontends.onnx.registry import ONNX_OPS as reg
from irc.ir.activations import ACTIVATION_OPS, BY_OP

# The ops split into modules of their own register on import: importing this module (as older
# callers do) still fills the whole registry. catalog.onnx_ops() is the one entry point.
from irc.frontends.onnx import (handlers_constants, handlers_dense,  # noqa: F401,E402
                                handlers_select, handlers_shape)

# ---- convolution and pooling geometry -------------------------------------------------------


def _same_pads(size: int, kernel: int, stride: int, lower: bool) -> tuple[int, int]:
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def _spatial_attrs(imp, node, attrs, kernel):
    """kernel_shape, strides and explicit pads [top, left, bottom, right] of a 2-D window op."""
    x_type = imp.type_of(node.input[0])
    if x_type is None or x_type.rank != 4:
        imp.problem(f"{node.op_type} needs a 4-D (N,C,H,W) input; irc handles 2-D images only")
        return None
    if len(kernel) != 2:
        imp.problem(f"{node.op_type} kernel {kernel} is not 2-D")
        return None
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    if any(d != 1 for d in dilations):
        imp.problem(f"dilations {dilations}: Viya has no dilated convolution or pooling")
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        (t, b), (l, r) = (_same_pads(x_type.shape[2 + a], kernel[a], strides[a],
                                     auto_pad == "SAME_LOWER") for a in range(2))
        pads = [t, l, b, r]
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    else:
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(strides) != 2 or len(pads) != 4 or min(strides) < 1 or min(kernel) < 1 \
            or min(pads) < 0:
        imp.problem(f"{node.op_type} geometry is malformed: kernel {kernel}, strides {strides}, "
                    f"pads {pads} (2 positive kernel sizes and strides, 4 pads >= 0 needed)")
        return None
    return {"kernel_shape": [int(k) for k in kernel], "strides": [int(s) for s in strides],
            "pads": [int(p) for p in pads]}


@reg.register("Conv")
def conv(imp, node, attrs):
    """Conv -> convo (group 1) or groupconvo; weights OIHW as in ONNX."""
    w = imp.const(node.input[1])
    if w is None:
        imp.problem("the Conv weight is not a constant initializer")
        return
    if len(node.input) > 2 and node.input[2] and not imp.is_const(node.input[2]):
        imp.problem("the Conv bias is not a constant initializer")
        return
    spatial = _spatial_attrs(imp, node, attrs, attrs.get("kernel_shape", list(w.shape[2:])))
    if spatial is None:
        return
    imp.emit("Conv", node, attrs={**spatial, "group": int(attrs.get("group", 1))})


def _pool(imp, node, attrs, extra):
    if len(node.output) > 1 and imp.is_read(node.output[1]):
        imp.problem("MaxPool's indices output is used; Viya pooling has no such output")
        return
    if attrs.get("storage_order", 0):
        imp.problem("storage_order=1 only matters for the indices output, which Viya lacks")
    spatial = _spatial_attrs(imp, node, attrs, attrs.get("kernel_shape", []))
    if spatial is None:
        return
    imp.emit(node.op_type, node, inputs=[node.input[0]], outputs=[node.output[0]],
             attrs={**spatial, "ceil_mode": int(attrs.get("ceil_mode", 0)), **extra})


@reg.register("MaxPool")
def max_pool(imp, node, attrs):
    """MaxPool -> pool (max); ceil_mode and padding mapped exactly or refused."""
    _pool(imp, node, attrs, {})


@reg.register("AveragePool")
def average_pool(imp, node, attrs):
    """AveragePool -> pool (mean); count_include_pad checked against Viya's divisor."""
    _pool(imp, node, attrs, {"count_include_pad": int(attrs.get("count_include_pad", 0))})


@reg.register("GlobalAveragePool", "GlobalMaxPool")
def global_pool(imp, node, attrs):
    """Global pooling -> pool with width = height = 0."""
    x_type = imp.type_of(node.input[0])
    if x_type is None or x_type.rank != 4:
        imp.problem(f"{node.op_type} needs a 4-D (N,C,H,W) input")
        return
    imp.emit(node.op_type, node)


# ---- normalisation and element-wise ---------------------------------------------------------


@reg.register("BatchNormalization")
def batch_norm(imp, node, attrs):
    """BatchNormalization -> folded into the conv/fc before it, or a batchnorm layer."""
    if attrs.get("training_mode", 0) or any(o for o in node.output[1:]):
        imp.problem("BatchNormalization in training mode; export the model for inference")
        return
    if not all(imp.is_const(i) for i in node.input[1:5]):
        imp.problem("BatchNormalization statistics are not constants")
        return
    x_type = imp.type_of(node.input[0])
    channels = x_type.shape[1] if x_type is not None and x_type.rank >= 2 else None
    shapes = [tuple(imp.const(i).shape) for i in node.input[1:5]]
    if any(shape != (channels,) for shape in shapes):
        imp.problem(f"BatchNormalization scale/bias/mean/var have shapes {shapes}; the input "
                    f"has {channels} channels")
        return
    imp.emit("BatchNormalization", node, outputs=[node.output[0]],
             attrs={"epsilon": float(attrs.get("epsilon", 1e-5))})


def _split_const(imp, node):
    a, b = node.input[0], node.input[1]
    if imp.is_const(a) and imp.is_const(b):
        return "both", a, b
    if imp.is_const(b):
        return "second", a, b
    if imp.is_const(a):
        return "first", b, a
    return "none", a, b


@reg.register("Add")
def add(imp, node, attrs):
    """Add of two tensors -> residual; Add of a constant -> folded into a bias or batchnorm."""
    kind, x, c = _split_const(imp, node)
    if kind == "none":
        a, b = imp.type_of(x), imp.type_of(c)
        if a and b and a.shape != b.shape:
            imp.problem(f"Add of shapes {a} and {b} broadcasts; Viya's residual "
                        "layer needs identical shapes")
            return
        imp.emit("Sum", node, inputs=[x, c])
    else:
        imp.emit("Add", node, inputs=[x, c])


@reg.register("Sub")
def sub(imp, node, attrs):
    """Sub of a constant -> Add of its negation."""
    kind, x, c = _split_const(imp, node)
    if kind in ("both",):
        imp.emit("Sub", node)
    elif kind == "second":
        neg = imp.add_const(f"{c}_neg", -imp.const(c))
        imp.emit("Add", node, inputs=[x, neg])
    else:
        imp.problem("Sub of a non-constant is an element-wise difference, which Viya lacks",
                    viya_lacks=True)


@reg.register("Mul")
def mul(imp, node, attrs):
    """Mul by a constant -> folded into weights or a batchnorm scale."""
    kind, x, c = _split_const(imp, node)
    if kind == "none":
        imp.problem("Mul of two tensors is an element-wise product, which Viya lacks",
                    viya_lacks=True)
        return
    imp.emit("Mul", node, inputs=[x, c])


@reg.register("Div")
def div(imp, node, attrs):
    """Div by a constant -> Mul by its reciprocal."""
    kind, x, c = _split_const(imp, node)
    if kind == "both":
        imp.emit("Div", node)
    elif kind == "second":
        recip = imp.add_const(f"{c}_recip", (1.0 / imp.const(c)).astype(imp.const(c).dtype))
        imp.emit("Mul", node, inputs=[x, recip])
    else:
        imp.problem("Div by a non-constant is an element-wise quotient, which Viya lacks",
                    viya_lacks=True)


@reg.register("Sum")
def sum_(imp, node, attrs):
    """Sum of n tensors -> residual."""
    if any(imp.is_const(i) for i in node.input):
        imp.problem("Sum with a constant operand broadcasts; Viya's residual layer cannot")
        return
    shapes = {imp.type_of(i).shape for i in node.input if imp.type_of(i)}
    if len(shapes) > 1:
        imp.problem(f"Sum of shapes {sorted(shapes)}; Viya's residual needs identical shapes")
        return
    if len(node.input) == 1:
        imp.alias(node.output[0], node.input[0], node)
    else:
        imp.emit("Sum", node)


@reg.register("Concat")
def concat(imp, node, attrs):
    """Concat along channels -> concat layer."""
    out_type = imp.type_of(node.input[0])
    axis = int(attrs.get("axis", 1))
    if out_type is not None and axis < 0:
        axis += out_type.rank
    if all(imp.is_const(i) for i in node.input):
        imp.emit("Concat", node, attrs={"axis": axis})
        return
    if axis != 1:
        imp.problem(f"Concat along axis {axis}; Viya concatenates channels (axis 1) only")
        return
    constants = [i for i in node.input if imp.is_const(i)]
    if constants:
        imp.problem(f"Concat joins the constant {constants[0]!r} to computed values; Viya's "
                    "concat layer joins layer outputs only")
        return
    imp.emit("Concat", node, attrs={"axis": 1})


# ---- activations ----------------------------------------------------------------------------


# Every activation a carrier op can hold (the activation table). LeakyRelu is handlers_select's:
# a slope other than Viya's becomes an exact PRelu instead of a refusal.
@reg.register(*(op for op in ACTIVATION_OPS if op != "LeakyRelu"))
def activation(imp, node, attrs):
    """Activation -> the act of the layer before it (or an identity batchnorm carrier); an
    alpha Viya fixes (elu: 1) must be that value."""
    act = BY_OP[node.op_type]
    if act.alpha is None:
        imp.emit(node.op_type, node)
        return
    alpha = float(attrs.get("alpha", act.alpha))
    if not math.isclose(alpha, act.viya_alpha, rel_tol=1e-6):
        imp.problem(f"{node.op_type} alpha={alpha:g}; only alpha={act.viya_alpha:g} is known to "
                    f"match Viya's {act.viya}")
        return
    imp.emit(node.op_type, node, attrs={"alpha": act.viya_alpha})


@reg.register("Softmax")
def softmax(imp, node, attrs):
    """Softmax over the features of an (N, n) tensor -> act softmax of the output layer."""
    x_type = imp.type_of(node.input[0])
    default_axis = 1 if imp.opset < 13 else -1
    axis = int(attrs.get("axis", default_axis))
    if x_type is not None and x_type.rank == 3 and axis in (2, -1) \
            and reads_sequence(imp, node.input[0]):
        imp.emit("Softmax", node, attrs={"axis": -1})  # per time step of a sequence
        return
    if x_type is not None and x_type.rank > 2 and axis in (1, 1 - x_type.rank) \
            and all(d == 1 for d in x_type.shape[2:]):
        # Over the channels of (N, C, 1, 1) (any opset's meaning of axis 1): the softmax of the
        # flattened values, which Viya's output layer computes.
        imp.emit("Softmax", node, attrs={"axis": 1})
        return
    if x_type is None or x_type.rank != 2 or axis not in (1, -1):
        imp.problem("Softmax is supported over the last axis of an (N, n) tensor, or over the "
                    "channels of an (N, C, 1, 1) one, only; put a Flatten before it")
        return
    imp.emit("Softmax", node, attrs={"axis": -1})


# ---- structure and constants ----------------------------------------------------------------


@reg.register("Identity")
def identity(imp, node, attrs):
    """Identity -> removed."""
    imp.emit("Identity", node)


@reg.register("Dropout")
def dropout(imp, node, attrs):
    """Dropout -> removed (inference); its rate is never copied into Viya."""
    if len(node.input) > 2 and node.input[2]:
        training = imp.const(node.input[2])
        if training is None or bool(np.asarray(training).item()):
            imp.problem("Dropout in training mode")
            return
    if len(node.output) > 1 and imp.is_read(node.output[1]):
        imp.problem("Dropout's mask output is used")
        return
    imp.emit("Dropout", node, inputs=[node.input[0]], outputs=[node.output[0]])


@reg.register("Flatten")
def flatten(imp, node, attrs):
    """Flatten(axis=1) -> absorbed: Viya fc layers flatten their input as C,H,W."""
    axis = int(attrs.get("axis", 1))
    x_type = imp.type_of(node.input[0])
    if axis < 0 and x_type is not None:
        axis += x_type.rank  # ONNX counts a negative axis from the end
    if axis != 1 and not imp.is_const(node.input[0]):
        imp.problem(f"Flatten axis={axis}; only axis=1 keeps the batch axis apart")
        return
    imp.emit("Flatten", node, attrs={"axis": axis})


@reg.register("Reshape")
def reshape(imp, node, attrs):
    """Reshape to (N, features) -> a flatten; other reshapes -> a Viya reshape layer."""
    if not imp.is_const(node.input[1]):
        imp.problem("Reshape's target shape is computed at run time; irc needs a constant shape")
        return
    imp.emit("Reshape", node)


@reg.register("Transpose")
def transpose(imp, node, attrs):
    """Transpose -> folded away (NHWC->NCHW before a flatten); otherwise refused."""
    imp.emit("Transpose", node, attrs={"perm": [int(p) for p in attrs.get("perm", [])]}
             if "perm" in attrs else {})
