"""The IR: graph API, validation, weight handles, printer and ONNX export."""
import numpy as np
import onnx
import pytest

from irc.errors import GraphInvalid
from irc.ir.graph import Graph
from irc.ir.onnx_export import run_onnxruntime, to_onnx
from irc.ir.printer import format_graph
from irc.ir.tensors import BATCH, TensorType, WeightStore


def _conv_graph():
    g = Graph("t")
    g.add_input("x", TensorType((BATCH, 3, 8, 8)))
    w = g.add_const("w", np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32))
    g.add_node("Conv", ["x", w.name], [("y", TensorType((BATCH, 4, 8, 8)))],
               {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1],
                "activation": "relu"}, name="conv")
    g.outputs = ["y"]
    return g


def test_graph_queries_and_export_run():
    g = _conv_graph()
    g.validate()
    assert g.producer("y").name == "conv"
    assert [n.name for n in g.consumers("x")] == ["conv"]
    assert g.use_count("y") == 1  # the graph output
    model = to_onnx(g)
    onnx.checker.check_model(model)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = run_onnxruntime(model, {"x": x})["y"]
    # the fused relu is expanded: no negative outputs, and some positive ones
    assert y.shape == (2, 4, 8, 8) and y.min() == 0.0 and y.max() > 0


def test_copy_shares_weights_never_copies_them():
    g = _conv_graph()
    clone = g.copy()
    assert clone.weights is g.weights
    assert clone.const("w") is g.const("w")  # the same array object: no copy
    with pytest.raises(GraphInvalid):  # its output is a graph output
        clone.remove_node(clone.node("conv"))
    clone.outputs = []
    clone.remove_node(clone.node("conv"))
    assert g.has_node("conv") and not clone.has_node("conv") and g.outputs == ["y"]


def test_lazy_weights_load_once_and_check_shape():
    store = WeightStore()
    calls = []

    def load():
        calls.append(1)
        return np.ones((2, 3), np.float32)
    h = store.add_lazy(load, (2, 3), np.float32, hint="lazy")
    assert h.shape == (2, 3) and not store.is_loaded(h.key)
    assert h.numpy().sum() == 6 and h.numpy().sum() == 6
    assert calls == [1]
    bad = store.add_lazy(lambda: np.ones(3, np.float32), (2, 3), np.float32)
    with pytest.raises(ValueError):
        bad.numpy()


def test_validate_reports_bad_attribute_and_missing_const():
    g = _conv_graph()
    g.node("conv").attrs["bogus"] = 1
    with pytest.raises(GraphInvalid, match="bogus"):
        g.validate()
    g = Graph("t")
    g.add_input("x", TensorType((BATCH, 3, 8, 8)))
    g.add_input("w", TensorType((4, 3, 3, 3)))
    g.add_node("Conv", ["x", "w"], [("y", TensorType((BATCH, 4, 6, 6)))],
               {"kernel_shape": [3, 3]})
    with pytest.raises(GraphInvalid, match="must be a constant"):
        g.validate()


def test_rename_and_replace_uses_keep_edges_in_sync():
    g = _conv_graph()
    g.add_node("Relu", ["y"], [("z", TensorType((BATCH, 4, 8, 8)))], name="relu")
    g.outputs = ["z"]
    g.rename_value("y", "y2")
    g.validate()
    assert g.node("relu").inputs == ("y2",) and g.node("conv").outputs == ["y2"]
    g.replace_uses("z", "y2")
    g.remove_node(g.node("relu"))
    g.validate()
    assert g.outputs == ["y2"]


def test_printer_shows_ops_shapes_and_provenance():
    text = format_graph(_conv_graph())
    assert "Conv(%x, $w float32[4,3,3,3])" in text
    assert "activation=relu" in text and "float32[N,4,8,8]" in text
