"""legalize_max_min: max(a, b) = a + relu(b - a), min(a, b) = a - relu(a - b), as residual and
batchnorm layers; compared in onnxruntime (1 ulp of the operands) and end to end."""
from __future__ import annotations

import numpy as np
import pytest

from irc.api import compile as compile_model
from irc.utils.onnx_builder import OnnxBuilder
from irc.verify import verify
from tests.passes.conftest import assert_pass_preserves, build, refusals


def _two_branches(op: str, rank4: bool = True):
    b = OnnxBuilder("m", ("N", 3, 6, 6) if rank4 else ("N", 8))
    if rank4:
        a = b.op("Conv", b.input, b.const(np.random.default_rng(0).standard_normal(
            (4, 3, 3, 3)).astype(np.float32)), kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        c = b.op("Conv", b.input, b.const(np.random.default_rng(1).standard_normal(
            (4, 3, 1, 1)).astype(np.float32)), kernel_shape=[1, 1])
    else:
        a = b.op("Gemm", b.input, b.const(np.ones((5, 8), np.float32)), transB=1)
        c = b.op("Gemm", b.input, b.const(np.full((5, 8), -0.5, np.float32)), transB=1)
    return b, b.op(op, a, c, name=f"the_{op.lower()}")


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_rewrite_computes_the_same(op):
    b, y = _two_branches(op)
    graph = build(b, [y])
    changed, out, _ = assert_pass_preserves(graph, "legalize_max_min", rtol=0, atol=1e-5)
    assert changed and op not in out.op_counts()
    assert out.op_counts()["Sum"] == 2


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("rank4", [True, False])
def test_compiles_and_verifies(op, rank4, tmp_path):
    b, y = _two_branches(op, rank4)
    model = b.build([y])
    compiled = compile_model(model)
    compiled.save(tmp_path / "out")
    result = verify(model, tmp_path / "out")
    assert result.ok, result.table()
    kinds = [layer.kind for layer in compiled.layers]
    assert kinds.count("residual") == 2 and "batchnorm" in kinds


def test_three_d_inputs_are_refused_with_the_reason():
    from irc.ir.graph import Graph
    from irc.ir.tensors import BATCH, TensorType
    from irc.passes.registry import PassContext
    from irc.passes.catalog import get_pass

    g = Graph("m")
    t = TensorType((BATCH, 3, 5))
    g.add_input("a", t)
    g.add_input("b", t)
    g.add_node("Max", ["a", "b"], [("y", t)], name="mx")
    g.outputs = ["y"]
    ctx = PassContext()
    ctx.current_pass = "legalize_max_min"
    assert not get_pass("legalize_max_min").run(g, ctx)
    assert "one (N, C) or (N, C, H, W) shape" in refusals(ctx)[0][2]


def test_an_overflowing_difference_is_named_by_verify(tmp_path):
    """max(x, −x) with x = ±3e38: the source gives |x| (finite), the rewrite's b − a = ∓6e38
    overflows to inf. The rewrite is exact only for finite operands with a finite difference
    (stated in its docstring and the README); verify says that is what happened instead of a
    bare MISMATCH."""
    b = OnnxBuilder("m", (1, 2, 3, 3))
    model = b.build([b.op("Max", b.input, b.op("Neg", b.input), name="the_max")])
    compile_model(model).save(tmp_path / "out")
    x = np.full((1, 2, 3, 3), 3e38, np.float32)
    x[0, 1] = -3e38
    result = verify(model, tmp_path / "out", inputs={"input": x})
    assert not result.ok and "MISMATCH" in result.table()
    assert "source's values are finite but the Viya output holds inf or NaN" in result.table()
    assert verify(model, tmp_path / "out").ok  # ordinary values: exact
