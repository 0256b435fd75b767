"""Lower a Viya model read from disk (layers + weights) to an IR graph of ONNX-semantics ops.

Every implicit Viya rule becomes explicit (shared/spec/viya-semantics.md): the input layer's
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
from irc.backends.viya.executor.kernels import LEAKY_SLOPE, spatial_geometry
from irc.backends.viya.executor.shapes import infer_shapes
from irc.backends.viya.executor.reader import ViyaModelFiles
from irc.errors import UnsupportedAttribute
from irc.ir.graph import Graph, Provenance
from irc.ir.activations import ACTIVATION_OPS, FUSED_NAMES as FUSED
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
        """The fused-activation attributes for ``act`` (alpha where the op needs one)."""
        if act == "leaky":
            return {"activation": "leaky", "activation_alpha": float(LEAKY_SLOPE)}
        if act == "elu":
            return {"activation": "elu", "activation_alpha": self.ex.elu_alpha}
        return {"activation": act} if act != "identity" else {}

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
            value = getattr(self, f"lower_{layer.type}")(sources)
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

    def lower_input(self, _sources) -> str:
        opts, name = self.layer.options, self.layer.name
        c = opts["nchannels"]
        shape = self.shapes[name]
        value = self.graph.add_input(name, TensorType(shape)).name
        per_channel = (1, c, 1, 1)
        if opts["scale"] != 1.0:
            value = self.op("Mul", [value, self.const("scale", np.asarray(opts["scale"], F32))],
                            shape)
        if np.any(opts["offsets"] != 0):
            value = self.op("Sub", [value, self.const("offsets",
                                                      opts["offsets"].reshape(per_channel))],
                            shape)
        if np.any(opts["normstds"] != 1):
            value = self.op("Div", [value, self.const("normstds",
                                                      opts["normstds"].reshape(per_channel))],
                            shape)
        if value != name:
            final = self.temp(f"{name}__normalized")
            self.graph.rename_value(value, final)
            value = final
        return value

    def geometry(self, source: str, pool: bool):
        h, w = self.graph.value(source).type.shape[2:]
        return spatial_geometry(self.layer.options, h, w, pool, self.ex)

    def lower_convo(self, sources) -> str:
        opts, w = self.layer.options, self.layer.weights
        (top, bottom, _, _), (left, right, _, _) = self.geometry(sources[0], pool=False)
        inputs = [sources[0], self.const("kernel", w["kernel"])]
        if "bias" in w:
            inputs.append(self.const("bias", w["bias"]))
        return self.op("Conv", inputs, self.shapes[self.layer.name],
                       kernel_shape=[opts["height"], opts["width"]],
                       strides=[opts["stride_h"], opts["stride_w"]],
                       pads=[top, left, bottom, right], group=opts["ngroups"],
                       **self.act_attrs(self.layer_act()))

    lower_groupconvo = lower_convo

    def lower_pool(self, sources) -> str:
        opts, shape, x = self.layer.options, self.shapes[self.layer.name], sources[0]
        kind = opts["pool"]
        negate = kind == "min"   # min pool = -maxpool(-x)
        if negate:
            x = self.op("Mul", [x, self.const("neg", np.asarray(-1, F32))],
                        self.graph.value(x).type.shape)
        if opts["height"] == opts["width"] == 0:   # global pooling (trap 37)
            y = self.op("GlobalAveragePool" if kind == "mean" else "GlobalMaxPool", [x], shape)
        else:
            y = self._window_pool(x, kind, shape)
        if negate:
            y = self.op("Mul", [y, self.const("neg", np.asarray(-1, F32))], shape)
        return y

    def _window_pool(self, x: str, kind: str, shape: tuple) -> str:
        opts = self.layer.options
        (top, bottom, over_h, _), (left, right, over_w, _) = self.geometry(x, pool=True)
        attrs = {"kernel_shape": [opts["height"], opts["width"]],
                 "strides": [opts["stride_h"], opts["stride_w"]],
                 "pads": [top, left, bottom, right], "ceil_mode": int(bool(over_h or over_w))}
        if kind == "mean":
            divisor = self.ex.avgpool_divisor
            if divisor != "valid" and attrs["ceil_mode"]:
                self.problem(f"avgpool_divisor={divisor!r} with a ceil-rounded window has no "
                             "ONNX AveragePool equivalent")
            return self.op("AveragePool", [x], shape, count_include_pad=int(divisor != "valid"),
                           **attrs)
        if self.ex.maxpool_pad == "zero" and any(attrs["pads"]):
            if attrs["ceil_mode"]:
                self.problem("maxpool_pad='zero' with a ceil-rounded window has no ONNX "
                             "equivalent")
            n, c, h, w = self.graph.value(x).type.shape
            pads = np.asarray([0, 0, top, left, 0, 0, bottom, right], np.int64)
            x = self.op("Pad", [x, self.const("pads", pads)],
                        (n, c, h + top + bottom, w + left + right))
            attrs["pads"] = [0, 0, 0, 0]
        return self.op("MaxPool", [x], shape, **attrs)

    def _vector(self, sources) -> str:
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

    def _dense(self, v: str, act: str) -> str:
        w = self.layer.weights
        inputs = [v, self.const("kernel", w["kernel"])]
        if "bias" in w:
            inputs.append(self.const("bias", w["bias"]))
        fused = act if act != "softmax" else "identity"
        y = self.op("Gemm", inputs, self.shapes[self.layer.name], transB=1,
                    **self.act_attrs(fused))
        return self.activation(y, "softmax", self.shapes[self.layer.name]) \
            if act == "softmax" else y

    def lower_fc(self, sources) -> str:
        return self._dense(self._vector(sources), self.layer_act())

    def lower_output(self, sources) -> str:
        v, act = self._vector(sources), self.layer_act()
        if self.layer.options["fullconnect"]:
            return self._dense(v, act)
        return self.activation(v, act, self.shapes[self.layer.name])

    def lower_batchnorm(self, sources) -> str:
        w = self.layer.weights
        if np.any(w["moving_variance"] + F32(self.ex.bn_extra_eps) <= 0):
            self.problem("moving_variance + bn_extra_eps must be > 0")
        inputs = [sources[0]] + [self.const(p, w[p]) for p in
                                 ("gamma", "beta", "moving_mean", "moving_variance")]
        return self.op("BatchNormalization", inputs, self.shapes[self.layer.name],
                       epsilon=self.ex.bn_extra_eps, **self.act_attrs(self.layer_act()))

    def lower_residual(self, sources) -> str:
        return self.op("Sum", sources, self.shapes[self.layer.name],
                       **self.act_attrs(self.layer_act()))

    def lower_concat(self, sources) -> str:
        return self.op("Concat", sources, self.shapes[self.layer.name], axis=1,
                       **self.act_attrs(self.layer_act()))

    def lower_reshape(self, sources) -> str:
        opts, shape = self.layer.options, self.shapes[self.layer.name]
        if opts["order"] != "auto":
            self.problem(f"reshape order {opts['order']!r}: only the plain C,H,W "
                         "reinterpretation is known (viya-semantics.md §11)")
        target = np.asarray([-1, opts["depth"], opts["height"], opts["width"]], np.int64)
        y = self.op("Reshape", [sources[0], self.const("shape", target)], shape)
        return self.activation(y, self.layer_act(), shape)


def to_graph(model: ViyaModelFiles, options: ExportOptions | None = None) -> Graph:
    """The IR graph of a Viya model whose layers all have weights loaded."""
    return ExportLowering(model, options or ExportOptions()).run()
