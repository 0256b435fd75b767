"""ONNX handlers for dense layers: Gemm and MatMul (-> Viya fc/output layers)."""
from __future__ import annotations

from irc.frontends.onnx.handlers_rnn import reads_sequence
from irc.frontends.onnx.registry import ONNX_OPS as reg


@reg.register("Gemm")
def gemm(imp, node, attrs):
    """Gemm -> fc (or output); alpha, beta and transB folded into the weights."""
    keep = {k: attrs[k] for k in ("alpha", "beta", "transA", "transB") if k in attrs}
    if not imp.is_const(node.input[1]):
        imp.problem("Gemm's B (the weight) is not a constant; Viya fc layers need fixed weights")
        return
    if attrs.get("transA", 0) and not imp.is_const(node.input[0]):
        imp.problem("Gemm with transA=1 reads the batch along axis 1; Viya's batch axis is 0")
        return
    if len(node.input) > 2 and node.input[2] and not imp.is_const(node.input[2]):
        _gemm_plus_computed(imp, node, keep)
        return
    imp.emit("Gemm", node, attrs=keep)


def _gemm_plus_computed(imp, node, keep) -> None:
    """Gemm(A, B, C) with C computed: Gemm(A, B) then a residual Sum with C (same shapes)."""
    out_type, c_type = imp.inferred_type(node.output[0]), imp.inferred_type(node.input[2])
    if float(keep.get("beta", 1.0)) != 1.0 or out_type is None or c_type != out_type:
        imp.problem(f"Gemm's C ({node.input[2]!r}) is computed, not a constant bias; irc adds "
                    "it only with beta=1 and the output's own shape (Viya's residual layer)")
        return
    product = imp.fresh_value(f"{node.output[0]}_product", out_type)
    imp.emit("Gemm", node, inputs=list(node.input[:2]), attrs=keep, outputs=[product])
    imp.emit("Sum", node, inputs=[product, node.input[2]])


@reg.register("MatMul")
def matmul(imp, node, attrs):
    """MatMul by a constant 2-D weight -> fc (via the matmul_to_gemm pass)."""
    a_type, b = imp.type_of(node.input[0]), imp.const(node.input[1])
    if imp.is_const(node.input[0]) and b is not None:
        imp.emit("MatMul", node)
        return
    per_step = a_type is not None and a_type.rank == 3 and reads_sequence(imp, node.input[0])
    if b is None or b.ndim != 2 or a_type is None or (a_type.rank != 2 and not per_step):
        imp.problem("MatMul is supported only as (N, in) x constant (in, out), or per time step "
                    "on a recurrent layer's (N, T, in) output")
        return
    imp.emit("MatMul", node)
