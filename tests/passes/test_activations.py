"""fuse_activation, move_activation_before_maxpool, insert_activation_carrier."""
from __future__ import annotations

from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_pass_preserves, build, refusals


def _conv(b, x=None, name="conv"):
    return b.conv(x or b.input, 4, 3, pads=[1, 1, 1, 1], name=name)


# ---- fuse_activation ------------------------------------------------------------------------

def test_relu_fuses_into_conv_and_keeps_its_name():
    b = OnnxBuilder("fuse", (1, 3, 6, 6))
    graph = build(b, [b.op("Relu", _conv(b), name="act")])
    changed, out, ctx = assert_pass_preserves(graph, "fuse_activation")
    assert changed and not ctx.refusals
    assert out.op_counts() == {"Conv": 1}
    conv = out.producer("act")
    assert conv.attrs["activation"] == "relu" and set(conv.provenance.sources) == {"conv", "act"}


def test_each_activation_fuses_with_its_alpha():
    for op, attrs, act in [("Sigmoid", {}, "sigmoid"), ("Tanh", {}, "tanh"),
                           ("LeakyRelu", {"alpha": 0.1}, "leaky"), ("Elu", {"alpha": 1.0}, "elu"),
                           ("Softplus", {}, "softplus")]:
        b = OnnxBuilder("fuse", (1, 5))
        graph = build(b, [b.op(op, b.gemm(b.input, 5, 3), name="act", **attrs)])
        changed, out, _ = assert_pass_preserves(graph, "fuse_activation")
        assert changed and out.op_counts() == {"Gemm": 1}, op
        assert out.producer("act").attrs["activation"] == act


def test_activation_on_concat_and_sum():
    b = OnnxBuilder("carriers", (1, 3, 4, 4))
    s = b.op("Add", _conv(b, name="c_a"), _conv(b, name="c_b"))  # Add of tensors -> Sum
    cat = b.op("Concat", s, b.input, axis=1)
    graph = build(b, [b.op("Sigmoid", b.op("Relu", cat, name="r1"), name="r2")])
    changed, out, ctx = assert_pass_preserves(graph, "fuse_activation")
    assert changed and out.op_counts() == {"Conv": 2, "Sum": 1, "Concat": 1, "Sigmoid": 1}
    [(_, node, reason)] = refusals(ctx)  # the second activation cannot stack on the first
    assert node == "r2" and "already applies relu" in reason


def test_producer_with_other_readers_is_refused():
    b = OnnxBuilder("shared", (1, 3, 6, 6))
    c = _conv(b)
    graph = build(b, [b.op("Relu", c, name="act"), c])
    changed, out, ctx = assert_pass_preserves(graph, "fuse_activation")
    assert not changed and out.op_counts() == {"Conv": 1, "Relu": 1}
    assert "other readers" in refusals(ctx)[0][2]


# ---- move_activation_before_maxpool ---------------------------------------------------------

def _pool_act(op="MaxPool", act="Relu", extra_reader=False):
    b = OnnxBuilder("pool_act", (1, 3, 6, 6))
    c = _conv(b)
    p = b.op(op, c, kernel_shape=[2, 2], strides=[2, 2], name="pool")
    outs = [b.op(act, p, name="act")]
    if extra_reader:
        outs.append(c)
    return build(b, outs)


def test_activation_moves_before_max_pool():
    for act in ("Relu", "Sigmoid", "Tanh"):
        changed, out, _ = assert_pass_preserves(_pool_act(act=act),
                                                "move_activation_before_maxpool")
        assert changed and out.op_counts() == {"Conv": 1, "MaxPool": 1}, act
        assert out.producer("act").op_type == "MaxPool"  # the pool takes the output name
        assert out.producer("conv").attrs["activation"] == act.lower()


def test_average_pool_is_not_matched():
    changed, _, ctx = assert_pass_preserves(_pool_act(op="AveragePool"),
                                            "move_activation_before_maxpool")
    assert not changed and not ctx.refusals


def test_producer_with_other_readers_keeps_the_activation():
    changed, out, ctx = assert_pass_preserves(_pool_act(extra_reader=True),
                                              "move_activation_before_maxpool")
    assert not changed and out.op_counts()["Relu"] == 1
    assert "cannot take the activation" in refusals(ctx)[0][2]


# ---- insert_activation_carrier --------------------------------------------------------------

def test_lone_activation_gets_an_identity_batchnorm_carrier():
    b = OnnxBuilder("carrier", (1, 3, 6, 6))
    p = b.op("AveragePool", _conv(b), kernel_shape=[2, 2], strides=[2, 2])
    graph = build(b, [b.op("Sigmoid", p, name="act")])
    changed, out, ctx = assert_pass_preserves(graph, "insert_activation_carrier")
    assert changed and not ctx.refusals
    assert out.op_counts() == {"Conv": 1, "AveragePool": 1, "BatchNormalization": 1}
    bn = out.producer("act")
    assert bn.attrs["activation"] == "sigmoid" and bn.attrs["epsilon"] == 0.0


def test_carrier_on_a_two_d_value():
    b = OnnxBuilder("carrier2d", (1, 5))
    graph = build(b, [b.op("Tanh", b.input, name="act")])
    changed, out, _ = assert_pass_preserves(graph, "insert_activation_carrier")
    assert changed and out.op_counts() == {"BatchNormalization": 1}


def test_rank_three_activation_is_refused():
    b = OnnxBuilder("rank3", (1, 4, 5))
    graph = build(b, [b.op("Relu", b.input, name="act")])
    changed, out, ctx = assert_pass_preserves(graph, "insert_activation_carrier")
    assert not changed and out.op_counts() == {"Relu": 1}
    assert "rank 3" in refusals(ctx)[0][2]
