"""Constant subgraphs of an ONNX model, evaluated at import.

Exporters compute shapes and weights with chains of ops on constants (Constant -> Unsqueeze ->
Concat -> Reshape's shape; Transpose of a weight). Such a node is evaluated once, here, by
ONNX's reference evaluator, so it needs no handler and its result is a plain constant that
handlers can check ("is this Reshape's shape constant?").
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

# Ops whose result is not a function of their inputs.
NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                 "Multinomial", "Bernoulli"}
MAX_FOLD_ELEMENTS = 1 << 22


def foldable_nodes(model: onnx.ModelProto) -> set[int]:
    """Indices of the nodes computable from initializers alone (in graph order)."""
    known = {t.name for t in model.graph.initializer}
    found = set()
    for index, node in enumerate(model.graph.node):
        inputs = [i for i in node.input if i]
        if node.op_type in NOT_FOLDABLE or node.domain not in ("", "ai.onnx"):
            continue
        if (inputs or node.op_type in ("Constant",)) and all(i in known for i in inputs):
            found.add(index)
            known.update(o for o in node.output if o)
    return found


def evaluate(node: onnx.NodeProto, inputs: dict[str, np.ndarray], opset: int) -> list[np.ndarray]:
    """The outputs of ``node`` on constant ``inputs``."""
    graph = helper.make_graph(
        [node], "fold",
        [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for name, a in inputs.items()],
        [helper.make_empty_tensor_value_info(o) for o in node.output if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    from onnx.reference import ReferenceEvaluator  # 15 ms to import; most models never need it

    return [np.asarray(r) for r in ReferenceEvaluator(model).run(None, inputs)]
