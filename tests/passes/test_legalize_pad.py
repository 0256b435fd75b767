"""legalize_pad / legalize_layer_padding: Pads fold_pad left, and layer padding Viya cannot
express, become exact selection convolutions; numbers compared in onnxruntime and, end to
end, by the reference executor re-running the written files (rtol 1e-4, atol 1e-5)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from irc.api import optimize
from irc.backends.viya.lower import lower
from irc.ir.onnx_export import to_onnx
from irc.passes.defs.legalize_pad import selection_window
from irc.passes.registry import PassContext
from irc.utils.onnx_builder import OnnxBuilder
from irc.verify import verify
from tests.e2e.conftest import ATOL, RTOL, compile_and_verify, layer_types
from tests.passes.conftest import assert_pass_preserves, build, refusals
from tests.passes.test_fold_pad import _ir_pad


def compile_graph_and_verify(graph, tmp_path):
    """An IR graph through the default pipeline and lowering, its files re-run by the
    executor and compared with onnxruntime on the graph as built. Returns the Viya model."""
    source = to_onnx(graph)
    ctx = PassContext()
    model = lower(optimize(graph.copy(), ctx=ctx), name="m", refusals=ctx.refusals)
    model.save(tmp_path / "out")
    result = verify(source, tmp_path / "out", rtol=RTOL, atol=ATOL)
    assert result.comparisons and result.ok, result.table()
    return model


@pytest.mark.parametrize("size,offset,step,count", [
    (s, o, st, c) for s, o, st, c in itertools.product((1, 4, 7), (-3, -1, 0, 2), (1, 2, 3),
                                                       (1, 3, 9))])
def test_selection_window_reads_the_wanted_cells(size, offset, step, count):
    pad, kernel, tap = selection_window(size, offset, step, count)
    assert pad >= 0 and 0 <= tap < kernel
    assert (size + 2 * pad - kernel) // step + 1 == count  # Viya's explicit-padding count
    assert all(0 <= o * step - pad + tap + pad < size + 2 * pad for o in range(count))
    assert [o * step - pad + tap for o in range(count)] == [offset + o * step
                                                              for o in range(count)]


def _pad_pool(pads, relu=False, shape=(1, 3, 6, 7)):
    b = OnnxBuilder("pad_pool", shape)
    x = b.op("Relu", b.input) if relu else b.input
    p = b.op("Pad", x, b.const(np.array(pads, np.int64)), name="pad", mode="constant")
    return b, b.op("MaxPool", p, kernel_shape=[2, 2], strides=[1, 1], name="pool")


@pytest.mark.parametrize("pads", [
    [0, 0, 1, 1, 0, 0, 1, 1],  # ZeroPadding2D before a max pool of signed values
    [0, 0, 0, 1, 0, 0, 2, 0],  # one-sided, asymmetric
    [0, 0, -1, 2, 0, 0, 1, -2],  # pad and crop mixed
    [0, 1, 0, 0, 0, 2, 0, 0],  # channels added
    [0, -1, 1, 0, 0, 0, 0, 1],  # a channel dropped
], ids=["symmetric", "one-sided", "crop", "channels", "drop-channel"])
def test_pad_fold_pad_left_becomes_a_selection_conv(pads):
    b, y = _pad_pool(pads)
    graph = build(b, [y])
    changed, out, ctx = assert_pass_preserves(graph, "legalize_pad", atol=0, rtol=0)
    assert changed and out.op_counts() == {"Conv": 1, "MaxPool": 1} and not ctx.refusals
    conv = out.producer(out.node("pool").inputs[0])
    assert "pad" in conv.provenance.sources and conv.provenance.pass_name == "legalize_pad"
    assert conv.outputs[0] == graph.node("pool").inputs[0]  # the Pad's output name survives


@pytest.mark.parametrize("mode,value,why", [("reflect", None, "mode='reflect'"),
                                            ("constant", 1.0, "pad value 1")])
def test_pad_other_than_zeros_is_refused(mode, value, why):
    changed, _, ctx = assert_pass_preserves(_ir_pad(mode, value), "legalize_pad")
    assert not changed and why in refusals(ctx)[0][2]


def test_zero_padding_before_max_pool_compiles_and_verifies(tmp_path):
    b, y = _pad_pool([0, 0, 1, 0, 0, 0, 2, 1])
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path)[:3] == ["input", "groupconvo", "pool"]


def _conv_pads(pads, k=3, stride=1):
    b = OnnxBuilder("asym", (1, 3, 8, 8))
    return b, b.conv(b.input, 4, k, stride=stride, pads=pads, name="conv")


@pytest.mark.parametrize("pads,k", [([1, 1, 0, 0], 3), ([0, 2, 1, 0], 3), ([1, 1, 0, 0], 2)],
                         ids=["1100", "0210", "same-lower-2x2"])
def test_conv_padding_viya_lacks_moves_into_a_selection_conv(pads, k, tmp_path):
    b, y = _conv_pads(pads, k)
    graph = build(b, [y])
    changed, out, ctx = assert_pass_preserves(graph, "legalize_layer_padding")
    assert changed and out.op_counts() == {"Conv": 2} and not ctx.refusals
    assert out.node("conv").attrs["pads"] == [0, 0, 0, 0]
    compile_and_verify(b.build([y]), tmp_path)


def test_symmetric_conv_padding_is_left_alone():
    b, y = _conv_pads([1, 1, 1, 1])
    changed, _, ctx = assert_pass_preserves(build(b, [y]), "legalize_layer_padding")
    assert not changed and not ctx.refusals


def _pool_pads(pads, relu, stride=1, op="MaxPool", **attrs):
    b = OnnxBuilder("pool", (1, 3, 8, 8))
    x = b.op("Relu", b.input) if relu else b.input
    return b, b.op(op, x, kernel_shape=[3, 3], strides=[stride, stride], pads=pads,
                   name="pool", **attrs)


@pytest.mark.parametrize("pads,relu,stride", [
    ([2, 1, 0, 0], True, 1),  # non-negative input: the zeros move out
    ([1, 0, 0, 1], False, 1),  # signed input: symmetric padding, then a crop
    ([2, 0, 0, 2], False, 2),
], ids=["relu-move", "signed-crop", "signed-crop-stride2"])
def test_max_pool_padding_viya_lacks(pads, relu, stride, tmp_path):
    b, y = _pool_pads(pads, relu, stride)
    changed, out, ctx = assert_pass_preserves(build(b, [y]), "legalize_layer_padding",
                                              rtol=0, atol=0)
    assert changed and not ctx.refusals
    compile_and_verify(b.build([y]), tmp_path)


def test_max_pool_of_signed_values_off_the_stride_grid_is_refused():
    b, y = _pool_pads([1, 0, 1, 1], False, stride=2)
    changed, out, ctx = assert_pass_preserves(build(b, [y]), "legalize_layer_padding")
    assert not changed and out.op_counts() == {"MaxPool": 1}
    [(_, node, why)] = refusals(ctx)
    assert node == "pool" and "stride grid" in why


def test_average_pool_not_counting_padding_is_refused():
    b, y = _pool_pads([1, 1, 0, 0], True, op="AveragePool", count_include_pad=0)
    changed, _, ctx = assert_pass_preserves(build(b, [y]), "legalize_layer_padding")
    assert not changed and "divisor" in refusals(ctx)[0][2]
