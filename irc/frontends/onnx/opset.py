"""Which default-domain opsets irc reads, and the upgrade of old ones.

The handlers are written against opsets ``MIN_OPSET``.. (where the attribute/input forms they
know start). A model older than that (PyTorch's exporters wrote opsets 6-9 for years; ONNX's
own backend test data is such) is upgraded by ``onnx.version_converter`` and the user is told.
Any opset the installed onnx knows is accepted; a newer one cannot be shape-checked, so it is
refused.
"""
from __future__ import annotations

import onnx
from onnx import helper, version_converter

from irc.errors import InvalidModel
from irc.utils.unique_name import unique_name

MIN_OPSET = 9
# Old models are upgraded to 13, not just to MIN_OPSET: opset 13 is where every axis-like operand
# the handlers read (Squeeze/Unsqueeze/Split axes, Clip bounds, Pad amounts, Slice bounds) is an
# input, the form the IR itself uses, and onnx's adapters from opsets 6-8 reach 13 for every
# model in onnx's PyTorch test data (opset 9 refuses MaxPool with dilations, 11 and 17 add
# nothing irc needs). One constant: upgraded models always arrive in the same form.
UPGRADE_TO = 13
MAX_OPSET = onnx.defs.onnx_opset_version()


def default_opset(model: onnx.ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def check_opset(model: onnx.ModelProto, label: str) -> int:
    """The model's default-domain opset, which must be one irc handles."""
    opset = default_opset(model)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidModel(f"default-domain opset {opset} is outside the supported {MIN_OPSET}.."
                           f"{MAX_OPSET}", file=label,
                           hint=f"opsets 1..{MIN_OPSET - 1} are upgraded automatically; a newer "
                                f"opset needs a newer onnx package, or re-export the model at "
                                f"opset <= {MAX_OPSET}")
    return opset


def upgrade_old_opset(model: onnx.ModelProto, label: str,
                      notes: list[str] | None) -> onnx.ModelProto:
    """``model`` itself, or, below MIN_OPSET, a copy converted to opset UPGRADE_TO."""
    opset = default_opset(model)
    if opset is None or opset >= MIN_OPSET or opset < 1:
        return model
    if opset < 7:
        model = _per_channel_prelu_slopes(model)
    model = _image_scalers_as_mul_add(model)
    try:
        upgraded = version_converter.convert_version(model, UPGRADE_TO)
    except Exception as exc:  # the converter raises RuntimeError/IndexError/its own types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
        raise InvalidModel(f"default-domain opset {opset} is older than {MIN_OPSET} and "
                           f"onnx.version_converter cannot upgrade it to {UPGRADE_TO}: {first}",
                           file=label, hint=f"re-export the model at opset {UPGRADE_TO} or "
                                            "newer") from None
    # The converter keeps the old IR version, which predates initializers that are not inputs.
    upgraded.ir_version = max(upgraded.ir_version, helper.find_min_ir_version_for(
        [helper.make_opsetid("", UPGRADE_TO)]))
    if notes is not None:
        notes.append(f"the model's opset {opset} was upgraded to opset {UPGRADE_TO} with "
                     "onnx.version_converter before conversion (verification runs the original)")
    return upgraded


def _image_scalers_as_mul_add(model: onnx.ModelProto) -> onnx.ModelProto:
    """ImageScaler (an experimental op of opsets 1-9: y = x·scale + bias[c] per channel, the
    first op of the model zoo's tiny-YOLOv2) has no schema in today's onnx, so
    onnx.version_converter cannot upgrade a model holding it. A copy with each one written as
    Mul(x, scale) then Add(·, bias as (1, C, 1, 1)): the same numbers (one rounding each, as
    onnxruntime's ImageScaler), which irc folds like any per-channel affine."""
    if not any(n.op_type == "ImageScaler" and n.domain in ("", "ai.onnx")
               for n in model.graph.node):
        return model
    import numpy as np
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    taken = {v for n in out.graph.node for v in list(n.input) + list(n.output)}
    taken |= {t.name for t in out.graph.initializer}
    nodes = []
    for node in out.graph.node:
        if node.op_type != "ImageScaler" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        base = node.name or node.output[0]
        factor = np.asarray(attrs.get("scale", 1.0), np.float32)
        channels = np.asarray(attrs.get("bias", [0.0]), np.float32)
        x = node.input[0]
        steps = [("Mul", "scale", factor)] if factor != 1 else []
        steps += [("Add", "bias", channels.reshape(1, -1, 1, 1))] if channels.any() else []
        if not steps:   # scale 1, bias 0 (the zoo's tiny-YOLOv2): nothing to compute
            nodes.append(helper.make_node("Identity", [x], [node.output[0]], name=base))
            continue
        for k, (op, hint, value) in enumerate(steps):
            name = unique_name(f"{base}_{hint}", taken)
            out.graph.initializer.append(numpy_helper.from_array(value, name))
            if out.ir_version < 4:   # IR 3: every initializer is also a graph input
                out.graph.input.append(helper.make_tensor_value_info(
                    name, onnx.TensorProto.FLOAT, value.shape))
            y = node.output[0] if k == len(steps) - 1 else unique_name(f"{base}_scaled", taken)
            nodes.append(helper.make_node(op, [x, name], [y], name=f"{base}_{op.lower()}"))
            x = y
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def _per_channel_prelu_slopes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Before opset 7, a PRelu slope of shape (C,) is one slope per channel (axis 1), as the
    exporters of the time meant it; from opset 7 on it broadcasts numpy-style against the last
    axis, and onnx.version_converter does not rewrite it. A copy with such slopes reshaped to
    (C, 1, ..., 1), so the upgraded model computes what the old one did."""
    from onnx import numpy_helper, shape_inference

    inits = {t.name: t for t in model.graph.initializer}
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # an old model shape inference cannot read: leave it to the converter
        return model
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in list(inferred.graph.value_info) + list(inferred.graph.input)
             if v.type.tensor_type.HasField("shape")}
    fixed = None
    for node in model.graph.node:
        if node.op_type != "PRelu" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        slope = numpy_helper.to_array(inits[node.input[1]])
        rank = ranks.get(node.input[0], 0)
        if slope.ndim == 1 and slope.size > 1 and rank >= 3:
            if fixed is None:
                fixed = onnx.ModelProto()
                fixed.CopyFrom(model)
                inits = {t.name: t for t in fixed.graph.initializer}
            shaped = slope.reshape((slope.size,) + (1,) * (rank - 2))
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(shaped, node.input[1]))
            for declared in fixed.graph.input:  # old models list initializers as inputs too
                if declared.name == node.input[1]:
                    declared.CopyFrom(helper.make_tensor_value_info(
                        declared.name, declared.type.tensor_type.elem_type, list(shaped.shape)))
    return fixed if fixed is not None else model
