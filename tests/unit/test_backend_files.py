"""The Viya artifacts: HDF5 layout per viya-target.md §5, payloads, and the model table's
vocabulary checked against tables written by a real Viya server."""
import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import irc
from irc.backends.viya.table import TableNotExpressible
from irc.utils.onnx_builder import OnnxBuilder

ROOT = Path(__file__).resolve().parents[2]
TABLES = ROOT / "tests" / "fixtures" / "viya-tables"   # written by a Viya server


@pytest.fixture(scope="module")
def example_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("ex") / "small_cnn"
    irc.compile(ROOT / "examples" / "small_cnn.onnx").save(out)
    return out


def test_example_folder_holds_the_artifacts(example_out):
    names = sorted(p.name for p in example_out.iterdir())
    # the residual layer has no confirmed table code, so the table is (rightly) absent
    assert names == ["check", "model.json", "model.sas", "name_map.json",
                     "small_cnn_weights.kerasmodel.h5"]
    payloads = json.loads((example_out / "model.json").read_text())
    assert any("model_table.csv not written" in n and "res_add" in n for n in payloads["notes"])


def test_hdf5_layout_matches_the_spec(example_out):
    payloads = json.loads((example_out / "model.json").read_text())
    layers = {c["name"]: c["layer"] for c in payloads["addLayer"]}
    weighted = [n for n, l in layers.items() if l["type"] in ("convo", "groupconvo", "fc", "batchnorm")
                or (l["type"] == "output" and l["fullconnect"])]
    with h5py.File(example_out / "small_cnn_weights.kerasmodel.h5", "r") as f:
        assert list(f.attrs) == ["layer_names"]
        names = f.attrs["layer_names"]
        assert names.dtype.kind == "S"  # fixed-length byte strings, the Keras convention
        assert [n.decode() for n in names] == weighted  # addLayer order, weighted layers only
        assert set(f.keys()) == set(weighted)
        for name in weighted:
            layer = layers[name]
            group = f[name]
            expected = ["kernel", "bias"] if layer.get("includebias", False) else ["kernel"]
            if layer["type"] == "batchnorm":
                expected = ["gamma", "beta", "moving_mean", "moving_variance"]
            assert [w.decode() for w in group.attrs["weight_names"]] == \
                [f"{name}/{w}:0" for w in expected]
            for w in expected:
                ds = f[f"{name}/{name}/{w}:0"]
                assert ds.dtype == np.float32
            kernel = f[f"{name}/{name}/kernel:0"]
            if layer["type"] == "convo":
                assert kernel.shape[0] == layer["nfilters"]
                assert kernel.shape[2:] == (layer["height"], layer["width"])
            elif layer["type"] in ("fc", "output"):
                assert kernel.shape[0] == layer["n"]


def test_payloads_are_complete(example_out):
    payloads = json.loads((example_out / "model.json").read_text())
    assert payloads["buildModel"] == {"model": {"name": "small_cnn", "replace": True}, "type": "CNN"}
    calls = payloads["addLayer"]
    assert calls[0]["layer"]["type"] == "input" and "srcLayers" not in calls[0]
    seen = set()
    for call in calls:
        assert call["model"] == "small_cnn"
        assert all(src in seen for src in call.get("srcLayers", []))  # topological order
        seen.add(call["name"])
        layer = call["layer"]
        if layer["type"] in ("convo", "fc", "output", "batchnorm", "residual", "concat"):
            assert layer["act"] != "auto"  # always explicit (trap 15)
        if layer["type"] in ("convo", "pool"):
            assert {"stridevertical", "stridehorizontal"} <= set(layer)
            assert ("paddingheight" in layer) == ("paddingwidth" in layer)
    assert payloads["dlImportModelWeights"]["formatType"] == "KERAS"


def _vgg_like():
    b = OnnxBuilder("vgg_like", (1, 3, 32, 32), seed=3)
    x = b.input
    for block, (convs, ch) in enumerate([(2, 8), (2, 16), (3, 16)], 1):
        for i in range(1, convs + 1):
            x = b.op("Relu", b.conv(x, ch, 3, pads=[1, 1, 1, 1], name=f"conv{block}_{i}"))
        x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2], name=f"pool{block}")
    x = b.op("Flatten", x)
    x = b.op("Relu", b.gemm(x, 16 * 4 * 4, 32, name="fc6"))
    x = b.op("Dropout", x)
    x = b.op("Relu", b.gemm(x, 32, 32, name="fc7"))
    x = b.op("Softmax", b.gemm(x, 32, 2, name="fc8"))
    return b.build([x])


def _vocabulary(rows):
    """(layer type label, key) -> ChrVal label (for enums) or key tail, and the code for enums."""
    types = {r[0]: r[2] for r in rows if r[1] == "layertype"}
    vocab = {}
    for key0, key1, chrval, numval, _ in rows:
        if key1 in ("layertype", "modeltype") or key1.startswith("srclayers"):
            continue
        key = key1.rsplit(".", 1)[0] if key1.split(".")[-1].isdigit() else key1
        is_enum = chrval != key.split(".")[-1]
        vocab[(types[key0], key)] = (chrval, float(numval)) if is_enum else (chrval, None)
    return vocab


def test_model_table_uses_the_server_vocabulary(tmp_path):
    model = irc.compile(_vgg_like(), name="vgg_like",
                        input_options={"offsets": [103.939, 116.779, 123.68]})
    ours = [tuple(r) for r in model.to_frame().itertuples(index=False)]
    with open(TABLES / "vgg16.csv", newline="") as f:
        theirs = [tuple(r) for r in csv.reader(f)][1:]
    mine, real = _vocabulary(ours), _vocabulary(theirs)
    for key, (label, code) in real.items():
        if key[1].endswith((".dropout",)) and key[0] == "Full Connect Layer":
            continue  # vgg16 was trained with dropout; irc always writes 0 (trap 30)
        assert key in mine, f"missing {key}"
        assert mine[key][0] == label and mine[key][1] == code, (key, mine[key], (label, code))
    # Keys beyond vgg16's are exactly those newer server tables add (seen in YOLOv2/acoustic).
    newer = set()
    for name in ("YOLOV2_MULTISIZE.csv", "sample_acoustic_model.csv"):
        with open(TABLES / name, newline="") as f:
            newer |= {r[1] for r in list(csv.reader(f))[1:]}
    extra = {key for (_, key) in set(mine) - set(real)}
    assert extra and extra <= newer, extra - newer
    # layer types, codes and the model row exactly as the server writes them
    real_types = {(r[2], r[3]) for r in theirs if r[1] in ("layertype", "modeltype")}
    our_types = {(r[2], f"{r[3]:.1f}") for r in ours if r[1] in ("layertype", "modeltype")}
    assert our_types == real_types
    assert list(model.to_frame().columns) == ["_DLKey0_", "_DLKey1_", "_DLChrVal_", "_DLNumVal_",
                                              "_DLLayerID_"]


def test_srclayers_rows_name_source_and_its_id():
    frame = irc.compile(_vgg_like(), name="vgg_like").to_frame()
    ids = {r._1: r._5 for r in frame.itertuples() if r._2 == "layertype"}
    for r in frame.itertuples():
        if r._2.startswith("srclayers."):
            assert r._4 == ids[r._3] and r._5 > r._4


def test_table_refuses_unconfirmed_items_by_name():
    b = OnnxBuilder("t", (1, 3, 8, 8))
    x = b.op("Sigmoid", b.conv(b.input, 4, 3, pads=[1, 1, 1, 1], name="sig_conv"))
    model = irc.compile(b.build([x]))
    with pytest.raises(TableNotExpressible, match="sig_conv.*sigmoid"):
        model.to_frame()


def test_table_and_payloads_execute_identically(tmp_path):
    """Path (b) carries the same model as path (a): the executor gives the same numbers."""
    from irc.backends.viya.executor import execute, load_viya_model
    from irc.verify import verify

    source = _vgg_like()
    out = tmp_path / "o"
    irc.compile(source, name="vgg_like").save(out)
    assert (out / "model_table.csv").is_file()
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
    from_json = execute(load_viya_model(out / "model.json"), x)
    from_table = execute(load_viya_model(out / "model_table.csv"), x)
    assert from_json.keys() == from_table.keys()
    for name in from_json:
        np.testing.assert_array_equal(from_json[name], from_table[name])
    assert verify(source, out).ok


# ---- the layer schema (irc/backends/viya/schema.py) against server tables and its readers

def test_schema_table_labels_and_codes_are_the_servers():
    """Every (layertype label, code) and (act label, code) pair a server wrote is the schema's."""
    from irc.backends.viya import schema

    seen_types, seen_acts = set(), set()
    for path in TABLES.glob("*.csv"):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if not row["_DLNumVal_"].strip():
                    continue
                pair = (row["_DLChrVal_"], int(float(row["_DLNumVal_"])))
                if row["_DLKey1_"] == "layertype":
                    seen_types.add(pair)
                elif row["_DLKey1_"].endswith(".act"):
                    seen_acts.add(pair)
    assert seen_types and seen_acts
    for label, code in seen_types:
        kind = schema.KINDS[schema.by_code(code)]
        assert kind.table.label == label, (label, code)
    for label, code in seen_acts:
        assert schema.ACTIVATIONS[schema.act_by_code(code)].label == label, (label, code)


def test_payloads_refuse_an_option_the_schema_does_not_list():
    from irc.backends.viya.model import LoweredLayer, ViyaModel

    good = LoweredLayer("fc1", "fc", {"n": 3, "act": "relu", "includebias": True})
    assert ViyaModel("m", [good]).payloads()["addLayer"][0]["layer"]["n"] == 3
    typo = LoweredLayer("fc1", "fc", {"n": 3, "act": "relu", "include_bias": True})
    with pytest.raises(AssertionError, match="include_bias"):
        ViyaModel("m", [typo]).payloads()
    with pytest.raises(AssertionError, match="transconvo"):
        ViyaModel("m", [LoweredLayer("t", "transconvo", {})]).payloads()


# ---- lowering ---------------------------------------------------------------------------------

def test_lowering_registry_refuses_a_second_handler_for_an_op():
    from irc.backends.viya.lowering.registry import SEQUENCE, LoweringRegistry

    reg = LoweringRegistry()
    reg.register("Conv")(lambda ctx, node: None)
    reg.register("Conv", reads=SEQUENCE)(lambda ctx, node: None)  # another reading: fine
    with pytest.raises(AssertionError, match="two lowerings for Conv reading tensor"):
        reg.register("Conv")(lambda ctx, node: None)
    with pytest.raises(ValueError, match="reads must be one of"):
        reg.register("Conv", reads="image")


def test_lowering_covers_the_ir_ops_viya_computes():
    """What lower() dispatches is the registry (driver import fills it): each family's ops."""
    from irc.backends.viya import lower  # noqa: F401 - registers the handlers
    from irc.backends.viya.lowering.registry import ANY, LOWERINGS, SEQUENCE, STATE

    assert LOWERINGS.op_types() == sorted([
        "AveragePool", "BatchNormalization", "Concat", "Conv", "Dropout", "Flatten", "Gemm",
        "GlobalAveragePool", "GlobalMaxPool", "Identity", "MaxPool", "Reshape", "Softmax",
        "Squeeze", "Sum", "Unsqueeze"])
    assert LOWERINGS.op_types(ANY) == ["GRU", "LSTM", "RNN"]
    assert "MatMul" in LOWERINGS.op_types(SEQUENCE) and "Flatten" in LOWERINGS.op_types(STATE)


def test_stored_weights_are_streamed_not_computed_whole():
    """const_weight gives each stored weight its expression (LazyWeight.of), so the HDF5 writer
    copies it block by block; only a transformed weight (eps added) is computed."""
    model = irc.compile(ROOT / "examples" / "small_cnn.onnx")
    for layer in model.layers:
        for name, weight in layer.weights.items():
            if name != "moving_variance":
                assert weight.expr is not None, (layer.name, name)
