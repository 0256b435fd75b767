"""Dense passes: MatMul(+Add) becomes Gemm, and every Gemm takes one canonical form.

Canonical Gemm: ``Gemm(%x (N,in), $w (out,in), [$b (out,)]) {transB=1}`` with alpha = beta = 1
and transA = 0, which is exactly Viya's fc layer y = W·v + b (viya-semantics §7). Gemm alpha and
beta are folded into the weights (trap 9). New weights are new constants: the source arrays may
be read-only memory maps.
"""
from __future__ import annotations

import numpy as np

from irc.passes.defs._match import sole_consumer
from irc.ir.forms import is_canonical_gemm
from irc.passes.registry import RewritePass, register_pass


def _bias_vector(c: np.ndarray, out: int) -> np.ndarray | None:
    """``c`` as an (out,) vector when it broadcasts along the features only, else None."""
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
        return None
    if c.ndim >= 1 and c.shape[-1] not in (1, out):
        return None
    return np.broadcast_to(c.reshape(-1), (out,))


@register_pass
class MatMulToGemm(RewritePass):
    """Turn MatMul by a constant (in, out) weight, and a bias Add after it, into Gemm.

    Given:  %m = MatMul(%x float32[N,in], $w float32[in,out]); %y = Add(%m, $b float32[out])
    Result: %y = Gemm(%x, $w, $b) {transB=0}
    Without a bias Add: %m = Gemm(%x, $w) {transB=0}. normalize_gemm then transposes the weight.
    """

    name = "matmul_to_gemm"
    anchors = ("MatMul",)

    def rewrite(self, graph, node, ctx):
        x, w = node.inputs
        x_shape = graph.value(x).type.shape
        if graph.is_const(x):
            return None
        if not graph.is_const(w):
            return "its second operand is not a constant weight"
        w_shape = graph.value(w).type.shape
        if len(x_shape) != 2 or len(w_shape) != 2:
            return (f"operands of rank {len(x_shape)} and {len(w_shape)}; only (N, in) x "
                    "(in, out) is a dense layer")
        out_features = w_shape[1]
        inputs, last = [x, w], node
        add = sole_consumer(graph, node.outputs[0])
        if add is not None and add.op_type == "Add":
            other = add.inputs[1] if add.inputs[0] == node.outputs[0] else add.inputs[0]
            if graph.is_const(other) and \
                    _bias_vector(graph.const(other), out_features) is not None:
                inputs, last = [x, w, other], add
            else:
                ctx.refuse(add, "the Add after the MatMul is not a constant bias that "
                                "broadcasts per output feature; it stays a separate Add")
        out = last.outputs[0]
        provenance = node.provenance.merged(last.provenance, self.name)
        gemm = graph.add_node("Gemm", inputs,
                              [(graph.unique_value_name(out + "_gemm"), graph.value(out).type)],
                              {"transB": 0}, name=f"{node.name}_gemm", provenance=provenance)
        graph.replace_node(last, gemm.outputs[0])
        if last is not node:
            graph.remove_node(node)
        return True


@register_pass
class NormalizeGemm(RewritePass):
    """Bring every Gemm to the canonical form W (out, in), transB=1, alpha = beta = 1.

    Given:  %y = Gemm(%x, $w float32[in,out], $c float32[1,out]) {alpha=a, beta=b, transB=0}
    Result: %y = Gemm(%x, $w' float32[out,in], $c' float32[out]) {transB=1}
    with $w' = a·transpose($w) and $c' = b·$c. Refuses transA=1 and a C that varies per row
    (batch-dependent). Ensures irc.ir.forms.is_canonical_gemm for every Gemm it does not refuse.
    """

    name = "normalize_gemm"
    requires = ("matmul_to_gemm",)
    anchors = ("Gemm",)

    def rewrite(self, graph, node, ctx):
        if is_canonical_gemm(graph, node):
            return None
        if node.attrs.get("transA", 0):
            return "transA=1 reads the batch along axis 1; Viya's batch axis is 0"
        alpha = float(node.attrs.get("alpha", 1.0))
        beta = float(node.attrs.get("beta", 1.0))
        trans_b = node.attrs.get("transB", 0)
        w_name = node.inputs[1]
        out = graph.value(w_name).type.shape[0 if trans_b else 1]
        c_name = node.inputs[2] if len(node.inputs) > 2 else ""
        bias = None
        if c_name:
            bias = _bias_vector(graph.const(c_name), out)
            if bias is None:
                return (f"C of shape {graph.value(c_name).type.shape} varies per row "
                        "(batch-dependent); an fc bias is one value per output")
        if not trans_b or alpha != 1.0:
            # Described, not computed: the writer streams the transpose (and alpha, in
            # float64, rounded once) block by block; the source is never copied whole.
            w = graph.value(w_name).const.lazy()
            w = w if trans_b else w.T
            w = w if alpha == 1.0 else w.scale(alpha)
            graph.set_input(node, 1, graph.add_const(f"{w_name}_canon", w).name)
        if c_name and beta == 0.0:
            graph.set_inputs(node, node.inputs[:2])
        elif c_name and (beta != 1.0 or graph.value(c_name).type.shape != (out,)):
            c = (np.asarray(bias, np.float64) * beta).astype(graph.value(c_name).type.dtype)
            graph.set_input(node, 2, graph.add_const(f"{c_name}_canon", c).name)
        for key in ("alpha", "beta", "transA"):
            graph.remove_attr(node, key)
        graph.set_attr(node, "transB", 1)
        node.provenance = node.provenance.merged(node.provenance, self.name)
        return True
