"""fold_batchnorm: a BatchNormalization folds into the Conv or canonical Gemm before it."""
from __future__ import annotations

import numpy as np

from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build, refusals

TOL = {"rtol": 1e-4, "atol": 1e-5}


def _conv_bn(bias=True, epsilon=1e-3, **conv_attrs):
    b = OnnxBuilder("conv_bn", (1, 3, 6, 7))
    x = b.conv(b.input, 5, 3, pads=[1, 1, 1, 1], bias=bias, name="conv", **conv_attrs)
    return b, b.batchnorm(x, epsilon=epsilon, name="bn")


def test_batchnorm_folds_into_conv():
    b, y = _conv_bn()
    graph = build(b, [y])
    changed, out, ctx = assert_pass_preserves(graph, "fold_batchnorm", **TOL)
    assert changed and not ctx.refusals
    assert out.op_counts() == {"Conv": 1}
    conv = out.producer("bn")  # the batchnorm's output name survives
    assert set(conv.provenance.sources) == {"conv", "bn"}
    assert conv.provenance.pass_name == "fold_batchnorm"
    assert out.value(conv.inputs[1]).type.dtype == "float32"
    assert out.value(conv.inputs[2]).type == TensorType((5,))


def test_conv_without_bias_gets_one():
    b, y = _conv_bn(bias=False)
    changed, out, _ = assert_pass_preserves(build(b, [y]), "fold_batchnorm", **TOL)
    assert changed and len(out.producer("bn").inputs) == 3


def test_grouped_conv():
    b = OnnxBuilder("dw", (1, 4, 5, 5))
    x = b.conv(b.input, 8, 3, group=4, name="conv")
    changed, out, _ = assert_pass_preserves(build(b, [b.batchnorm(x)]), "fold_batchnorm", **TOL)
    assert changed and out.op_counts() == {"Conv": 1}


def test_batchnorm_folds_into_canonical_gemm():
    b = OnnxBuilder("fc_bn", (1, 6))
    x = b.gemm(b.input, 6, 4, trans_b=1, bias=False, name="fc")
    graph = build(b, [b.batchnorm(x, name="bn")])
    changed, out, _ = assert_pass_preserves(graph, "fold_batchnorm", **TOL)
    assert changed and out.op_counts() == {"Gemm": 1}
    assert out.value(out.producer("bn").inputs[2]).type.shape == (4,)


def test_non_canonical_gemm_is_refused():
    b = OnnxBuilder("fc_bn", (1, 6))
    x = b.gemm(b.input, 6, 4, trans_b=0, name="fc")
    changed, _, ctx = assert_pass_preserves(build(b, [b.batchnorm(x, name="bn")]),
                                            "fold_batchnorm")
    assert not changed and "not a canonical Gemm" in refusals(ctx)[0][2]


def _ir_conv_bn(conv_act="identity", bn_act="identity"):
    g = Graph("ir")
    g.add_input("x", TensorType((BATCH, 2, 4, 4)))
    rng = np.random.default_rng(0)
    w = g.add_const("w", rng.standard_normal((3, 2, 1, 1)).astype(np.float32)).name
    g.add_node("Conv", ["x", w], [("c", TensorType((BATCH, 3, 4, 4)))],
               {"kernel_shape": [1, 1], "activation": conv_act}, name="conv")
    stats = [g.add_const(n, v.astype(np.float32)).name for n, v in
             [("g", rng.random(3) + 0.5), ("b", rng.standard_normal(3)),
              ("m", rng.standard_normal(3)), ("v", rng.random(3) + 0.5)]]
    g.add_node("BatchNormalization", ["c", *stats], [("y", TensorType((BATCH, 3, 4, 4)))],
               {"epsilon": 1e-5, "activation": bn_act}, name="bn")
    g.outputs = ["y"]
    return g


def test_batchnorm_activation_moves_to_the_conv():
    changed, out, _ = assert_pass_preserves(_ir_conv_bn(bn_act="relu"), "fold_batchnorm", **TOL)
    assert changed and out.op_counts() == {"Conv": 1}
    assert out.producer("y").attrs["activation"] == "relu"


def test_conv_with_its_own_activation_is_refused():
    changed, out, ctx = assert_pass_preserves(_ir_conv_bn(conv_act="relu"), "fold_batchnorm")
    assert not changed and out.op_counts() == {"Conv": 1, "BatchNormalization": 1}
    [(pass_name, node, reason)] = refusals(ctx)
    assert (pass_name, node) == ("fold_batchnorm", "bn") and "applies relu" in reason


def test_conv_output_read_twice_is_refused():
    b, y = _conv_bn()
    graph = build(b, [y, b.op("Relu", "conv", name="r")])
    changed, _, ctx = assert_pass_preserves(graph, "fold_batchnorm")
    assert not changed and "other readers" in refusals(ctx)[0][2]


def test_shared_weight_is_refused():
    b = OnnxBuilder("shared", (1, 3, 5, 5))
    w = b.weight((3, 3, 1, 1))
    c1 = b.op("Conv", b.input, w, name="conv_a", kernel_shape=[1, 1])
    c2 = b.op("Conv", b.input, w, name="conv_b", kernel_shape=[1, 1])
    b.channels[c1] = b.channels[c2] = 3
    graph = build(b, [b.batchnorm(c1, name="bn"), c2])
    changed, _, ctx = assert_pass_preserves(graph, "fold_batchnorm")
    assert not changed and "shared with other ops" in refusals(ctx)[0][2]


def test_batchnorm_after_a_pool_stays():
    b = OnnxBuilder("pool_bn", (1, 3, 6, 6))
    p = b.op("MaxPool", b.input, kernel_shape=[2, 2], strides=[2, 2], name="pool")
    changed, out, ctx = assert_pass_preserves(build(b, [b.batchnorm(p, name="bn")]),
                                              "fold_batchnorm")
    assert not changed and out.op_counts() == {"MaxPool": 1, "BatchNormalization": 1}
    assert "not a Conv or Gemm" in refusals(ctx)[0][2]


def test_weights_are_new_constants():
    b, y = _conv_bn()
    graph = build(b, [y])
    before = {v.name: v.const.numpy().copy() for v in graph.values() if v.is_const}
    _, out, _ = assert_pass_preserves(graph, "fold_batchnorm", **TOL)
    for name, data in before.items():
        np.testing.assert_array_equal(graph.const(name), data)
    assert out.producer("bn").inputs[1] not in before
