"""remove_identity_dropout: Identity and Dropout go; their readers read their input."""
from __future__ import annotations

from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build, refusals


def test_identity_and_dropout_between_layers_are_removed():
    b = OnnxBuilder("drop", (1, 8))
    x = b.op("Identity", b.gemm(b.input, 8, 6, name="fc1"), name="id")
    x = b.op("Dropout", x, name="drop")
    graph = build(b, [b.gemm(x, 6, 3, name="fc2")])
    changed, out, ctx = assert_pass_preserves(graph, "remove_identity_dropout")
    assert changed and not ctx.refusals
    assert out.op_counts() == {"Gemm": 2}
    assert out.producer("fc2").inputs[0] == "fc1"


def test_dropout_at_a_graph_output_keeps_its_name():
    b = OnnxBuilder("drop_out", (1, 8))
    graph = build(b, [b.op("Dropout", b.gemm(b.input, 8, 6, name="fc"), name="y")])
    changed, out, _ = assert_pass_preserves(graph, "remove_identity_dropout")
    assert changed and out.op_counts() == {"Gemm": 1}
    assert out.outputs == ["y"] and out.producer("y").op_type == "Gemm"


def test_identity_from_input_to_output_is_refused():
    b = OnnxBuilder("id_io", (1, 8))
    graph = build(b, [b.op("Identity", b.input, name="y")])
    changed, out, ctx = assert_pass_preserves(graph, "remove_identity_dropout")
    assert not changed and out.op_counts() == {"Identity": 1}
    [(pass_name, node, reason)] = refusals(ctx)
    assert (pass_name, node) == ("remove_identity_dropout", "y") and "graph output" in reason
