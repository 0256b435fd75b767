"""fold_pad: a zero Pad joins the pads of the conv/pool ops reading it, or is refused."""
from __future__ import annotations

import numpy as np

from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build, refusals

SPATIAL = [0, 0, 1, 2, 0, 0, 2, 1]  # top 1, left 2, bottom 2, right 1


def _pad(b, x, pads=SPATIAL):
    return b.op("Pad", x, b.const(np.array(pads, np.int64)), name="pad", mode="constant")


def test_pad_folds_into_conv_pads():
    b = OnnxBuilder("pad_conv", (1, 3, 6, 7))
    y = b.conv(_pad(b, b.input), 4, 3, pads=[1, 0, 0, 1], name="conv")
    graph = build(b, [y])
    changed, out, ctx = assert_pass_preserves(graph, "fold_pad")
    assert changed and not ctx.refusals
    assert out.op_counts() == {"Conv": 1}
    conv = out.producer("conv")
    assert conv.attrs["pads"] == [2, 2, 2, 2] and conv.inputs[0] == "input"
    assert "pad" in conv.provenance.sources


def test_pad_read_by_two_convs_folds_into_both():
    b = OnnxBuilder("pad_2conv", (1, 3, 6, 7))
    p = _pad(b, b.input)
    graph = build(b, [b.conv(p, 4, 3, name="conv_a"), b.conv(p, 2, 1, name="conv_b")])
    changed, out, _ = assert_pass_preserves(graph, "fold_pad")
    assert changed and out.op_counts() == {"Conv": 2}
    for name in ("conv_a", "conv_b"):
        assert out.producer(name).attrs["pads"] == [1, 2, 2, 1]


def _pool_model(op, relu=False, pads=SPATIAL, **attrs):
    b = OnnxBuilder("pad_pool", (1, 3, 8, 9))
    x = b.op("Relu", b.input, name="relu") if relu else b.input
    y = b.op(op, _pad(b, x, pads), name="pool", kernel_shape=[3, 3], strides=[2, 2],
             **attrs)
    return build(b, [y])


def test_average_pool_counting_pads_takes_it():
    graph = _pool_model("AveragePool", count_include_pad=1)
    changed, out, _ = assert_pass_preserves(graph, "fold_pad")
    assert changed and out.op_counts() == {"AveragePool": 1}
    assert out.producer("pool").attrs["pads"] == [1, 2, 2, 1]


def test_unpadded_average_pool_takes_it_counting_the_zeros():
    # A Keras ZeroPadding2D before an AveragePooling2D: the pool averages the zeros as data,
    # so after the fold it counts its padding (exact: the same sums and divisors).
    graph = _pool_model("AveragePool", count_include_pad=0)
    changed, out, ctx = assert_pass_preserves(graph, "fold_pad", rtol=0, atol=0)
    assert changed and not ctx.refusals and out.op_counts() == {"AveragePool": 1}
    pool = out.producer("pool")
    assert pool.attrs["pads"] == [1, 2, 2, 1] and pool.attrs["count_include_pad"] == 1


def test_padded_average_pool_counting_pads_adds_to_them():
    graph = _pool_model("AveragePool", count_include_pad=1, pads=SPATIAL)
    pool = graph.producer("pool")
    graph.set_attr(pool, "pads", [1, 0, 0, 1])
    changed, out, _ = assert_pass_preserves(graph, "fold_pad", rtol=0, atol=0)
    assert changed and out.producer("pool").attrs["pads"] == [2, 2, 2, 2]


def test_padded_average_pool_not_counting_its_pads_is_refused():
    graph = _pool_model("AveragePool", count_include_pad=0)
    graph.set_attr(graph.producer("pool"), "pads", [1, 1, 1, 1])
    changed, out, ctx = assert_pass_preserves(graph, "fold_pad")
    assert not changed and out.op_counts() == {"Pad": 1, "AveragePool": 1}
    [(pass_name, node, reason)] = refusals(ctx)
    assert (pass_name, node) == ("fold_pad", "pad") and "count_include_pad=0" in reason


def test_max_pool_after_relu_takes_it():
    graph = _pool_model("MaxPool", relu=True)
    changed, out, _ = assert_pass_preserves(graph, "fold_pad")
    assert changed and out.op_counts() == {"Relu": 1, "MaxPool": 1}
    assert out.producer("pool").attrs["pads"] == [1, 2, 2, 1]


def test_max_pool_of_a_possibly_negative_value_is_refused():
    graph = _pool_model("MaxPool")
    changed, out, ctx = assert_pass_preserves(graph, "fold_pad")
    assert not changed and out.op_counts() == {"Pad": 1, "MaxPool": 1}
    assert "may be negative" in refusals(ctx)[0][2]


def test_max_pool_with_a_pad_as_large_as_the_kernel_is_refused():
    graph = _pool_model("MaxPool", relu=True, pads=[0, 0, 3, 0, 0, 0, 0, 0])
    changed, _, ctx = assert_pass_preserves(graph, "fold_pad")
    assert not changed and "not smaller than the kernel" in refusals(ctx)[0][2]


def test_pool_with_ceil_mode_is_refused():
    graph = _pool_model("MaxPool", relu=True, ceil_mode=1)
    changed, _, ctx = assert_pass_preserves(graph, "fold_pad")
    assert not changed and "ceil_mode=1" in refusals(ctx)[0][2]


def test_one_reader_that_cannot_take_it_keeps_the_pad_for_all():
    b = OnnxBuilder("pad_mixed", (1, 3, 6, 7))
    p = _pad(b, b.input)
    graph = build(b, [b.conv(p, 4, 3, name="conv_a"), b.op("Relu", p, name="r")])
    changed, out, ctx = assert_pass_preserves(graph, "fold_pad")
    assert not changed and out.op_counts() == {"Pad": 1, "Conv": 1, "Relu": 1}
    assert out.producer("conv_a").attrs["pads"] == [0, 0, 0, 0]
    assert "r is a Relu, which has no padding of its own" in refusals(ctx)[0][2]


def test_padding_the_channel_axis_is_refused():
    b = OnnxBuilder("pad_chan", (1, 3, 6, 7))
    y = b.conv(_pad(b, b.input, [0, 1, 0, 0, 0, 0, 0, 0]), 4, 3, in_channels=4)
    changed, _, ctx = assert_pass_preserves(build(b, [y]), "fold_pad")
    assert not changed and "batch or channel axis" in refusals(ctx)[0][2]


def _ir_pad(mode="constant", value=None, pads=SPATIAL):
    g = Graph("ir")
    g.add_input("x", TensorType((BATCH, 2, 5, 5)))
    inputs = ["x", g.add_const("pads", np.array(pads, np.int64)).name]
    if value is not None:
        inputs.append(g.add_const("value", np.array(value, np.float32)).name)
    h, w = 5 + pads[2] + pads[6], 5 + pads[3] + pads[7]
    g.add_node("Pad", inputs, [("p", TensorType((BATCH, 2, h, w)))], {"mode": mode}, name="pad")
    weight = g.add_const("w", np.ones((1, 2, 3, 3), np.float32)).name
    g.add_node("Conv", ["p", weight], [("y", TensorType((BATCH, 1, h - 2, w - 2)))],
               {"kernel_shape": [3, 3], "pads": [0, 0, 0, 0]}, name="conv")
    g.outputs = ["y"]
    return g


def test_non_zero_value_and_other_modes_are_refused():
    for graph, expected in [(_ir_pad(value=1.0), "pad value 1"),
                            (_ir_pad(mode="reflect"), "mode='reflect'"),
                            (_ir_pad(pads=[0, 0, 1, 2, 0, 0, 2, -1]), "negative")]:
        changed, _, ctx = assert_pass_preserves(graph, "fold_pad")
        assert not changed and expected in refusals(ctx)[0][2], expected


def test_zero_value_input_folds():
    changed, out, _ = assert_pass_preserves(_ir_pad(value=0.0), "fold_pad")
    assert changed and out.op_counts() == {"Conv": 1}
