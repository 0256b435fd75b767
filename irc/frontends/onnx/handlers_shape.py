"""ONNX handlers for zero padding and unit axes: Pad (-> the padding of the conv/pool reading
it) and Squeeze/Unsqueeze (folded on constants; around unit axes, aliases or flattens)."""
from __future__ import annotations

import numpy as np

from irc.frontends.onnx.registry import ONNX_OPS as reg


@reg.register("Pad")
def pad(imp, node, attrs):
    """Pad with zeros -> folded into the padding of the conv/pool that reads it."""
    mode = attrs.get("mode", "constant")
    if imp.opset < 11:
        pads = imp.add_const(f"{node.output[0]}_pads", np.array(attrs.get("pads", []), np.int64))
        value = float(attrs.get("value", 0.0))
        inputs = [node.input[0], pads]
    else:
        if not imp.is_const(node.input[1]):
            imp.problem("Pad amounts are not constant")
            return
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            const_value = imp.const(node.input[2])
            value = None if const_value is None else float(np.asarray(const_value).item())
        inputs = [node.input[0], node.input[1]]
        if len(node.input) > 3 and node.input[3]:
            inputs[1] = _pads_for_every_axis(imp, node)
            if inputs[1] is None:
                return
    if mode != "constant" or value != 0.0:
        imp.problem(f"Pad mode={mode!r} value={value}; Viya pads with zeros only")
        return
    imp.emit("Pad", node, inputs=inputs, attrs={"mode": "constant"})


def _pads_for_every_axis(imp, node) -> str | None:
    """Opset 18's Pad(x, pads, value, axes) as the pads of every axis (zeros elsewhere)."""
    axes, amounts, x_type = imp.const(node.input[3]), imp.const(node.input[1]), \
        imp.type_of(node.input[0])
    if axes is None or x_type is None:
        imp.problem("Pad's axes are not constant")
        return None
    rank, axes = x_type.rank, [int(a) for a in np.asarray(axes).reshape(-1)]
    amounts = [int(p) for p in np.asarray(amounts).reshape(-1)]
    axes = [a + rank if a < 0 else a for a in axes]
    if len(amounts) != 2 * len(axes) or not all(0 <= a < rank for a in axes):
        imp.problem(f"Pad axes {axes} and pads {amounts} do not fit a {rank}-D input")
        return None
    full = np.zeros(2 * rank, np.int64)
    for i, axis in enumerate(axes):
        full[axis], full[axis + rank] = amounts[i], amounts[i + len(axes)]
    return imp.add_const(imp.graph.unique_value_name(f"{node.output[0]}_pads"), full)


def _axes_input(imp, node, attrs):
    if imp.opset < 13 and node.op_type in ("Squeeze", "Unsqueeze"):
        if "axes" not in attrs:
            return [node.input[0]]
        return [node.input[0], imp.add_const(f"{node.output[0]}_axes",
                                             np.array(attrs["axes"], np.int64))]
    return list(node.input)


@reg.register("Squeeze", "Unsqueeze")
def squeeze(imp, node, attrs):
    """Squeeze/Unsqueeze -> folded on constants; around unit axes, a flatten."""
    inputs = _axes_input(imp, node, attrs)
    if len(inputs) > 1 and not imp.is_const(inputs[1]):
        imp.problem(f"{node.op_type} axes are not constant")
        return
    problem = _batch_squeeze_problem(imp, node, inputs)
    if problem:
        imp.problem(problem)
        return
    imp.emit(node.op_type, node, inputs=inputs)


def _batch_squeeze_problem(imp, node, inputs) -> str:
    """Why a Squeeze of axis 0 (the batch, 1 in the source) cannot convert, or "". The axis
    after it becomes axis 0, which irc reads as the batch: right when that axis has size 1
    (x[0] of a (1, 1) input), wrong otherwise (ONNX's test_squeeze: 1x3x4x5 -> 3x4x5 would
    make 3 the batch)."""
    x_type = imp.type_of(inputs[0])
    if node.op_type != "Squeeze" or len(inputs) < 2 or x_type is None or \
            imp.is_const(inputs[0]):
        return ""
    axes = {int(a) % x_type.rank for a in np.asarray(imp.const(inputs[1])).reshape(-1)}
    kept = [d for i, d in enumerate(x_type.shape) if i not in axes]
    if 0 not in axes or (kept and kept[0] == 1):
        return ""
    return (f"Squeeze of axis 0, the batch axis, of a {x_type.rank}-D value: its next axis "
            f"(size {kept[0] if kept else 'none'}) would become the batch, and Viya's batch is "
            "implicit (every layer keeps it); squeeze the other axes only, or remove the "
            "Squeeze and take the batch-1 output")
