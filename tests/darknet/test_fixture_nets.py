"""The fixture .cfg files (darknet's own nets) at small inputs with random .weights: irc
compiles and verifies them, and the written files re-executed match OpenCV's darknet
importer within 1e-4 of each output's scale (float32 rounding over up to 75 layers)."""
from __future__ import annotations

import json

import pytest

from tests.darknet.conftest import compile_and_compare, fixture, small_cfg

# (cfg, input size): the smallest multiple of 32 (five stride-2 pools) that keeps a grid >= 2
NETS = [("yolov2-tiny-voc.cfg", 64), ("yolov2-tiny.cfg", 64), ("tiny.cfg", 64),
        ("darknet19.cfg", 64), ("extraction.cfg", 64), ("darknet53.cfg", 64),
        ("yolov2.cfg", 64), ("yolov2-voc.cfg", 64), ("yolov1-tiny.cfg", 64)]


@pytest.mark.parametrize("name,size", NETS, ids=[n.split(".")[0] for n, _ in NETS])
def test_fixture_net_matches_opencv(tmp_path, name, size):
    cfg = small_cfg(fixture(name), tmp_path / name, size)
    compile_and_compare(tmp_path, cfg)
    payloads = json.loads((tmp_path / "out" / "model.json").read_text())
    layer = next(c["layer"] for c in payloads["addLayer"] if c["layer"]["type"] == "input")
    assert (layer["nchannels"], layer["height"], layer["width"]) == (3, size, size)
