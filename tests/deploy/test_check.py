"""irc deploy --check through the stand-in: the check set is uploaded as it was written, dlScore
is called with DLPy's parameters, and the stand-in answers with what the files it received
compute (irc's executor), so a good folder matches and a folder whose weights were corrupted
after compile exits 1 naming the first diverging checked layer.

Tolerances: the check's own, rtol 1e-4 / atol 1e-5 of each output's scale (irc verify's
defaults, stored in checkset.json); the stand-in runs the same executor as the compile, so a
good folder matches to float32 rounding and a corrupted one misses by far more.
"""
from __future__ import annotations

import csv
import json
import shutil
import time

import h5py
import numpy as np
import pytest

import irc
from irc.backends.viya.checkset import (CHECK_DIR, load_check_set, source_input,
                                        write_check_set)
from irc.backends.viya.deploy import deploy
from irc.backends.viya.servercheck import check_table, score_params
from irc.frontends.source import open_source
from irc.utils.onnx_builder import OnnxBuilder
from irc.verify import viya_input
from tests.deploy.conftest import vgg_like
from tests.deploy.fake_cas import FakeCAS
from tests.deploy.fake_score import RECORD
from tests.recurrent.conftest import onnx_recurrent


def _deploy(folder, tmp_path, **options):
    """Deploy into a fresh shared caslib (a file of the same size already there would be
    taken as this one: deploy compares sizes, and a corrupted copy has the same size)."""
    import tempfile

    conn = FakeCAS(caslibs={"CASUSER": tempfile.mkdtemp(dir=tmp_path)})
    return deploy(folder, conn, **options), conn


def _corrupt(folder, tmp_path, layer, edit):
    target = tmp_path / "corrupt" / folder.name
    shutil.copytree(folder, target)
    with h5py.File(target / f"{folder.name}_weights.kerasmodel.h5", "r+") as f:
        group = f[layer][layer]
        name = next(k for k in group if k.startswith("kernel"))
        group[name][...] = edit(group[name][...])
    return target


def test_check_set_is_small_exact_and_quick(small_cnn, tmp_path):
    check = small_cnn / CHECK_DIR
    sizes = {p.name: p.stat().st_size for p in check.iterdir()}
    assert set(sizes) == {"inputs.csv", "checkset.npz", "checkset.json"}
    assert sum(sizes.values()) < 300 * 1024, sizes  # measured: 167 KB for 3 x (3, 32, 32)
    data = load_check_set(small_cnn)
    meta, raw = data["meta"], data["raw"]
    with open(check / "inputs.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ["_id_", "x_0"] and len(rows) == meta["examples"] + 1
    text = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    assert np.array_equal(text, raw)  # the decimal text holds the values exactly
    assert np.array_equal(raw, raw.astype(np.float32).astype(np.float64))  # so does float32
    assert np.array_equal(np.round(raw / meta["grid_step"]) * meta["grid_step"], raw)
    assert 0.5 < raw.std() < 2  # standard-normal source inputs, not a degenerate grid
    # the time it adds to a compile: build it again beside the compiled folder
    again = tmp_path / "again"
    shutil.copytree(small_cnn, again)
    shutil.rmtree(again / CHECK_DIR)
    start = time.perf_counter()
    write_check_set(again, open_source(irc.__path__[0] + "/../examples/small_cnn.onnx"))
    elapsed = time.perf_counter() - start
    assert elapsed < 5, elapsed  # measured: ~0.3 s
    assert np.array_equal(load_check_set(again)["raw"], raw)  # seeded: the same examples


def test_source_inputs_are_what_the_input_layer_makes_of_the_raw_values(tmp_path):
    """With scale 1/255, BGR offsets and an RGB-trained source the raw values are integers, and
    the source input is Viya's (x*scale - offsets)/normstds with the channels reversed."""
    out = tmp_path / "pre"
    irc.compile(vgg_like(), name="pre", input_options={
        "scale": 1 / 255, "offsets": [0.5, 0.4, 0.3], "normstds": [0.25, 0.5, 0.25],
        "channel_order": "rgb"}).save(out)
    payloads = json.loads((out / "model.json").read_text())
    raw = load_check_set(out)["raw"]
    assert np.array_equal(raw, np.round(raw))  # integer-valued images
    y = source_input(payloads, raw)
    assert np.allclose(viya_input(payloads, y).reshape(raw.shape), raw, atol=1e-3)
    layer = payloads["addLayer"][0]["layer"]
    bgr = raw.reshape(-1, 3, 32, 32)[:, 0]  # Viya's channel 0 (B) is the source's channel 2
    expected = (bgr * np.float64(layer["scale"]) - layer["offsets"][0]) / layer["normstds"][0]
    assert np.allclose(y[:, 2], expected, atol=1e-5)


def test_good_classifier_matches_and_dlscore_is_called_as_dlpy_does(small_cnn, tmp_path):
    report, conn = _deploy(small_cnn, tmp_path)
    assert report.check is not None and report.check.ok and report.check.first_bad is None
    assert not report.check_failed and "all outputs match" in report.summary()
    data = load_check_set(small_cnn)
    meta = data["meta"]
    # the uploaded table is the check set, every column a double
    upload = conn.params("table.upload")[-1]
    assert upload["casout"] == {"name": check_table("small_cnn"), "replace": True}
    assert [v["name"] for v in upload["importoptions"]["vars"]] == \
        ["_id_"] + [f"x_{i}" for i in range(meta["values"])]
    table = conn.tables[check_table("small_cnn")]
    assert np.array_equal(table[[f"x_{i}" for i in range(meta["values"])]].to_numpy(),
                          data["raw"])
    # one dlScore per example and checked layer, exactly these parameters
    calls = conn.params("deepLearn.dlScore")
    expected = [score_params(meta, "small_cnn", k, c["layer"]) for c in meta["checked"]
                for k in range(1, meta["examples"] + 1)]
    assert calls == expected
    assert {c["layer"] for c in meta["checked"]} >= {"classifier"}
    # DLPy 1.3's own values for what both send (predict with layer_out; get_features for the
    # layer image type: one value a column)
    record = json.loads(RECORD.read_text())["calls"]
    dlpy = {k.lower(): v for k, v in record["predict_layer_out/CNN"][0].items()}
    features = {k.lower(): v for k, v in record["get_features/CNN"][0].items()}
    for key, value in calls[0].items():
        key = key.lower()
        if key in ("randomflip", "randomcrop", "randommutation", "encodename"):
            assert value == dlpy[key], key
        elif key in ("layerout", "casout"):
            assert value["replace"] is dlpy[key]["replace"] is True
        elif key == "layerimagetype":
            assert value == features[key]
        else:
            assert key in dlpy or key == "dataspecs", key
    spec = calls[0]["dataSpecs"][0]
    assert spec == {"type": "NUMERICNOMINAL", "layer": "input",
                    "data": [f"x_{i}" for i in range(meta["values"])]}


def test_labels_name_the_predicted_class(small_cnn, tmp_path):
    report, _ = _deploy(small_cnn, tmp_path, labels=[f"c{i}" for i in range(10)])
    assert report.check.ok
    assert any("top class in 3 of 3" in n for n in report.check.result.notes)


def test_corrupted_weights_are_a_mismatch_at_the_first_diverging_layer(small_cnn, tmp_path,
                                                                      monkeypatch, capsys):
    """res_conv1's kernel scaled by 1.01 after compile: the first checked layer after it is
    res_conv1 itself; the output misses too. Through the CLI: exit 1, the layer named."""
    folder = _corrupt(small_cnn, tmp_path, "res_conv1", lambda k: k * 1.01)
    report, _ = _deploy(folder, tmp_path)
    assert report.check_failed and report.check.first_bad == "res_conv1"
    rows = {c.viya_layer: c for c in report.check.result.comparisons}
    assert rows["classifier"].ok is False and rows["res_conv1"].margin > 10
    from irc.backends.viya import deploy as dep
    from irc.cli import main

    monkeypatch.setattr(dep, "connect", lambda *a, **k: FakeCAS(caslibs={
        "CASUSER": __import__("tempfile").mkdtemp(dir=tmp_path)}))
    assert main(["deploy", str(folder), "--host", "h", "--port", "5570"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "first diverging checked layer: res_conv1" in out
    assert main(["deploy", str(folder), "--host", "h", "--port", "5570", "--no-check"]) == 0
    assert "check on the server" not in capsys.readouterr().out


def test_a_later_layer_is_named_when_the_first_ones_are_right(small_cnn, tmp_path):
    """branch5_conv corrupted: res_conv1 and branch1_conv still match; branch5_conv is named."""
    folder = _corrupt(small_cnn, tmp_path, "branch5_conv", lambda k: k[::-1].copy())
    report, _ = _deploy(folder, tmp_path)
    rows = {c.viya_layer: c.ok for c in report.check.result.comparisons}
    assert rows["res_conv1"] and rows["branch1_conv"]
    assert report.check.first_bad == "branch5_conv"


def _regression():
    b = OnnxBuilder("reg", (1, 2, 6, 6), seed=4)
    x = b.op("Relu", b.conv(b.input, 4, 3, pads=[1] * 4, name="conv"))
    x = b.op("Flatten", x)
    return b.build([b.gemm(b.op("Relu", b.gemm(x, 4 * 36, 8, name="hidden")), 8, 2,
                           name="head")])


def test_regression_head(tmp_path):
    out = tmp_path / "reg"
    irc.compile(_regression(), name="reg").save(out)
    report, conn = _deploy(out, tmp_path)
    assert report.check.ok
    assert "_DL_Pred_" in conn.tables["reg_check_scored"].columns
    bad = _corrupt(out, tmp_path, "hidden", lambda k: -k)
    report, _ = _deploy(bad, tmp_path)
    assert report.check_failed and report.check.first_bad == "hidden"


@pytest.mark.parametrize("op,direction", [("LSTM", "forward"), ("GRU", "forward"),
                                          ("RNN", "forward"), ("LSTM", "bidirectional")])
def test_recurrent_models(tmp_path, op, direction):
    out = tmp_path / "seq"
    irc.compile(onnx_recurrent(op, direction, head="state"), name="seq").save(out)
    meta = load_check_set(out)["meta"]
    assert meta["sequence"] == {"steps": 6, "token_size": 4}
    report, conn = _deploy(out, tmp_path)
    assert report.check.ok, report.summary()
    call = conn.params("deepLearn.dlScore")[0]
    assert call["encodeName"] is False  # as DLPy's predict for RNN models
    assert call["dataSpecs"][0]["numericNominalParms"] == {"length": "_length_",
                                                           "tokenSize": 4}
    recurrent = [c["name"] for c in json.loads((out / "model.json").read_text())["addLayer"]
                 if c["layer"]["type"] == "recurrent"]
    bad = _corrupt(out, tmp_path, recurrent[-1], lambda k: k * 1.05)
    report, _ = _deploy(bad, tmp_path)
    assert report.check_failed


def test_no_check_set_is_said(small_cnn, tmp_path):
    folder = tmp_path / "old" / "small_cnn"
    shutil.copytree(small_cnn, folder)
    shutil.rmtree(folder / CHECK_DIR)
    report, conn = _deploy(folder, tmp_path)
    assert report.check is None and "deepLearn.dlScore" not in conn.names()
    assert any("no check set" in n for n in report.notes)


def test_a_large_input_keeps_its_examples_in_the_npz_only(tmp_path):
    """3 x 160 x 160: one example; its CSV would pass CSV_MAX, so check/ keeps the compact .npz
    and deploy writes the CSV when it uploads; model.sas says to run irc deploy --check."""
    b = OnnxBuilder("wide", (1, 3, 160, 160), seed=2)
    x = b.op("Relu", b.conv(b.input, 4, 3, stride=4, pads=[1] * 4, name="c1"))
    x = b.op("Flatten", b.op("GlobalAveragePool", x, name="gap"))
    b.channels[x] = 4
    out = tmp_path / "wide"
    irc.compile(b.build([b.op("Softmax", b.gemm(x, 4, 3, name="fc"))]), name="wide").save(out)
    files = {p.name: p.stat().st_size for p in (out / CHECK_DIR).iterdir()}
    assert set(files) == {"checkset.npz", "checkset.json"} and sum(files.values()) < 300 * 1024
    assert load_check_set(out)["meta"]["examples"] == 1
    assert "too large for a CSV" in (out / "model.sas").read_text()
    report, conn = _deploy(out, tmp_path)
    assert report.check.ok
    assert np.array_equal(conn.tables[check_table("wide")].iloc[:, 1:].to_numpy(),
                          load_check_set(out)["raw"])


def test_no_verify_writes_no_check_set_and_a_failure_is_a_note(tmp_path, monkeypatch, capsys):
    from irc.backends.viya import checkset
    from irc.cli import main

    model = str(irc.__path__[0] + "/../examples/small_cnn.onnx")
    out = tmp_path / "nv"
    assert main(["compile", model, "-o", str(out), "--no-verify"]) == 0
    assert not (out / CHECK_DIR).exists() and "no check set written" in capsys.readouterr().out

    def broken(*args):
        raise RuntimeError("the source runtime crashed")

    monkeypatch.setattr(checkset, "_run_source", broken)
    model_obj = irc.compile(model)
    model_obj.save(tmp_path / "broken")
    assert not (tmp_path / "broken" / CHECK_DIR).exists()
    assert any("RuntimeError: the source runtime crashed" in n for n in model_obj.notes)
    assert "action deepLearn.dlScore" not in (tmp_path / "broken" / "model.sas").read_text()


def test_through_the_model_table_too(vgg, tmp_path):
    report, conn = _deploy(vgg, tmp_path, use_table=True)
    assert "deepLearn.addLayer" not in conn.names() and report.check.ok


def test_a_failing_dlscore_is_said_not_hidden(small_cnn, tmp_path):
    """A server that refuses the call (injected failure of dlScore): the model is deployed, the
    check says it could not run, and the deploy counts as failed (exit 1)."""
    import tempfile

    conn = FakeCAS(caslibs={"CASUSER": tempfile.mkdtemp(dir=tmp_path)},
                   fail="deepLearn.dlScore")
    report = deploy(small_cnn, conn)
    assert report.layers > 0 and report.check_failed
    assert "could NOT run" in report.summary() and "injected failure" in report.summary()


def test_a_fixed_batch_source_gets_whole_runs(tmp_path):
    """An ONNX source that declares batch 2 (vgg_like with its batch fixed): the check set holds
    two examples (three would not be whole runs), and the server check matches."""
    proto = vgg_like()
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    out = tmp_path / "fixed"
    irc.compile(proto, name="fixed").save(out)
    assert load_check_set(out)["meta"]["examples"] == 2
    report, _ = _deploy(out, tmp_path)
    assert report.check.ok


def test_keras_channels_last_and_pytorch_sources(tmp_path):
    """The check set runs each framework's own runtime on the source's layout (Keras NHWC,
    PyTorch NCHW); the server check of the good folders matches, so the examples reached the
    source as Viya's input layer reads them."""
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ("tensorflow", "keras", "torch")):
        pytest.skip("Keras or PyTorch is not installed")
    from irc.frontends.keras.runtime import tf_modules
    import torch

    keras = tf_modules().keras
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    y = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.Flatten()(h))
    kmodel = keras.Model(x, y, name="k")
    rng = np.random.default_rng(0)
    kmodel.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                        for w in kmodel.get_weights()])
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
    for name, model, kwargs in [("k", kmodel, {}),
                                ("t", tmodel, {"example_inputs": (torch.zeros(1, 3, 8, 8),)})]:
        out = tmp_path / name
        irc.compile(model, name=name, **kwargs).save(out)
        assert (out / CHECK_DIR / "checkset.npz").is_file(), name
        report, _ = _deploy(out, tmp_path)
        assert report.check.ok, report.summary()


def test_no_check_set_when_the_check_examples_give_non_finite_values(tmp_path):
    """A source that overflows on the check examples (fuzz caffe-0027: mutated weights gave NaN)
    gets no check set and a note, and model.sas is still written (CASL has no NaN)."""
    import onnx.numpy_helper as nh

    from irc.utils.onnx_builder import OnnxBuilder

    b = OnnxBuilder("overflow", (1, 3, 8, 8), seed=1)
    model = b.build([b.conv(b.input, 4, 3, pads=[1] * 4, name="c1")])
    weight = next(t for t in model.graph.initializer if t.name.endswith("weight")
                  or len(t.dims) == 4)
    weight.CopyFrom(nh.from_array(np.full(tuple(weight.dims), 3e38, np.float32), weight.name))
    compiled = irc.compile(model, name="overflow")
    folder = compiled.save(tmp_path / "out")
    assert not (folder / "check").exists()
    assert any("no check set written" in n and "non-finite" in n for n in compiled.notes)
    assert (folder / "model.sas").is_file()
