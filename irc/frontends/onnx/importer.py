"""ONNX -> IR: scan for unsupported ops, then one handler per node.

Every problem found while converting (bad attribute values, non-constant weights, ops Viya
cannot express) is collected and reported once, at the end, in one error naming each node.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from irc.errors import UnsupportedAttribute, UnsupportedOp, ViyaCannotExpress
from irc.frontends.registry import format_unsupported
from irc.ir.graph import Graph, Provenance
from irc.ir.tensors import BATCH, TensorType
from irc.frontends.onnx import const_eval, loader, shape_folding
from irc.frontends.onnx.catalog import onnx_ops
from irc.frontends.onnx.registry import ONNX_OPS
from irc.problems import Problems
from irc.refusals import ONNX_OP, reason
from irc.limits import check_graph_size, check_tensor_bytes, graph_depth

def node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


def decode_attrs(node: onnx.NodeProto) -> dict:
    attrs = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        attrs[a.name] = value
    return attrs


class OnnxImporter:
    def __init__(self, model: onnx.ModelProto, label: str, base_dir: Path | None, input_shapes):
        self.model = model
        self.label = label
        self.base_dir = base_dir
        loader.check_names(model, label)
        self.opset = loader.check_opset(model, label)
        self.graph = Graph(_graph_name(model, label))
        self.problems = Problems()  # (node, message), all reported at the end
        self._input_shapes = input_shapes
        self._types: dict[str, TensorType] = {}
        self._batch_values: set[str] = set()  # values computed from a graph input
        self._current: str | None = None
        self._foldable: set[int] = set()
        self._read: set[str] | None = None
        self._viya_lacks = 0  # problems that are Viya's lack, not an attribute's value

    # ---- handler helpers ------------------------------------------------------------------
    def problem(self, message: str, viya_lacks: bool = False) -> None:
        """``viya_lacks``: what the node computes has no Viya form at all (an element-wise
        product), as opposed to a value or form irc does not take."""
        self.problems.add(self._current or "?", message)
        self._viya_lacks += bool(viya_lacks)

    def is_const(self, name: str) -> bool:
        return bool(name) and self.graph.has_value(name) and self.graph.is_const(name)

    def const(self, name: str) -> np.ndarray | None:
        return self.graph.const(name) if self.is_const(name) else None

    def type_of(self, name: str) -> TensorType | None:
        if self.graph.has_value(name):
            return self.graph.value(name).type
        return None

    def inferred_type(self, name: str) -> TensorType | None:
        """Shape inference's type of ``name`` (its batch axis as inferred: a handler reads
        this for values not emitted yet, or to size what it emits)."""
        return self._types.get(name)

    def declare_type(self, name: str, ttype: TensorType) -> None:
        """The type ``emit`` gives ``name`` (for an output a handler shapes itself)."""
        self._types[name] = ttype

    def fresh_value(self, hint: str, ttype: TensorType) -> str:
        """A new value name for an intermediate a handler emits, typed as inference would type
        it (``emit`` turns axis 0 into the batch axis when the op reads the batch)."""
        name = self.graph.unique_value_name(hint)
        self.declare_type(name, ttype)
        return name

    def add_const(self, name: str, array: np.ndarray) -> str:
        return self.graph.add_const(name, np.asarray(array, order="C")).name

    def emit(self, op_type: str, node: onnx.NodeProto, inputs: list[str] | None = None,
             attrs: dict | None = None, outputs: list[str] | None = None) -> None:
        """Add the IR op for ``node``; output types come from ONNX shape inference."""
        inputs = list(node.input) if inputs is None else inputs
        outputs = [o for o in (node.output if outputs is None else outputs) if o]
        undefined = [i for i in inputs if i and not self.graph.has_value(i)]
        if undefined:
            if not self.problems:  # otherwise an earlier node failed and this is its echo
                self.problem(f"reads {undefined[0]!r}, which no node or initializer defines")
            return
        batch = any(i in self._batch_values for i in inputs if i)
        out_types = []
        for out in outputs:
            ttype = self._types.get(out)
            if ttype is None:
                self.problem(f"the shape of {out!r} cannot be inferred statically")
                return
            if batch and ttype.rank:
                ttype = TensorType((BATCH,) + ttype.shape[1:], ttype.dtype)
                self._batch_values.add(out)
            out_types.append((out, ttype))
        self.graph.add_node(op_type, inputs, out_types, attrs or {}, name=self._current,
                            provenance=Provenance((self._current,)))

    def is_read(self, name: str) -> bool:
        """Whether a node or the graph's outputs read ``name`` (an output may be named unread)."""
        if self._read is None:
            g = self.model.graph
            self._read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        return bool(name) and name in self._read

    def alias(self, dst: str, src: str, node: onnx.NodeProto) -> None:
        """``dst`` is ``src`` (an op that computes nothing): emit an Identity for later removal."""
        self.emit("Identity", node, [src], {}, [dst])

    # ---- the import -----------------------------------------------------------------------
    def arity_problem(self, node: onnx.NodeProto) -> str | None:
        """The ONNX schema's required inputs and outputs must be present (untrusted files)."""
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opset, node.domain or "")
        except onnx.defs.SchemaError:
            return f"{node.op_type} does not exist at opset {self.opset}"
        required = [i for i, formal in enumerate(schema.inputs)
                    if formal.option == onnx.defs.OpSchema.FormalParameterOption.Single]
        if len(node.input) < schema.min_input or any(
                i >= len(node.input) or not node.input[i] for i in required):
            return f"{node.op_type} is missing a required input (has {list(node.input)})"
        # A recurrent op may leave its sequence output Y unnamed and give only Y_h.
        named = node.output[:] if node.op_type in ("RNN", "LSTM", "GRU") else node.output[:1]
        if not any(named):
            return f"{node.op_type} has no output"
        return None

    def scan_unsupported(self) -> None:
        items = [(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}",
                  node_label(n, i)) for i, n in enumerate(self.model.graph.node)
                 if i not in self._foldable]
        missing = ONNX_OPS.unsupported(items)
        if missing:
            why = "".join(f"{op}: {reason(ONNX_OP, op)}.\n" for op in sorted(missing)
                          if reason(ONNX_OP, op))
            raise UnsupportedOp(format_unsupported(
                "ONNX", missing, why + "irc supports: " + ", ".join(ONNX_OPS.op_types())
                + ". Replace these ops in the source model (or see `irc ops`)."), file=self.label)

    def fold(self, node: onnx.NodeProto) -> bool:
        """Evaluate a constant-only node now; False when too big (its handler takes it)."""
        if any(i and not self.graph.has_value(i) for i in node.input):
            return True  # an input failed to fold; that problem is already recorded
        inputs = {i: np.asarray(self.graph.const(i)) for i in dict.fromkeys(node.input) if i}
        if node.op_type in ("ConstantOfShape", "Expand") and node.input:
            # The result's size is in a (small) input: check it before evaluating anything.
            shape = inputs.get(node.input[-1] if node.op_type == "Expand" else node.input[0])
            if shape is not None and shape.ndim == 1 and shape.dtype.kind in "iu":
                check_tensor_bytes([int(d) for d in shape], np.float32,
                                   f"{node.op_type} result", file=self.label,
                                   node=self._current, allow_empty=True)
        if node.op_type == "Constant":
            self._check_constant_attribute(node)
        if node.op_type == "Tile" and len(node.input) > 1 and node.input[1] in inputs:
            data, repeats = inputs[node.input[0]], inputs[node.input[1]].reshape(-1)
            if repeats.dtype.kind in "iu" and len(repeats) == data.ndim:
                check_tensor_bytes([int(d) * int(r) for d, r in zip(data.shape, repeats)],
                                   data.dtype, "Tile result", file=self.label,
                                   node=self._current, allow_empty=True)
        try:
            results = const_eval.evaluate(node, inputs, self.opset)
        except Exception as exc:  # the reference evaluator raises many unrelated types
            self.problem(f"evaluating this constant {node.op_type} failed: {exc}")
            return True
        if any(r.size > const_eval.MAX_FOLD_ELEMENTS for r in results):
            return False
        for out, result in zip([o for o in node.output if o], results):
            self.graph.add_const(out, self.graph.weights.add(np.asarray(result, order="C"), out))
        return True

    def _check_constant_attribute(self, node: onnx.NodeProto) -> None:
        """A Constant's tensor declares its size: check it before anything allocates it."""
        for attr in node.attribute:
            if attr.type != onnx.AttributeProto.TENSOR:
                continue
            t = attr.t
            dtype = loader.np_dtype(t.data_type, f"Constant tensor {attr.name!r}", self.label)
            check_tensor_bytes([int(d) for d in t.dims], dtype, f"Constant {attr.name!r}",
                               file=self.label, node=self._current, allow_empty=True)

    def _stand_in_outputs(self, node: onnx.NodeProto) -> None:
        """A refused node's outputs become placeholder values (typed by shape inference), so the
        nodes after it are still checked and the one error names every node Viya cannot
        compute (e.g. each SiLU of a network, not only the first). The graph is never used:
        the import ends in that error."""
        for out in node.output:
            ttype = self._types.get(out)
            if out and ttype is not None and not self.graph.has_value(out):
                self.graph.add_input(out, ttype)
                if any(i in self._batch_values for i in node.input if i):
                    self._batch_values.add(out)

    def _raise_problems(self) -> None:
        if not self.problems:
            return
        lacks = self._viya_lacks == len(self.problems)
        raise (ViyaCannotExpress if lacks else UnsupportedAttribute)(
            f"{len(self.problems)} problem(s) converting the ONNX graph:\n  "
            + "\n  ".join(self.problems.grouped_lines()), file=self.label,
            hint="each listed node computes something Viya cannot; change it in the source model")

    def run(self) -> Graph:
        nodes = self.model.graph.node
        check_graph_size(len(nodes), graph_depth((n.input, n.output) for n in nodes),
                         file=self.label)
        self._foldable = const_eval.foldable_nodes(self.model)
        shape_nodes = shape_folding.shape_nodes(self.model, self._foldable)
        self._foldable |= shape_nodes  # no handler needed: the scan must not list them
        self.scan_unsupported()
        g = self.model.graph
        init_names = set()
        for tensor in g.initializer:
            handle = loader.store_initializer(self.graph.weights, tensor, self.base_dir, self.label)
            self.graph.add_const(tensor.name, handle)
            init_names.add(tensor.name)
        # Constant-only nodes first: shape inference then sees their results as constants.
        folded_nodes, folded_values = set(), {}
        for index in sorted(self._foldable - shape_nodes):
            node = g.node[index]
            self._current = node_label(node, index)
            if self.fold(node):
                folded_nodes.add(index)
                folded_values.update({o: self.graph.const(o) for o in node.output
                                      if o and self.graph.has_value(o)})
        # A constant that failed to evaluate is missing from the skeleton shape inference and
        # the checker see, which would then report the wrong thing: report it now.
        self._raise_problems()
        if shape_nodes:
            shape_folding.fold_shapes(self, shape_nodes, folded_values, folded_nodes)
            for name in sorted(n for n in folded_values if not self.graph.has_value(n)):
                self.graph.add_const(name, self.graph.weights.add(
                    np.asarray(folded_values[name], order="C"), name))
            self._raise_problems()
        self._types = loader.infer_types(self.model, self._input_shapes, self.label,
                                         folded_values, folded_nodes)
        for inp in g.input:
            if inp.name in init_names:
                continue
            t = self._types[inp.name]
            self.graph.add_input(inp.name, TensorType((BATCH,) + t.shape[1:], t.dtype))
            self._batch_values.add(inp.name)
        for index, node in enumerate(g.node):
            self._current = self.graph.unique_node_name(_safe(node_label(node, index)))
            if index in folded_nodes:
                continue
            if self.problems and any(i and not self.graph.has_value(i) for i in node.input):
                continue  # reads the output of a node already refused: one problem is enough
            handler = ONNX_OPS.get(node.op_type)
            if handler is None:
                self.problem(f"{node.op_type} on constants is too large to evaluate at import")
                continue
            arity = self.arity_problem(node)
            if arity:
                self.problem(arity)
                continue
            before = len(self.problems)
            try:
                handler.fn(self, node, decode_attrs(node))
            except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
                # A malformed node (attribute of the wrong type or length) from an untrusted
                # file: report it with the others instead of crashing.
                self.problem(f"malformed {node.op_type} node ({type(exc).__name__}: {exc})")
            if len(self.problems) > before:
                self._stand_in_outputs(node)
        self._current = None
        self.graph.outputs = [o.name for o in g.output]
        self._raise_problems()
        missing = [o for o in self.graph.outputs if not self.graph.has_value(o)]
        if missing:
            raise UnsupportedAttribute(f"graph outputs {missing} are never computed", file=self.label)
        self.graph.validate()
        return self.graph


def _safe(name: str) -> str:
    return name or "node"


def _graph_name(model: onnx.ModelProto, label: str) -> str:
    if model.graph.name:
        return model.graph.name
    return Path(label).stem if label else "model"


def import_onnx(source, input_shapes=None, label: str | None = None,
                notes: list[str] | None = None) -> Graph:
    """An ONNX file path or ModelProto as an IR graph (weights by reference).

    ``notes``: a list the user-facing notes of the import are appended to (an opset upgrade).
    """
    onnx_ops()  # fills the registry
    from irc.frontends.onnx.opset import upgrade_old_opset
    from irc.frontends.onnx.one_d_layers import height_one_layers
    from irc.frontends.onnx.rnn_layout import batch_first_recurrent

    label = label or (str(source) if not isinstance(source, onnx.ModelProto) else "<ModelProto>")
    model, base_dir = loader.load_model(source, label, map_weights=True)
    # Names first: the rewrites below run onnx's checker and shape inference, which fail with
    # a UnicodeDecodeError on a name that is not UTF-8 (fuzz onnx-0456).
    loader.check_names(model, label)
    model = upgrade_old_opset(model, label, notes)
    # time-major RNN ops (issue 6); a time-major graph input or output becomes batch-first
    model, input_shapes, source_batch_axes = batch_first_recurrent(model, input_shapes, label)
    model = height_one_layers(model, input_shapes, label)  # 1-D layers (issue 16)
    graph = OnnxImporter(model, label, base_dir, input_shapes).run()
    graph.source_batch_axes = source_batch_axes
    graph.metadata = {p.key: p.value for p in model.metadata_props if p.key.startswith("irc.")}
    return graph
