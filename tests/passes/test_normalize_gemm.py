"""normalize_gemm: every Gemm becomes W (out, in), transB=1, alpha = beta = 1, C (out,)."""
from __future__ import annotations

import numpy as np

from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build, refusals


def _gemm_model(trans_b=0, bias_shape=(6,), **attrs):
    b = OnnxBuilder("gemm", (1, 4))
    shape = (6, 4) if trans_b else (4, 6)
    inputs = [b.input, b.weight(shape)]
    if bias_shape is not None:
        inputs.append(b.weight(bias_shape, scale=0.5))
    return build(b, [b.op("Gemm", *inputs, name="y", transB=trans_b, **attrs)])


def _check_canonical(graph, name="y"):
    gemm = graph.producer(name)
    assert gemm.attrs == {"transB": 1}
    w = graph.value(gemm.inputs[1]).type.shape
    assert w == (6, 4)
    if len(gemm.inputs) > 2:
        assert graph.value(gemm.inputs[2]).type.shape == (6,)


def test_trans_b_zero_with_alpha_beta_and_row_bias():
    graph = _gemm_model(trans_b=0, bias_shape=(1, 6), alpha=0.5, beta=2.0)
    changed, out, ctx = assert_pass_preserves(graph, "normalize_gemm")
    assert changed and not ctx.refusals
    _check_canonical(out)
    # the imported weight is a read-only view on the protobuf bytes: it must be untouched
    w_old = graph.const(graph.producer("y").inputs[1])
    assert not w_old.flags.writeable
    np.testing.assert_allclose(out.const(out.producer("y").inputs[1]), 0.5 * w_old.T)


def test_alpha_only_and_no_bias():
    graph = _gemm_model(trans_b=1, bias_shape=None, alpha=3.0)
    changed, out, _ = assert_pass_preserves(graph, "normalize_gemm")
    assert changed
    _check_canonical(out)
    assert len(out.producer("y").inputs) == 2


def test_scalar_and_one_by_one_bias_broadcast():
    for shape in [(), (1,), (1, 1)]:
        changed, out, _ = assert_pass_preserves(_gemm_model(1, shape), "normalize_gemm")
        assert changed, shape
        _check_canonical(out)


def test_beta_zero_drops_the_bias():
    changed, out, _ = assert_pass_preserves(_gemm_model(1, (6,), beta=0.0), "normalize_gemm")
    assert changed and len(out.producer("y").inputs) == 2
    _check_canonical(out)


def test_canonical_gemm_is_not_rewritten():
    graph = _gemm_model(trans_b=1, bias_shape=(6,))
    changed, out, ctx = assert_pass_preserves(graph, "normalize_gemm")
    assert not changed and not ctx.refusals
    gemm, old = out.producer("y"), graph.producer("y")
    assert gemm.inputs == old.inputs and gemm.attrs == old.attrs
    # normalising twice changes nothing the second time
    changed, again, _ = assert_pass_preserves(_gemm_model(0, (1, 6), alpha=2.0), "normalize_gemm")
    assert changed
    assert not assert_pass_preserves(again, "normalize_gemm")[0]


def _ir_gemm(x_shape, c_shape, **attrs):
    g = Graph("ir")
    g.add_input("x", TensorType(x_shape))
    rng = np.random.default_rng(0)
    w = g.add_const("w", rng.standard_normal((4, 6)).astype(np.float32)).name
    c = g.add_const("c", rng.standard_normal(c_shape).astype(np.float32)).name
    g.add_node("Gemm", ["x", w, c], [("y", TensorType((BATCH, 6)))], attrs, name="gemm")
    g.outputs = ["y"]
    return g


def test_bias_varying_per_row_is_refused():
    graph = _ir_gemm((BATCH, 4), (3, 6))
    changed, out, ctx = assert_pass_preserves(graph, "normalize_gemm", batch=3)
    assert not changed
    [(_, node, reason)] = refusals(ctx)
    assert node == "gemm" and "varies per row" in reason


def test_trans_a_is_refused():
    graph = _ir_gemm((4, BATCH), (6,), transA=1)
    changed, _, ctx = assert_pass_preserves(graph, "normalize_gemm", batch=5)
    assert not changed
    assert "transA=1" in refusals(ctx)[0][2]
