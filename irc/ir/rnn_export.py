"""ONNX export of the IR's batch-first recurrent ops.

The IR keeps RNN/LSTM/GRU with ``layout=1`` (X (N, T, d), Y (N, T, dirs, n), Y_h (N, dirs, n))
so that axis 0 is the batch axis everywhere. onnxruntime refuses ``layout=1`` ("Batchwise
recurrent operations are not supported"), so the exporter writes the equivalent layout-0 op
between transposes: X -> (T, N, d), Y (T, dirs, N, n) -> (N, T, dirs, n), states (dirs, N, n)
-> (N, dirs, n).
"""
from __future__ import annotations

from onnx import helper

from irc.ir.ops import RECURRENT_OPS


def is_batch_first_recurrent(node) -> bool:
    return node.op_type in RECURRENT_OPS and node.attrs.get("layout", 0) == 1


def export_recurrent(node, attrs: dict) -> list:
    """Layout-0 ONNX nodes computing the layout-1 IR ``node`` (``attrs``: its ONNX attributes)."""
    attrs = {k: v for k, v in attrs.items() if k != "layout"}
    x_tm = f"{node.name}__x_time_major"
    nodes = [helper.make_node("Transpose", [node.inputs[0]], [x_tm], perm=[1, 0, 2],
                              name=f"{node.name}__x_t")]
    outs_tm = [f"{out}__time_major" for out in node.outputs]
    nodes.append(helper.make_node(node.op_type, [x_tm] + list(node.inputs[1:]), outs_tm,
                                  name=node.name, **attrs))
    for slot, (out, tm) in enumerate(zip(node.outputs, outs_tm)):
        perm = [2, 0, 1, 3] if slot == 0 else [1, 0, 2]
        nodes.append(helper.make_node("Transpose", [tm], [out], perm=perm,
                                      name=f"{node.name}__out{slot}_t"))
    return nodes
