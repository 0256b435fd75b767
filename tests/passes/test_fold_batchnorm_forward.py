"""fold_batchnorm_into_next_dense: a batchnorm on a vector folds into the Gemms reading it."""
from __future__ import annotations

import numpy as np

from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build, refusals

TOL = {"rtol": 1e-4, "atol": 1e-5}


def _gap_bn(n_gemms=1, bias=True, extra=None):
    """conv -> global pool -> flatten -> batchnorm -> Gemm(s) (the pool blocks folding back)."""
    b = OnnxBuilder("gap_bn", (1, 3, 6, 6))
    x = b.op("Relu", b.conv(b.input, 5, 3, pads=[1, 1, 1, 1], name="conv"))
    v = b.op("Flatten", b.op("GlobalAveragePool", x), axis=1, name="flat")
    z = b.batchnorm(v, epsilon=1e-3, name="bn")
    outs = [b.gemm(z, 5, 4 + i, bias=bias, name=f"fc{i}") for i in range(n_gemms)]
    if extra == "relu_reader":
        outs.append(b.op("Relu", z, name="bn_reader"))
    return build(b, outs)


def test_batchnorm_on_a_vector_folds_into_the_next_gemm():
    graph = _gap_bn()
    changed, out, ctx = assert_pass_preserves(graph, "fold_batchnorm_into_next_dense", **TOL)
    assert changed and not ctx.refusals and "BatchNormalization" not in out.op_counts()
    fc = out.producer("fc0")
    assert fc.inputs[0] == "flat" and "bn" in fc.provenance.sources


def test_every_reader_is_folded_and_a_missing_bias_is_created():
    for bias in (True, False):
        changed, out, _ = assert_pass_preserves(_gap_bn(n_gemms=2, bias=bias),
                                                "fold_batchnorm_into_next_dense", **TOL)
        assert changed and out.op_counts()["Gemm"] == 2
        assert all(len(out.producer(f"fc{i}").inputs) == 3 for i in range(2))


def test_scaled_columns_and_shifted_bias_are_exact():
    graph = _gap_bn()
    _, out, _ = assert_pass_preserves(graph, "fold_batchnorm_into_next_dense", **TOL)
    bn = graph.producer("bn")
    g, beta, m, var = (np.asarray(graph.const(i), np.float64) for i in bn.inputs[1:5])
    a = g / np.sqrt(var + 1e-3)
    w = graph.const(graph.producer("fc0").inputs[1])
    new_w = out.const(out.producer("fc0").inputs[1])
    np.testing.assert_allclose(new_w, w * a, rtol=1e-6)


def test_a_batchnorm_with_another_reader_stays():
    graph = _gap_bn(extra="relu_reader")
    changed, out, ctx = assert_pass_preserves(graph, "fold_batchnorm_into_next_dense", **TOL)
    assert not changed and "BatchNormalization" in out.op_counts()
    [(_, node, reason)] = refusals(ctx)
    assert node == "bn" and "bn_reader" in reason
