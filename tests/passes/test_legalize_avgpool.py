"""legalize_avgpool_include_pad: an average pool counting padded cells becomes a per-channel
averaging conv (rounding only: compared with rtol 1e-5, atol 1e-6 in onnxruntime, and end to
end by the executor at rtol 1e-4, atol 1e-5)."""
from __future__ import annotations

import pytest

from irc.utils.onnx_builder import OnnxBuilder
from tests.e2e.conftest import compile_and_verify, layer_types
from tests.passes.conftest import assert_pass_preserves, build, refusals


def _avg(pads, kernel=3, stride=1, **attrs):
    b = OnnxBuilder("avg", (1, 3, 8, 8))
    x = b.conv(b.input, 4, 3, pads=[1, 1, 1, 1])
    return b, b.op("AveragePool", x, kernel_shape=[kernel, kernel], strides=[stride, stride],
                   pads=pads, count_include_pad=1, name="avg", **attrs)


@pytest.mark.parametrize("pads,stride", [([1, 1, 1, 1], 1), ([1, 1, 1, 1], 2),
                                         ([0, 1, 1, 0], 1)], ids=["p1", "p1s2", "asym"])
def test_average_pool_counting_padding_becomes_a_conv(pads, stride, tmp_path):
    b, y = _avg(pads, stride=stride)
    graph = build(b, [y])
    changed, out, ctx = assert_pass_preserves(graph, "legalize_avgpool_include_pad")
    assert changed and out.op_counts() == {"Conv": 2} and not ctx.refusals
    conv = out.producer("avg")
    assert conv.attrs["group"] == 4 and conv.attrs["pads"] == pads
    assert "avg" in conv.provenance.sources
    compile_and_verify(b.build([y]), tmp_path)
    assert "pool" not in layer_types(tmp_path)


def test_average_pool_without_padding_is_left_for_the_pool_layer():
    b, y = _avg([0, 0, 0, 0], kernel=2, stride=2)
    changed, out, ctx = assert_pass_preserves(build(b, [y]), "legalize_avgpool_include_pad")
    assert not changed and out.op_counts() == {"Conv": 1, "AveragePool": 1}


def test_ceil_mode_windows_past_the_padding_are_refused():
    b, y = _avg([1, 1, 1, 1], kernel=3, stride=2, ceil_mode=1)  # 8+2 = 10: last window 8..10
    b2, y2 = _avg([1, 1, 1, 1], kernel=2, stride=2, ceil_mode=1)  # 10: windows fit, no overhang
    changed, _, ctx = assert_pass_preserves(build(b, [y]), "legalize_avgpool_include_pad")
    assert not changed and "ceil_mode=1" in refusals(ctx)[0][2]
    changed, _, _ = assert_pass_preserves(build(b2, [y2]), "legalize_avgpool_include_pad")
    assert changed
