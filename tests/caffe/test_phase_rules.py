"""Caffe's layer filtering for an inference net, checked against hand-written expectations.

OpenCV (the oracle) applies no phase, level or stage rule at all (the last test measures it),
so irc filters for it, with the same function its reader uses (reader.caffe_keeps). One
implementation for both means a mistake in it could not show as a mismatch with the oracle:
this table, written from Caffe's Net::FilterNet / StateMeetsRule for the state pycaffe's
``caffe.Net(..., caffe.TEST)`` builds (phase TEST, level 0, no stages), is what judges it. A
layer's own ``phase`` field does not drop it (Net::Init only fills it in when unset). Manual
mutation run: caffe_keeps changed to ignore ``min_level`` -> the "min_level 1" case fails.
"""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from irc.frontends.caffe import caffe_subset_pb2 as pb
from irc.frontends.caffe.reader import caffe_keeps, read_prototxt

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


def _layer(rule: str, legacy: bool = False):
    if legacy:
        return text_format.Parse(f'name: "l" type: RELU {rule}', pb.V1LayerParameter())
    return text_format.Parse(f'name: "l" type: "ReLU" {rule}', pb.LayerParameter())


@pytest.mark.parametrize("rule,kept", EXPECTED, ids=[r or "no rule" for r, _ in EXPECTED])
def test_layers_are_kept_as_caffe_keeps_them(rule, kept):
    assert caffe_keeps(_layer(rule)) is kept
    if "include" in rule or "exclude" in rule:  # V1 `layers` carry the same rules
        assert caffe_keeps(_layer(rule, legacy=True)) is kept


def test_the_reader_and_the_oracle_filter_alike(tmp_path):
    """Both read the net through read_prototxt's filtered layer list, so the table above
    judges irc's reader and the oracle at once: here the reader drops and keeps by it."""
    body = "".join(f'layer {{ name: "l{i}" type: "ReLU" bottom: "data" top: "data" {rule} }}\n'
                   for i, (rule, _) in enumerate(EXPECTED))
    path = tmp_path / "n.prototxt"
    path.write_text('name: "n"\ninput: "data"\ninput_shape { dim: 1 dim: 1 dim: 2 dim: 2 }\n'
                    + body)
    names = [layer.name for layer in read_prototxt(path).layers]
    assert names == [f"l{i}" for i, (_, kept) in enumerate(EXPECTED) if kept]



@pytest.mark.parametrize("layer,refused", [
    ('type: "Dropout" phase: TRAIN', True),
    ('type: "BatchNorm" phase: TRAIN', True),
    ('type: "BatchNorm" phase: TRAIN batch_norm_param { use_global_stats: true }', False),
    ('type: "Dropout" phase: TEST', False),
    ('type: "ReLU" phase: TRAIN', False),
], ids=["dropout", "batchnorm", "batchnorm_global_stats", "dropout_test", "relu"])
def test_a_layer_caffe_runs_in_training_mode_is_refused(tmp_path, layer, refused):
    """Kept with its own phase TRAIN, a Dropout (random) or a BatchNorm without
    use_global_stats (batch statistics) computes what no inference layer does: one error."""
    from irc.errors import UnsupportedAttribute

    path = tmp_path / "n.prototxt"
    path.write_text('name: "n"\ninput: "data"\ninput_shape { dim: 1 dim: 2 dim: 2 dim: 2 }\n'
                    f'layer {{ name: "l" {layer} bottom: "data" top: "y" }}\n')
    if not refused:
        assert [layer.name for layer in read_prototxt(path).layers] == ["l"]
        return
    with pytest.raises(UnsupportedAttribute, match="'?l'? set their own phase: TRAIN") as err:
        read_prototxt(path)
    assert "phase: TRAIN" in err.value.hint and str(path) in str(err.value)


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
