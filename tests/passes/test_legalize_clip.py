"""legalize_clip: Clip becomes Relu and batchnorm layers. The rewrite's deviation bound is
1 ulp of max(|lo|, |hi|) (values are compared with atol = that ulp, rtol 0; one-sided
clips add 1 ulp of |x|: rtol = float32 eps); end to end the
written files are re-run by the executor (rtol 1e-4, atol 1e-5)."""
from __future__ import annotations

import numpy as np
import pytest

from irc.ir.graph import Graph, Provenance
from irc.ir.tensors import BATCH, TensorType
from irc.passes.manager import PassManager
from irc.passes.pipeline import DEFAULT_PIPELINE
from tests.passes.conftest import assert_pass_preserves, random_feeds, refusals
from tests.passes.test_legalize_pad import compile_graph_and_verify

SHAPE = (BATCH, 4, 6, 6)


def conv_then(op, consts=(), attrs=None, act=None, shape=SHAPE, scale=4.0):
    """x -> Conv 3x3 (weights scaled so values spread over a few units) [-> act] -> op."""
    g = Graph("legal")
    g.add_input("x", TensorType((BATCH, 3, *shape[2:])))
    rng = np.random.default_rng(7)
    w = g.add_const("w", (rng.standard_normal((shape[1], 3, 3, 3)) * scale / 3).astype(
        np.float32)).name
    conv_attrs = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}
    if act:
        conv_attrs["activation"] = act
    g.add_node("Conv", ["x", w], [("y", TensorType(shape))], conv_attrs, name="conv")
    inputs = ["y"] + [g.add_const(f"c{i}", np.asarray(c, np.float32)).name if c is not None
                      else "" for i, c in enumerate(consts)]
    g.add_node(op, inputs, [("z", TensorType(shape))], attrs or {}, name="op",
               provenance=Provenance(("/src/op",)))
    g.outputs = ["z"]
    return g


def _ulp(*bounds):
    return float(np.spacing(np.float32(max(abs(b) for b in bounds if b is not None))))


CASES = [(0.0, 6.0, None), (0.0, 6.0, "relu"), (-1.5, 2.25, None), (0.5, None, None),
         (-2.0, None, None), (None, 3.0, None), (1.0, 0.5, None)]
IDS = ["relu6", "relu6-after-relu", "lo-hi", "min-only", "min-only-neg", "max-only",
       "lo-above-hi"]


@pytest.mark.parametrize("lo,hi,act", CASES, ids=IDS)
def test_clip_becomes_relu_and_batchnorms(lo, hi, act, tmp_path):
    graph = conv_then("Clip", (lo, hi), act=act)
    # one-sided: the unclipped side rounds x ± bound too, ≤ 1 ulp of max(|x|, |bound|)
    rtol = float(np.finfo(np.float32).eps) if lo is None or hi is None else 0.0
    changed, out, ctx = assert_pass_preserves(graph, "legalize_clip", rtol=rtol,
                                              atol=_ulp(lo, hi))
    assert changed and "Clip" not in out.op_counts() and not ctx.refusals
    z = out.producer("z")
    assert z.provenance.sources == ("/src/op",) and z.provenance.pass_name == "legalize_clip"
    compile_graph_and_verify(graph, tmp_path)


def test_relu6_after_a_conv_costs_two_batchnorm_layers():
    out = PassManager(DEFAULT_PIPELINE).run(conv_then("Clip", (0.0, 6.0)))
    assert out.op_counts() == {"Conv": 1, "BatchNormalization": 2}
    assert out.node("conv").attrs["activation"] == "relu"
    feeds = random_feeds(out)
    assert out.outputs == ["z"] and feeds


def test_clip_with_a_bound_on_non_negative_values_drops_the_relu():
    changed, out, _ = assert_pass_preserves(conv_then("Clip", (-1.0, 6.0), act="relu"),
                                            "legalize_clip", rtol=0, atol=_ulp(6.0))
    assert out.op_counts() == {"Conv": 1, "BatchNormalization": 2}


def test_unbounded_clip_is_removed():
    changed, out, _ = assert_pass_preserves(conv_then("Clip", ()), "legalize_clip", rtol=0,
                                            atol=0)
    assert changed and out.op_counts() == {"Conv": 1} and out.outputs == ["z"]


def test_clip_of_a_rank_3_value_is_refused():
    g = Graph("r3")
    g.add_input("x", TensorType((BATCH, 4, 6)))
    g.add_node("Clip", ["x", "", g.add_const("hi", np.float32(1)).name],
               [("z", TensorType((BATCH, 4, 6)))], name="clip3")
    g.outputs = ["z"]
    changed, _, ctx = assert_pass_preserves(g, "legalize_clip")
    assert not changed and "rank 3" in refusals(ctx)[0][2]


def test_onnx_relu6_prelu_slice_leaky_compile_and_verify(tmp_path):
    """Through the ONNX frontend: ReLU6 (Clip), per-channel PRelu, a channel Slice and
    LeakyRelu 0.2 after a conv with asymmetric pads, compiled, written and re-run."""
    from irc.utils.onnx_builder import OnnxBuilder
    from tests.e2e.conftest import compile_and_verify, viya_layers

    b = OnnxBuilder("m", ("N", 3, 8, 8))
    x = b.conv(b.input, 6, 3, pads=[1, 1, 1, 1], name="/c1/Conv")
    x = b.op("Clip", x, b.const(np.array(0, np.float32)), b.const(np.array(6, np.float32)),
             name="/c1/Relu6")
    x = b.op("PRelu", x, b.const(np.full((6, 1, 1), 0.25, np.float32)), name="/c2/PRelu")
    s = b.op("Slice", x, *(b.const(np.array([v], np.int64)) for v in (1, 5, 1)),
             name="/c3/Slice")
    b.channels[s] = 4
    y = b.op("LeakyRelu", b.conv(s, 4, 3, pads=[1, 0, 0, 1], name="/c4/Conv"), alpha=0.2,
             name="/c4/Leaky")
    compile_and_verify(b.build([y]), tmp_path)
    layers = viya_layers(tmp_path)
    clip = [la for la in layers if la["name"].startswith("c1_relu6")]
    assert [la["type"] for la in clip] == ["batchnorm", "batchnorm"]
