"""The fixture .cfg files (darknet's own nets) at small inputs with random .weights: irc
compiles and verifies them, and the written files re-executed match OpenCV's darknet
importer within 1e-4 of each output's scale (float32 rounding over up to 75 layers).
Classifiers are compared on their logits (the final [softmax] removed; tiny.cfg also with
it), detectors on the grid their head reads."""
from __future__ import annotations

import json

import pytest

from tests.darknet.conftest import compile_and_compare, fixture, small_cfg

# (cfg, input size, logits): 64 = two cells after five stride-2 reductions
NETS = [("yolov2-tiny-voc.cfg", 64, False), ("yolov2-tiny.cfg", 64, False),
        ("tiny.cfg", 64, False), ("tiny.cfg", 64, True), ("darknet19.cfg", 64, True),
        ("extraction.cfg", 64, True), ("darknet53.cfg", 64, True), ("yolov2.cfg", 64, False),
        ("yolov1-tiny.cfg", 64, False)]
# yolov2-voc.cfg is yolov2.cfg with 20 classes (125-channel grid): its head is checked in
# test_heads.py, its layers are yolov2's (a second 50M-weight run would add ~40 s).


@pytest.mark.parametrize("name,size,logits", NETS,
                         ids=[n.split(".")[0] + ("-logits" if lg else "") for n, _, lg in NETS])
def test_fixture_net_matches_opencv(tmp_path, name, size, logits):
    cfg = small_cfg(fixture(name), tmp_path / name, size, logits=logits)
    compile_and_compare(tmp_path, cfg)
    payloads = json.loads((tmp_path / "out" / "model.json").read_text())
    layer = next(c["layer"] for c in payloads["addLayer"] if c["layer"]["type"] == "input")
    assert (layer["nchannels"], layer["height"], layer["width"]) == (3, size, size)
