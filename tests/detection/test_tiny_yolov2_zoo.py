"""The ONNX model zoo's tiny-YOLOv2 form (opset 8): ImageScaler, nine convolutions each with a
batch norm and LeakyRelu 0.1, five 2x2 stride-2 max pools and one 2x2 stride-1 max pool padded
only after (pads 0,0,1,1), a 125-channel grid. Built here from that published architecture
with random weights and batch norms calibrated on random images (so activations stay alive),
at 64 px (grid 2x2) instead of 416; converted with the --detection options and verified
against onnxruntime, its boxes against a decoder written from darknet's definition."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import irc
from irc.backends.viya.executor import run_folder
from irc.verify import verify, viya_input
from tests.cli_helpers import assert_refused, irc_cli
from tests.detection.test_detection_layer import ANCHORS, _iou, reference_boxes

FILTERS = (16, 32, 64, 128, 256, 512, 1024, 1024)
SIZE = 64


def _layers(rng, bn: dict):
    """Nodes, initializers (also graph inputs: IR 3, as the zoo file) of the architecture."""
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    nodes.append(helper.make_node("ImageScaler", ["image"], ["scaled"], name="scalerPreprocessor",
                                  scale=1.0, bias=[0.0, 0.0, 0.0]))
    x, channels = "scaled", 3
    for i, filters in enumerate(FILTERS, 1):
        w = rng.standard_normal((filters, channels, 3, 3)) * np.sqrt(2.0 / (9 * channels))
        nodes.append(helper.make_node("Conv", [x, const(f"conv{i}_W", w)], [f"conv{i}"],
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        mean, var = bn.get(i, (np.zeros(filters), np.ones(filters)))
        gamma = rng.uniform(0.8, 1.2, filters)
        beta = rng.uniform(-0.1, 0.3, filters)
        nodes.append(helper.make_node(
            "BatchNormalization", [f"conv{i}", const(f"bn{i}_s", gamma), const(f"bn{i}_b", beta),
                                   const(f"bn{i}_m", mean), const(f"bn{i}_v", var)],
            [f"bn{i}"], epsilon=1e-5))
        nodes.append(helper.make_node("LeakyRelu", [f"bn{i}"], [f"leaky{i}"], alpha=0.1))
        x, channels = f"leaky{i}", filters
        if i <= 5:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{i}"], kernel_shape=[2, 2],
                                          strides=[2, 2]))
            x = f"pool{i}"
        elif i == 6:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{i}"], kernel_shape=[2, 2],
                                          strides=[1, 1], pads=[0, 0, 1, 1]))
            x = f"pool{i}"
    w = rng.standard_normal((125, channels, 1, 1)) * np.sqrt(1.0 / channels)
    nodes.append(helper.make_node("Conv", [x, const("grid_W", w), const("grid_B",
                                  rng.uniform(-0.5, 0.5, 125))], ["grid"], kernel_shape=[1, 1]))
    return nodes, inits


def _model(bn: dict, outputs=("grid",)) -> onnx.ModelProto:
    nodes, inits = _layers(np.random.default_rng(11), bn)
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIZE, SIZE])]
    inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims))
               for t in inits]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    model = helper.make_model(helper.make_graph(nodes, "tiny_yolov2", inputs, outs, inits),
                              opset_imports=[helper.make_opsetid("", 8)], producer_name="test")
    model.ir_version = 3
    return model


@pytest.fixture(scope="module")
def zoo_model(tmp_path_factory):
    """Batch norms calibrated layer by layer: each conv's output statistics on 8 images."""
    images = np.random.default_rng(0).uniform(0, 1, (8, 3, SIZE, SIZE)).astype(np.float32)
    bn = {}
    for i in range(1, len(FILTERS) + 1):
        session = ort.InferenceSession(_model(bn, (f"conv{i}",)).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        conv = np.concatenate([session.run(None, {"image": im[None]})[0] for im in images])
        bn[i] = (conv.mean(axis=(0, 2, 3)), conv.var(axis=(0, 2, 3)) + 1e-3)
    path = tmp_path_factory.mktemp("zoo") / "tiny_yolov2.onnx"
    onnx.save(_model(bn), path)
    return path


def _compile(path, out):
    return irc.compile(path, name="tiny_yolov2", detection={
        "version": "yolov2", "classes": 20, "boxes": 5, "anchors": ANCHORS,
        "detection_threshold": 0.02}).save(out)


def test_zoo_tiny_yolov2_converts_and_verifies(zoo_model, tmp_path):
    out = _compile(zoo_model, tmp_path / "out")
    payloads = json.loads((out / "model.json").read_text())
    kinds = [c["layer"]["type"] for c in payloads["addLayer"]]
    assert kinds[-1] == "detection" and kinds.count("pool") == 6
    grid_layer = payloads["addLayer"][-1]["srcLayers"][0]
    convs = [c for c in payloads["addLayer"] if c["layer"]["type"] == "convo"]
    assert len(convs) == 9 and kinds[1] == "convo"   # ImageScaler's scale 1, bias 0: no layer
    assert all(c["layer"]["act"] == "leaky" for c in convs if c["name"] != grid_layer)
    assert payloads["addLayer"][-1]["layer"]["gridnumber"] == SIZE // 32
    result = verify(zoo_model, out)
    assert result.ok, result.table()
    (grid,) = result.comparisons
    assert grid.scale > 1 and grid.scaled < 1e-4


def test_zoo_tiny_yolov2_boxes_match_darknets_decoding(zoo_model, tmp_path):
    out = _compile(zoo_model, tmp_path / "out")
    payloads = json.loads((out / "model.json").read_text())
    x = np.random.default_rng(4).uniform(0, 1, (2, 3, SIZE, SIZE)).astype(np.float32)
    session = ort.InferenceSession(str(zoo_model), providers=["CPUExecutionProvider"])
    source_grid = np.concatenate([session.run(None, {"image": im[None]})[0] for im in x])
    boxes = run_folder(out, viya_input(payloads, x))["detection"].reshape(2, 200, 6)
    compared = 0
    for i in range(2):
        ref = reference_boxes(source_grid[i], ANCHORS, 20, 0.02, 0.45, 200)
        got = [b for b in boxes[i] if b[0] >= 0]
        assert len(ref) > 3 and len(got) == len(ref)
        for g, r in zip(got, ref):
            assert int(g[0]) == r[0] and abs(g[1] - r[1]) < 1e-4 and _iou(g[2:], r[2:]) > 0.99
            compared += 1
    assert compared > 6


def test_an_image_scaler_that_scales_is_a_per_channel_affine(tmp_path):
    """ImageScaler(scale, bias) (no schema in today's onnx, so the opset upgrade rewrites it as
    Mul and Add): verified against onnxruntime's own ImageScaler."""
    nodes = [helper.make_node("ImageScaler", ["x"], ["s"], scale=0.5, bias=[1.0, -2.0, 3.0]),
             helper.make_node("Conv", ["s", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)]
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 3, 3, 3))
                                .astype(np.float32), "w")
    graph = helper.make_graph(
        nodes, "scaler", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                          helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    path = tmp_path / "scaler.onnx"
    onnx.save(model, path)
    out = irc.compile(path).save(tmp_path / "out")
    result = verify(path, out)
    assert result.ok and result.comparisons[0].scale > 1, result.table()


def test_detection_on_the_zoo_model_with_the_wrong_class_count_is_refused(zoo_model, tmp_path):
    out = tmp_path / "out"
    result = irc_cli("compile", zoo_model, "-o", out, "--detection", "yolov2",
                     "--classes", "80", "--anchors", ",".join(map(str, ANCHORS)))
    assert_refused(result, out, "425", "125x2x2")
