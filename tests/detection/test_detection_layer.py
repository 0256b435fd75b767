"""Viya's detection layer: payload as SAS's client sends it, table rows as a server writes them,
and the executor's YOLO decoding checked against a decoder written here from darknet's
definition (region layer: logistic x, y and objectness, exp(w, h) times the anchor, softmax over
the classes; per-class greedy non-maximum suppression)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

import irc
import irc.backends.viya.schema
from irc.backends.viya.executor import ExecutorOptions, load_viya_model, read_model_table, run_folder
from irc.utils.onnx_builder import OnnxBuilder
from tests.cli_helpers import assert_refused, irc_cli

ANCHORS = [1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# What DLPy 1.3.0 sends (dlpy.layers.Detection(...).to_model_params()["layer"], run offline on
# 2026-12-07) for detection_model_type='YOLOV2', these anchors, softmax_for_class_prob=True,
# coord_type='YOLO', class_number=20, grid_number=13, predictions_per_grid=5,
# detection_threshold=0.3, iou_threshold=0.45, max_boxes=200.
DLPY_YOLOV2 = {"act": "auto", "detectionmodeltype": "yolov2", "anchors": ANCHORS,
               "softmaxforclassprob": True, "coordtype": "yolo", "classnumber": 20,
               "gridnumber": 13, "predictionspergrid": 5, "detectionthreshold": 0.3,
               "iouthreshold": 0.45, "maxboxes": 200, "type": "detection"}


def tiny_yolo(classes=20, size=52, boxes=5, seed=3) -> onnx.ModelProto:
    """A tiny-YOLOv2-shaped net ending at its (boxes·(5+classes)) x S x S grid."""
    b = OnnxBuilder("tinyyolo", (1, 3, size, size), seed=seed)
    x = b.op("LeakyRelu", b.conv(b.input, 8, 3, pads=[1] * 4, name="c1"), alpha=0.1)
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("LeakyRelu", b.conv(x, 16, 3, pads=[1] * 4, name="c2"), alpha=0.1)
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    x = b.conv(x, boxes * (5 + classes), 1, name="grid")
    return b.build([x])


def _compile(tmp_path, classes=20, **spec):
    model = irc.compile(tiny_yolo(classes), name="yolo",
                        detection={"version": "yolov2", "classes": classes, "boxes": 5,
                                   "anchors": ANCHORS, **spec})
    out = tmp_path / "out"
    model.save(out)
    return model, out


def test_payload_equals_dlpys_detection_layer(tmp_path):
    _, out = _compile(tmp_path, detection_threshold=0.3, iou_threshold=0.45, max_boxes=200)
    payloads = json.loads((out / "model.json").read_text())
    layer = payloads["addLayer"][-1]
    assert layer["layer"]["gridnumber"] == 13
    assert layer["layer"] == DLPY_YOLOV2
    assert layer["srcLayers"] == ["grid"]
    assert payloads["buildModel"]["type"] == "CNN"


def test_table_rows_use_the_keys_of_a_server_written_yolov2_table(tmp_path):
    _, out = _compile(tmp_path)
    with (out / "model_table.csv").open() as f:
        ours = {r["_DLKey1_"]: r for r in csv.DictReader(f) if r["_DLKey0_"] == "detection"}
    with (FIXTURES / "viya-tables" / "YOLOV2_MULTISIZE.csv").open() as f:
        real = {r["_DLKey1_"]: r for r in csv.DictReader(f) if r["_DLKey0_"] == "detection1"}
    assert ours["layertype"]["_DLChrVal_"] == real["layertype"]["_DLChrVal_"] == "Detection Layer"
    keys = {k for k in ours if k.startswith("detectionopts.")}
    assert len(keys) >= 25 and keys <= set(real), sorted(keys - set(real))
    for key in ("coordType", "yoloVersion", "softMaxForClassProb", "act"):   # codes as seen
        row = f"detectionopts.{key}"
        assert float(ours[row]["_DLNumVal_"]) == float(real[row]["_DLNumVal_"]), key
        assert ours[row]["_DLChrVal_"] == real[row]["_DLChrVal_"]


def test_the_server_written_yolov2_detection_layer_reads_back():
    model = read_model_table(FIXTURES / "viya-tables" / "YOLOV2_MULTISIZE.csv")
    layer = model.layer("detection1")
    assert layer.type == "detection"
    o = layer.options
    assert (o["version"], o["classes"], o["grid"], o["boxes"]) == (2, 598, 13, 5)
    assert o["softmax"] and o["coord_type"] == "yolo" and o["max_boxes"] == 100
    assert o["threshold"] == pytest.approx(0.2) and o["iou"] == pytest.approx(0.5)
    np.testing.assert_allclose(o["anchors"][0], [9.77898381497796, 5.595484346842886], rtol=1e-6)


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def reference_boxes(grid, anchors, classes, threshold, iou, max_boxes):
    """darknet's region decoding and per-class NMS, one example, written loop by loop."""
    boxes_per_cell = len(anchors) // 2
    s = grid.shape[-1]
    found = []
    for n in range(boxes_per_cell):
        for row in range(s):
            for col in range(s):
                v = [float(grid[n * (5 + classes) + k, row, col]) for k in range(5 + classes)]
                logits = np.asarray(v[5:], np.float64)
                probs = np.exp(logits - logits.max())
                probs /= probs.sum()
                for cls in range(classes):   # one detection per class above the threshold
                    score = _sigmoid(v[4]) * probs[cls]
                    if score > threshold:
                        found.append((cls, score, (col + _sigmoid(v[0])) / s,
                                      (row + _sigmoid(v[1])) / s,
                                      math.exp(v[2]) * anchors[2 * n] / s,
                                      math.exp(v[3]) * anchors[2 * n + 1] / s))
    found.sort(key=lambda b: -b[1])
    kept = []
    for box in found:
        if all(b[0] != box[0] or _iou(b[2:], box[2:]) <= iou for b in kept):
            kept.append(box)
    return kept[:max_boxes]


def _iou(a, b):
    w = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    h = min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2)
    inter = max(w, 0) * max(h, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_decoded_boxes_match_darknets_definition(tmp_path):
    model, out = _compile(tmp_path, classes=3, detection_threshold=0.02, iou_threshold=0.45,
                          max_boxes=400)
    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 52, 52)).astype(np.float32)
    outputs = run_folder(out, x, all_layers=True)
    boxes = outputs["detection"].reshape(2, 400, 6)
    compared = 0
    for i in range(2):
        ref = reference_boxes(outputs["grid"][i], ANCHORS, 3, 0.02, 0.45, 400)
        got = boxes[i][boxes[i][:, 0] >= 0]
        assert len(ref) > 5 and len(got) == len(ref)
        assert len({int(g[0]) for g in got}) > 1   # several classes compared
        for g, r in zip(got, ref):   # same order: by falling score
            assert int(g[0]) == r[0]
            assert g[1] == pytest.approx(r[1], rel=1e-5, abs=1e-6)
            assert _iou(g[2:], r[2:]) >= 0.9999
            compared += 1
        assert np.all(boxes[i][len(got):, 0] == -1)
    assert compared > 10


def test_nms_across_classes_is_an_executor_option(tmp_path):
    """Two overlapping boxes of different classes: darknet's per-class suppression keeps both,
    detection_nms='all' keeps the better one."""
    _, out = _compile(tmp_path, classes=2, detection_threshold=0.0, max_boxes=500)
    model = load_viya_model(out)
    grid = np.full((1, 5 * 7, 13, 13), -30.0, np.float32)   # objectness ~ 0 everywhere
    for n, (cls, logit) in enumerate(((0, 4.0), (1, 3.0))):   # anchors 0 and 1, same cell
        base = n * 7
        grid[0, base + 4, 6, 6] = logit                         # objectness
        grid[0, base + 5 + cls, 6, 6] = 10.0                    # its class
        grid[0, base + 2, 6, 6] = math.log(3.0 / ANCHORS[2 * n])   # both 3 x 3 cells wide
        grid[0, base + 3, 6, 6] = math.log(3.0 / ANCHORS[2 * n + 1])
    layer = model.layer("detection")
    kind = irc.backends.viya.schema.KINDS["detection"]
    layer.options["threshold"] = 0.5
    per_class = kind.run(layer, [grid], ExecutorOptions()).reshape(500, 6)
    across = kind.run(layer, [grid], ExecutorOptions(detection_nms="all")).reshape(500, 6)
    assert sorted(per_class[per_class[:, 0] >= 0][:, 0]) == [0, 1]
    assert across[across[:, 0] >= 0][:, 0].tolist() == [0]


def test_a_detection_model_exports_to_onnx_and_compiles_back(tmp_path):
    _, out = _compile(tmp_path, classes=20)
    exported = tmp_path / "back.onnx"
    result = irc_cli("export", out, "-o", exported)
    assert result.returncode == 0, result.stderr
    proto = onnx.load(exported)
    assert any(p.key == "irc.detection" for p in proto.metadata_props)
    again = irc.compile(exported, name="yolo")
    assert again.layers[-1].kind == "detection"
    first = json.loads((out / "model.json").read_text())["addLayer"][-1]["layer"]
    assert again.layers[-1].layer_payload() == first


def test_detection_on_a_model_without_a_grid_of_that_depth_is_refused(tmp_path):
    source = tmp_path / "tiny.onnx"
    onnx.save(tiny_yolo(classes=20), source)
    out = tmp_path / "out"
    result = irc_cli("compile", source, "-o", out, "--detection", "yolov2", "--classes", "80",
                     "--anchors", ",".join(map(str, ANCHORS)))
    assert_refused(result, out, "425", "125x13x13")


def test_anchors_that_do_not_match_the_predictions_are_refused(tmp_path):
    source = tmp_path / "tiny.onnx"
    onnx.save(tiny_yolo(classes=20), source)
    out = tmp_path / "out"
    result = irc_cli("compile", source, "-o", out, "--detection", "yolov2", "--classes", "20",
                     "--boxes", "5", "--anchors", "1,2,3")
    assert_refused(result, out, "3 anchor values", "5 predictions")


def test_the_executor_reads_the_detection_model_from_the_table(tmp_path):
    _, out = _compile(tmp_path, classes=3, detection_threshold=0.05)
    x = np.random.default_rng(2).uniform(0, 1, (1, 3, 52, 52)).astype(np.float32)
    from_json = run_folder(out, x)["detection"]
    table = load_viya_model(out / "model_table.csv")
    from irc.backends.viya.executor import execute
    np.testing.assert_array_equal(execute(table, x)["detection"], from_json)


def test_a_yolov1_head_compiles_and_decodes_as_darknets_detection_layer(tmp_path):
    """YOLOv1: a vector of S·S·K class probabilities, S·S·B confidences, S·S·B·4 boxes."""
    s, b, k = 3, 2, 4
    builder = OnnxBuilder("yolo1", (1, 3, 8, 8), seed=4)
    x = builder.op("Flatten", builder.conv(builder.input, 4, 3, pads=[1] * 4, name="c1"))
    grid = builder.gemm(x, 4 * 8 * 8, s * s * (b * 5 + k), name="grid")
    model = irc.compile(builder.build([grid]), name="yolo1",
                        detection={"version": "yolov1", "classes": k, "boxes": b,
                                   "do_sqrt": True, "detection_threshold": 0.0,
                                   "max_boxes": 50})
    out = tmp_path / "out"
    model.save(out)
    assert not (out / "model_table.csv").exists()   # no yoloVersion 1 code was ever seen
    x = np.random.default_rng(5).uniform(0, 1, (1, 3, 8, 8)).astype(np.float32)
    outputs = run_folder(out, x, all_layers=True)
    v = outputs["grid"][0].astype(np.float64)
    expected = []
    for i in range(s * s):
        row, col = divmod(i, s)
        for n in range(b):
            scale = v[s * s * k + i * b + n]
            box = v[s * s * (k + b) + (i * b + n) * 4:][:4]
            for cls, score in enumerate(scale * v[i * k:(i + 1) * k]):
                expected.append((cls, score, (box[0] + col) / s, (box[1] + row) / s,
                                 box[2] ** 2, box[3] ** 2))
    expected = [e for e in sorted(expected, key=lambda e: -e[1]) if e[1] > 0]
    kept = []
    for e in expected:
        if all(q[0] != e[0] or _iou(q[2:], e[2:]) <= 0.45 for q in kept):
            kept.append(e)
    got = outputs["detection"].reshape(50, 6)
    got = got[got[:, 0] >= 0]
    assert len(got) == len(kept) > 2
    for g, r in zip(got, kept):
        assert int(g[0]) == r[0] and g[1] == pytest.approx(r[1], rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(g[2:], r[2:], rtol=1e-5, atol=1e-6)


def test_one_row_per_box_for_its_best_class_is_an_executor_option(tmp_path):
    _, out = _compile(tmp_path, classes=3, detection_threshold=0.02, iou_threshold=1.0,
                      max_boxes=3000)
    x = np.random.default_rng(6).uniform(0, 1, (1, 3, 52, 52)).astype(np.float32)
    every = run_folder(out, x)["detection"].reshape(3000, 6)
    best = run_folder(out, x, ExecutorOptions(detection_classes="best"))["detection"]
    best = best.reshape(3000, 6)
    every, best = every[every[:, 0] >= 0], best[best[:, 0] >= 0]
    boxes = {tuple(np.round(r[2:], 6)) for r in every}
    assert len(best) == len(boxes) < len(every)   # iou 1: nothing suppressed
