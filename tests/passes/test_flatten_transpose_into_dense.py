"""flatten_transpose_into_dense: an NHWC transpose before a flatten moves into fc weights."""
from __future__ import annotations

import numpy as np

from irc.ir.tensors import BATCH
from irc.passes.catalog import get_pass
from irc.passes.registry import PassContext
from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_close, assert_pass_preserves, build, random_feeds, refusals

C, H, W = 3, 4, 5  # H != W and C > 1, so a wrong permutation cannot pass by symmetry


def _model(n_gemms=1, trans_b=1, extra_reader=None):
    b = OnnxBuilder("nhwc", (1, C, H, W))
    x = b.conv(b.input, C, 3, pads=[1, 1, 1, 1], name="conv")
    t = b.op("Transpose", x, perm=[0, 2, 3, 1], name="t")
    f = b.op("Flatten", t, axis=1, name="f")
    outs = [b.gemm(f, C * H * W, 7 + i, trans_b=trans_b, name=f"fc{i}") for i in range(n_gemms)]
    if extra_reader == "transpose":
        outs.append(b.op("Relu", t, name="t_reader"))
    elif extra_reader == "flatten":
        outs.append(b.op("Relu", f, name="f_reader"))
    return build(b, outs)


def test_transpose_moves_into_the_gemm_weight():
    graph = _model()
    changed, out, ctx = assert_pass_preserves(graph, "flatten_transpose_into_dense")
    assert changed and not ctx.refusals
    assert out.op_counts() == {"Conv": 1, "Flatten": 1, "Gemm": 1}
    assert out.producer("f").inputs == ("conv",)
    assert out.value("f").type.shape == (BATCH, C * H * W)
    # column c·H·W + h·W + w of the new weight is column h·W·C + w·C + c of the old one
    old = graph.const(graph.producer("fc0").inputs[1])
    new = out.const(out.producer("fc0").inputs[1])
    for c, h, w in [(0, 0, 1), (2, 3, 4), (1, 2, 0)]:
        np.testing.assert_array_equal(new[:, c * H * W + h * W + w], old[:, h * W * C + w * C + c])
    assert out.producer("fc0").provenance.pass_name == "flatten_transpose_into_dense"


def test_every_gemm_reading_the_flatten_is_permuted():
    graph = _model(n_gemms=2)
    changed, out, _ = assert_pass_preserves(graph, "flatten_transpose_into_dense")
    assert changed and out.op_counts() == {"Conv": 1, "Flatten": 1, "Gemm": 2}


def test_reshape_and_matmul_form_after_the_earlier_passes():
    b = OnnxBuilder("tf2onnx_like", (1, C, H, W))
    t = b.op("Transpose", b.input, perm=[0, 2, 3, 1])
    r = b.op("Reshape", t, b.const(np.array([-1, C * H * W], np.int64)))
    y = b.op("Add", b.op("MatMul", r, b.weight((C * H * W, 6))), b.weight((6,)), name="y")
    graph = build(b, [y])
    work = graph.copy()
    ctx = PassContext()
    for name in ("reshape_to_flatten", "matmul_to_gemm", "normalize_gemm",
                 "flatten_transpose_into_dense"):
        ctx.current_pass = name
        assert get_pass(name).run(work, ctx), name
        work.validate()
    assert work.op_counts() == {"Flatten": 1, "Gemm": 1} and not ctx.refusals
    assert_close(graph, work, random_feeds(graph))


def test_non_canonical_gemm_is_refused():
    graph = _model(trans_b=0)
    changed, out, ctx = assert_pass_preserves(graph, "flatten_transpose_into_dense")
    assert not changed and out.op_counts()["Transpose"] == 1
    [(_, node, reason)] = refusals(ctx)
    assert node == "t" and "fc0" in reason and "not canonical Gemms" in reason


def test_other_reader_of_the_flatten_is_refused():
    graph = _model(extra_reader="flatten")
    changed, out, ctx = assert_pass_preserves(graph, "flatten_transpose_into_dense")
    assert not changed and out.op_counts()["Transpose"] == 1
    assert "f_reader" in refusals(ctx)[0][2]


def test_other_reader_of_the_transpose_is_refused():
    graph = _model(extra_reader="transpose")
    changed, out, ctx = assert_pass_preserves(graph, "flatten_transpose_into_dense")
    assert not changed and out.op_counts()["Transpose"] == 1
    assert "exactly one Flatten" in refusals(ctx)[0][2]


def test_other_permutations_are_not_matched():
    b = OnnxBuilder("nchw_in", (1, H, W, C))
    x = b.op("Transpose", b.input, perm=[0, 3, 1, 2])
    f = b.op("Flatten", x, axis=1)
    graph = build(b, [b.gemm(f, C * H * W, 4)])
    changed, _, ctx = assert_pass_preserves(graph, "flatten_transpose_into_dense")
    assert not changed and not ctx.refusals


def test_a_flatten_inside_a_concat_permutes_only_its_segment():
    """Transpose -> Flatten -> Concat(vector, flatten) -> Gemm: the flatten's columns sit after
    the vector's 6 and only they move; the numbers are unchanged."""
    b = OnnxBuilder("nhwc_cat", (1, C, H, W))
    x = b.conv(b.input, C, 3, pads=[1, 1, 1, 1], name="conv")
    v = b.gemm(b.op("Flatten", b.input, axis=1, name="fv"), C * H * W, 6, name="vec")
    f = b.op("Flatten", b.op("Transpose", x, perm=[0, 2, 3, 1], name="t"), axis=1, name="f")
    cat = b.op("Concat", v, f, axis=1, name="cat")
    graph = build(b, [b.gemm(cat, 6 + C * H * W, 5, name="fc")])
    changed, out, ctx = assert_pass_preserves(graph, "flatten_transpose_into_dense")
    assert changed and not ctx.refusals and "Transpose" not in out.op_counts()
    old = graph.const(graph.producer("fc").inputs[1])
    new = out.const(out.producer("fc").inputs[1])
    np.testing.assert_array_equal(new[:, :6], old[:, :6])
    for c, h, w in [(0, 0, 1), (2, 3, 4), (1, 2, 0)]:
        np.testing.assert_array_equal(new[:, 6 + c * H * W + h * W + w],
                                      old[:, 6 + h * W * C + w * C + c])


def test_a_concat_read_by_something_else_is_refused():
    b = OnnxBuilder("nhwc_cat_relu", (1, C, H, W))
    x = b.conv(b.input, C, 3, pads=[1, 1, 1, 1], name="conv")
    f = b.op("Flatten", b.op("Transpose", x, perm=[0, 2, 3, 1], name="t"), axis=1, name="f")
    cat = b.op("Concat", f, f, axis=1, name="cat")
    graph = build(b, [b.op("Relu", cat, name="after_cat")])
    changed, out, ctx = assert_pass_preserves(graph, "flatten_transpose_into_dense")
    assert not changed and "after_cat" in refusals(ctx)[0][2]
