"""reshape_to_flatten: flattening Reshape/Squeeze become Flatten; no-op reshapes go."""
from __future__ import annotations

import numpy as np

from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build, refusals


def _reshape_model(target, input_shape=(1, 4, 3, 5)):
    b = OnnxBuilder("reshape", input_shape)
    shape = b.const(np.array(target, np.int64))
    return build(b, [b.op("Reshape", b.input, shape, name="flat")])


def test_reshape_with_batch_one_becomes_flatten():
    graph = _reshape_model([1, -1])
    # [1, -1] is only right for batch 1 before the pass, so compare at batch 1
    changed, out, _ = assert_pass_preserves(graph, "reshape_to_flatten", batch=1)
    assert changed and out.op_counts() == {"Flatten": 1}
    node = out.producer("flat")
    assert node.attrs == {"axis": 1} and node.inputs == ("input",)
    assert out.outputs == ["flat"]


def test_reshape_variants_become_flatten():
    for target in ([-1, 60], [0, -1], [0, 60]):
        graph = _reshape_model(target)
        changed, out, _ = assert_pass_preserves(graph, "reshape_to_flatten")
        assert changed and out.op_counts() == {"Flatten": 1}, target


def test_squeeze_after_global_pool_becomes_flatten():
    b = OnnxBuilder("squeeze", (1, 6, 4, 4))
    p = b.op("GlobalAveragePool", b.input)
    axes = b.const(np.array([2, 3], np.int64))
    y = b.op("Gemm", b.op("Squeeze", p, axes, name="sq"), b.weight((3, 6)), transB=1)
    graph = build(b, [y])
    changed, out, _ = assert_pass_preserves(graph, "reshape_to_flatten")
    assert changed
    assert out.op_counts() == {"GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1}
    assert out.value("sq").type.shape == (BATCH, 6)


def test_two_d_reshape_to_the_same_shape_is_removed():
    b = OnnxBuilder("noop", (1, 12))
    r = b.op("Reshape", b.input, b.const(np.array([-1, 12], np.int64)), name="r")
    f = b.op("Flatten", r, axis=1, name="f")
    y = b.op("Relu", f, name="y")
    graph = build(b, [y])
    changed, out, _ = assert_pass_preserves(graph, "reshape_to_flatten")
    assert changed and out.op_counts() == {"Relu": 1}
    assert out.producer("y").inputs == ("input",)


def test_no_op_at_a_graph_output_hands_its_name_to_the_producer():
    b = OnnxBuilder("noop_out", (1, 12))
    r = b.op("Relu", b.input, name="r")
    y = b.op("Flatten", r, axis=1, name="y")
    graph = build(b, [y])
    changed, out, _ = assert_pass_preserves(graph, "reshape_to_flatten")
    assert changed and out.op_counts() == {"Relu": 1}
    assert out.outputs == ["y"] and out.producer("y").op_type == "Relu"


def test_no_op_between_input_and_output_is_refused():
    b = OnnxBuilder("noop_io", (1, 12))
    graph = build(b, [b.op("Flatten", b.input, axis=1, name="y")])
    changed, out, ctx = assert_pass_preserves(graph, "reshape_to_flatten")
    assert not changed and out.op_counts() == {"Flatten": 1}
    [(_, node, reason)] = refusals(ctx)
    assert node == "y" and "graph output" in reason


def test_other_reshapes_are_refused():
    graph = _reshape_model([0, 4, 15])
    changed, out, ctx = assert_pass_preserves(graph, "reshape_to_flatten")
    assert not changed and out.op_counts() == {"Reshape": 1}
    [(pass_name, node, reason)] = refusals(ctx)
    assert (pass_name, node) == ("reshape_to_flatten", "flat")
    assert reason == "Reshape (N, 4, 3, 5) -> (N, 4, 15) is not a flatten to (N, features)"


def test_constant_reshape_is_left_alone():
    g = Graph("const")
    g.add_input("x", TensorType((BATCH, 6)))
    w = g.add_const("w", np.ones((2, 3), np.float32)).name
    s = g.add_const("s", np.array([6], np.int64)).name
    g.add_node("Reshape", [w, s], [("w6", TensorType((6,)))])
    g.add_node("Add", ["x", "w6"], [("y", TensorType((BATCH, 6)))])
    g.outputs = ["y"]
    changed, out, ctx = assert_pass_preserves(g, "reshape_to_flatten")
    assert not changed and not ctx.refusals
