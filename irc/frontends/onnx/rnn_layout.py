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

A time-major graph input read by a recurrent op, PyTorch's default (``batch_first=False``), is
declared batch-first (N, T, d) in the copy, the op's other readers (shape computations) reading
it transposed back; a graph output reached time-major (its batch on axis 1, or 2 for Y itself)
is made batch-first likewise. Both are recorded in :attr:`BatchFirst.source_batch_axes`: the
source model holds its batch on that axis, the Viya model reads one sequence per example, and
model.json says so (lowering), so that verification feeds the source its own layout. An initial
state that is zeros expanded to the batch (the TorchScript exporter's form) counts as zeros.

Anything else (a rearrangement Viya cannot express) raises one error naming the op. Models
without time-major recurrent ops are returned untouched; others are copied (recurrent models are
small).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from irc.errors import UnsupportedAttribute
from irc.frontends.onnx import loader

RECURRENT = ("RNN", "LSTM", "GRU")
LAYOUT_OPS = ("Transpose", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Identity", "Dropout",
              "Gather")


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
        self.probe = 0  # the batch size labelling the op being rewritten (see rewrite)
        self.removed: set[int] = set()  # ids of nodes to drop
        self.added: dict[int, list] = {}  # id(node) -> nodes to insert before it
        self.batch_first: dict[str, str] = {}  # time-major value -> batch-first value
        self.batch_axes: dict[str, int] = {}  # graph output -> the source's batch axis (not 0)
        inits = set(self.consts)
        fixed = {int(i.type.tensor_type.shape.dim[0].dim_value) for i in self.g.input
                 if i.name not in inits and i.type.tensor_type.shape.dim}
        # the batch an exporter baked into Reshape targets (PyTorch exports at a fixed batch)
        self.declared_batch = fixed.pop() if len(fixed) == 1 and 0 not in fixed else None

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
                return self._baked_batch_reshape(arr, dims)
        if op == "Gather":  # a constant scalar index: x[-1] of PyTorch's h_n, a unit axis
            index = self.const(node.input[1])
            if index is None or index.ndim != 0:
                return None
            axis = int(a.get("axis", 0)) % arr.ndim
            if not -arr.shape[axis] <= int(index) < arr.shape[axis]:
                return None
            return np.take(arr, int(index), axis=axis)
        return None

    def _baked_batch_reshape(self, arr, dims):
        """``arr`` reshaped to ``dims`` where the exporter wrote the model's fixed batch size as
        a number: the one entry equal to it that, set to the probe batch, moves no element
        across examples (None: no such entry, or more than one)."""
        batch = self.probe
        if self.declared_batch is None or list(arr.shape).count(batch) != 1:
            return None
        per_example = np.moveaxis(arr, arr.shape.index(batch), 0).reshape(batch, -1)
        found = []
        for i, d in enumerate(dims):
            if d != self.declared_batch:
                continue
            trial = list(dims)
            trial[i] = batch
            try:
                out = arr.reshape(trial)
            except ValueError:
                continue
            if np.array_equal(np.moveaxis(out, i, 0).reshape(batch, -1), per_example):
                found.append(out)
        return found[0] if len(found) == 1 else None

    # ---- the rewrite ----------------------------------------------------------------------
    def run(self) -> None:
        for node in self.nodes:
            if _time_major(node):
                self.rewrite(node)

    def is_zeros(self, name: str) -> bool:
        """Constant zeros, or zeros expanded to a computed shape (the TorchScript exporter's
        initial state: zeros of (dirs, N, n) with N read from the input's shape)."""
        value = self.const(name)
        if value is not None:
            return not np.any(value)
        producer = self.producer(name)
        if producer is None:
            return False
        if producer.op_type == "Expand":
            source = self.const(producer.input[0])
            return source is not None and not np.any(source)
        if producer.op_type == "ConstantOfShape":
            fill = _attrs(producer).get("value")
            return fill is None or not np.any(numpy_helper.to_array(fill))
        return False

    def prune(self, value: str) -> None:
        """Drop the nodes that computed only ``value`` (no longer read), back to the inputs."""
        producer = self.producer(value)
        if producer is None or id(producer) in self.removed \
                or value in [o.name for o in self.g.output]:
            return
        if any(o and self.consumers(o) for o in producer.output):
            return
        self.removed.add(id(producer))
        for name in producer.input:
            if name and name not in self.consts:
                self.prune(name)

    def rewrite(self, node) -> None:
        for slot in range(5, len(node.input)):  # initial_h, initial_c, P: zeros are the default
            name = node.input[slot]
            if name and self.is_zeros(name):
                node.input[slot] = ""
                self.prune(name)
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
        self.probe = batch
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
                axis = _batch_axis(labels, bf_labels)
                if axis is None or (axis and readers):
                    who = readers[0].op_type if readers else "the graph output"
                    self.fail(rnn, f"{who} reads {value!r}, a rearrangement of the recurrent "
                                   "output that is not batch-first in the output's own order")
                if axis:  # a time-major graph output: batch-first here, the axis recorded
                    self.batch_axes[value] = axis
                    declared = next(o for o in self.g.output if o.name == value)
                    declared.type.tensor_type.ClearField("shape")
                self.define(rnn, value, bf_name, (0,) + tuple(np.delete(labels.shape, axis)))
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


def _batch_axis(labels, bf_labels) -> int | None:
    """The axis of ``labels`` holding the batch, if moving it first gives the batch-first
    output in its own order (None: no such axis)."""
    batch = bf_labels.shape[0]
    if labels.ndim < 2 or batch not in labels.shape:
        return None
    axis = labels.shape.index(batch)  # axis 0 when it is there: the batch-first case
    if axis and list(labels.shape).count(batch) != 1:
        return None
    moved = np.moveaxis(labels, axis, 0).reshape(batch, -1)
    return axis if np.array_equal(moved, bf_labels.reshape(batch, -1)) else None


class BatchFirst(NamedTuple):
    """The rewritten model, the input shapes to import it with, and the graph inputs and
    outputs the SOURCE model holds time-major: name -> its batch axis (1; 2 for an RNN's Y)."""

    model: onnx.ModelProto
    input_shapes: object
    source_batch_axes: dict


def _time_major_inputs(model: onnx.ModelProto, input_shapes, label: str):
    """Graph inputs read as X by a time-major op declared batch-first (N, T, d); each other
    reader gets the time-major tensor back through a Transpose. The adjusted input shapes."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = {i.name: i for i in g.input if i.name not in inits}
    names = sorted({n.input[0] for n in g.node if _time_major(n) and n.input[0] in inputs})
    if names and input_shapes is not None and not isinstance(input_shapes, dict):
        input_shapes = {next(iter(inputs)): input_shapes} if len(inputs) == 1 else input_shapes
    taken = {o for n in g.node for o in n.output} | set(inputs) | inits
    transposes = []
    for name in names:
        dims = inputs[name].type.tensor_type.shape.dim
        if len(dims) != 3:
            raise UnsupportedAttribute(f"input {name!r} feeds a time-major recurrent op and has "
                                       f"rank {len(dims)}; X is (T, N, features)", file=label)
        first, second = onnx.TensorShapeProto.Dimension(), onnx.TensorShapeProto.Dimension()
        first.CopyFrom(dims[0])
        second.CopyFrom(dims[1])
        dims[0].CopyFrom(second)
        dims[1].CopyFrom(first)
        if isinstance(input_shapes, dict) and name in input_shapes:
            t, n, *rest = input_shapes[name]
            input_shapes = {**input_shapes, name: (n, t, *rest)}
        elif not all(d.dim_value > 0 for d in (dims[1], dims[2])):  # T (swapped) and d
            reader = next(n for n in g.node if _time_major(n) and n.input[0] == name)
            raise UnsupportedAttribute(
                f"{reader.op_type} {reader.name or reader.output[0]!r} reads input {name!r} "
                "time-major as X (T, N, features) (layout 0), and its steps T or features are "
                "not fixed; Viya's input layer holds a fixed T·features values per sequence",
                file=label, hint=f"give --input-shape {name}:T,N,features (the source's own "
                                 "time-major layout)")
        time_major, k = f"{name}__time_major", 1
        while time_major in taken:
            k += 1
            time_major = f"{name}__time_major_{k}"
        for node in g.node:
            node.input[:] = [time_major if i == name else i for i in node.input]
        transposes.append(helper.make_node("Transpose", [name], [time_major], perm=[1, 0, 2],
                                           name=time_major))
    for node in reversed(transposes):
        g.node.insert(0, node)
    return input_shapes, {name: 1 for name in names}


def batch_first_recurrent(model: onnx.ModelProto, input_shapes, label: str) -> BatchFirst:
    """``model`` with every time-major RNN/LSTM/GRU made batch-first (see the module doc)."""
    if not any(_time_major(n) for n in model.graph.node):
        return BatchFirst(model, input_shapes, {})
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    input_shapes, axes = _time_major_inputs(copy, input_shapes, label)
    rewrite = _Rewrite(copy, input_shapes, label)
    rewrite.run()
    rewrite.finish()
    return BatchFirst(copy, input_shapes, {**axes, **rewrite.batch_axes})
