"""1-D convolution, pooling and batchnorm as height-1 2-D layers, before the import (issue 16).

Viya's layers are 2-D; a 1-D layer over (N, C, L) is the same layer over (N, C, 1, L) with a
height-1 window: weights (O, I, k) -> (O, I, 1, k), kernel (k) -> (1, k), strides (s) -> (1, s),
pads [p, p'] -> [0, p, 0, p'], dilations (d) -> (1, d). The rewrite, on the ModelProto:

- each Conv/MaxPool/AveragePool/GlobalMaxPool/GlobalAveragePool/BatchNormalization on a rank-3
  value becomes its 2-D form on the height-1 value;
- element-wise ops between them (activations, Add/Sum/Mul/... of such values or with a
  constant, which gets the unit axis too, Concat of channels) stay on height-1 values, so
  consecutive 1-D layers meet with no Squeeze/Unsqueeze pair between them;
- an ``Unsqueeze(axis 2)`` makes a rank-3 value height 1 where a 1-D region starts, and a
  ``Squeeze(axis 2)`` gives the rank-3 value back only where something else (or the graph
  output) reads it. Lowering reads both as the same Viya layer (no copy: the order of the
  values is unchanged), and a rank-3 graph input read by an Unsqueeze as Viya's input layer
  C x 1 x L.

Models without a rank-3 1-D layer are returned untouched.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from irc.frontends.onnx import loader
from irc.ir.activations import ACTIVATION_OPS
from irc.utils.unique_name import unique_name

LAYERS = ("Conv", "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool",
          "BatchNormalization")
ELEMENTWISE = (*ACTIVATION_OPS, "Clip", "Neg", "Identity", "Dropout", "PRelu", "Add", "Sub",
               "Mul", "Div", "Sum", "Concat")
# Inputs of an element-wise op that are operands (Clip's bounds and Dropout's ratio are not).
OPERANDS = {"Clip": 1, "Dropout": 1}
WINDOW_ATTRS = {"kernel_shape": 1, "strides": 1, "dilations": 1}  # the new height entry


STARTERS = LAYERS + ("PRelu", "LeakyRelu")  # these two become per-channel batchnorm layers


def _is_1d_layer(node, types) -> bool:
    """A layer over (N, C, L) (recurrent models keep rank-3 values as sequences)."""
    t = types.get(node.input[0]) if node.input else None
    return node.op_type in STARTERS and node.domain in ("", "ai.onnx") \
        and t is not None and t.rank == 3


class _Lift:
    def __init__(self, model: onnx.ModelProto, input_shapes, label: str):
        self.g = model.graph
        self.types = loader.infer_types(model, input_shapes, label)
        self.opset = loader.check_opset(model, label)
        self.const_rank = {t.name: len(t.dims) for t in self.g.initializer}
        self.consts = {t.name for t in self.g.initializer} | {
            o for n in self.g.node if n.op_type == "Constant" for o in n.output}
        self.taken = {o for n in self.g.node for o in n.output} | {i.name for i in self.g.input} \
            | set(self.consts)
        self.height_one: dict[str, str] = {}  # rank-3 value -> its height-1 value
        self.new_nodes: list = []

    def fresh(self, hint: str) -> str:
        return unique_name(hint, self.taken)

    def _axes_node(self, op: str, value: str, axis: int, out: str):
        if self.opset < 13:
            return helper.make_node(op, [value], [out], axes=[axis], name=self.fresh(out))
        axes = self.fresh(f"{out}_axes")
        self.g.initializer.append(numpy_helper.from_array(np.array([axis], np.int64), axes))
        return helper.make_node(op, [value, axes], [out], name=self.fresh(out))

    def lifted(self, value: str) -> str:
        """The height-1 form of the rank-3 ``value`` (an Unsqueeze the first time)."""
        if value not in self.height_one:
            out = self.fresh(f"{value}__height1")
            self.new_nodes.append(self._axes_node("Unsqueeze", value, 2, out))
            self.height_one[value] = out
        return self.height_one[value]

    def constant_operand(self, value: str) -> str:
        """A constant broadcast against (N, C, L), made to broadcast against (N, C, 1, L)."""
        t = self.types.get(value)
        rank = t.rank if t is not None else self.const_rank.get(value, 0)
        if rank < 2:
            return value  # a scalar or a per-position vector: aligned on L either way
        out = self.fresh(f"{value}__height1")
        self.new_nodes.append(self._axes_node("Unsqueeze", value, rank - 1, out))
        return out

    def liftable(self, node) -> bool:
        if _is_1d_layer(node, self.types):
            return True
        if node.op_type not in ELEMENTWISE or node.domain not in ("", "ai.onnx"):
            return False
        operands = [i for i in node.input[:OPERANDS.get(node.op_type, len(node.input))] if i]
        computed = [i for i in operands if i not in self.consts]
        if not any(i in self.height_one for i in computed):
            return False
        if any(self.types.get(i) is None or self.types[i].rank != 3 for i in computed):
            return False
        if node.op_type == "Concat":
            axis = next((helper.get_attribute_value(a) for a in node.attribute
                         if a.name == "axis"), 1)
            return int(axis) in (1, -2) and not any(i in self.consts for i in operands)
        if node.op_type == "Dropout" and len([o for o in node.output if o]) > 1:
            return False
        return True

    def rewrite(self, node) -> None:
        operands = 1 if node.op_type in LAYERS else OPERANDS.get(node.op_type, len(node.input))
        for k, value in enumerate(node.input):
            if not value or k >= operands:
                continue
            node.input[k] = self.constant_operand(value) if value in self.consts \
                else self.lifted(value)
        if node.op_type == "Conv" and len(node.input) > 1:
            node.input[1] = self.lifted_weight(node.input[1])
        if node.op_type == "Concat":
            _set_attr(node, "axis", 1)
        for a in list(node.attribute):
            if a.name in WINDOW_ATTRS:
                _set_attr(node, a.name, [1] + list(helper.get_attribute_value(a)))
            elif a.name == "pads":
                p = list(helper.get_attribute_value(a))
                if len(p) == 2:
                    _set_attr(node, "pads", [0, p[0], 0, p[1]])
        for k, out in enumerate(node.output):
            if out and (k == 0 or node.op_type not in LAYERS):
                node.output[k] = self.height_one[out] = self.fresh(f"{out}__height1")

    def lifted_weight(self, value: str) -> str:
        out = self.fresh(f"{value}__height1")
        self.new_nodes.append(self._axes_node("Unsqueeze", value, 2, out))
        return out

    def run(self) -> None:
        graph_outputs = {o.name for o in self.g.output}
        originals = list(self.g.node)
        lifted_nodes = []
        for node in originals:
            if self.liftable(node):
                before = list(node.output)
                self.rewrite(node)
                lifted_nodes.append((node, before))
            self.new_nodes.append(node)
        # Rank-3 values back where a node that stayed rank-3, or the graph output, reads them.
        readers = {i for n in self.new_nodes for i in n.input} | graph_outputs
        final = []
        squeezes = {}
        for node, before in lifted_nodes:
            for old, new in zip(before, node.output):
                if old and old != new and old in readers:
                    squeezes.setdefault(id(node), []).append(
                        self._axes_node("Squeeze", new, 2, old))
        for node in self.new_nodes:
            final.append(node)
            final.extend(squeezes.get(id(node), []))
        del self.g.node[:]
        self.g.node.extend(final)


def _set_attr(node, name, value) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def height_one_layers(model: onnx.ModelProto, input_shapes, label: str) -> onnx.ModelProto:
    """``model`` with its 1-D layers as height-1 2-D layers (see the module doc)."""
    if not any(n.op_type in STARTERS for n in model.graph.node) or \
            any(n.op_type in ("RNN", "LSTM", "GRU") for n in model.graph.node):
        return model
    types = loader.infer_types(model, input_shapes, label)
    if not any(_is_1d_layer(n, types) for n in model.graph.node):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    _Lift(copy, input_shapes, label).run()
    return copy
