"""Keras feed-forward models -> ONNX without tf2onnx: the direct route (issue 10).

tf2onnx freezes the whole TensorFlow graph and copies it, weights included, before each of its
optimizer passes: VGG16 alone took 126 s and 18.8 GB. Most Keras CNNs are built only from layers
whose ONNX form is fixed, so irc writes that form itself, walking the Keras layer graph once
and copying each weight once (converted to ONNX's layout). The result is what tf2onnx would
give for the same model (N,C,H,W input, Keras-ordered N,H,W,C outputs, a Keras Flatten as
Transpose -> Flatten), so the same clean-up (:mod:`onnx_cleanup`) follows either route.

The route is taken when every layer (nested models included) has a handler with an emitter in
:data:`~irc.frontends.keras.handlers.KERAS_LAYERS`; anything else (Lambda layers, Keras 3 ops applied to tensors, a layer
irc has no direct handler for) goes through tf2onnx. Node names are the Keras layer names.
Past SIDE_FILE_BYTES of weights, large ones are written to a side file as external data
(:mod:`irc.ir.side_file`): a ModelProto cannot pass 2 GB, tf2onnx's output neither.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from irc.errors import InvalidModel
from irc.frontends.keras.handlers import KERAS_LAYERS
from irc.frontends.keras.handlers.common import Value
from irc.frontends.keras.model_graph import all_layers, is_container, model_tensors
from irc.frontends.keras.onnx_writer import OnnxWriter
from irc.ir.opset import IR_VERSION, OPSET
from irc.ir.side_file import MIN_TENSOR_BYTES, SideFile

SIDE_FILE_BYTES = 1 << 30
# Where Keras keeps layer classes; anything else in a model graph is an op applied to tensors.
_LAYER_MODULES = ("keras.src.layers.", "keras.layers.", "tf_keras.src.layers.",
                  "tf_keras.layers.", "keras.src.engine.input_layer", "tf_keras.src.engine.",
                  # layers keras.applications define for themselves (InceptionResNetV2's
                  # CustomScaleLayer); only those with a direct handler pass the check above
                  "keras.src.applications.", "tf_keras.src.applications.")


def why_not(model) -> str | None:
    """None if the direct route converts ``model``; else why tf2onnx has to."""
    others = sorted({type(layer).__name__ for layer in all_layers(model)
                     if not _is_input(layer) and KERAS_LAYERS.emitter(type(layer).__name__) is None})
    if others:
        return f"no direct handler for {', '.join(others)}"
    for op in _graph_ops(model):
        if not _is_input(op) and not is_container(op) and \
                not type(op).__module__.startswith(_LAYER_MODULES):
            return f"the graph applies {type(op).__name__} ({type(op).__module__}), not a " \
                   "Keras layer"
    return None


def _is_input(layer) -> bool:
    return type(layer).__name__ == "InputLayer"


def _graph_ops(model) -> list:
    """Every operation reachable from the outputs (Keras 3 ops included), containers opened."""
    seen, ops, todo = set(), [], [t for t in model_tensors(model, "outputs")]
    while todo:
        op, node_index, _ = todo.pop()._keras_history
        if (id(op), node_index) in seen:
            continue
        seen.add((id(op), node_index))
        ops.append(op)
        if is_container(op):
            ops += _graph_ops(op)
        if not _is_input(op):
            todo += _node_inputs(op._inbound_nodes[node_index])
    return ops


def _node_inputs(node) -> list:
    """A Keras node's input tensors, flat, in call order (Keras 3 and tf-keras)."""
    items = getattr(node, "keras_inputs", None)
    if items is None:
        items = node.input_tensors
    flat = []

    def walk(obj):
        if isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item)
        elif hasattr(obj, "_keras_history"):
            flat.append(obj)

    walk(items)
    return flat


class DirectEmitter(OnnxWriter):
    def __init__(self, input_name: str, label: str, side_file: SideFile | None = None):
        super().__init__(reserved=(input_name,))
        self.label = label
        self.side_file = side_file  # large weights go there when the model passes 2 GB
        self._weights: dict[tuple[int, str], str] = {}  # a layer called twice shares weights

    def const(self, hint: str, array) -> str:
        if self.side_file is None or np.asarray(array).nbytes < MIN_TENSOR_BYTES:
            return super().const(hint, array)
        name = self.fresh(hint)
        self.inits.append(self.side_file.tensor(name, np.asarray(array)))
        return name

    def weight(self, layer, hint: str, array) -> str:
        key = (id(layer), hint)
        if key not in self._weights:
            self._weights[key] = self.const(hint, array)
        return self._weights[key]

    def values_of(self, model, bound: dict) -> list[Value]:
        """The values of ``model.outputs``, given values for its input tensors (by history key).

        Iterative (deep models exceed Python's recursion limit); a nested model recurses once
        per nesting level, with its own memo, as it may be called on different inputs."""
        memo = dict(bound)
        todo = list(model_tensors(model, "outputs"))
        while todo:
            tensor = todo[-1]
            key = _key(tensor)
            if key in memo:
                todo.pop()
                continue
            op, node_index, _ = tensor._keras_history
            if _is_input(op):
                raise InvalidModel(f"the Keras graph reads input {op.name!r}, which is not the "
                                   "model input", file=self.label)
            node = op._inbound_nodes[node_index]
            args = _node_inputs(node)
            missing = [t for t in args if _key(t) not in memo]
            if missing:
                todo += missing
                continue
            inputs = [memo[_key(t)] for t in args]
            if is_container(op):
                inner = model_tensors(op, "inputs")
                outs = self.values_of(op, {_key(t): v for t, v in zip(inner, inputs)})
            else:
                emit = KERAS_LAYERS.emitter(type(op).__name__)
                outs = emit(self, op, op.get_config(), inputs)
            for k, value in enumerate(outs):
                memo[(id(op), node_index, k)] = value
        return [memo[_key(t)] for t in model_tensors(model, "outputs")]


def _key(tensor) -> tuple[int, int, int]:
    op, node_index, tensor_index = tensor._keras_history
    return id(op), node_index, tensor_index


def to_onnx(model, dims: tuple[int, ...], input_name: str, label: str,
            flavor: str) -> onnx.ModelProto:
    """ONNX for ``model`` at the input shape ``dims`` (Keras order, no batch), before the
    clean-up: N,C,H,W (or N,F) input, outputs in Keras's own layout."""
    # Protobuf stops at 2 GB: past SIDE_FILE_BYTES of weights, large ones go to a side file.
    side_file = SideFile() if model.count_params() * 4 > SIDE_FILE_BYTES else None
    e = DirectEmitter(input_name, label, side_file)
    (tensor,) = model_tensors(model, "inputs")[:1]
    shape = (dims[2], dims[0], dims[1]) if len(dims) == 3 else dims
    outputs = e.values_of(model, {_key(tensor): Value(input_name, tuple(dims))})
    out_infos = []
    for k, value in enumerate(outputs):
        name = value.name
        if len(value.shape) == 3:  # Keras outputs are N,H,W,C
            (name,) = e.node("Transpose", [value.name], f"output_{k}_nhwc", perm=[0, 2, 3, 1])
        elif name == input_name or name in (i.name for i in out_infos):
            (name,) = e.node("Identity", [value.name], f"output_{k}")
        out_infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                       ["N", *value.shape]))
    graph = helper.make_graph(
        e.nodes, model.name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", *shape])],
        out_infos, initializer=e.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=f"irc keras frontend ({flavor}), direct")
    proto.ir_version = IR_VERSION
    return side_file.finish(proto) if side_file is not None else proto
