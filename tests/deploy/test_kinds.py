"""Every Viya layer kind irc emits goes through the stand-in, which judges it by
viya-target.md (§3.1 buildModel type, §3.2 layer keys, §5.2/§5.3/§5.5 HDF5 layout), not by
irc's own model.json; and the stand-in's checks are live: each test below that breaks the folder
the way an irc bug would must fail, loudly (StandInViolation is not an Exception, so no
``except Exception`` in irc can swallow it) or as the server's own error mapped to the right
irc error.

Manual mutation runs (recorded here): deploy's catch widened back to ``except Exception`` ->
test_only_swat_errors_become_action_failures fails, and the stand-in's violations still surface
(no other test changes); the layer-mismatch mapping disabled -> the WeightsDoNotMatch test fails
(the message fell through to ActionFailed, and before this change to WeightsNotVisible);
``recurrent`` dropped from the stand-in's WEIGHTED -> the rnn deploy and both recurrent weight
tests fail.
"""
from __future__ import annotations

import json
import shutil

import h5py
import pytest

import irc
from irc.backends.viya.deploy import ActionFailed, WeightsDoNotMatch, WeightsNotVisible, deploy
from irc.utils.onnx_builder import OnnxBuilder
from tests.deploy.fake_cas import FakeCAS, StandInViolation
from tests.recurrent.conftest import onnx_recurrent


def _cnn_kinds():
    """conv -> relu -> batchnorm (stays a layer: nothing to fold into backwards through the
    relu) -> grouped conv -> reshape (16, 4, 4) -> (4, 8, 8) -> conv -> gemm -> softmax."""
    b = OnnxBuilder("kinds", (1, 3, 8, 8), seed=5)
    x = b.op("Relu", b.conv(b.input, 8, 3, pads=[1] * 4, name="c1"))
    x = b.op("Relu", b.batchnorm(x, name="bn"))
    x = b.op("Relu", b.conv(x, 16, 3, stride=2, pads=[1] * 4, group=2, name="gc"))
    x = b.op("Reshape", x, b.const([0, 4, 8, 8], name="shape"), name="rs")
    b.channels[x] = 4
    x = b.op("Relu", b.conv(x, 4, 3, pads=[1] * 4, name="c2"))
    x = b.op("Flatten", x)
    x = b.op("Softmax", b.gemm(x, 4 * 8 * 8, 5, name="fc"))
    return b.build([x])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    cnn, rnn = root / "cnn", root / "rnn"
    irc.compile(_cnn_kinds(), name="kinds").save(cnn)
    irc.compile(onnx_recurrent("LSTM", head="state"), name="seq").save(rnn)
    return {"cnn": cnn, "rnn": rnn}


def _kinds(folder) -> set[str]:
    payloads = json.loads((folder / "model.json").read_text())
    return {c["layer"]["type"] for c in payloads["addLayer"]}


def _copy(folder, tmp_path):
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


def _edit_json(folder, edit):
    path = folder / "model.json"
    payloads = json.loads(path.read_text())
    edit(payloads)
    path.write_text(json.dumps(payloads))


def test_the_models_hold_every_kind(folders):
    assert {"batchnorm", "groupconvo", "reshape", "convo", "output"} <= _kinds(folders["cnn"])
    assert "recurrent" in _kinds(folders["rnn"])


@pytest.mark.parametrize("which", ["cnn", "rnn"])
def test_every_kind_deploys(folders, tmp_path, which):
    conn = FakeCAS(caslibs={"CASUSER": str(tmp_path)})
    report = deploy(folders[which], conn)
    assert not conn.violations
    weighted = [layer["name"] for layer in conn.models[report.model]["layers"]
                if layer["weighted"]]
    with h5py.File(folders[which] / f"{report.model}_weights.kerasmodel.h5") as f:
        assert [n.decode() for n in f.attrs["layer_names"]] == weighted
    if which == "rnn":
        assert conn.params("deepLearn.buildModel")[0]["type"] == "RNN"
        assert any(layer["kind"] == "recurrent" for layer in conn.models["seq"]["layers"]
                   if layer["weighted"])


def test_a_cnn_type_for_a_recurrent_model_is_caught(folders, tmp_path):
    """Injected: buildModel type 'CNN' for a model with a recurrent layer (§3.1)."""
    folder = _copy(folders["rnn"], tmp_path)
    _edit_json(folder, lambda p: p["buildModel"].update(type="CNN"))
    with pytest.raises(StandInViolation, match="§3.1"):
        deploy(folder, FakeCAS(caslibs={"CASUSER": str(tmp_path)}))


def test_a_key_outside_the_spec_is_caught_through_deploy(folders, tmp_path, monkeypatch):
    """Injected: a reshape layer sent with a key §3.2 does not list; and deploy's error
    handling widened back to `except Exception` (the bug this replaced) still cannot hide it."""
    folder = _copy(folders["cnn"], tmp_path)

    def add_key(p):
        next(c for c in p["addLayer"] if c["layer"]["type"] == "reshape")["layer"]["dims"] = 3

    _edit_json(folder, add_key)
    conn = FakeCAS(caslibs={"CASUSER": str(tmp_path)})
    with pytest.raises(StandInViolation, match=r"reshape.*\['dims'\]"):
        deploy(folder, conn)
    assert conn.violations


def test_recurrent_weights_are_checked_by_the_spec(folders, tmp_path):
    """Injected: the recurrent kernel written transposed (G*n, d) instead of (d, G*n) (§5.5)."""
    folder = _copy(folders["rnn"], tmp_path)
    with h5py.File(folder / "seq_weights.kerasmodel.h5", "r+") as f:
        name = next(n.decode() for n in f.attrs["layer_names"]
                    if "kernel:0" in f[n.decode()][n.decode()]
                    and "recurrent_kernel:0" in f[n.decode()][n.decode()])
        kernel = f[name][name]["kernel:0"][...]
        del f[name][name]["kernel:0"]
        f[name][name]["kernel:0"] = kernel.T
    with pytest.raises(StandInViolation, match="§5.5"):
        deploy(folder, FakeCAS(caslibs={"CASUSER": str(tmp_path)}))


def test_a_recurrent_layer_missing_from_the_file_is_a_mismatch_not_a_missing_file(folders,
                                                                                    tmp_path):
    """Injected: the HDF5 written without the recurrent layer (the stand-in counts recurrent
    layers as weighted, as §5.2 does); the server's "Model layer name not found in Keras
    definition" is WeightsDoNotMatch, not WeightsNotVisible."""
    folder = _copy(folders["rnn"], tmp_path)
    with h5py.File(folder / "seq_weights.kerasmodel.h5", "r+") as f:
        names = list(f.attrs["layer_names"])
        rnn = next(n for n in names if "recurrent_kernel:0" in f[n.decode()][n.decode()])
        f.attrs["layer_names"] = [n for n in names if n != rnn]
    with pytest.raises(WeightsDoNotMatch, match="Keras definition") as err:
        deploy(folder, FakeCAS(caslibs={"CASUSER": str(tmp_path)}))
    assert not isinstance(err.value, WeightsNotVisible)


def test_a_missing_file_is_still_weights_not_visible(folders):
    conn = FakeCAS(weights_missing=True)
    conn.put_file("CASUSER", "kinds_weights.kerasmodel.h5",
                  (folders["cnn"] / "kinds_weights.kerasmodel.h5").read_bytes())
    with pytest.raises(WeightsNotVisible, match="found no file"):
        deploy(folders["cnn"], conn)


def test_only_swat_errors_become_action_failures(folders, tmp_path, monkeypatch):
    """A bug in irc (here: a TypeError from the connection) surfaces as itself; a swat error
    is an ActionFailed."""
    import swat

    conn = FakeCAS(caslibs={"CASUSER": str(tmp_path)})
    monkeypatch.setattr(conn, "retrieve", lambda *a, **k: (_ for _ in ()).throw(TypeError("x")))
    with pytest.raises(TypeError):
        deploy(folders["cnn"], conn)

    def swat_fails(*a, **k):
        raise swat.SWATError("connection reset")

    monkeypatch.setattr(conn, "retrieve", swat_fails)
    with pytest.raises(ActionFailed, match="connection reset"):
        deploy(folders["cnn"], conn)


def test_a_detection_model_deploys_and_its_casl_matches(tmp_path):
    """A YOLOv2 head (Viya's detection layer after the grid): the stand-in takes the layer with
    DLPy's Detection parameters, weights for every other layer, and model.sas sends the same
    addLayer calls as model.json."""
    from irc.backends.viya.casl import write_casl
    from tests.deploy.casl_parser import parse_casl, same
    from tests.detection.test_detection_layer import ANCHORS, tiny_yolo

    folder = tmp_path / "yolo"
    irc.compile(tiny_yolo(classes=4), name="yolo", detection={
        "version": "yolov2", "classes": 4, "boxes": 5, "anchors": ANCHORS}).save(folder)
    payloads = json.loads((folder / "model.json").read_text())
    assert payloads["addLayer"][-1]["layer"]["type"] == "detection"
    conn = FakeCAS(caslibs={"CASUSER": str(tmp_path)})
    report = deploy(folder, conn, check=False)
    assert not conn.violations
    kinds = [layer["kind"] for layer in conn.models[report.model]["layers"]]
    assert kinds[-1] == "detection"
    calls = [params for name, params in parse_casl(write_casl(payloads))["actions"]
             if name == "deepLearn.addLayer"]
    assert same(calls[-1], payloads["addLayer"][-1])
