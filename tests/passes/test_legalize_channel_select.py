"""legalize_channel_select: channel Slice/Gather, H/W crops and channel shuffles become 0/1
convolutions (exact: compared with rtol = atol = 0 in onnxruntime; end to end the executor
re-runs the written files, rtol 1e-4, atol 1e-5)."""
from __future__ import annotations

import numpy as np
import pytest

from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from irc.utils.onnx_builder import OnnxBuilder
from tests.e2e.conftest import compile_and_verify, layer_types
from tests.passes.conftest import assert_pass_preserves, build, refusals
from tests.passes.test_legalize_pad import compile_graph_and_verify

I64 = np.int64


def _slice_graph(starts, ends, axes, steps=None, out_shape=None, rank=4):
    g = Graph("slice")
    shape = (BATCH, 8, 7, 6) if rank == 4 else (BATCH, 10)
    g.add_input("x", TensorType(shape))
    inputs = ["x"] + [g.add_const(n, np.array(v, I64)).name
                      for n, v in (("starts", starts), ("ends", ends), ("axes", axes))]
    if steps is not None:
        inputs.append(g.add_const("steps", np.array(steps, I64)).name)
    g.add_node("Slice", inputs, [("y", TensorType(out_shape))], name="slice")
    g.outputs = ["y"]
    return g


@pytest.mark.parametrize("starts,ends,axes,steps,out", [
    ([2], [6], [1], None, (BATCH, 4, 7, 6)),  # split / channel slice
    ([7], [-100], [1], [-2], (BATCH, 4, 7, 6)),  # channels backwards
    ([1, 2], [6, -1], [2, 3], None, (BATCH, 8, 5, 3)),  # Cropping2D
    ([0, 1], [5, 6], [1, 2], [1, 2], (BATCH, 5, 3, 6)),  # channels + strided rows
], ids=["channels", "reversed", "crop", "mixed"])
def test_slice_becomes_a_selection_conv(starts, ends, axes, steps, out, tmp_path):
    graph = _slice_graph(starts, ends, axes, steps, out)
    changed, opt, ctx = assert_pass_preserves(graph, "legalize_channel_select", rtol=0, atol=0)
    assert changed and opt.op_counts() == {"Conv": 1} and not ctx.refusals
    assert opt.outputs == ["y"]
    compile_graph_and_verify(graph, tmp_path)


def test_slice_of_a_vector_becomes_a_gemm(tmp_path):
    graph = _slice_graph([3], [9], [1], None, (BATCH, 6), rank=2)
    changed, opt, _ = assert_pass_preserves(graph, "legalize_channel_select", rtol=0, atol=0)
    assert changed and opt.op_counts() == {"Gemm": 1}


def test_gather_of_channels(tmp_path):
    g = Graph("gather")
    g.add_input("x", TensorType((BATCH, 5, 4, 4)))
    idx = g.add_const("idx", np.array([4, 0, -1, 2], I64)).name
    g.add_node("Gather", ["x", idx], [("y", TensorType((BATCH, 4, 4, 4)))], {"axis": 1},
               name="gather")
    g.outputs = ["y"]
    changed, opt, _ = assert_pass_preserves(g, "legalize_channel_select", rtol=0, atol=0)
    assert changed and opt.op_counts() == {"Conv": 1}
    compile_graph_and_verify(g, tmp_path)


def test_flipped_rows_are_refused():
    graph = _slice_graph([6], [-100], [2], [-1], (BATCH, 8, 7, 6))
    changed, _, ctx = assert_pass_preserves(graph, "legalize_channel_select")
    assert not changed and "not evenly forward" in refusals(ctx)[0][2]


def _shuffle_model(groups=2, channels=8):
    b = OnnxBuilder("shuffle", (1, 3, 5, 5))
    x = b.conv(b.input, channels, 3, pads=[1, 1, 1, 1])
    r = b.op("Reshape", x, b.const(np.array([-1, groups, channels // groups, 5, 5], I64)),
             name="split")
    t = b.op("Transpose", r, perm=[0, 2, 1, 3, 4], name="shuffle")
    y = b.op("Reshape", t, b.const(np.array([-1, channels, 5, 5], I64)), name="merge")
    b.channels[y] = channels
    return b, b.conv(y, 4, 1, name="after")


def test_channel_shuffle_becomes_a_permutation_conv(tmp_path):
    b, y = _shuffle_model()
    graph = build(b, [y])
    changed, opt, ctx = assert_pass_preserves(graph, "legalize_channel_select", rtol=0, atol=0)
    assert changed and opt.op_counts() == {"Conv": 3} and not ctx.refusals
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path).count("convo") == 3
