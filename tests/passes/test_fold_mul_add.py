"""fold_mul_add: per-channel constant Mul/Add become (or join) a BatchNormalization."""
from __future__ import annotations

import numpy as np
import pytest

from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build, refusals

C, H, W = 4, 5, 6


def _model(ops, input_shape=(1, C, H, W), after_bn=False):
    """``ops``: (op_type, constant shape) applied in turn to a conv (or BN) output."""
    b = OnnxBuilder("muladd", input_shape)
    x = b.conv(b.input, C, 3, pads=[1, 1, 1, 1]) if len(input_shape) == 4 else \
        b.gemm(b.input, input_shape[1], C)
    if after_bn:
        x = b.batchnorm(x, name="bn")
    for i, (op, shape) in enumerate(ops):
        x = b.op(op, x, b.weight(shape, scale=1.0), name=f"y{i}")
    return build(b, [x])


def test_mul_becomes_batchnorm():
    graph = _model([("Mul", (1, C, 1, 1))])
    changed, out, ctx = assert_pass_preserves(graph, "fold_mul_add")
    assert changed and not ctx.refusals
    assert out.op_counts() == {"Conv": 1, "BatchNormalization": 1}
    bn = out.producer("y0")
    assert bn.attrs["epsilon"] == 0.0 and "y0" in bn.provenance.sources


def test_add_of_each_per_channel_shape_becomes_batchnorm():
    for shape in [(C, 1, 1), (1, C, 1, 1), (), (1,), (1, 1, 1)]:
        changed, out, _ = assert_pass_preserves(_model([("Add", shape)]), "fold_mul_add")
        assert changed and out.op_counts() == {"Conv": 1, "BatchNormalization": 1}, shape


def test_mul_then_add_become_one_batchnorm():
    graph = _model([("Mul", (C, 1, 1)), ("Add", (C, 1, 1))])
    changed, out, _ = assert_pass_preserves(graph, "fold_mul_add")
    assert changed and out.op_counts() == {"Conv": 1, "BatchNormalization": 1}
    assert out.outputs == ["y1"] and out.producer("y1").op_type == "BatchNormalization"


def test_mul_and_add_join_an_existing_batchnorm():
    graph = _model([("Mul", (1, C, 1, 1)), ("Add", (1, C, 1, 1))], after_bn=True)
    changed, out, _ = assert_pass_preserves(graph, "fold_mul_add")
    assert changed and out.op_counts() == {"Conv": 1, "BatchNormalization": 1}
    bn = out.producer("y1")
    assert bn.attrs["epsilon"] == pytest.approx(1e-5)  # the original batchnorm took both
    assert set(bn.provenance.sources) == {"bn", "y0", "y1"}


def test_two_d_value_with_a_feature_vector():
    for op in ("Mul", "Add"):
        graph = _model([(op, (C,))], input_shape=(1, 7))
        changed, out, _ = assert_pass_preserves(graph, "fold_mul_add")
        assert changed and out.op_counts() == {"Gemm": 1, "BatchNormalization": 1}


def test_sub_and_div_by_constants_arrive_as_add_and_mul():
    b = OnnxBuilder("subdiv", (1, 3, 4, 4))
    x = b.op("Sub", b.input, b.const(np.array([1.0, 2.0, 3.0], np.float32).reshape(3, 1, 1)))
    y = b.op("Div", x, b.const(np.array([2.0, 4.0, 8.0], np.float32).reshape(3, 1, 1)), name="y")
    graph = build(b, [y])
    changed, out, _ = assert_pass_preserves(graph, "fold_mul_add")
    assert changed and out.op_counts() == {"BatchNormalization": 1}


def test_spatially_varying_constant_is_refused():
    graph = _model([("Mul", (1, 1, H, W))])
    changed, out, ctx = assert_pass_preserves(graph, "fold_mul_add")
    assert not changed and out.op_counts() == {"Conv": 1, "Mul": 1}
    [(pass_name, node, reason)] = refusals(ctx)
    assert (pass_name, node) == ("fold_mul_add", "y0")
    assert "varies over the spatial axes (H/W)" in reason


def test_channel_vector_on_a_4d_value_broadcasts_along_w_and_is_refused():
    graph = _model([("Add", (W,))])
    changed, _, ctx = assert_pass_preserves(graph, "fold_mul_add")
    assert not changed and "spatial axes" in refusals(ctx)[0][2]


def test_constant_first_and_rank_three_in_the_ir():
    g = Graph("ir")
    g.add_input("x", TensorType((BATCH, 3, 2, 2)))
    g.add_input("z", TensorType((BATCH, 3, 2)))
    k = g.add_const("k", np.array([1.0, -2.0, 3.0], np.float32).reshape(3, 1, 1)).name
    g.add_node("Mul", [k, "x"], [("y", TensorType((BATCH, 3, 2, 2)))], name="mul")
    k3 = g.add_const("k3", np.float32(2.0)).name
    g.add_node("Mul", ["z", k3], [("w", TensorType((BATCH, 3, 2)))], name="mul3")
    g.outputs = ["y", "w"]
    changed, out, ctx = assert_pass_preserves(g, "fold_mul_add")
    assert changed and out.op_counts() == {"BatchNormalization": 1, "Mul": 1}
    [(_, node, reason)] = refusals(ctx)
    assert node == "mul3" and "rank 3" in reason
