"""The whole DEFAULT_PIPELINE on small CNNs: same numbers, and the expected ops left."""
from __future__ import annotations

import numpy as np
import pytest

from irc.passes.catalog import load_all
from irc.passes.manager import PassManager
from irc.passes.pipeline import DEFAULT_PIPELINE
from irc.utils.onnx_builder import OnnxBuilder
from tests.passes.conftest import assert_close, build, random_feeds

TOL = {"rtol": 1e-4, "atol": 1e-5}


def _run_pipeline(graph):
    """The pipeline on a copy; numbers compared at batch 2. Returns (optimised graph, manager)."""
    manager = PassManager(DEFAULT_PIPELINE)
    out = manager.run(graph.copy())
    assert_close(graph, out, random_feeds(graph, batch=2), **TOL)
    # nothing is left unread
    assert all(out.use_count(v.name) for v in out.values() if v.name not in out.inputs)
    return out, manager


def _check_canonical_dense(graph):
    for node in graph.nodes():
        if node.op_type == "Gemm":
            assert node.attrs["transB"] == 1 and "alpha" not in node.attrs
            assert "beta" not in node.attrs


def test_every_pipeline_pass_is_registered():
    assert set(DEFAULT_PIPELINE) <= set(load_all())


def test_plain_cnn():
    b = OnnxBuilder("cnn", (1, 3, 12, 10))
    x = b.op("Relu", b.batchnorm(b.conv(b.input, 6, 3, pads=[1, 1, 1, 1])))
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Relu", b.batchnorm(b.conv(x, 8, 3, pads=[1, 1, 1, 1], bias=False)))
    x = b.op("Dropout", b.op("Flatten", x, axis=1))
    x = b.op("Relu", b.gemm(x, 8 * 6 * 5, 16, trans_b=0, alpha=0.5, beta=2.0))
    y = b.op("Softmax", b.gemm(x, 16, 5), axis=1, name="prob")
    graph = build(b, [y])
    out, manager = _run_pipeline(graph)
    assert out.op_counts() == {"Conv": 2, "MaxPool": 1, "Flatten": 1, "Gemm": 2, "Softmax": 1}
    assert out.outputs == ["prob"]
    acts = [n.attrs.get("activation", "identity") for n in out.nodes()
            if n.op_type in ("Conv", "Gemm")]
    assert acts.count("relu") == 3 and acts.count("identity") == 1
    _check_canonical_dense(out)
    assert "fold_batchnorm" in manager.changed and "normalize_gemm" in manager.changed
    assert not manager.ctx.refusals


def test_batchnorm_that_cannot_fold_stays_and_says_why():
    b = OnnxBuilder("preact", (1, 3, 8, 8))
    x = b.op("MaxPool", b.conv(b.input, 4, 3), kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Relu", b.batchnorm(x, name="bn_after_pool"))
    graph = build(b, [b.conv(x, 2, 1, name="y")])
    out, manager = _run_pipeline(graph)
    assert out.op_counts() == {"Conv": 2, "MaxPool": 1, "BatchNormalization": 1}
    [bn] = [n for n in out.nodes() if n.op_type == "BatchNormalization"]
    assert bn.attrs["activation"] == "relu"
    [(pass_name, node, reason)] = manager.ctx.refusals
    assert (pass_name, node) == ("fold_batchnorm", "bn_after_pool")
    assert "not a Conv or Gemm" in reason


def test_residual_block():
    b = OnnxBuilder("resnet_block", (1, 4, 8, 8))
    stem = b.op("Relu", b.batchnorm(b.conv(b.input, 8, 3, pads=[1, 1, 1, 1])))
    x = b.op("Relu", b.batchnorm(b.conv(stem, 8, 3, pads=[1, 1, 1, 1], bias=False)))
    x = b.batchnorm(b.conv(x, 8, 3, pads=[1, 1, 1, 1], bias=False))
    x = b.op("Relu", b.op("Add", x, stem))
    x = b.op("Flatten", b.op("GlobalAveragePool", x))
    graph = build(b, [b.op("Softmax", b.gemm(x, 8, 4), axis=-1, name="prob")])
    out, manager = _run_pipeline(graph)
    assert not manager.ctx.refusals
    assert out.op_counts() == {"Conv": 3, "Sum": 1, "GlobalAveragePool": 1, "Flatten": 1,
                               "Gemm": 1, "Softmax": 1}
    [add] = [n for n in out.nodes() if n.op_type == "Sum"]
    assert add.attrs["activation"] == "relu"


def test_concat_of_three_branches():
    b = OnnxBuilder("inception", (1, 4, 9, 7))
    stem = b.op("Relu", b.conv(b.input, 6, 3, pads=[1, 1, 1, 1]))
    b1 = b.op("Relu", b.conv(stem, 4, 1))
    pad = b.op("Pad", stem, b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)))
    b2 = b.op("Relu", b.batchnorm(b.conv(pad, 5, 3, in_channels=6, name="conv_pad")))
    pool = b.op("MaxPool", stem, kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    b3 = b.op("Relu", b.conv(pool, 3, 1, in_channels=6))
    cat = b.op("Relu", b.op("Concat", b1, b2, b3, axis=1))
    x = b.op("Flatten", b.op("GlobalAveragePool", cat))
    graph = build(b, [b.gemm(x, 12, 3, name="logits")])
    out, manager = _run_pipeline(graph)
    assert not manager.ctx.refusals
    assert out.op_counts() == {"Conv": 4, "MaxPool": 1, "Concat": 1, "GlobalAveragePool": 1,
                               "Flatten": 1, "Gemm": 1}
    [cat_node] = [n for n in out.nodes() if n.op_type == "Concat"]
    assert cat_node.attrs["activation"] == "relu"
    [conv_pad] = [n for n in out.nodes() if "conv_pad" in n.provenance.sources]
    assert conv_pad.attrs["pads"] == [1, 1, 1, 1] and conv_pad.attrs["activation"] == "relu"


def _nhwc_model():
    h, w, c = 8, 6, 3
    b = OnnxBuilder("tf2onnx_like", (1, h, w, c), input_name="image")
    x = b.op("Transpose", b.input, perm=[0, 3, 1, 2])
    x = b.conv(x, 5, 3, pads=[1, 1, 1, 1], in_channels=c)
    x = b.op("Mul", x, b.weight((5, 1, 1), scale=1.0))  # Keras 3 batch norm: Mul + Add
    x = b.op("Relu", b.op("Add", x, b.weight((5, 1, 1))))
    x = b.op("Pad", x, b.const(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64)))  # 'same' pool
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Transpose", x, perm=[0, 2, 3, 1])
    x = b.op("Reshape", x, b.const(np.array([-1, 4 * 3 * 5], np.int64)))
    x = b.op("Relu", b.op("Add", b.op("MatMul", x, b.weight((60, 10))), b.weight((10,))))
    x = b.op("Add", b.op("MatMul", x, b.weight((10, 4))), b.weight((4,)))
    return build(b, [b.op("Softmax", x, axis=-1, name="prob")])


def test_tf2onnx_like_nhwc_graph():
    graph = _nhwc_model()
    out, manager = _run_pipeline(graph)
    assert out.op_counts() == {"Transpose": 1, "Conv": 1, "MaxPool": 1, "Flatten": 1,
                               "Gemm": 2, "Softmax": 1}
    # the input transpose stays (lowering's business); the one before the flatten is gone
    [t] = [n for n in out.nodes() if n.op_type == "Transpose"]
    assert t.inputs == ("image",)
    [pool] = [n for n in out.nodes() if n.op_type == "MaxPool"]
    assert pool.attrs["pads"] == [0, 0, 1, 1]
    _check_canonical_dense(out)
    for name in ("fold_mul_add", "fold_batchnorm", "fold_pad", "flatten_transpose_into_dense",
                 "matmul_to_gemm", "reshape_to_flatten"):
        assert name in manager.changed, name
    assert not manager.ctx.refusals


@pytest.mark.parametrize("batch", [1, 3])
def test_pipeline_output_runs_at_any_batch(batch):
    graph = _nhwc_model()
    out = PassManager(DEFAULT_PIPELINE).run(graph.copy())
    assert_close(graph, out, random_feeds(graph, batch=batch, seed=batch), **TOL)


def test_a_pass_that_breaks_the_graph_is_caught_even_when_it_says_nothing_changed(monkeypatch):
    """The manager skips validation only after a pass that reported no change AND made no
    structural change through the Graph API: a silent, breaking change is still caught."""
    from irc.errors import GraphInvalid
    from irc.passes.registry import PASSES, Pass

    class SilentBreaker(Pass):
        name = "test_silent_breaker"

        def run(self, graph, ctx):
            node = next(n for n in graph.nodes() if n.op_type == "Relu")
            graph.set_input(node, 0, "")  # a Relu without input, and "nothing changed"
            return False

    monkeypatch.setitem(PASSES, SilentBreaker.name, SilentBreaker)
    b = OnnxBuilder("m", (1, 3, 4, 4))
    graph = build(b, [b.op("Relu", b.conv(b.input, 2, 1))])
    with pytest.raises(GraphInvalid, match="test_silent_breaker"):
        PassManager([SilentBreaker.name]).run(graph)


def test_a_pass_before_one_it_requires_is_refused_by_name():
    with pytest.raises(ValueError, match="'legalize_pad' requires pass 'fold_pad'.*runs after"):
        PassManager(["legalize_pad", "fold_pad"])
    with pytest.raises(ValueError, match="'fold_pad' is not in the pipeline"):
        PassManager(["legalize_pad"])


def test_scaled_branch_of_a_sum_folds_into_its_conv():
    """InceptionResNetV2's CustomScaleLayer x + s·up: the Mul by a scalar folds into the conv
    computing ``up`` (fold_mul_add, then fold_batchnorm), leaving convs and one residual."""
    b = OnnxBuilder("scaled_sum", (1, 4, 6, 6))
    x = b.op("Relu", b.conv(b.input, 8, 3, pads=[1, 1, 1, 1]))
    up = b.conv(b.op("Relu", b.conv(x, 8, 1)), 8, 1, name="up")
    scaled = b.op("Mul", up, b.const(np.array(0.17, np.float32)), name="scale")
    y = b.op("Relu", b.op("Add", x, scaled, name="sum"))
    out, manager = _run_pipeline(build(b, [y]))
    assert out.op_counts() == {"Conv": 3, "Sum": 1}
    [add] = [n for n in out.nodes() if n.op_type == "Sum"]
    producers = [out.producer(v) for v in add.inputs]
    assert any("scale" in p.provenance.sources and p.op_type == "Conv" for p in producers)
