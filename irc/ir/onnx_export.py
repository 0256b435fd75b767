"""Export any IR graph to an ONNX model, so every stage runs in onnxruntime and opens in Netron.

IR ops are ONNX ops; the only expansion is the fused ``activation`` attribute, which becomes
a separate activation node after the carrier op.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from irc.ir.graph import Graph
from irc.ir.opset import IR_VERSION, OPSET
from irc.ir.activations import ACTIVATIONS, TAKES_ALPHA
from irc.ir.rnn_export import export_recurrent, is_batch_first_recurrent
from irc.ir.side_file import runnable
from irc.ir.tensors import BATCH, TensorType, WeightHandle

def _value_info(name: str, ttype: TensorType) -> onnx.ValueInfoProto:
    dims = ["N" if d == BATCH else d for d in ttype.shape]
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(ttype.dtype))
    return helper.make_tensor_value_info(name, elem, dims)


def _onnx_attrs(node) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in node.attrs.items()
            if k not in ("activation", "activation_alpha") and v is not None}


def _activation_node(act: str, alpha: float, src: str, dst: str, name: str) -> onnx.NodeProto:
    kwargs = {"alpha": float(alpha)} if act in TAKES_ALPHA else {}
    return helper.make_node(ACTIVATIONS[act].onnx_op, [src], [dst], name=name, **kwargs)


def _initializer(handle: WeightHandle, name: str) -> onnx.TensorProto:
    """The weight as an initializer. A described weight (a transform of a source weight) is
    evaluated block by block straight into the tensor's bytes: never whole as an array too."""
    dtype = np.dtype(handle.dtype)
    if not handle.is_expr or handle.store.is_loaded(handle.key) or dtype.kind not in "fiub":
        return numpy_helper.from_array(np.asarray(handle.numpy()), name)
    little = dtype.newbyteorder("<")
    tensor = onnx.TensorProto(name=name, dims=list(handle.shape),
                              data_type=helper.np_dtype_to_tensor_dtype(dtype))
    tensor.raw_data = b"".join(block.astype(little, copy=False).tobytes()
                               for _, block in handle.lazy().blocks())
    return tensor


def to_onnx(graph: Graph, with_intermediates: bool = False) -> onnx.ModelProto:
    """The graph as a checked ONNX model (opset 17).

    ``with_intermediates`` also lists every op output as a graph output, for layer-by-layer
    comparison.
    """
    nodes, initializers = [], []
    for value in graph.values():
        if value.is_const and graph.use_count(value.name):
            initializers.append(_initializer(value.const, value.name))
    for node in graph.nodes():
        if is_batch_first_recurrent(node):  # onnxruntime runs layout 0 only
            nodes += export_recurrent(node, _onnx_attrs(node))
            continue
        act = node.attrs.get("activation", "identity")
        outputs = list(node.outputs)
        if act != "identity":
            outputs[0] = f"{node.outputs[0]}__preact"
        nodes.append(helper.make_node(node.op_type, node.inputs, outputs, name=node.name,
                                      **_onnx_attrs(node)))
        if act != "identity":
            nodes.append(_activation_node(act, node.attrs.get("activation_alpha", 0.0),
                                          outputs[0], node.outputs[0], f"{node.name}__act"))
    output_names = list(dict.fromkeys(graph.outputs))
    if with_intermediates:
        for node in graph.nodes():
            output_names += [o for o in node.outputs if o not in output_names]
    onnx_graph = helper.make_graph(
        nodes, graph.name,
        [_value_info(n, graph.value(n).type) for n in graph.inputs],
        [_value_info(n, graph.value(n).type) for n in output_names],
        initializer=initializers)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="irc")
    model.ir_version = IR_VERSION
    helper.set_model_props(model, dict(graph.metadata))   # e.g. a detection head
    return model


def run_onnxruntime(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``model`` (a ModelProto, or a path: needed past 2 GB) on CPU; every output by name."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Errors come back as exceptions; onnxruntime's own log line would be a second message.
    options.log_severity_level = 4
    # onnxruntime's own graph rewrites would hide what the model says; run it as written.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # Each session runs once: packing weights ahead for repeated GEMMs would hold a second copy
    # of every weight (for a 2.2 GB fc weight: +2.1 GB peak RSS and 3 s to build the session;
    # unpacked, onnxruntime reads external data memory-mapped).
    options.add_session_config_entry("session.disable_prepacking", "1")
    if isinstance(model, onnx.ModelProto):
        model = runnable(model)  # a path where its weights live in a side file
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))
