"""matmul_to_gemm: MatMul by a constant weight (+ bias Add) becomes one Gemm."""
from __future__ import annotations

import numpy as np

from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build, refusals


def _model(bias_shape=(5,), bias_first=False):
    b = OnnxBuilder("mm", (1, 8))
    m = b.op("MatMul", b.input, b.weight((8, 5)), name="mm")
    if bias_shape is None:
        return build(b, [m])
    bias = b.weight(bias_shape, scale=0.5)
    args = (bias, m) if bias_first else (m, bias)
    return build(b, [b.op("Add", *args, name="y")])


def test_matmul_and_bias_add_become_gemm():
    graph = _model()
    changed, out, ctx = assert_pass_preserves(graph, "matmul_to_gemm")
    assert changed and not ctx.refusals
    assert out.op_counts() == {"Gemm": 1}
    gemm = out.producer("y")  # the Add's output name survives
    assert gemm.attrs == {"transB": 0} and len(gemm.inputs) == 3
    assert out.value(gemm.inputs[1]).const is graph.value(gemm.inputs[1]).const  # not copied
    assert set(gemm.provenance.sources) == {"mm", "y"}


def test_bias_shapes_that_broadcast_per_feature():
    for shape in [(1, 5), (1,), ()]:
        changed, out, _ = assert_pass_preserves(_model(shape), "matmul_to_gemm")
        assert changed and out.op_counts() == {"Gemm": 1}, shape


def test_bias_as_first_operand():
    changed, out, _ = assert_pass_preserves(_model(bias_first=True), "matmul_to_gemm")
    assert changed and out.op_counts() == {"Gemm": 1}


def test_matmul_without_add_becomes_gemm_without_bias():
    changed, out, _ = assert_pass_preserves(_model(None), "matmul_to_gemm")
    assert changed and out.op_counts() == {"Gemm": 1}
    assert out.producer("mm").inputs[1:] == (out.producer("mm").inputs[1],)


def test_matmul_read_twice_keeps_its_add():
    b = OnnxBuilder("mm2", (1, 8))
    m = b.op("MatMul", b.input, b.weight((8, 5)), name="mm")
    y = b.op("Add", m, b.weight((5,)), name="y")
    graph = build(b, [y, b.op("Relu", m, name="r")])
    changed, out, _ = assert_pass_preserves(graph, "matmul_to_gemm")
    assert changed and out.op_counts() == {"Gemm": 1, "Add": 1, "Relu": 1}


def _ir_matmul(x_shape, bias_shape, out_shape):
    g = Graph("ir")
    g.add_input("x", TensorType(x_shape))
    w = g.add_const("w", np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)).name
    g.add_node("MatMul", ["x", w], [("m", TensorType(out_shape))], name="mm")
    if bias_shape is None:
        g.outputs = ["m"]
        return g
    c = g.add_const("c", np.ones(bias_shape, np.float32)).name
    g.add_node("Add", ["m", c], [("y", TensorType(out_shape))], name="add")
    g.outputs = ["y"]
    return g


def test_add_varying_per_row_is_refused_and_kept():
    graph = _ir_matmul((BATCH, 4), (3, 3), (BATCH, 3))
    changed, out, ctx = assert_pass_preserves(graph, "matmul_to_gemm", batch=3)
    assert changed and out.op_counts() == {"Gemm": 1, "Add": 1}
    [(_, node, reason)] = refusals(ctx)
    assert node == "add" and "broadcasts per output feature" in reason


def test_matmul_of_rank_three_is_refused():
    graph = _ir_matmul((BATCH, 2, 4), None, (BATCH, 2, 3))
    changed, out, ctx = assert_pass_preserves(graph, "matmul_to_gemm")
    assert not changed and out.op_counts() == {"MatMul": 1}
    [(_, node, reason)] = refusals(ctx)
    assert node == "mm" and "operands of rank 3 and 2" in reason
