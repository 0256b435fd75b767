"""The real server-written model tables (tests/fixtures/viya-tables): structure of the export,
onnxruntime runs it, and every layer equals irc's reference executor on the same table with
the same generated weights written to a KERAS HDF5 file. Detection and recurrent/CTC models
are refused by name."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from irc.backends.viya.executor import execute, load_viya_model
from irc.errors import UnsupportedOp
from irc.frontends.viya import export, read_viya, to_graph, write_weights_h5
from irc.ir.onnx_export import run_onnxruntime, to_onnx

from .common import TABLES, assert_close, count


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 3, 224, 224)).astype(np.float32)


def against_executor(table, tmp_path, x, all_layers: bool):
    """ONNX (generated weights) vs the reference executor on the table + those weights."""
    model = read_viya(table, generate_weights=True)
    h5 = write_weights_h5(model, tmp_path / "generated_weights.kerasmodel.h5")
    graph = to_graph(model)
    del model   # the weights now live in the graph (and the HDF5 file)
    proto = to_onnx(graph, with_intermediates=all_layers)
    del graph
    got = run_onnxruntime(proto, {"data": x})
    viya = load_viya_model(table, weights_path=h5)
    expected = execute(viya, x, all_layers=all_layers)
    for layer in viya.layers[1:] if all_layers else viya.terminal_layers():
        name = layer.name if all_layers else layer
        terminal = name in viya.terminal_layers()
        assert_close(expected[name], got[name], f"layer {name}", scaled=not terminal)
    return got, proto


def test_simple_cnn_structure_and_executor_parity(tmp_path):
    table = TABLES / "Simple_CNN.csv"
    target = tmp_path / "simple_cnn.onnx"
    proto = export(table, target, generate_weights=True)
    onnx.checker.check_model(str(target))
    assert [n.op_type for n in proto.graph.node] == [
        "Sub", "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu",
        "Gemm", "Softmax"]
    assert dims(proto.graph.input[0]) == ["N", 3, 224, 224]
    assert [o.name for o in proto.graph.output] == ["output"]
    assert dims(proto.graph.output[0]) == ["N", 2]
    # no pad_* rows in this old table: automatic padding, conv split / pool all after
    conv, pool = [n for n in proto.graph.node if n.op_type in ("Conv", "MaxPool")][:2]
    assert list(conv.attribute[[a.name for a in conv.attribute].index("pads")].ints) == \
        [3, 3, 3, 3]
    assert list(pool.attribute[[a.name for a in pool.attribute].index("pads")].ints) == \
        [0, 0, 0, 0]
    x = images(2)
    got, _ = against_executor(table, tmp_path, x, all_layers=True)
    assert got["output"].shape == (2, 2)
    np.testing.assert_allclose(got["output"].sum(axis=1), 1, rtol=1e-5)
    # the same seed gives the same weights: the saved file computes the same numbers
    saved = run_onnxruntime(target, {"data": x})["output"]
    assert_close(got["output"], saved, "saved file")


def test_vgg16_structure_and_executor_parity(tmp_path):
    table = TABLES / "vgg16.csv"
    x = images(1, seed=1)
    got, proto = against_executor(table, tmp_path, x, all_layers=False)
    assert got["fc8"].shape == (1, 2)
    assert (count(proto, "Conv"), count(proto, "MaxPool"), count(proto, "Gemm")) == (13, 5, 3)
    assert count(proto, "Relu") == 15 and count(proto, "Softmax") == 1
    assert dims(proto.graph.input[0]) == ["N", 3, 224, 224]
    assert dims(proto.graph.output[0]) == ["N", 2]
    gemm_shapes = [tuple(i.dims) for i in proto.graph.initializer if i.name.endswith("kernel")
                   and len(i.dims) == 2]
    assert gemm_shapes == [(4096, 512 * 7 * 7), (4096, 4096), (2, 4096)]


def test_yolov2_detection_exports_to_its_grid_with_the_head_in_metadata():
    """The server-written YOLOv2 table: the ONNX ends at the 3015 x 13 x 13 grid (the
    detection layer has no ONNX operator) and states the head as irc.detection."""
    proto = export(TABLES / "YOLOV2_MULTISIZE.csv", generate_weights=True)
    assert dims(proto.graph.output[0]) == ["N", 3015, 13, 13]
    head = json.loads({p.key: p.value for p in proto.metadata_props}["irc.detection"])
    assert (head["version"], head["classes"], head["boxes"]) == (2, 598, 5)
    assert head["anchors"][:2] == pytest.approx([9.77898381497796, 5.595484346842886])
    assert (head["detection_threshold"], head["iou_threshold"], head["max_boxes"]) == \
        pytest.approx((0.2, 0.5, 100))


def test_acoustic_rnn_ctc_is_refused_by_name():
    with pytest.raises(UnsupportedOp) as err:
        export(TABLES / "sample_acoustic_model.csv", generate_weights=True)
    text = str(err.value)
    for name in ("rnn11", "rnn12", "rnn21", "rnn22"):
        assert f"{name} (recurrent" in text
    assert "outlayer (output with a CTC loss" in text
    assert text.startswith(str(TABLES / "sample_acoustic_model.csv"))


def test_table_as_a_dataframe():
    import pandas as pd

    frame = pd.read_csv(TABLES / "Simple_CNN.csv")
    proto = export(frame, generate_weights=True)
    ref = export(TABLES / "Simple_CNN.csv", generate_weights=True)
    x = images(1)
    assert_close(run_onnxruntime(ref, {"data": x})["output"],
                 run_onnxruntime(proto, {"data": x})["output"], "DataFrame table")


def test_server_table_without_weights_needs_an_option():
    from irc.errors import InvalidModel

    with pytest.raises(InvalidModel, match="no weights file") as err:
        export(TABLES / "Simple_CNN.csv")
    assert "generate_weights=True" in err.value.hint
