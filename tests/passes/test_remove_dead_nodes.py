"""remove_dead_nodes: unread ops (whole chains) and unread constants go."""
from __future__ import annotations

import numpy as np

from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build


def test_dead_chain_and_its_constants_are_removed():
    b = OnnxBuilder("dead", (1, 3, 6, 6))
    live = b.conv(b.input, 4, 3, name="live")
    dead = b.op("Relu", b.conv(b.input, 2, 1, name="dead_conv"), name="dead_relu")
    graph = build(b, [live])
    assert dead not in graph.outputs and graph.op_counts() == {"Conv": 2, "Relu": 1}
    changed, out, _ = assert_pass_preserves(graph, "remove_dead_nodes")
    assert changed and out.op_counts() == {"Conv": 1}
    consts = {v.name for v in out.values() if v.is_const}
    assert consts == set(out.producer("live").inputs[1:])


def test_unused_constant_alone_is_removed():
    b = OnnxBuilder("unused", (1, 4))
    b.const(np.ones(3, np.float32), name="orphan")
    graph = build(b, [b.op("Relu", b.input)])
    changed, out, _ = assert_pass_preserves(graph, "remove_dead_nodes")
    assert changed and not out.has_value("orphan")


def test_clean_graph_is_unchanged():
    b = OnnxBuilder("clean", (1, 4))
    graph = build(b, [b.op("Relu", b.input)])
    changed, out, _ = assert_pass_preserves(graph, "remove_dead_nodes")
    assert not changed and out.op_counts() == {"Relu": 1}
