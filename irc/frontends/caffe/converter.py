"""Caffe net -> ONNX ModelProto (opset 17, NCHW, node names = Caffe layer names).

The converter first renames blobs into single-assignment tensors (an in-place ReLU writes a new
tensor; the last write of a blob keeps the blob's own name, so net outputs carry Caffe's top
names), then runs one handler per layer (``layers.py``). Every problem is collected and reported
once: unsupported layer types with their counts and names, then refused parameter values.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from irc.errors import InvalidModel, UnsupportedAttribute, UnsupportedOp
from irc.frontends.caffe.reader import CaffeLayer, CaffeNet, blob_array, strip_ones
from irc.frontends.caffe.registry import CAFFE_LAYERS, LABEL, Skip
from irc.frontends.registry import format_unsupported
from irc.ir.opset import IR_VERSION, OPSET
from irc.limits import check_tensor_bytes
from irc.problems import Problems
from irc.utils.unique_name import unique_name

# Unsupported layer types whose top has the bottom's shape: the layers after them are still
# checked, so one error lists every problem.
SHAPE_PRESERVING = {"LRN", "ELU", "AbsVal", "BNLL", "Power", "Exp", "Log", "Threshold",
                    "MVN", "Bias", "Swish", "ReLU6",
                    # Clip: OpenCV, the Caffe oracle, cannot run it, so irc could not prove it
                    "Clip"}


class Converter:
    def __init__(self, net: CaffeNet, blobs: dict | None, caffemodel_label: str | None,
                 input_shape=None, drop_lrn: bool = False):
        self.net = net
        self.label = net.label
        self.blobs = blobs
        self.has_weights = blobs is not None
        self.caffemodel_label = caffemodel_label
        self.input_shape = input_shape
        self.drop_lrn = drop_lrn
        self.warnings: list[str] = [f"ignored prototxt fields irc does not read: {f}"
                                    for f in net.ignored_fields]
        self.problems = Problems()  # (layer, message) of the net, all reported together
        self.weight_problems = Problems()  # (layer, message) of the caffemodel
        # Built in place: copying a model of hundreds of MB of weights costs seconds.
        self.model = onnx.ModelProto()
        self.nodes = self.model.graph.node
        self.inputs: list[tuple[str, tuple]] = []
        self.shapes: dict[str, tuple | None | str] = {}
        self._names: set[str] = set()
        self._node_names: set[str] = set()
        self._named_layers: set[str] = set()
        self.layer: CaffeLayer | None = None
        self.blob_shapes: dict[str, list[tuple[str, tuple]]] = {}  # layer -> its blobs' shapes
        self.skip: set[int] = set()  # layers folded into an earlier one (Scale after BatchNorm)

    # ---- names and SSA --------------------------------------------------------------------
    def unique(self, base: str, taken: set[str] | None = None) -> str:
        """``base``, or ``base_2``, ``base_3``... whichever is not taken yet (then taken)."""
        return unique_name(base, self._names if taken is None else taken)

    def plan(self) -> None:
        """Resolve every layer's bottoms/tops to SSA tensor names; count consumers."""
        layers = self.net.layers
        writes_left: dict[str, int] = {}
        for top in [t for l in layers for t in l.tops] + list(self.net.net.input):
            writes_left[top] = writes_left.get(top, 0) + 1
        self._names.update(writes_left)
        self._node_names.update(l.name for l in layers)  # each layer's main node keeps its name
        current: dict[str, str] = {}
        self.layer_in: list[list[str | None]] = []
        self.layer_out: list[list[str]] = []
        self.consumers: dict[str, list[int]] = {}
        self.final: set[str] = set()
        for top in self.net.net.input:
            writes_left[top] -= 1
            current[top] = top if writes_left[top] == 0 else self.unique(f"{top}_input")
        for i, layer in enumerate(layers):
            ins = []
            for b in layer.bottoms:
                t = current.get(b)
                ins.append(t)
                if t is not None:
                    self.consumers.setdefault(t, []).append(i)
            outs = []
            for top in layer.tops:
                writes_left[top] -= 1
                t = top if writes_left[top] == 0 else self.unique(f"{top}_{layer.name}")
                current[top] = t
                outs.append(t)
            self.layer_in.append(ins)
            self.layer_out.append(outs)
        self.final = set(current.values())
        self.input_tops = list(self.net.net.input)
        for layer in layers:
            if layer.type == "Input":
                self.input_tops += layer.tops
            elif layer.type in ("Data", "MemoryData"):
                self.input_tops += layer.tops[:1]

    # ---- problems -------------------------------------------------------------------------
    def problem(self, message: str) -> None:
        self.problems.add(self.layer.name if self.layer else "net", message)

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.layer.name}: {message}" if self.layer else message)

    # ---- tensors --------------------------------------------------------------------------
    def shape(self, tensor: str | None) -> tuple:
        s = self.shapes.get(tensor) if tensor else None
        if s == LABEL:
            self.problem(f"reads {tensor!r}, the label blob of a data layer, which does not "
                         "exist at inference")
            raise Skip
        if s is None:
            raise Skip
        return s

    def ins(self, index: int) -> list[tuple[str, tuple]]:
        """(tensor, shape) of every bottom of layer ``index``; Skip if one is undefined."""
        layer, tensors = self.net.layers[index], self.layer_in[index]
        for b, t in zip(layer.bottoms, tensors):
            if t is None:
                self.problem(f"bottom {b!r} is not produced by any earlier layer or input")
                raise Skip
        return [(t, self.shape(t)) for t in tensors]

    def define(self, tensor: str, shape) -> None:
        self.shapes[tensor] = tuple(int(d) for d in shape) if shape not in (None, LABEL) \
            else shape

    def declare_input(self, tensor: str, shape) -> None:
        self.inputs.append((tensor, tuple(int(d) for d in shape)))
        self.define(tensor, (1,) + tuple(shape[1:]))

    def node(self, op_type: str, inputs: list[str], outputs: list[str], suffix: str = "",
             **attrs) -> None:
        if not suffix and self.layer.name not in self._named_layers:
            name = self.layer.name
            self._named_layers.add(name)
        else:
            name = self.unique(f"{self.layer.name}_{suffix or 'node'}", self._node_names)
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))

    def temp(self, suffix: str) -> str:
        return self.unique(f"{self.layer.name}_{suffix}")

    def const(self, suffix: str, array) -> str:
        name = self.unique(f"{self.layer.name}_{suffix}")
        array = np.asarray(array, np.float32)
        tensor = self.model.graph.initializer.add()
        tensor.name, tensor.data_type = name, TensorProto.FLOAT
        tensor.dims.extend(array.shape)
        tensor.raw_data = np.ascontiguousarray(array).astype("<f4", copy=False).tobytes()
        return name

    # ---- weights --------------------------------------------------------------------------
    def weights(self, specs: list[tuple[str, tuple]], source: CaffeLayer | None = None):
        """The layer's blobs checked against ``specs`` [(what, expected shape)]. Zeros of those
        shapes when no caffemodel was given, or when the blobs do not match (the mismatch is
        reported at the end, with every other one)."""
        layer = source or self.layer
        self.blob_shapes[layer.name] = [(what, tuple(shape)) for what, shape in specs]
        for what, shape in specs:  # declared by the prototxt: check before allocating
            check_tensor_bytes(shape, np.float32, f"{what} of layer {layer.name!r}",
                               file=self.label, node=layer.name)
        zeros = [np.zeros(shape, np.float32) for _, shape in specs]
        if not self.has_weights:
            return zeros
        blobs = self.blobs.get(layer.name)
        expected = ", ".join(f"{what} {list(shape)}" for what, shape in specs)
        if not blobs:
            self.weight_problems.add(layer.name, f"the caffemodel has no blobs for this "
                                                     f"{layer.type} layer (expected {expected})")
            return zeros
        if len(blobs) != len(specs):
            self.weight_problems.add(layer.name, f"{len(blobs)} blob(s) in the caffemodel, "
                                                     f"the prototxt implies {len(specs)}: "
                                                     f"{expected}")
            return zeros
        arrays = []
        for blob, (what, shape) in zip(blobs, specs):
            try:
                a = blob_array(blob)
            except ValueError as exc:
                self.weight_problems.add(layer.name, f"{what} blob: {exc}")
                return zeros
            if a.shape != tuple(shape) and strip_ones(a.shape) != strip_ones(shape):
                self.weight_problems.add(layer.name, f"{what} blob has shape {list(a.shape)}"
                                                         f", the prototxt implies {list(shape)}")
                return zeros
            arrays.append(a.reshape(shape))
        return arrays

    # ---- the conversion -------------------------------------------------------------------
    def declare_net_inputs(self) -> None:
        from irc.frontends.caffe.inputs import declared_input_shape

        net = self.net.net
        names = list(net.input)
        if not names:
            return
        if len(net.input_shape) == len(names):
            shapes = [tuple(s.dim) for s in net.input_shape]
        elif len(net.input_dim) == 4 * len(names):
            shapes = [tuple(net.input_dim[4 * i:4 * i + 4]) for i in range(len(names))]
        else:
            self.problems.add("net", f"{len(names)} top-level input(s) with "
                                         f"{len(net.input_shape)} input_shape and "
                                         f"{len(net.input_dim)} input_dim values")
            return
        for name, shape in zip(names, shapes):
            try:
                shape = declared_input_shape(self, name, shape)
            except Skip:
                continue
            if shape is not None:
                self.declare_input(name, shape)

    def run(self) -> onnx.ModelProto:
        self.plan()
        if isinstance(self.input_shape, dict):
            unknown = sorted(set(self.input_shape) - set(self.input_tops))
            if unknown:
                self.problems.add("net", f"input_shape names {unknown}, which are not net "
                                             f"inputs ({self.input_tops})")
        self.declare_net_inputs()
        items = [(l.type, l.name) for l in self.net.layers
                 if not (self.drop_lrn and l.type == "LRN")]
        missing = CAFFE_LAYERS.unsupported(items)
        from irc.frontends.caffe import layers as handlers

        for i, layer in enumerate(self.net.layers):
            self.layer = layer
            if i in self.skip:
                continue
            handler = CAFFE_LAYERS.get(layer.type)
            try:
                if handler is not None:
                    handler.fn(self, i)
                elif layer.type == "LRN" and self.drop_lrn:
                    handlers.drop_lrn(self, i)
                elif layer.type in SHAPE_PRESERVING and len(layer.tops) == 1 \
                        and len(layer.bottoms) == 1:
                    self.define(self.layer_out[i][0], self.shape(self.layer_in[i][0]))
            except Skip:
                pass
        self.layer = None
        self.raise_problems(missing)
        return self.build()

    def raise_problems(self, missing: dict) -> None:
        lines = [f"  {line}" for line in self.problems.lines()]
        if missing:
            text = format_unsupported("Caffe", missing, "irc converts Caffe layers: "
                                      + ", ".join(CAFFE_LAYERS.op_types())
                                      + (". LRN can be dropped with drop_lrn=True (numbers "
                                         "change)." if "LRN" in missing else "."))
            if lines:
                text += f"\n{len(lines)} other problem(s):\n" + "\n".join(lines)
            first = next(iter(missing.values()))[0]
            raise UnsupportedOp(text, file=self.label, node=first,
                                hint="replace these layers in the source net (see `irc ops`)")
        self.problems.raise_if_any(
            UnsupportedAttribute, f"{len(lines)} problem(s) converting the Caffe net:\n  ",
            sep="\n  ", file=self.label,
            hint="each listed layer computes something irc/Viya cannot express exactly; change "
                 "it in the source net")
        self.weight_problems.raise_if_any(
            InvalidModel, f"the caffemodel does not match the prototxt "
                          f"({len(self.weight_problems)} layer(s)):\n  ",
            sep="\n  ", file=self.caffemodel_label,
            hint=f"pass the caffemodel trained with this network definition ({self.label})")

    def outputs(self) -> list[str]:
        """Caffe's net outputs: final blob versions that no later layer reads."""
        outs = []
        for tensors in self.layer_out:
            for t in tensors:
                if t in self.final and not self.consumers.get(t) and \
                        self.shapes.get(t) not in (None, LABEL):
                    outs.append(t)
        return outs

    def build(self) -> onnx.ModelProto:
        if not self.inputs:
            raise UnsupportedAttribute(
                "the net declares no input", file=self.label,
                hint="declare it with an Input layer, top-level input/input_shape, or give "
                     "input_shape= for a Data layer")
        outputs = self.outputs()
        if not outputs:
            raise UnsupportedAttribute("the net computes no output", file=self.label)
        model = self.model
        model.graph.name = self.net.net.name or "caffe_net"
        model.graph.input.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT,
                                                               ["N", *s[1:]])
                                 for t, s in self.inputs)
        model.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT,
                                                                ["N", *self.shapes[t][1:]])
                                  for t in outputs)
        model.opset_import.append(helper.make_opsetid("", OPSET))
        model.ir_version = IR_VERSION
        model.producer_name = "irc.caffe"
        return model
