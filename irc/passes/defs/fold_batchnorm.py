"""Batch-norm passes: per-channel constant Mul/Add become (or join) a BatchNormalization, and a
BatchNormalization after a conv/fc folds into that layer's weights.

Keras 3 exports batch norm as Mul+Add, and Sub/Div by a constant arrive here as Add/Mul (the
ONNX frontend rewrites them). New vectors are computed in float64, cast back to the weight's
type and stored as new constants; a folded conv/fc weight is a lazy expression (w·s per
channel, float64 per block, rounded once) evaluated when written. Sources are never written.
"""
from __future__ import annotations

import numpy as np

from irc.ir.forms import is_canonical_gemm
from irc.passes.defs._match import has_identity_act, per_channel, single_use_producer
from irc.passes.registry import RewritePass, register_pass


@register_pass
class FoldMulAdd(RewritePass):
    """Turn a per-channel constant Mul or Add into a BatchNormalization, or fold it into one.

    Given:  %y = BatchNormalization(%x, $s, $b, $m, $v); %z = Mul(%y, $k float32[1,C,1,1])
    Result: %z = BatchNormalization(%x, $s·k, $b·k, $m, $v)
    Given:  %z = Add(%x float32[N,C,H,W], $a float32[C,1,1])
    Result: %z = BatchNormalization(%x, 1, $a, 0, 1) {epsilon=0}
    Refuses constants that vary over the batch or spatial axes.
    """

    name = "fold_mul_add"
    anchors = ("Mul", "Add")

    def rewrite(self, graph, node, ctx):
        a, b = node.inputs
        if graph.is_const(a) == graph.is_const(b):
            return None  # both constants (fold_constants) or neither (not ours)
        x, c = (b, a) if graph.is_const(a) else (a, b)
        x_type = graph.value(x).type
        if not np.issubdtype(np.dtype(x_type.dtype), np.floating):
            return f"the value is {x_type.dtype}; a batchnorm computes in floats"
        if x_type.rank not in (2, 4):
            return f"the value has rank {x_type.rank}; a batchnorm needs (N, C) or (N, C, H, W)"
        if graph.value(node.outputs[0]).type.shape != x_type.shape:
            return "the constant broadcasts the value to a larger shape"
        vec, why = per_channel(graph.const(c), x_type.shape)
        if vec is None:
            return why
        vec = vec.astype(np.float64)
        dtype = x_type.dtype
        bn = single_use_producer(graph, x)
        if bn is not None and bn.op_type == "BatchNormalization" and has_identity_act(bn):
            scale, bias = (np.asarray(graph.const(n), np.float64) for n in bn.inputs[1:3])
            if node.op_type == "Mul":
                scale, bias = scale * vec, bias * vec
                graph.set_input(bn, 1, graph.add_const(f"{bn.inputs[1]}_mul",
                                                       scale.astype(dtype)).name)
            else:
                bias = bias + vec
            graph.set_input(bn, 2, graph.add_const(f"{bn.inputs[2]}_{node.op_type.lower()}",
                                                   bias.astype(dtype)).name)
            bn.provenance = bn.provenance.merged(node.provenance, self.name)
            graph.replace_node(node, bn.outputs[0])
            return True
        channels = x_type.shape[1]
        ones, zeros = np.ones(channels, dtype), np.zeros(channels, dtype)
        scale = vec.astype(dtype) if node.op_type == "Mul" else ones
        bias = vec.astype(dtype) if node.op_type == "Add" else zeros
        consts = [graph.add_const(f"{node.name}_{what}", arr).name for what, arr in
                  (("scale", scale), ("bias", bias), ("mean", zeros), ("var", ones))]
        new = graph.add_node("BatchNormalization", [x, *consts],
                             [(graph.unique_value_name(node.outputs[0] + "_bn"),
                               graph.value(node.outputs[0]).type)],
                             {"epsilon": 0.0}, name=f"{node.name}_bn",
                             provenance=node.provenance.merged(node.provenance, self.name))
        graph.replace_node(node, new.outputs[0])
        return True


def _foldable_producer(graph, bn) -> tuple[object | None, str]:
    """The Conv or canonical Gemm ``bn`` folds into, or None and why."""
    producer = graph.producer(bn.inputs[0])
    if producer is None:
        return None, "it reads a graph input"
    if producer.op_type not in ("Conv", "Gemm"):
        return None, (f"its input comes from {producer.name} ({producer.op_type}), not a Conv or "
                      "Gemm; it stays a batchnorm layer")
    if producer.op_type == "Gemm" and not is_canonical_gemm(graph, producer):
        return None, f"{producer.name} is not a canonical Gemm (run normalize_gemm first)"
    if not has_identity_act(producer):
        return None, (f"{producer.name} applies {producer.attrs['activation']} before the "
                      "batchnorm")
    if single_use_producer(graph, bn.inputs[0]) is None:
        return None, f"the output of {producer.name} has other readers"
    if graph.use_count(producer.inputs[1]) != 1:
        return None, f"the weight {producer.inputs[1]} of {producer.name} is shared with other ops"
    return producer, ""


@register_pass
class FoldBatchNorm(RewritePass):
    """Fold a BatchNormalization into the Conv or canonical Gemm that produces its input.

    Given:  %y = Conv(%x, $w, $b); %z = BatchNormalization(%y, $g, $beta, $m, $v) {epsilon=e}
    Result: %z = Conv(%x, $w', $b')
    with s = g / sqrt(v + e), $w' = $w · s per output channel, $b' = ($b − m) · s + beta
    ($b = 0 when absent). The batchnorm's activation moves to the conv. A batchnorm that cannot
    fold stays (the Viya backend writes it as a batchnorm layer).
    """

    name = "fold_batchnorm"
    requires = ("normalize_gemm", "fold_mul_add")
    anchors = ("BatchNormalization",)

    def rewrite(self, graph, bn, ctx):
        layer, why = _foldable_producer(graph, bn)
        if layer is None:
            return why
        gamma, beta, mean, var = (np.asarray(graph.const(n), np.float64) for n in bn.inputs[1:5])
        s = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        w = graph.value(layer.inputs[1]).const.lazy()
        # Described, not computed: w·s per output channel in float64, one rounding to w's
        # type, block by block when the weight is written (no copy of it here).
        new_w = w.scale(s, axis=0)
        has_bias = len(layer.inputs) > 2 and layer.inputs[2]
        b = np.asarray(graph.const(layer.inputs[2]), np.float64).reshape(-1) if has_bias \
            else np.zeros(s.shape)
        new_b = (b - mean) * s + beta
        graph.set_input(layer, 1, graph.add_const(f"{layer.inputs[1]}_bn", new_w).name)
        bias_name = graph.add_const(f"{layer.name}_bias_bn" if not has_bias
                                    else f"{layer.inputs[2]}_bn", new_b.astype(w.dtype)).name
        graph.set_input(layer, 2, bias_name)
        for key in ("activation", "activation_alpha"):
            if key in bn.attrs:
                graph.set_attr(layer, key, bn.attrs[key])
        layer.provenance = layer.provenance.merged(bn.provenance, self.name)
        graph.replace_node(bn, layer.outputs[0])
        return True
