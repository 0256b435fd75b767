"""The pass kit: graph edits that keep edges, names and the version in step, and the
RewritePass template (its loop and refusal bookkeeping)."""
from __future__ import annotations

import numpy as np
import pytest

from irc.ir.forms import canonical_gemm_problem, is_canonical_gemm
from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from irc.passes.registry import PassContext, RewritePass

from .conftest import random_feeds, run_graph

T = TensorType((BATCH, 4))


def _chain() -> Graph:
    """x -> Relu (a) -> Sigmoid (b, the graph output)."""
    g = Graph("kit")
    g.add_input("x", T)
    g.add_node("Relu", ["x"], [("a", T)], name="relu")
    g.add_node("Sigmoid", ["a"], [("b", T)], name="sigmoid")
    g.outputs = ["b"]
    return g


def test_inputs_change_only_through_the_graph():
    g = _chain()
    node = g.node("sigmoid")
    assert node.inputs == ("a",)
    with pytest.raises(AttributeError):
        node.inputs = ["x"]
    with pytest.raises(TypeError):
        node.inputs[0] = "x"   # a tuple
    before = g.version
    g.set_input(node, 0, "x")
    assert node.inputs == ("x",) and g.version > before and g.use_count("a") == 0
    g.validate()   # edges follow the inputs


def test_set_input_past_the_end_adds_slots_and_set_inputs_drops_them():
    g = Graph("gemm")
    g.add_input("x", TensorType((BATCH, 3)))
    w = g.add_const("w", np.ones((2, 3), np.float32)).name
    b = g.add_const("b", np.ones(2, np.float32)).name
    gemm = g.add_node("Gemm", ["x", w], [("y", TensorType((BATCH, 2)))], {"transB": 1})
    g.outputs = ["y"]
    g.set_input(gemm, 2, b)
    assert gemm.inputs == ("x", w, b)
    g.validate()
    g.set_inputs(gemm, gemm.inputs[:2])
    assert gemm.inputs == ("x", w) and g.use_count(b) == 0
    g.validate()


def test_set_attr_and_remove_attr_bump_the_version():
    g = _chain()
    node = g.node("relu")
    before = g.version
    g.set_attr(node, "bogus", 1)
    assert node.attrs["bogus"] == 1 and g.version == before + 1
    g.remove_attr(node, "bogus")
    assert "bogus" not in node.attrs and g.version == before + 2


def test_replace_node_keeps_the_output_name_and_its_readers():
    g = _chain()
    feeds = random_feeds(g)
    ref = run_graph(g, feeds)
    # Replace the Sigmoid (a graph output) by a Tanh of the same input: 'b' must survive.
    sig = g.node("sigmoid")
    tanh = g.add_node("Tanh", ["a"], [(g.unique_value_name("b_new"), T)], name="tanh")
    g.replace_node(sig, tanh.outputs[0])
    g.validate()
    assert g.outputs == ["b"] and g.producer("b") is tanh and not g.has_node("sigmoid")
    got = run_graph(g, feeds)["b"]
    # onnxruntime's float32 tanh and numpy's differ by up to an ulp or two
    np.testing.assert_allclose(got, np.tanh(np.maximum(feeds["x"], 0)), rtol=1e-6, atol=1e-7)
    assert not np.array_equal(got, ref["b"])


class _DropRelu(RewritePass):
    """Test pass: removes a Relu read by a Sigmoid, refuses any other Relu."""

    name = "test_drop_relu"
    anchors = ("Relu",)

    def rewrite(self, graph, node, ctx):
        readers = graph.consumers(node.outputs[0])
        if not readers or readers[0].op_type != "Sigmoid":
            return "not read by a Sigmoid"
        graph.replace_uses(node.outputs[0], node.inputs[0])
        graph.remove_node(node)
        return True


def test_rewrite_pass_records_refusals_and_reports_change():
    g = _chain()
    ctx = PassContext(current_pass="test_drop_relu")
    assert _DropRelu().run(g, ctx) is True
    assert not g.has_node("relu") and ctx.refusals == []
    g2 = _chain()
    g2.set_input(g2.node("sigmoid"), 0, "x")   # the Relu is now unread
    ctx2 = PassContext(current_pass="test_drop_relu")
    assert _DropRelu().run(g2, ctx2) is False
    assert ctx2.refusals == [("test_drop_relu", "relu", "not read by a Sigmoid")]


def test_canonical_gemm_is_one_predicate():
    g = Graph("gemm")
    g.add_input("x", TensorType((BATCH, 3)))
    w = g.add_const("w", np.ones((2, 3), np.float32)).name
    b = g.add_const("b", np.ones((1, 2), np.float32)).name
    gemm = g.add_node("Gemm", ["x", w, b], [("y", TensorType((BATCH, 2)))], {"transB": 1})
    assert "bias of shape (1, 2)" in canonical_gemm_problem(g, gemm)
    g.set_input(gemm, 2, g.add_const("b1", np.ones(2, np.float32)).name)
    assert is_canonical_gemm(g, gemm)
    g.set_attr(gemm, "alpha", 2.0)
    assert "not in canonical form" in canonical_gemm_problem(g, gemm)
