"""Caffe's layer filtering for an inference net, checked against hand-written expectations.

OpenCV (the oracle) applies no phase, level or stage rule at all (tests/caffe below measures
it), so the oracle filters with its own reading of Caffe (oracle.caffe_keeps) and irc's reader
with its own (reader.in_phase). Both are judged here by the table, written from Caffe's
Net::FilterNet / StateMeetsRule for the state pycaffe's ``caffe.Net(..., caffe.TEST)`` builds:
phase TEST, level 0, no stages. A layer's own ``phase`` field does not drop it (Net::Init only
fills it in when unset). Manual mutation run: caffe_keeps changed to ignore ``min_level`` ->
the "min_level 1" case fails.
"""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from irc.frontends.caffe import caffe_subset_pb2 as pb
from irc.frontends.caffe.oracle import caffe_keeps
from irc.frontends.caffe.reader import in_phase

# (rule text inside `layer { ... }`, Caffe keeps the layer in the TEST net)
EXPECTED = [
    ("", True),
    ("include { phase: TEST }", True),
    ("include { phase: TRAIN }", False),
    ("exclude { phase: TEST }", False),
    ("exclude { phase: TRAIN }", True),
    ("include { phase: TRAIN } include { phase: TEST }", True),
    ("include { min_level: 1 }", False),
    ("include { min_level: 0 }", True),
    ("include { max_level: -1 }", False),
    ('include { stage: "deploy" }', False),
    ('include { not_stage: "train" }', True),
    ('exclude { stage: "deploy" }', True),
    ('exclude { not_stage: "train" }', False),
    ('include { phase: TEST stage: "deploy" }', False),
    ("phase: TRAIN", True),  # own phase: kept, run in TRAIN mode
]
# irc's reader reads phases only, and drops a layer whose own phase differs (reader.py says
# "levels and stages are not used"): these rows are where it departs from Caffe. strict: the
# test fails once the reader is fixed, so the mark is removed with the bug.
READER_DEPARTS = {"include { min_level: 1 }", "include { max_level: -1 }",
                  'include { stage: "deploy" }', 'exclude { stage: "deploy" }',
                  'include { phase: TEST stage: "deploy" }', "phase: TRAIN"}


def _layer(rule: str, legacy: bool = False):
    if legacy:
        return text_format.Parse(f'name: "l" type: RELU {rule}', pb.V1LayerParameter())
    return text_format.Parse(f'name: "l" type: "ReLU" {rule}', pb.LayerParameter())


@pytest.mark.parametrize("rule,kept", EXPECTED, ids=[r or "no rule" for r, _ in EXPECTED])
def test_the_oracle_filters_as_caffe(rule, kept):
    assert caffe_keeps(_layer(rule)) is kept
    if "include" in rule or "exclude" in rule:  # V1 `layers` carry the same rules
        assert caffe_keeps(_layer(rule, legacy=True)) is kept


@pytest.mark.parametrize("rule,kept", [
    pytest.param(r, k, marks=pytest.mark.xfail(strict=True, reason="irc's reader ignores levels "
                 "and stages and drops a layer by its own phase field (see the module docstring)"))
    if r in READER_DEPARTS else (r, k) for r, k in EXPECTED], ids=[r or "no rule"
                                                                   for r, _ in EXPECTED])
def test_irc_reader_filters_as_caffe(rule, kept):
    assert in_phase(_layer(rule)) is kept


def test_opencv_applies_no_rule(tmp_path):
    """Why the oracle filters at all: OpenCV runs a layer every rule excludes."""
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is the Caffe oracle")
    head = 'name: "p"\ninput: "data"\ninput_shape { dim: 1 dim: 1 dim: 2 dim: 2 }\n'
    for rule in ("include { phase: TRAIN }", 'include { stage: "x" }', "include { min_level: 1 }"):
        text = head + ('layer { name: "x3" type: "Power" bottom: "data" top: "data" '
                       f'power_param {{ scale: 3 }} {rule} }}\n'
                       'layer { name: "out" type: "Power" bottom: "data" top: "out" }\n')
        (tmp_path / "p.prototxt").write_text(text)
        net = cv2.dnn.readNetFromCaffe(str(tmp_path / "p.prototxt"))
        net.setInput(np.ones((1, 1, 2, 2), np.float32))
        assert net.forward("out").ravel()[0] == 3.0, rule  # the excluded x3 layer ran
