"""Legalize PReLU, LeakyReLU with a slope other than Viya's 0.1, and Neg into relu, batchnorm
and residual layers (viya-semantics §15a row 3).

    prelu(x) = relu(x) − a·relu(−x)
relu(x) is a Relu op (fused or carried later), relu(−x) a batchnorm γ = −1 with act relu,
−a·relu(−x) a batchnorm γ = −a per channel, and the sum a residual layer.
"""
from __future__ import annotations

import numpy as np

from irc.ir.activations import viya_computes
from irc.passes.defs._match import add_batchnorm, add_sum, add_unary, per_channel
from irc.passes.registry import RewritePass, register_pass


def _slope(graph, node) -> tuple[np.ndarray | float | None, str]:
    """The negative-side slope as a scalar or (C,) vector, or None and why."""
    if node.op_type == "LeakyRelu":
        return float(node.attrs.get("alpha", 0.01)), ""
    shape = graph.value(node.inputs[0]).type.shape
    slope = np.asarray(graph.const(node.inputs[1]))
    if slope.size == 1:
        return float(slope.reshape(-1)[0]), ""
    vec, why = per_channel(slope, shape)
    return (None, f"slope: {why}") if vec is None else (np.asarray(vec, np.float64), "")


@register_pass
class LegalizePRelu(RewritePass):
    """Rewrite PRelu, LeakyRelu (slope ≠ 0.1) and Neg into Relu/BatchNormalization/Sum.

    Given:  %y = PRelu(%x float32[N,C,H,W], $a float32[C,1,1])
    Result: %p = Relu(%x) ; %m = BatchNormalization(%x) {γ=-1, act relu} ;
            %n = BatchNormalization(%m) {γ=-a} ; %y = Sum(%p, %n)
    Given:  %y = Neg(%x)          Result: %y = BatchNormalization(%x) {γ=-1}
    Deviation: one rounding of a·relu(−x) (the positive side and Neg are exact). A slope of 0
    is a plain Relu; LeakyRelu with slope 0.1 is left for Viya's own leaky activation.
    """

    name = "legalize_prelu"
    anchors = ("PRelu", "LeakyRelu", "Neg")

    def rewrite(self, graph, node, ctx):
        x = node.inputs[0]
        rank = graph.value(x).type.rank
        prov = node.provenance.merged(node.provenance, self.name)
        if node.op_type == "Neg":
            if rank not in (2, 4):
                return f"its input has rank {rank}; a batchnorm needs (N, C) or (N, C, H, W)"
            graph.replace_node(node, add_batchnorm(graph, x, -1.0, 0.0, f"{node.name}_bn", prov))
            return True
        slope, why = _slope(graph, node)
        if slope is None:
            return why
        if node.op_type == "LeakyRelu" and viya_computes("leaky", slope):
            return None
        if np.all(np.asarray(slope) == 0):
            graph.replace_node(node, add_unary(graph, "Relu", x, f"{node.name}_relu", prov))
            return True
        if rank not in (2, 4):
            return (f"its input has rank {rank}; the batchnorm layers computing it need (N, C) "
                    "or (N, C, H, W)")
        graph.replace_node(node, self._compose(graph, node, x, slope, prov))
        return True

    @staticmethod
    def _compose(graph, node, x, slope, prov) -> str:
        name = node.name
        positive = add_unary(graph, "Relu", x, f"{name}_pos", prov)
        flipped = add_batchnorm(graph, x, -1.0, 0.0, f"{name}_neg", prov, "relu")  # relu(-x)
        negative = add_batchnorm(graph, flipped, -np.asarray(slope), 0.0, f"{name}_slope", prov)
        return add_sum(graph, [positive, negative], f"{name}_sum", prov)
