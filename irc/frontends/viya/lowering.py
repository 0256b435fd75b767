"""Lower a Viya model read from disk (layers + weights) to an IR graph of ONNX-semantics ops.

Every implicit Viya rule becomes explicit (docs/viya-semantics.md): the input layer's
``(x·scale − offsets)/normstds`` becomes Mul/Sub/Div; automatic and explicit padding become
ONNX ``pads`` (the geometry is the reference executor's own, so conv puts the odd pixel after
and pool follows ``pool_auto_pad``); AUTO activations are already resolved per layer kind by
the reader; fc/output flatten their sources in C,H,W order and concatenate several in
``srcLayers`` order; softmax output layers end in Softmax. Each Viya layer's output is the IR
value named after the layer (the input layer's is ``<input>__normalized`` when it computes
anything), so the ONNX model can be compared layer by layer with the executor.
"""
from __future__ import annotations

import math

import numpy as np

from irc.backends.viya import schema
from irc.backends.viya.executor.kernels import spatial_geometry
from irc.backends.viya.executor.shapes import infer_shapes
from irc.backends.viya.executor.reader import ViyaModelFiles
from irc.detection_spec import METADATA_KEY, DetectionSpec
from irc.errors import UnsupportedAttribute
from irc.ir.graph import Graph, Provenance
from irc.ir.activations import ACTIVATION_OPS, FUSED_NAMES as FUSED, VIYA_FIXED_ALPHA
from irc.ir.tensors import BATCH, TensorType
from irc.problems import Problems

from .options import ExportOptions

F32 = np.float32
ACT_OP = {v: k for k, v in ACTIVATION_OPS.items()}


class ExportLowering:
    """A Viya model read back from its files, lowered to an IR graph for `irc export` (the
    reverse of the Viya backend's lowering)."""

    def __init__(self, model: ViyaModelFiles, options: ExportOptions):
        self.model, self.options, self.ex = model, options, options.executor
        self.graph = Graph(model.name or "viya_model")
        self.shapes = {k: (BATCH, *v) for k, v in infer_shapes(model, self.ex).items()}
        self.values: dict[str, str] = {}   # Viya layer -> IR value holding its output
        self.reserved = {layer.name for layer in model.layers}
        self.problems = Problems()
        self.layer = None

    # ---- helpers --------------------------------------------------------------------------
    def temp(self, hint: str) -> str:
        name, i = hint, 0
        while self.graph.has_value(name) or name in self.reserved:
            i += 1
            name = f"{hint}_{i}"
        return name

    def const(self, hint: str, array) -> str:
        return self.graph.add_const(self.temp(f"{self.layer.name}__{hint}"), array).name

    def op(self, op_type: str, inputs: list, shape: tuple, **attrs) -> str:
        out = self.temp(f"{self.layer.name}__{op_type.lower()}")
        self.graph.add_node(op_type, inputs, [(out, TensorType(shape))], attrs,
                            name=f"{self.layer.name}__{op_type.lower()}",
                            provenance=Provenance((self.layer.name,)))
        return out

    def act_attrs(self, act: str) -> dict:
        """The fused-activation attributes for ``act``, with the alpha Viya computes where its
        op takes one (elu's is an open point, the executor option elu_alpha)."""
        if act == "identity":
            return {}
        if act == "elu":
            return {"activation": "elu", "activation_alpha": self.ex.elu_alpha}
        if act in VIYA_FIXED_ALPHA:
            return {"activation": act, "activation_alpha": VIYA_FIXED_ALPHA[act]}
        return {"activation": act}

    def activation(self, value: str, act: str, shape: tuple) -> str:
        """A separate activation op (for layers whose op cannot carry one)."""
        if act == "identity":
            return value
        if act == "softmax":
            return self.op("Softmax", [value], shape, axis=1)
        attrs = self.act_attrs(act)
        alpha = {"alpha": attrs["activation_alpha"]} if "activation_alpha" in attrs else {}
        return self.op(ACT_OP[act], [value], shape, **alpha)

    def layer_act(self) -> str:
        act = self.layer.options.get("act", "identity")
        if act == "softmax" and self.layer.type != "output":
            self.problem("softmax is only valid on an output layer")
            return "identity"
        if act not in FUSED | {"softmax"}:
            self.problem(f"activation {act!r} has no ONNX op in irc's IR")
            return "identity"
        return act

    def problem(self, message: str) -> None:
        self.problems.add(self.layer.name, message)

    # ---- layers ---------------------------------------------------------------------------
    def run(self) -> Graph:
        for layer in self.model.layers:
            self.layer = layer
            sources = [self.values[s] for s in layer.src_layers]
            value = schema.KINDS[layer.type].export(self, sources)   # the kind's export facet
            rate = layer.options.get("dropout", 0.0)
            dropped = schema.KINDS[layer.type].dropout and rate   # viya-semantics §12
            if self.ex.dropout_scoring == "scale_keep" and dropped:
                value = self.op("Mul", [value, self.const("keep", np.asarray(1 - rate, F32))],
                                self.shapes[layer.name])
            if layer.type != "input" and value != layer.name:
                if value in self.values.values() or value in self.graph.inputs:
                    value = self.op("Identity", [value], self.shapes[layer.name])
                self.graph.rename_value(value, layer.name)
                value = layer.name
            self.values[layer.name] = value
        self.problems.raise_if_any(
            UnsupportedAttribute, f"{len(self.problems)} layer(s) cannot be exported to ONNX: ",
            place=lambda n: f"{n} ({self.model.layer(n).type})", file=str(self.model.model_path))
        self.graph.outputs = [self.values[n] for n in self.model.terminal_layers()]
        self.graph.validate()
        return self.graph

    def add_input(self, name: str, shape: tuple) -> str:
        return self.graph.add_input(name, TensorType(shape)).name

    def rename(self, value: str, hint: str) -> str:
        """Give ``value`` a fresh name built from ``hint``; returns the new name."""
        final = self.temp(hint)
        self.graph.rename_value(value, final)
        return final

    def note_detection(self, options: dict) -> None:
        """A detection layer: the ONNX ends at its grid and states the head in its metadata,
        in the form irc's own compile reads (irc.detection_spec)."""
        spec = DetectionSpec(version=options["version"], classes=options["classes"],
                             boxes=options["boxes"], softmax=options["softmax"],
                             anchors=() if options["anchors"] is None
                             else tuple(options["anchors"].reshape(-1).tolist()),
                             coord_type=options["coord_type"], do_sqrt=options["do_sqrt"],
                             detection_threshold=options["threshold"],
                             iou_threshold=options["iou"], max_boxes=options["max_boxes"])
        self.graph.metadata[METADATA_KEY] = spec.to_json()

    def shape_of(self, value: str) -> tuple:
        return self.graph.value(value).type.shape

    def geometry(self, source: str, pool: bool):
        h, w = self.graph.value(source).type.shape[2:]
        return spatial_geometry(self.layer.options, h, w, pool, self.ex)

    def vector(self, sources) -> str:
        """The sources flattened (C,H,W order) and joined end to end in srcLayers order."""
        flat = []
        for value in sources:
            shape = self.graph.value(value).type.shape
            if len(shape) != 2:
                value = self.op("Flatten", [value], (BATCH, math.prod(shape[1:])), axis=1)
            flat.append(value)
        if len(flat) == 1:
            return flat[0]
        total = sum(self.graph.value(v).type.shape[1] for v in flat)
        return self.op("Concat", flat, (BATCH, total), axis=1)


def to_graph(model: ViyaModelFiles, options: ExportOptions | None = None) -> Graph:
    """The IR graph of a Viya model whose layers all have weights loaded."""
    return ExportLowering(model, options or ExportOptions()).run()
