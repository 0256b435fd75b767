"""fold_constants: constant-only ops become constants, names kept, big results refused."""
from __future__ import annotations

import numpy as np

from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from irc.passes.catalog import get_pass
from irc.passes.registry import PassContext
from tests.passes.conftest import assert_pass_preserves, refusals


def _shape_chain_model():
    # The ONNX frontend refuses a Reshape whose shape is not an initializer, so build the IR.
    g = Graph("shape_chain")
    g.add_input("x", TensorType((BATCH, 2, 3, 4)))
    one = g.add_const("one", np.array([1], np.int64)).name
    rest = g.add_const("rest", np.array([-1], np.int64)).name
    g.add_node("Concat", [one, rest], [("shape", TensorType((2,), "int64"))], {"axis": 0},
               name="shape")
    g.add_node("Reshape", ["x", "shape"], [("flat", TensorType((BATCH, 24)))], name="flat")
    g.outputs = ["flat"]
    return g


def test_concat_of_shape_constants_becomes_a_constant():
    graph = _shape_chain_model()
    assert graph.op_counts() == {"Concat": 1, "Reshape": 1}
    changed, out, _ = assert_pass_preserves(graph, "fold_constants", batch=1)
    assert changed
    assert out.op_counts() == {"Reshape": 1}
    assert out.is_const("shape")  # the folded value keeps its name
    np.testing.assert_array_equal(out.const("shape"), [1, -1])
    assert out.const("shape").dtype == np.int64


def _chain_model():
    g = Graph("chain")
    g.add_input("x", TensorType((BATCH, 3)))
    c1 = g.add_const("c1", np.array([1.0, 2.0, 3.0], np.float32)).name
    c2 = g.add_const("c2", np.array([0.5, 0.5, 0.5], np.float32)).name
    g.add_node("Sub", [c1, c2], [("d", TensorType((3,)))])
    g.add_node("Mul", ["d", "d"], [("e", TensorType((3,)))])
    g.add_node("Add", ["x", "e"], [("y", TensorType((BATCH, 3)))])
    g.outputs = ["y"]
    return g


def test_chained_constant_ops_fold_in_one_run():
    graph = _chain_model()
    assert graph.op_counts() == {"Sub": 1, "Mul": 1, "Add": 1}
    changed, out, _ = assert_pass_preserves(graph, "fold_constants")
    assert changed and out.op_counts() == {"Add": 1}
    np.testing.assert_allclose(out.const("e"), [0.25, 2.25, 6.25])
    # a second run finds nothing: the first reached the fixed point
    changed, _, _ = assert_pass_preserves(out, "fold_constants")
    assert not changed


def test_fused_activation_is_evaluated_too():
    g = Graph("act")
    g.add_input("x", TensorType((BATCH, 3)))
    a = g.add_const("a", np.array([-1.0, 2.0, -3.0], np.float32)).name
    c = g.add_const("c", np.array([0.5, 0.5, 0.5], np.float32)).name
    g.add_node("Sum", [a, c], [("s", TensorType((3,)))], {"activation": "relu"})
    g.add_node("Sum", ["x", "s"], [("y", TensorType((BATCH, 3)))])
    g.outputs = ["y"]
    changed, out, _ = assert_pass_preserves(g, "fold_constants")
    assert changed and out.op_counts() == {"Sum": 1}
    np.testing.assert_allclose(out.const("s"), [0.0, 2.5, 0.0])


def test_result_over_the_size_limit_is_refused():
    graph = _chain_model()
    ctx = PassContext(const_fold_max_elements=2)
    changed, out, ctx = assert_pass_preserves(graph, "fold_constants", ctx=ctx)
    assert not changed and out.op_counts() == {"Sub": 1, "Mul": 1, "Add": 1}
    # the Mul's operand stays computed, so only the Sub is refused
    [(pass_name, node, reason)] = refusals(ctx)
    assert (pass_name, node) == ("fold_constants", "sub")
    assert "3 elements, more than const_fold_max_elements=2" in reason


def test_graph_output_is_not_folded():
    g = Graph("out")
    g.add_input("x", TensorType((BATCH, 2)))
    a = g.add_const("a", np.ones(2, np.float32)).name
    g.add_node("Relu", [a], [("r", TensorType((2,)))])
    g.add_node("Relu", ["x"], [("y", TensorType((BATCH, 2)))])
    g.outputs = ["y", "r"]
    ctx = PassContext(current_pass="fold_constants")
    assert not get_pass("fold_constants").run(g, ctx)
    g.validate()
    assert "graph output" in refusals(ctx)[0][2]


def test_evaluation_failure_is_refused_with_the_error():
    g = Graph("bad")
    g.add_input("x", TensorType((BATCH, 2)))
    data = g.add_const("data", np.ones((2, 3), np.float32)).name
    shape = g.add_const("shape", np.array([5], np.int64)).name
    g.add_node("Reshape", [data, shape], [("r", TensorType((5,)))], name="bad_reshape")
    g.add_node("Relu", ["x"], [("y", TensorType((BATCH, 2)))])
    g.outputs = ["y"]
    ctx = PassContext(current_pass="fold_constants")
    assert not get_pass("fold_constants").run(g, ctx)
    g.validate()
    [(_, node, reason)] = ctx.refusals
    assert node == "bad_reshape" and reason.startswith("evaluating it on its constants failed")


def test_weights_are_shared_not_copied():
    graph = _shape_chain_model()
    _, out, _ = assert_pass_preserves(graph, "fold_constants", batch=1)
    assert out.weights is graph.weights
    assert graph.op_counts() == {"Concat": 1, "Reshape": 1}  # the original is untouched
