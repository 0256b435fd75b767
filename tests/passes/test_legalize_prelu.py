"""legalize_prelu: PRelu, LeakyRelu (slope != 0.1) and Neg become Relu/batchnorm/residual
layers. Deviation: one rounding of a·relu(−x) (rtol = float32 eps, atol 0 in onnxruntime);
end to end the executor re-runs the written files (rtol 1e-4, atol 1e-5)."""
from __future__ import annotations

import numpy as np
import pytest

from irc.ir.graph import Graph
from irc.ir.tensors import BATCH, TensorType
from tests.passes.conftest import assert_pass_preserves, refusals
from tests.passes.test_legalize_clip import conv_then
from tests.passes.test_legalize_pad import compile_graph_and_verify

EPS = float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("slope", [np.array([0.25, -0.5, 1.5, 0.0], np.float32).reshape(4, 1, 1),
                                   np.float32(0.2), np.array([0.3], np.float32)],
                         ids=["per-channel", "scalar", "one"])
def test_prelu_becomes_relu_minus_scaled_relu(slope, tmp_path):
    graph = conv_then("PRelu", (slope,))
    changed, out, ctx = assert_pass_preserves(graph, "legalize_prelu", rtol=EPS, atol=0)
    assert changed and not ctx.refusals
    assert out.op_counts() == {"Conv": 1, "Relu": 1, "BatchNormalization": 2, "Sum": 1}
    assert out.producer("z").provenance.sources == ("/src/op",)
    compile_graph_and_verify(graph, tmp_path)


@pytest.mark.parametrize("alpha", [0.2, 0.01, 0.0])
def test_leaky_relu_with_another_slope(alpha, tmp_path):
    graph = conv_then("LeakyRelu", (), {"alpha": alpha})
    changed, out, _ = assert_pass_preserves(graph, "legalize_prelu", rtol=EPS, atol=0)
    assert changed and "LeakyRelu" not in out.op_counts()
    compile_graph_and_verify(graph, tmp_path)


def test_leaky_relu_with_viya_slope_is_left_alone():
    graph = conv_then("LeakyRelu", (), {"alpha": float(np.float32(0.1))})
    changed, out, _ = assert_pass_preserves(graph, "legalize_prelu")
    assert not changed and out.op_counts() == {"Conv": 1, "LeakyRelu": 1}


def test_neg_is_a_batchnorm(tmp_path):
    graph = conv_then("Neg")
    changed, out, _ = assert_pass_preserves(graph, "legalize_prelu", rtol=0, atol=0)
    assert changed and out.op_counts() == {"Conv": 1, "BatchNormalization": 1}
    compile_graph_and_verify(graph, tmp_path)


def test_slope_varying_over_width_is_refused():
    g = Graph("w")
    g.add_input("x", TensorType((BATCH, 4, 6, 6)))
    slope = g.add_const("a", np.linspace(0, 1, 6).astype(np.float32)).name  # aligns with W
    g.add_node("PRelu", ["x", slope], [("z", TensorType((BATCH, 4, 6, 6)))], name="prelu")
    g.outputs = ["z"]
    changed, _, ctx = assert_pass_preserves(g, "legalize_prelu")
    assert not changed and "spatial" in refusals(ctx)[0][2]
