"""Turn tf2onnx's output into the ONNX irc's frontend accepts.

tf2onnx (``inputs_as_nchw``) leaves a graph in N,C,H,W except where Keras semantics depend on
the channels-last layout. Each rewrite below is exact (same numbers), and afterwards every op is
one ``irc ops`` lists and every Transpose is an NCHW->NHWC transpose read only by a Flatten
(which the flatten_transpose_into_dense pass moves into the dense weights):

1. Reshape targets computed at run time (Keras 3 Flatten/Reshape: Shape -> Gather/Slice ->
   Concat -> Cast) are evaluated from the static shapes at two batch sizes and become constants
   (the batch entry 0, "copy the input's batch").
2. 4-D graph outputs get a Transpose back to N,C,H,W, then every chain of layout ops
   (Transpose/Reshape/Flatten/Squeeze/Unsqueeze) collapses into a Flatten, an NHWC
   Transpose -> Flatten (a Keras Flatten), a C,H,W Reshape or nothing, or is refused
   (:mod:`layout`).
3. A Concat of flattened (N, C, 1, 1) maps (global pools) becomes a channel Concat, then Flatten.
4. Dead nodes and initializers go; graph outputs take the Keras output layer names.

(ZeroPadding2D before an average pool, a zero Pad then an unpadded AveragePool that counts the
zeros, is left to the passes: fold_pad makes it a pool counting its padding, which
legalize_avgpool_include_pad writes as an exact averaging convolution.)
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from irc.errors import UnsupportedOp
from irc.frontends.keras import layout
from irc.frontends.keras.layout import TO_NHWC
from irc.ir import side_file

_BATCHES = (7, 11)  # probe batch sizes for shape arithmetic
_KEEP_ELEMENTS = 4096  # initializers kept in the shape-inference skeleton


class _Graph:
    """Small helpers over a GraphProto (rebuilt maps on demand: graphs here are small)."""

    def __init__(self, model: onnx.ModelProto):
        self.model, self.g = model, model.graph
        self._n = 0

    def producer(self, name):
        return next((n for n in self.g.node if name in n.output), None)

    def consumers(self, name):
        return [n for n in self.g.node if name in n.input]

    def const(self, name):
        for t in self.g.initializer:
            if t.name == name:
                if t.data_location == TensorProto.EXTERNAL:  # a large weight in a side file
                    return side_file.array_of(t, side_file.external_dir(self.model))
                return numpy_helper.to_array(t)
        node = self.producer(name)
        if node is not None and node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            return numpy_helper.to_array(attr.t) if attr is not None else None
        return None

    def fresh(self, hint: str) -> str:
        used = {v for n in self.g.node for v in list(n.input) + list(n.output)}
        used |= {t.name for t in self.g.initializer} | {i.name for i in self.g.input}
        while True:
            self._n += 1
            name = f"{hint}__irc{self._n}"
            if name not in used:
                return name

    def add_init(self, hint: str, array: np.ndarray) -> str:
        name = self.fresh(hint)
        self.g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def attr(self, node, name, default=None):
        a = next((a for a in node.attribute if a.name == name), None)
        return default if a is None else helper.get_attribute_value(a)

    def replace(self, old, new_nodes) -> None:
        index = list(self.g.node).index(old)
        self.g.node.remove(old)
        for offset, node in enumerate(new_nodes):
            self.g.node.insert(index + offset, node)

    def rewire(self, old: str, new: str) -> None:
        """Readers of ``old`` read ``new``; a graph output ``old`` becomes ``new``."""
        for node in self.g.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
        for out in self.g.output:
            if out.name == old:
                out.name = new

    def shapes(self) -> dict[str, tuple]:
        """Static shapes of every value (None where unknown, e.g. the batch axis)."""
        keep = [t for t in self.g.initializer if math.prod(t.dims) <= _KEEP_ELEMENTS]
        big = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
               for t in self.g.initializer if math.prod(t.dims) > _KEEP_ELEMENTS]
        outputs = [helper.make_empty_tensor_value_info(o.name) for o in self.g.output]
        graph = helper.make_graph(list(self.g.node), "skeleton", list(self.g.input) + big,
                                  outputs, initializer=keep)
        skeleton = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        skeleton.ir_version = self.model.ir_version
        inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False)
        out = {}
        for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + \
                list(inferred.graph.output):
            tt = vi.type.tensor_type
            if tt.HasField("shape"):
                out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                     for d in tt.shape.dim)
        for t in self.g.initializer:
            out[t.name] = tuple(t.dims)
        return out


def clean(model: onnx.ModelProto, output_names: list[str], label: str) -> onnx.ModelProto:
    """Rewrite tf2onnx's ``model`` in place (see the module docstring) and return it."""
    g = _Graph(model)
    problems: list[str] = []
    _fold_shape_arithmetic(g)
    layout.outputs_to_nchw(g)
    layout.collapse_layout_chains(g, problems)
    layout.concat_vectors_as_channels(g)
    _remove_dead(g)
    _finish_outputs(g, output_names)
    _check_clean(g, problems, label)
    return model


# ---- 1. shape arithmetic ---------------------------------------------------------------------


def _fold_shape_arithmetic(g: _Graph) -> None:
    from onnx.reference import ReferenceEvaluator

    shapes = None
    for node in list(g.g.node):
        if node.op_type != "Reshape" or g.const(node.input[1]) is not None:
            continue
        shapes = shapes or g.shapes()
        nodes, roots = _shape_slice(g, node.input[1])
        if nodes is None or not all(layout.is_data(shapes, r.input[0]) for r in roots):
            continue
        feeds_names = [r.output[0] for r in roots]
        sub = helper.make_graph(
            nodes, "shape", [helper.make_tensor_value_info(n, TensorProto.INT64, None)
                             for n in feeds_names],
            [helper.make_tensor_value_info(node.input[1], TensorProto.INT64, None)],
            initializer=[t for t in g.g.initializer
                         if any(t.name in n.input for n in nodes)])
        sub_model = helper.make_model(sub, opset_imports=list(g.model.opset_import))
        runs = []
        try:
            evaluator = ReferenceEvaluator(sub_model)
            for batch in _BATCHES:
                feeds = {r.output[0]: _shape_value(g, r, (batch,) + shapes[r.input[0]][1:])
                         for r in roots}
                runs.append(np.asarray(evaluator.run(None, feeds)[0]).astype(np.int64))
        except Exception:  # an op the reference evaluator lacks: leave the Reshape to irc
            continue
        a, b = runs
        differ = np.flatnonzero(a != b)
        if a.ndim != 1 or any(i != 0 or a[i] != _BATCHES[0] or b[i] != _BATCHES[1]
                              for i in differ):
            continue
        target = a.copy()
        if differ.size:
            target[0] = 0  # Reshape copies the input's batch
        node.input[1] = g.add_init("shape", target)


def _shape_slice(g: _Graph, value: str):
    """The nodes computing ``value`` from constants and Shape ops only, and those Shape ops."""
    inits = {t.name for t in g.g.initializer}
    nodes, roots, seen, todo = [], [], set(), [value]
    while todo:
        name = todo.pop()
        if name in seen or not name or name in inits:
            continue
        seen.add(name)
        producer = g.producer(name)
        if producer is None:
            return None, None  # reaches a graph input's values
        if producer.op_type == "Shape":
            roots.append(producer)
            continue
        nodes.append(producer)
        todo.extend(producer.input)
    order = {id(n): i for i, n in enumerate(g.g.node)}
    nodes = sorted({id(n): n for n in nodes}.values(), key=lambda n: order[id(n)])
    roots = list({id(n): n for n in roots}.values())
    return nodes, roots


def _shape_value(g: _Graph, shape_node, dims) -> np.ndarray:
    start, end = g.attr(shape_node, "start", 0), g.attr(shape_node, "end", None)
    return np.array(dims, np.int64)[start:end]


# ---- 5. clean-up and checks ------------------------------------------------------------------


def _remove_dead(g: _Graph) -> None:
    outputs = {o.name for o in g.g.output}
    while True:
        read = {name for n in g.g.node for name in n.input} | outputs
        dead = [n for n in g.g.node if not any(o in read for o in n.output if o)]
        if not dead:
            break
        for n in dead:
            g.g.node.remove(n)
    read = {name for n in g.g.node for name in n.input}
    for t in [t for t in g.g.initializer if t.name not in read]:
        g.g.initializer.remove(t)


def _finish_outputs(g: _Graph, names: list[str]) -> None:
    """Outputs named after the Keras output layers, with freshly inferred N,C,H,W types."""
    inputs = {i.name for i in g.g.input}
    renamed = []
    for out, name in zip(list(g.g.output), names):
        value = out.name
        clash = g.producer(name)
        if clash is not None and name != value:  # an internal value already has the name
            fresh = g.fresh(name)
            clash.output[list(clash.output).index(name)] = fresh
            g.rewire(name, fresh)
        producer = g.producer(value)
        if producer is None or value in inputs or sum(o.name == value for o in g.g.output) > 1:
            g.g.node.append(helper.make_node("Identity", [value], [name], name=name))
        else:
            for i, o in enumerate(producer.output):
                if o == value:
                    producer.output[i] = name
            g.rewire(value, name)
        renamed.append(name)
    shapes = g.shapes()
    del g.g.output[:]
    for name in renamed:
        dims = ["N"] + list(shapes.get(name, (None,))[1:])
        g.g.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))


def _check_clean(g: _Graph, problems: list[str], label: str) -> None:
    """Every op one irc converts; every transpose a Keras Flatten feeding Dense layers."""
    from irc.frontends.onnx.catalog import onnx_ops

    unsupported = [f"{n.name}: ONNX {n.op_type}, which irc does not convert" for n in g.g.node
                   if n.op_type not in onnx_ops() or n.domain not in ("", "ai.onnx")]
    for node in g.g.node:
        if node.op_type == "Transpose":
            problems += _transpose_problems(g, node)
    if unsupported and problems:  # layout transposes usually surround the unsupported ops
        problems = [f"(and {len(problems)} layout change(s) around them)"]
    problems = unsupported + problems
    if problems:
        raise UnsupportedOp(f"{len(problems)} part(s) of the converted Keras graph have no Viya "
                            "equivalent:\n" + "\n".join(f"  {p}" for p in problems), file=label,
                            hint="node names start with the Keras layer they come from; change "
                                 "those layers (a Lambda must compute supported ops only)")


_PASS_THROUGH = ("Identity", "Dropout")
_AFFINE = ("BatchNormalization", "Mul", "Add", "Sub", "Div")  # by constants: per feature


def _transpose_problems(g: _Graph, node) -> list[str]:
    perm = list(g.attr(node, "perm", []))
    flats = g.consumers(node.output[0])
    if perm != TO_NHWC or not flats or any(f.op_type != "Flatten" for f in flats):
        return [f"{node.name}: a layout transpose (perm {perm}) that Viya cannot express"]
    outputs = {o.name for o in g.g.output}
    todo, bad = [f.output[0] for f in flats], []
    while todo:
        value = todo.pop()
        if value in outputs:
            bad.append("a model output")
        for reader in g.consumers(value):
            if reader.op_type in _PASS_THROUGH or (  # a Concat of vectors into Dense layers
                    reader.op_type == "Concat" and g.attr(reader, "axis") in (1, -1)) or (
                    reader.op_type in _AFFINE and reader.input[0] == value and all(
                        g.const(i) is not None for i in reader.input[1:])):
                todo.append(reader.output[0])  # a batchnorm folds forward into the Dense
            elif reader.op_type not in ("MatMul", "Gemm") or reader.input[0] != value or \
                    g.const(reader.input[1]) is None:
                bad.append(f"{reader.name} ({reader.op_type})")
    if not bad:
        return []
    return [f"{flats[0].name}: a Keras Flatten (H,W,C order) read by {', '.join(bad)}; Viya "
            "flattens C,H,W, which only a Dense reading the Flatten can absorb (its rows are "
            "permuted)"]
