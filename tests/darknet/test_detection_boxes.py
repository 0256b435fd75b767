"""A darknet detector's decoded boxes: Viya's detection layer, as irc's executor re-runs the
written files, against OpenCV's own [region] decoding of the same net (darknet's decoding and
per-class non-maximum suppression at IoU 0.4), compared as box sets: same classes, IoU >= 0.99,
scores within 1e-4 of each other."""
from __future__ import annotations

import json

import numpy as np
import pytest

import irc
from irc.backends.viya.executor import run_folder
from irc.verify import viya_input
from tests.darknet.conftest import fixture, random_weights, small_cfg, write_cfg

THRESHOLD = 0.02


def _iou(a, b) -> float:
    w = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    h = min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2)
    inter = max(w, 0.0) * max(h, 0.0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def opencv_boxes(rows: np.ndarray) -> list[tuple]:
    """(class, score, x, y, w, h) for every class a row of OpenCV's region output keeps."""
    return [(k, float(r[5 + k]), *map(float, r[:4])) for r in rows
            for k in np.nonzero(r[5:] > THRESHOLD)[0]]


@pytest.mark.parametrize("name", ["yolov2-tiny-voc.cfg", "yolov2-tiny.cfg"])
def test_detection_layer_boxes_match_opencvs_region_layer(tmp_path, name):
    pytest.importorskip("cv2", reason="opencv-python-headless is the darknet oracle")
    from irc.frontends.darknet import run_opencv_region

    text = fixture(name).read_text()
    text = "\n".join("thresh = .02" if line.replace(" ", "").startswith("thresh=") else line
                     for line in text.splitlines())
    cfg = small_cfg(write_cfg(tmp_path, text, "src"), tmp_path / "net.cfg", 96)
    weights = random_weights(cfg, tmp_path / "net.weights")
    out = tmp_path / "out"
    model = irc.compile(cfg, weights=weights, detection={
        "detection_threshold": THRESHOLD, "iou_threshold": 0.4, "max_boxes": 4000})
    assert model.layers[-1].kind == "detection"
    model.save(out)
    x = np.random.default_rng(7).uniform(0, 1, (2, 3, 96, 96)).astype(np.float32)
    rows = run_opencv_region(cfg, weights, x)
    payloads = json.loads((out / "model.json").read_text())
    got = run_folder(out, viya_input(payloads, x))["detection"].reshape(2, 4000, 6)
    classes = set()
    for image in range(2):
        ref = opencv_boxes(rows[image])
        mine = [r for r in got[image] if r[0] >= 0]
        # a score within 1e-5 of the threshold may fall either side in float32
        near = lambda s: abs(s - THRESHOLD) < 1e-5  # noqa: E731
        ref = [r for r in ref if not near(r[1])]
        mine = [r for r in mine if not near(float(r[1]))]
        assert len(ref) > 10 and len(mine) == len(ref)
        unmatched = list(range(len(mine)))
        for box in ref:
            match = next((i for i in unmatched if int(mine[i][0]) == box[0]
                          and abs(float(mine[i][1]) - box[1]) <= 1e-4
                          and _iou(mine[i][2:], box[2:]) >= 0.99), None)
            assert match is not None, f"no written box matches OpenCV's {box}"
            unmatched.remove(match)
            classes.add(box[0])
    assert len(classes) > 1


def test_irc_verify_compares_the_boxes_and_catches_wrong_detection_options(tmp_path):
    """`irc verify` on a darknet detector prints the box comparison with OpenCV's region layer;
    anchors swapped in model.json leave the grid intact but the boxes wrong: exit 1."""
    pytest.importorskip("cv2", reason="opencv-python-headless is the darknet oracle")
    from tests.cli_helpers import irc_cli

    cfg = small_cfg(fixture("yolov2-tiny-voc.cfg"), tmp_path / "net.cfg", 64)
    weights = random_weights(cfg, tmp_path / "net.weights")
    out = tmp_path / "out"
    result = irc_cli("compile", cfg, "--weights", weights, "-o", out,
                     "--detection-threshold", "0.02")
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("boxes of"))
    matched, total = map(int, line.split(": ")[1].split(" matched")[0].split(" of "))
    assert matched == total > 10 and "all match" in line
    payloads = json.loads((out / "model.json").read_text())
    layer = payloads["addLayer"][-1]["layer"]
    layer["anchors"] = [v for pair in zip(layer["anchors"][1::2], layer["anchors"][::2])
                        for v in pair]   # (h, w) for (w, h)
    (out / "model.json").write_text(json.dumps(payloads))
    result = irc_cli("verify", cfg, out, "--weights", weights)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "MISMATCH" in result.stdout and "boxes of 'detection'" in result.stdout
