"""deploy() against the swat stand-in: the call sequence and every parameter irc sends."""
from __future__ import annotations

import json

import h5py
import pytest

from irc.backends.viya.deploy import DeployError, WeightsNotVisible, deploy
from tests.deploy.fake_cas import FakeCAS

LABELS10 = [f"class {i}" for i in range(10)]


def _payloads(folder):
    return json.loads((folder / "model.json").read_text())


def _h5_values(path):
    sizes = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, o: sizes.append(o.size) if isinstance(o, h5py.Dataset) else None)
    return sum(sizes)


def test_example_with_labels_copies_into_a_shared_caslib(small_cnn, tmp_path):
    shared = tmp_path / "casuser"
    shared.mkdir()
    conn = FakeCAS(caslibs={"CASUSER": str(shared) + "/"})
    report = deploy(small_cnn, conn, labels=LABELS10, check=False)  # the check: test_check.py
    payloads = _payloads(small_cnn)
    n = len(payloads["addLayer"])
    # the weights are made visible (listed, copied, listed again) before anything is created
    assert conn.names() == (["builtins.loadActionSet", "table.caslibInfo", "table.fileInfo",
                             "table.fileInfo", "deepLearn.buildModel"]
                            + ["deepLearn.addLayer"] * n
                            + ["table.upload", "deepLearn.dlImportModelWeights",
                               "table.tableExists", "table.tableExists", "simple.numRows",
                               "simple.numRows"])
    assert conn.params("builtins.loadActionSet") == [{"actionSet": "deepLearn"}]
    assert conn.params("table.caslibInfo") == [{"active": True}]
    assert conn.params("deepLearn.buildModel") == [payloads["buildModel"]]
    # exactly model.json's addLayer kwargs, in order (srcLayers order included)
    assert conn.params("deepLearn.addLayer") == payloads["addLayer"]
    by_name = {p["name"]: p for p in conn.params("deepLearn.addLayer")}
    assert by_name["res_add"]["srcLayers"] == ["stem_pool", "res_conv2"]
    assert by_name["branches"]["srcLayers"] == ["branch1_conv", "branch3_conv", "branch5_conv"]
    assert "srcLayers" not in by_name["input"]
    # the label table: label_id int64 0-based, label fixed-length char
    upload = conn.params("table.upload")[0]
    assert upload["casout"] == {"name": "small_cnn_labels", "replace": True}
    assert upload["importoptions"] == {"filetype": "csv", "vars": [
        {"name": "label_id", "type": "int64"}, {"name": "label", "type": "char", "length": 7}]}
    labels = conn.tables["small_cnn_labels"]
    assert labels["label_id"].tolist() == list(range(10))
    assert labels["label"].tolist() == LABELS10
    [imp] = conn.params("deepLearn.dlImportModelWeights")
    assert imp == {"model": "small_cnn",
                   "modelWeights": {"name": "small_cnn_weights", "replace": True},
                   "formatType": "KERAS", "weightFilePath": "small_cnn_weights.kerasmodel.h5",
                   "caslib": "CASUSER", "labelTable": {"name": "small_cnn_labels"}}
    assert conn.params("simple.numRows")[0] == {
        "table": {"name": "small_cnn", "where": "_DLKey1_ = 'layertype'"}}
    # the copy is byte-identical and the report says what happened
    local = small_cnn / "small_cnn_weights.kerasmodel.h5"
    assert (shared / local.name).read_bytes() == local.read_bytes()
    assert report.placed_weights and report.caslib == "CASUSER"
    assert report.layers == n and report.weight_rows == _h5_values(local)
    assert report.label_table == "small_cnn_labels" and not report.notes
    assert "small_cnn" in report.summary()


def test_example_with_server_path_and_no_labels(small_cnn):
    conn = FakeCAS(caslibs={"CASUSER": "/cas/data/casuser/", "MODELS": "/cas/models/"})
    data = (small_cnn / "small_cnn_weights.kerasmodel.h5").read_bytes()
    conn.put_file("MODELS", "irc/small_cnn_weights.kerasmodel.h5", data)
    report = deploy(small_cnn, conn, caslib="models",
                    server_path="irc/small_cnn_weights.kerasmodel.h5", check=False)
    assert conn.params("table.caslibInfo") == [{"caslib": "models"}]
    assert conn.params("table.fileInfo") == [{"caslib": "MODELS", "allFiles": True,
                                             "path": "irc"}]
    assert "table.upload" not in conn.names()
    [imp] = conn.params("deepLearn.dlImportModelWeights")
    assert imp["weightFilePath"] == "irc/small_cnn_weights.kerasmodel.h5"
    assert imp["caslib"] == "MODELS" and "labelTable" not in imp
    assert not report.placed_weights and report.label_table is None


def test_absolute_server_path_under_the_caslib_becomes_relative(small_cnn):
    conn = FakeCAS(caslibs={"MODELS": "/cas/models/"}, active="MODELS")
    data = (small_cnn / "small_cnn_weights.kerasmodel.h5").read_bytes()
    conn.put_file("MODELS", "w.h5", data)
    report = deploy(small_cnn, conn, server_path="/cas/models/w.h5", upload_weights=False)
    assert report.weight_file_path == "w.h5"
    assert conn.params("deepLearn.dlImportModelWeights")[0]["weightFilePath"] == "w.h5"


@pytest.mark.parametrize("with_labels", [False, True])
def test_vgg_through_the_model_table(vgg, tmp_path, with_labels):
    shared = tmp_path / "lib"
    shared.mkdir()
    labels = None
    if with_labels:
        labels = tmp_path / "labels.csv"
        labels.write_text("label_id,label\n" + "".join(f'{i},"cat, {i}"\n' for i in
                                                       (4, 3, 2, 1, 0)))
    conn = FakeCAS(caslibs={"CASUSER": str(shared)})
    report = deploy(vgg, conn, use_table=True, labels=labels, check=False)
    assert "deepLearn.buildModel" not in conn.names()
    assert "deepLearn.addLayer" not in conn.names()
    table = conn.params("table.upload")[0]
    assert table["casout"] == {"name": "vgg_like", "replace": True}
    assert table["importoptions"]["vars"] == [
        {"name": "_DLKey0_", "type": "varchar"}, {"name": "_DLKey1_", "type": "varchar"},
        {"name": "_DLChrVal_", "type": "varchar"}, {"name": "_DLNumVal_", "type": "double"},
        {"name": "_DLLayerID_", "type": "double"}]
    n = len(_payloads(vgg)["addLayer"])
    assert report.used_table and report.layers == n
    assert [layer["name"] for layer in conn.models["vgg_like"]["layers"]] == \
        [c["name"] for c in _payloads(vgg)["addLayer"]]
    imp = conn.params("deepLearn.dlImportModelWeights")[0]
    if with_labels:
        assert imp["labelTable"] == {"name": "vgg_like_labels"}
        # ids given out of order in the file; the table is in neuron order
        assert conn.tables["vgg_like_labels"]["label"].tolist() == [f"cat, {i}" for i in
                                                                   range(5)]
        assert conn.params("table.upload")[1]["importoptions"]["vars"][1]["length"] == 6
    else:
        assert "labelTable" not in imp and len(conn.params("table.upload")) == 1


def test_use_table_needs_the_csv(small_cnn):
    conn = FakeCAS()
    with pytest.raises(DeployError, match="no model_table.csv.*res_add"):
        deploy(small_cnn, conn, use_table=True)
    assert conn.calls == []  # refused before talking to the server


def test_replace_false_is_sent(small_cnn, tmp_path):
    conn = FakeCAS(caslibs={"CASUSER": str(tmp_path)})
    deploy(small_cnn, conn, replace=False)
    assert conn.params("deepLearn.buildModel")[0]["model"] == {"name": "small_cnn",
                                                               "replace": False}


def test_stale_file_on_the_server_is_not_used(small_cnn):
    conn = FakeCAS()
    conn.put_file("CASUSER", "small_cnn_weights.kerasmodel.h5", b"an older file")
    with pytest.raises(WeightsNotVisible, match="different.*13 bytes"):
        deploy(small_cnn, conn)
    assert "deepLearn.dlImportModelWeights" not in conn.names()


def test_identical_server_file_is_used_without_copying(small_cnn):
    conn = FakeCAS()
    data = (small_cnn / "small_cnn_weights.kerasmodel.h5").read_bytes()
    conn.put_file("CASUSER", "small_cnn_weights.kerasmodel.h5", data)
    report = deploy(small_cnn, conn)
    assert not report.placed_weights and report.weight_rows > 0


def test_copy_the_server_does_not_see_is_caught(small_cnn, tmp_path):
    """The caslib path exists here too, but is another disk than the server's."""
    conn = FakeCAS(caslibs={"CASUSER": str(tmp_path)}, sees_local=False)
    with pytest.raises(WeightsNotVisible, match="see different files"):
        deploy(small_cnn, conn)


def test_save_writes_both_tables_into_the_caslib(small_cnn):
    conn = FakeCAS(caslibs={"CASUSER": "/cas/data/casuser/", "MODELS": "/cas/models/"})
    data = (small_cnn / "small_cnn_weights.kerasmodel.h5").read_bytes()
    conn.put_file("MODELS", "small_cnn_weights.kerasmodel.h5", data)
    report = deploy(small_cnn, conn, caslib="MODELS", save=True, check=False)
    assert conn.params("table.attribute") == [
        {"task": "convert", "name": "small_cnn_weights", "attrtable": "small_cnn_weights_attr"}]
    tables = ["small_cnn", "small_cnn_weights", "small_cnn_weights_attr"]
    assert conn.params("table.save") == [
        {"table": {"name": t}, "name": f"{t}.sashdat", "caslib": "MODELS", "replace": True}
        for t in tables]
    assert conn.names()[-4:] == ["table.attribute"] + ["table.save"] * 3
    assert report.saved == [f"{t}.sashdat" for t in tables]
    assert ("MODELS", "small_cnn_weights.sashdat") in conn.files
    assert "small_cnn_weights_attr.sashdat" in report.summary()
