"""Time-major recurrent ops made batch-first, before the import (issue 6).

ONNX RNN/LSTM/GRU default to ``layout=0``: X (T, N, d), Y (T, dirs, N, n), Y_h (dirs, N, n).
Exporters wrap them in transposes and squeezes to and from the model's batch-first tensors
(onnxruntime runs only layout 0). irc's IR keeps axis 0 as the batch axis everywhere, so this
rewrite, on the ModelProto before the importer sees it:

- feeds each op the batch-first value behind its ``Transpose(perm=[1,0,2])`` input and sets
  ``layout=1``;
- replaces the layout ops (Transpose, Squeeze, Unsqueeze, Reshape, Flatten, Identity) after each
  output with one Reshape of the batch-first output, wherever a value in that tree is read by a
  computing op (or is a graph output). Each such value is checked exactly: labelled elements
  (0, 1, 2, ...) pushed through the tree must come out batch-first, in the order of the
  batch-first output, for a batch size that is no other dimension;
- gives a time-major value read by the next time-major recurrent op (a stacked model) to that
  op batch-first as well.

Anything else (a time-major graph input, a rearrangement Viya cannot express) raises one error
naming the op. Models without time-major recurrent ops are returned untouched; others are
copied (recurrent models are small).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from irc.errors import UnsupportedAttribute
from irc.frontends.onnx import loader

RECURRENT = ("RNN", "LSTM", "GRU")
LAYOUT_OPS = ("Transpose", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Identity", "Dropout")


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _time_major(node) -> bool:
    return node.op_type in RECURRENT and node.domain in ("", "ai.onnx") \
        and int(_attrs(node).get("layout", 0)) == 0


class _Rewrite:
    def __init__(self, model: onnx.ModelProto, input_shapes, label: str):
        self.model, self.label = model, label
        self.g = model.graph
        self.nodes = list(self.g.node)  # one wrapper per node, so id() is stable
        self.types = loader.infer_types(model, input_shapes, label)
        self.consts = {t.name: t for t in self.g.initializer}
        for node in self.nodes:
            if node.op_type == "Constant" and "value" in _attrs(node):
                self.consts[node.output[0]] = _attrs(node)["value"]
        self.opset = loader.check_opset(model, label)
        self.removed: set[int] = set()  # ids of nodes to drop
        self.added: dict[int, list] = {}  # id(node) -> nodes to insert before it
        self.batch_first: dict[str, str] = {}  # time-major value -> batch-first value

    # ---- helpers ---------------------------------------------------------------------------
    def fail(self, node, message: str):
        raise UnsupportedAttribute(f"{node.op_type} {node.name or node.output[0]!r}: {message}",
                                   file=self.label, hint="export the recurrent layer batch-first"
                                   " (or with plain Transpose/Squeeze/Reshape around it)")

    def const(self, name):
        tensor = self.consts.get(name)
        if tensor is None or tensor.data_location == onnx.TensorProto.EXTERNAL:
            return None  # external (or memory-mapped) data: large, never a shape constant
        return numpy_helper.to_array(tensor)

    def consumers(self, value: str) -> list:
        return [n for n in self.nodes if id(n) not in self.removed and value in n.input]

    def producer(self, value: str):
        return next((n for n in self.nodes if value in n.output), None)

    def fresh(self, hint: str) -> str:
        names = {o for n in self.nodes for o in n.output} | {i.name for i in self.g.input}
        names |= {o for added in self.added.values() for n in added for o in n.output}
        name, k = hint, 1
        while name in names or name in self.consts:
            k += 1
            name = f"{hint}_{k}"
        return name

    def _apply(self, node, arr):
        """The layout op ``node`` applied to the labelled array ``arr`` (None: not a layout op
        this rewrite understands)."""
        op, a = node.op_type, _attrs(node)
        if op in ("Identity", "Dropout"):
            return arr if len([o for o in node.output if o]) == 1 else None
        if op == "Transpose":
            return arr.transpose(a.get("perm", list(range(arr.ndim))[::-1]))
        if op == "Flatten":
            axis = int(a.get("axis", 1)) % max(arr.ndim, 1)
            return arr.reshape(int(np.prod(arr.shape[:axis])), -1)
        if op in ("Squeeze", "Unsqueeze"):
            axes = a.get("axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                axes = self.const(node.input[1])
                if axes is None:
                    return None
            if op == "Squeeze":
                return arr.squeeze(None if axes is None else tuple(int(x) for x in axes))
            rank = arr.ndim + len(axes)
            for axis in sorted(int(x) % rank for x in axes):
                arr = np.expand_dims(arr, axis)
            return arr
        if op == "Reshape":
            target = self.const(node.input[1])
            if target is None:
                return None
            dims = [arr.shape[i] if int(d) == 0 and not a.get("allowzero", 0) else int(d)
                    for i, d in enumerate(target)]
            try:
                return arr.reshape(dims)
            except ValueError:
                return None
        return None

    # ---- the rewrite ----------------------------------------------------------------------
    def run(self) -> None:
        for node in self.nodes:
            if _time_major(node):
                self.rewrite(node)

    def rewrite(self, node) -> None:
        x = node.input[0]
        if x in self.batch_first:
            new_x = self.batch_first[x]
        else:
            producer = self.producer(x)
            if producer is None or producer.op_type != "Transpose" \
                    or list(_attrs(producer).get("perm", [])) != [1, 0, 2]:
                self.fail(node, "its input X is time-major (T, N, d) and does not come from a "
                                "Transpose(perm=[1,0,2]) of a batch-first (N, T, d) tensor; irc "
                                "keeps the batch on axis 0")
            new_x = producer.input[0]
            if len(self.consumers(x)) == 1 and x not in [o.name for o in self.g.output]:
                self.removed.add(id(producer))
        node.input[0] = new_x
        for slot in range(5, len(node.input)):  # initial_h, initial_c, P: zeros are the default
            value = self.const(node.input[slot]) if node.input[slot] else None
            if value is not None and not np.any(value):
                node.input[slot] = ""
        for a in list(node.attribute):
            if a.name == "layout":
                node.attribute.remove(a)
        node.attribute.append(helper.make_attribute("layout", 1))
        w = self.consts.get(node.input[1])
        r = self.consts.get(node.input[2]) if len(node.input) > 2 else None
        seq_type = self.types.get(x)
        if w is None or r is None or seq_type is None or seq_type.rank != 3:
            self.fail(node, "W and R must be constant initializers and X's shape (T, N, d) "
                            "must be known statically")
        steps, dirs, hidden = seq_type.shape[0], int(w.dims[0]), int(r.dims[-1])
        batch = max(steps, dirs, hidden, 2) * 2 + 1  # a probe batch size no other dim equals
        for slot, out in enumerate(node.output):
            if not out:
                continue
            tm_shape = (steps, dirs, batch, hidden) if slot == 0 else (dirs, batch, hidden)
            to_bf = (2, 0, 1, 3) if slot == 0 else (1, 0, 2)
            labels = np.arange(int(np.prod(tm_shape))).reshape(tm_shape)
            bf_name = self.fresh(f"{out}__batch_first")
            node.output[slot] = bf_name
            self.follow(node, out, labels, labels.transpose(to_bf), bf_name, steps)

    def follow(self, rnn, value: str, labels, bf_labels, bf_name: str, steps: int) -> None:
        """Define ``value`` (and the values after it) from the batch-first output ``bf_name``."""
        consumers = self.consumers(value)
        layout = [c for c in consumers if c.op_type in LAYOUT_OPS and c.input[0] == value
                  and self._apply(c, labels) is not None]
        readers = [c for c in consumers if c not in layout]
        is_output = value in [o.name for o in self.g.output]
        batch = bf_labels.shape[0]
        if readers or is_output:
            next_rnn = [c for c in readers if _time_major(c) and c.input[0] == value]
            if next_rnn:
                if len(next_rnn) != len(readers) or is_output:
                    self.fail(rnn, f"its time-major output {value!r} is read both by another "
                                   "recurrent op and by other ops")
                flat = bf_labels.reshape(batch, steps, -1)
                if labels.shape != (steps, batch, flat.shape[2]) or \
                        not np.array_equal(labels, flat.transpose(1, 0, 2)):
                    self.fail(rnn, f"its output reaches {next_rnn[0].op_type} "
                                   f"{next_rnn[0].name!r} rearranged, not as (T, N, features)")
                alias = self.fresh(f"{value}__batch_first")
                self.define(rnn, alias, bf_name, (0, steps, flat.shape[2]))
                self.batch_first[value] = alias
            else:
                if labels.ndim < 2 or labels.shape[0] != batch or not np.array_equal(
                        labels.reshape(batch, -1), bf_labels.reshape(batch, -1)):
                    who = readers[0].op_type if readers else "the graph output"
                    self.fail(rnn, f"{who} reads {value!r}, a rearrangement of the recurrent "
                                   "output that is not batch-first in the output's own order")
                self.define(rnn, value, bf_name, (0,) + labels.shape[1:])
        for c in layout:
            self.removed.add(id(c))
            self.follow(rnn, c.output[0], self._apply(c, labels), bf_labels, bf_name, steps)

    def define(self, rnn, value: str, bf_name: str, shape) -> None:
        shape_name = self.fresh(f"{value}__shape")
        self.consts[shape_name] = numpy_helper.from_array(np.array(shape, np.int64), shape_name)
        self.g.initializer.append(self.consts[shape_name])
        reshape = helper.make_node("Reshape", [bf_name, shape_name], [value],
                                   name=self.fresh(f"{rnn.name or 'rnn'}__{value}_reshape"))
        self.added.setdefault(id(rnn), []).append(reshape)

    def finish(self) -> None:
        nodes = []
        for node in self.nodes:
            if id(node) not in self.removed:
                nodes.append(node)
            nodes.extend(self.added.get(id(node), []))
        # the inserted reshapes sit right after their recurrent op: still topological
        nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
        del self.g.node[:]
        self.g.node.extend(nodes)


def batch_first_recurrent(model: onnx.ModelProto, input_shapes, label: str) -> onnx.ModelProto:
    """``model`` with every time-major RNN/LSTM/GRU made batch-first (see the module doc)."""
    if not any(_time_major(n) for n in model.graph.node):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    rewrite = _Rewrite(copy, input_shapes, label)
    rewrite.run()
    rewrite.finish()
    return copy
