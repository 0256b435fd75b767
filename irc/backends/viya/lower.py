"""Lowering: the optimised IR to a :class:`ViyaModel`.

Each IR op maps to one Viya layer (or to none: Flatten is absorbed because Viya's fc layers
flatten their input as C,H,W). Every problem is collected and reported in one error that
names each node; nothing is written when lowering fails.
"""
from __future__ import annotations

import math

import numpy as np

from irc.backends.viya import lower_rnn, lower_unit_axis
from irc.backends.viya import padding as pad_rules
from irc.backends.viya.channel_order import (CHANNEL_ORDERS, read_rgb_as_bgr,
                                             reverse_channel_constants)
from irc.backends.viya.model import LazyWeight, ViyaLayer, ViyaModel
from irc.backends.viya.names import NameTable
from irc.errors import ViyaCannotExpress
from irc.ir.graph import Graph, Node
from irc.passes.defs.legalize_avgpool import touches_padding
from irc.utils.float32 import float32_number

# IR activation -> Viya act string
VIYA_ACT = {"identity": "identity", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh",
            "softplus": "softplus", "elu": "elu", "leaky": "leaky"}


class _Lowering:
    def __init__(self, graph: Graph, name: str, input_options: dict | None,
                 refusals=()):
        self.graph = graph
        self.model = ViyaModel(name=name, layers=[])
        self.names = NameTable()
        self.layer_of: dict[str, str] = {}  # IR value -> Viya layer computing it
        # IR value -> the Viya layers whose outputs, concatenated, are that value (a
        # bidirectional recurrent op is two layers; consumers list both as srcLayers)
        self.multi: dict[str, list[str]] = {}
        self.flattened: set[str] = set()  # IR values that are a Flatten of a layer's output
        self.problems: list[str] = []
        self.input_options = input_options or {}
        self.refusals: dict[str, list[str]] = {}  # node -> why passes left it alone
        for _pass_name, node_name, reason in refusals:  # the user reads reasons, not passes
            if reason not in self.refusals.get(node_name, []):
                self.refusals.setdefault(node_name, []).append(reason)

    # ---- helpers --------------------------------------------------------------------------
    def problem(self, node: Node, message: str) -> None:
        sources = ", ".join(node.provenance.sources) or node.name
        why = "".join(f"\n      (irc's exact rewrite into Viya layers does not apply: {r})"
                      for r in self.refusals.get(node.name, []))
        self.problems.append(f"{node.name} ({node.op_type}, from {sources}): {message}{why}")

    def add(self, node: Node | None, kind: str, options: dict, sources: list[str],
            out_value: str | None, weights=None, name_hint: str | None = None) -> ViyaLayer:
        hint = name_hint or (node.name if node else kind)
        layer = ViyaLayer(self.names.claim(hint, kind), kind, options,
                          [name for s in sources for name in self.sources_of(s)], weights or {},
                          node.provenance.sources if node else (), (),
                          node.provenance.passes if node else ())
        if out_value is not None:
            shape = self.graph.value(out_value).type.shape[1:]
            layer.out_shape = tuple(shape)
            layer.tensor = out_value
            self.layer_of[out_value] = layer.name
        self.model.layers.append(layer)
        return layer

    def sources_of(self, value: str) -> list[str]:
        return self.multi.get(value, [self.layer_of[value]])

    def alias(self, dst: str, src: str) -> None:
        """``dst`` is computed by the same layer(s) as ``src``."""
        self.layer_of[dst] = self.layer_of[src]
        if src in self.multi:
            self.multi[dst] = self.multi[src]

    def const_weight(self, value: str, transform=None) -> LazyWeight:
        handle = self.graph.value(value).const
        data_shape = handle.shape
        if transform is None:
            return LazyWeight(tuple(data_shape), handle.numpy)
        probe_shape = transform(np.zeros(data_shape, np.float32)).shape
        return LazyWeight(tuple(probe_shape), lambda: transform(handle.numpy()))

    def act(self, node: Node) -> str:
        act = node.attrs.get("activation", "identity")
        alpha = node.attrs.get("activation_alpha")
        # Viya's leaky slope is fixed at 0.1 and its elu alpha at 1 (viya-semantics); any other
        # value is rewritten exactly before lowering (PRelu), so meeting one here is a guard.
        fixed = {"leaky": 0.1, "elu": 1.0}.get(act)
        if fixed is not None and alpha is not None \
                and np.float32(alpha) != np.float32(fixed):
            self.problem(node, f"activation {act} with alpha {alpha:g}: Viya's {act} fixes it "
                               f"at {fixed:g}; export the model with alpha {fixed:g} or as PRelu")
        return VIYA_ACT[act]

    def check_dilations(self, node: Node) -> bool:
        """Viya has no dilated window (viya-target); the frontends refuse one, this guards."""
        dilations = [int(d) for d in node.attrs.get("dilations", [1, 1])]
        if any(d != 1 for d in dilations):
            self.problem(node, f"dilations {dilations}: Viya has no dilated convolution or "
                               "pooling; export the model without dilation")
            return False
        return True

    # ---- layers ---------------------------------------------------------------------------
    def lower_input(self, value: str) -> None:
        shape = self.graph.value(value).type.shape[1:]
        image = lower_unit_axis.image_of_1d_input(self.graph, value) if len(shape) == 2 else None
        if image is not None:
            c, h, w = image  # (C, L) read by 1-D layers: C x 1 x L
            if lower_unit_axis.NOTE_1D not in self.model.notes:
                self.model.notes.append(lower_unit_axis.NOTE_1D)
        elif len(shape) == 2 and not lower_unit_axis.recurrent_model(self.graph):
            self.problems.append(lower_unit_axis.not_a_sequence_message(self.graph, value))
            return
        elif len(shape) == 2:  # (T, d): a sequence model's input
            lower_rnn.lower_sequence_input(self, value, shape)
            return
        elif len(shape) == 3:
            c, h, w = shape
        elif len(shape) == 1:
            c, h, w = shape[0], 1, 1
        else:
            self.problems.append(f"input {value!r} has shape {shape}; Viya takes C,H,W images "
                                 "or feature vectors")
            return
        opts = self.input_options
        offsets = [float(v) for v in opts.get("offsets", [0.0] * c)]
        stds = [float(v) for v in opts.get("normstds", [1.0] * c)]
        if len(offsets) != c or len(stds) != c:
            self.problems.append(f"input {value!r}: offsets/normstds need {c} values")
            return
        scale = float(opts.get("scale", 1.0))
        if not all(float32_number(v, False) for v in offsets) or \
                not all(float32_number(v, True) for v in [scale, *stds]):
            self.problems.append(f"input {value!r}: scale, offsets and normstds must be float32 "
                                 "numbers (Viya computes in float32: |v| <= 3.4e38), with scale "
                                 "and normstds not zero or below 1.2e-38 in magnitude")
            return
        options = {"nchannels": c, "width": w, "height": h, "scale": float(opts.get("scale", 1.0)),
                   "offsets": offsets, "randomflip": "none", "randomcrop": "none",
                   "randommutation": "none"}
        if any(s != 1.0 for s in stds):
            options["normstds"] = stds
        layer = ViyaLayer(self.names.claim(value, "data"), "input", options, [], {}, (value,),
                          (c, h, w), tensor=value)
        self.layer_of[value] = layer.name
        self.model.layers.append(layer)
        self.model.inputs[value] = layer.name
        self.model.input_info.setdefault("sources", {})[value] = {"layer": layer.name,
                                                                  "shape": list(shape)}

    def lower_conv(self, node: Node) -> None:
        x, w = node.inputs[0], node.inputs[1]
        x_shape = self.graph.value(x).type.shape
        out_shape = self.graph.value(node.outputs[0]).type.shape
        if not self.check_dilations(node):
            return
        kernel, strides, pads = node.attrs["kernel_shape"], node.attrs["strides"], node.attrs["pads"]
        choice = pad_rules.choose("conv", x_shape[2:], kernel, strides, pads, out_shape[2:])
        if isinstance(choice, str):
            self.problem(node, f"padding {pads} on a {x_shape[2]}x{x_shape[3]} input cannot be "
                               f"expressed in Viya ({choice})")
            return
        group = int(node.attrs.get("group", 1))
        has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
        options = {"nfilters": out_shape[1], "width": kernel[1], "height": kernel[0],
                   "stridevertical": strides[0], "stridehorizontal": strides[1],
                   "act": self.act(node), "includebias": has_bias}
        if group > 1:
            options["ngroups"] = group
        if choice.mode == "explicit":
            options.update(paddingheight=choice.height, paddingwidth=choice.width)
        weights = {"kernel": self.const_weight(w)}
        if has_bias:
            weights["bias"] = self.const_weight(node.inputs[2])
        self.add(node, "groupconvo" if group > 1 else "convo", options, [x], node.outputs[0],
                 weights)

    def lower_pool(self, node: Node) -> None:
        x = node.inputs[0]
        x_shape = self.graph.value(x).type.shape
        out_shape = self.graph.value(node.outputs[0]).type.shape
        pool = "max" if "Max" in node.op_type else "mean"
        if node.op_type.startswith("Global"):
            options = {"width": 0, "height": 0, "stridevertical": 1, "stridehorizontal": 1,
                       "pool": pool}
            self.add(node, "pool", options, [x], node.outputs[0])
            return
        if not self.check_dilations(node):
            return
        kernel, strides, pads = node.attrs["kernel_shape"], node.attrs["strides"], node.attrs["pads"]
        choice = pad_rules.choose("pool", x_shape[2:], kernel, strides, pads, out_shape[2:])
        if isinstance(choice, str):
            self.problem(node, f"pooling with pads {pads}, ceil_mode={node.attrs.get('ceil_mode', 0)}"
                               f" on {x_shape[2]}x{x_shape[3]} cannot be expressed in Viya ({choice})")
            return
        if pool == "mean" and node.attrs.get("count_include_pad", 0) and touches_padding(
                x_shape[2:], kernel, strides, pads, out_shape[2:]):
            self.problem(node, "average pooling with count_include_pad=1 over padded cells: "
                               "Viya's divisor for padded cells is not public; export the model "
                               "with count_include_pad=0 or without padding")
            return
        options = {"width": kernel[1], "height": kernel[0], "stridevertical": strides[0],
                   "stridehorizontal": strides[1], "pool": pool}
        if choice.mode == "explicit":
            options.update(paddingheight=choice.height, paddingwidth=choice.width)
        self.add(node, "pool", options, [x], node.outputs[0])

    def lower_gemm(self, node: Node, as_output: bool, act: str) -> ViyaLayer | None:
        if node.attrs.get("transB", 0) != 1 or node.attrs.get("alpha", 1.0) != 1.0 \
                or node.attrs.get("beta", 1.0) != 1.0 or node.attrs.get("transA", 0):
            self.problem(node, "Gemm is not in canonical form (transB=1, alpha=beta=1, transA=0)")
            return None
        x, w = node.inputs[0], node.inputs[1]
        has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
        n = self.graph.value(w).type.shape[0]
        options = {"n": n, "act": act, "includebias": has_bias}
        if as_output:
            options.update(fullconnect=True, error="auto")
        weights = {"kernel": self.const_weight(w)}
        if has_bias:
            bias_shape = self.graph.value(node.inputs[2]).type.shape
            if bias_shape != (n,):
                self.problem(node, f"bias of shape {bias_shape}, expected ({n},)")
                return None
            weights["bias"] = self.const_weight(node.inputs[2])
        return self.add(node, "output" if as_output else "fc", options, [x], node.outputs[0],
                        weights)

    def lower_batchnorm(self, node: Node) -> None:
        x, scale, bias, mean, var = node.inputs
        eps = float(node.attrs.get("epsilon", 1e-5))
        weights = {"gamma": self.const_weight(scale), "beta": self.const_weight(bias),
                   "moving_mean": self.const_weight(mean),
                   # Viya computes sigma = sqrt(v) and adds no eps of its own (trap 3).
                   "moving_variance": self.const_weight(
                       var, lambda v: np.asarray(v, np.float64) + eps)}
        self.add(node, "batchnorm", {"act": self.act(node)}, [x], node.outputs[0], weights)

    def lower_sum(self, node: Node) -> None:
        shapes = {self.graph.value(i).type.shape for i in node.inputs}
        if len(shapes) != 1:
            self.problem(node, f"residual inputs have different shapes {sorted(shapes)}")
            return
        if len(node.inputs) < 2:
            self.problem(node, "a residual layer needs at least 2 sources")
            return
        self.add(node, "residual", {"act": self.act(node)}, node.inputs, node.outputs[0])

    def fc_concat(self, node: Node) -> bool:
        """A Concat of vectors read only by Gemms: with a flattened map among its inputs it is
        no layer, its inputs become the srcLayers of those fc layers (Viya flattens each
        source, then concatenates them in srcLayers order: viya-semantics §1)."""
        out = node.outputs[0]
        readers = self.graph.consumers(out)
        return (node.op_type == "Concat" and node.attrs.get("axis") in (1, -1)
                and self.graph.value(out).type.rank == 2 and out not in self.graph.outputs
                and bool(readers) and all(r.op_type == "Gemm" and r.inputs[0] == out
                                          and out not in r.inputs[1:] for r in readers))

    def lower_concat(self, node: Node) -> None:
        if any(i in self.flattened for i in node.inputs):
            if not self.fc_concat(node):
                self.problem(node, "a Concat of flattened maps read by something other than "
                                   "dense layers; Viya flattens only into fc/output layers")
                return
            out = node.outputs[0]
            sources = [name for i in node.inputs for name in self.sources_of(i)]
            if len(set(sources)) != len(sources):
                self.problem(node, f"a Concat into dense layers reads layer(s) "
                                   f"{sorted({s for s in sources if sources.count(s) > 1})} "
                                   "more than once; what Viya does with a repeated srcLayer "
                                   "is not documented")
                return
            self.multi[out] = sources
            self.layer_of[out] = self.multi[out][0]
            self.flattened.add(out)
            return
        rank = self.graph.value(node.outputs[0]).type.rank
        if node.attrs.get("axis") != 1 or rank not in (2, 4):
            self.problem(node, f"Concat along axis {node.attrs.get('axis')} of a rank-{rank} "
                               "tensor; Viya concatenates channels only")
            return
        self.add(node, "concat", {"act": self.act(node)}, node.inputs, node.outputs[0])

    def lower_reshape(self, node: Node) -> None:
        out = self.graph.value(node.outputs[0]).type.shape
        if len(out) != 4:
            self.problem(node, f"Reshape to {out}: Viya reshapes to (depth, height, width) only")
            return
        self.add(node, "reshape", {"width": out[3], "height": out[2], "depth": out[1],
                                   "act": "identity"}, [node.inputs[0]], node.outputs[0])

    def lower_flatten(self, node: Node) -> None:
        """No layer: fc/output layers flatten their input (C,H,W order) themselves."""
        x, out = node.inputs[0], node.outputs[0]
        bad = [c for c in self.graph.consumers(out)
               if c.op_type not in ("Gemm", "Softmax") and not self.fc_concat(c)]
        if bad:
            self.problem(node, f"the flattened tensor is read by {bad[0].op_type} "
                               f"({bad[0].name}); Viya flattens only into fc/output layers")
            return
        self.alias(out, x)
        self.flattened.add(out)

    def lower_softmax_output(self, node: Node) -> None:
        x = node.inputs[0]
        shape = self.graph.value(x).type.shape
        if len(shape) > 2 and (any(d != 1 for d in shape[2:]) or node.attrs.get("axis") != 1):
            self.problem(node, f"Softmax over axis {node.attrs.get('axis')} of {shape[1:]}: "
                               "Viya's output layer takes the softmax of all the values; "
                               "put a Flatten before the Softmax")
            return
        producer = self.graph.producer(x)
        if producer is not None and producer.op_type == "Gemm" and self.graph.use_count(x) == 1 \
                and producer.attrs.get("activation", "identity") == "identity":
            if any(i and not self.graph.is_const(i) and i not in self.layer_of
                   for i in producer.inputs):
                if not self.problems:
                    self.problem(producer, "reads a value no Viya layer computes")
                return  # the dense layer's input failed to lower; that is reported
            layer = self.lower_gemm(producer, as_output=True, act="softmax")
            if layer is not None:
                self.layer_of[node.outputs[0]] = layer.name
                layer.source_nodes += node.provenance.sources
                layer.tensor = node.outputs[0]
            return
        n = self.graph.value(x).type.numel_per_example()
        self.add(node, "output", {"n": n, "act": "softmax", "includebias": False,
                                  "fullconnect": False, "error": "auto"}, [x], node.outputs[0])


def _softmax_output_gemms(graph: Graph) -> set[str]:
    """Gemm nodes that lowering merges into a softmax output layer."""
    merged = set()
    for node in graph.nodes():
        if node.op_type == "Softmax" and node.outputs[0] in graph.outputs:
            producer = graph.producer(node.inputs[0])
            if producer is not None and producer.op_type == "Gemm" \
                    and graph.use_count(node.inputs[0]) == 1 \
                    and producer.attrs.get("activation", "identity") == "identity":
                merged.add(producer.name)
    return merged


def lower(graph: Graph, name: str | None = None, input_options: dict | None = None,
          label: str = "", refusals=()) -> ViyaModel:
    """The Viya model of an optimised IR graph, or :class:`ViyaCannotExpress` listing why not."""
    from irc.backends.viya.names import sanitize

    if (input_options or {}).get("channel_order") == "rgb":
        input_options = reverse_channel_constants(input_options)
    low = _Lowering(graph, sanitize(name or graph.name, "model"), input_options, refusals)
    if len(graph.inputs) != 1:
        raise ViyaCannotExpress(f"the model has {len(graph.inputs)} inputs; a Viya CNN has one "
                                "input layer", file=label or None,
                                hint="export the model with a single image input")
    for value in graph.inputs:
        low.lower_input(value)
    merged_gemms = _softmax_output_gemms(graph)
    merged_values = {graph.node(n).outputs[0] for n in merged_gemms}
    for node in graph.nodes():
        if lower_rnn.lower_node(low, node):
            continue  # recurrent ops and what reads their sequences (issue 6)
        if any(i and not graph.is_const(i) and i not in low.layer_of and i not in merged_values
               for i in node.inputs):
            if not low.problems:
                low.problem(node, "reads a value no Viya layer computes")
            continue  # an earlier problem already reported; don't cascade
        op = node.op_type
        if op == "Conv":
            low.lower_conv(node)
        elif op in ("MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"):
            low.lower_pool(node)
        elif op == "Gemm":
            if node.name in merged_gemms:
                continue  # lowered with its Softmax
            is_output = node.outputs[0] in graph.outputs and graph.use_count(node.outputs[0]) == 1
            low.lower_gemm(node, is_output, low.act(node))
        elif op == "BatchNormalization":
            low.lower_batchnorm(node)
        elif op == "Sum":
            low.lower_sum(node)
        elif op == "Concat":
            low.lower_concat(node)
        elif op == "Flatten":
            low.lower_flatten(node)
        elif op in lower_unit_axis.UNIT_AXIS_OPS:
            lower_unit_axis.lower_unit_axis(low, node)
        elif op in ("Identity", "Dropout"):
            low.alias(node.outputs[0], node.inputs[0])  # computes nothing
        elif op == "Reshape":
            low.lower_reshape(node)
        elif op == "Softmax":
            if node.outputs[0] not in graph.outputs:
                low.problem(node, "Softmax in the middle of the graph; Viya applies softmax only "
                                  "in the output layer")
                continue
            low.lower_softmax_output(node)
        else:
            low.problem(node, lower_unit_axis.no_layer_message(graph, node))
    lower_rnn.finish(low, graph)
    _add_output_layers(low, graph)
    order = (input_options or {}).get("channel_order", "bgr")
    if order not in CHANNEL_ORDERS:
        low.problems.append(f"channel order {order!r} is not one of {CHANNEL_ORDERS}")
    elif order == "rgb" and not low.problems:
        low.problems += read_rgb_as_bgr(low.model)
    if low.problems:
        raise ViyaCannotExpress(
            f"{len(low.problems)} node(s) cannot become Viya layers:\n"
            + "\n".join(f"  {p}" for p in low.problems), file=label or None,
            hint="Viya would compute something else for these; change them in the source model "
                 "(see `irc inspect MODEL` for the graph irc sees)")
    low.model.source = label
    return low.model


def _add_output_layers(low: _Lowering, graph: Graph) -> None:
    """Every graph output ends in a Viya output layer (trap 29: loss-only when needed)."""
    for out in graph.outputs:
        layer_name = low.layer_of.get(out)
        if layer_name is None:
            continue
        if out in low.model.outputs:
            continue  # a sequence output, placed by lower_rnn.finish
        layer = low.model.layer(layer_name)
        if layer.kind == "output" and out not in low.multi:
            low.model.outputs[out] = layer.name
            continue
        sources = low.sources_of(out)
        n = sum(math.prod(low.model.layer(s).out_shape) for s in sources)
        new = ViyaLayer(low.names.claim(f"{layer.name}_output", "output"), "output",
                        {"n": n, "act": "identity", "includebias": False, "fullconnect": False,
                         "error": "auto"}, sources, {}, layer.source_nodes, (n,),
                        tensor=layer.tensor)
        low.model.layers.append(new)
        low.model.outputs[out] = new.name
