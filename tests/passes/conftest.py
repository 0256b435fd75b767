"""Helpers for pass tests: run a pass on a copy and compare numbers in onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from irc.frontends.onnx import import_onnx
from irc.ir.onnx_export import run_onnxruntime, to_onnx
from irc.ir.tensors import BATCH
from irc.passes.catalog import get_pass
from irc.passes.registry import PassContext


def random_feeds(graph, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs for every graph input, BATCH taken as ``batch``."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name in graph.inputs:
        ttype = graph.value(name).type
        shape = tuple(batch if d == BATCH else d for d in ttype.shape)
        feeds[name] = rng.standard_normal(shape).astype(ttype.dtype)
    return feeds


def run_graph(graph, feeds) -> dict[str, np.ndarray]:
    return run_onnxruntime(to_onnx(graph), feeds)


def assert_close(graph_a, graph_b, feeds, rtol=1e-5, atol=1e-6) -> None:
    """Both graphs give the same value for every graph output (same names, same order)."""
    assert graph_a.outputs == graph_b.outputs
    ref, got = run_graph(graph_a, feeds), run_graph(graph_b, feeds)
    for name in graph_a.outputs:
        np.testing.assert_allclose(got[name], ref[name], rtol=rtol, atol=atol,
                                   err_msg=f"output {name!r}")


def assert_pass_preserves(graph, pass_name, feeds=None, rtol=1e-5, atol=1e-6, batch=2,
                          ctx=None):
    """Run ``pass_name`` on a copy of ``graph``; the copy validates and computes the same.

    Returns (changed, copy, ctx).
    """
    copy = graph.copy()
    ctx = ctx or PassContext()
    ctx.current_pass = pass_name
    changed = get_pass(pass_name).run(copy, ctx)
    copy.validate()
    feeds = feeds if feeds is not None else random_feeds(graph, batch)
    assert_close(graph, copy, feeds, rtol, atol)
    return changed, copy, ctx


def refusals(ctx, pass_name=None) -> list[tuple[str, str, str]]:
    return [r for r in ctx.refusals if pass_name is None or r[0] == pass_name]


def build(builder, outputs, **kwargs):
    """The IR graph of the ONNX model ``builder`` built with ``outputs``."""
    return import_onnx(builder.build(outputs), **kwargs)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
