"""Reading model.json / model_table.csv and the KERAS HDF5 file from disk."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from irc.backends.viya.executor import (execute, load_viya_model, read_model_table,
                                        run_folder)
from irc.errors import InvalidModel, UnsupportedOp

from .viya_files import input_layer, layer, write_folder, write_table_csv, write_weights_h5

F32 = np.float32
TABLES = Path(__file__).resolve().parents[1] / "fixtures" / "viya-tables"   # server-written
rng = np.random.default_rng(7)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(F32)


# ----------------------------------------------------------------------------- a small model
# data 3x12x10 → conv1 3x3 auto/relu → bn1 leaky → pool1 max 2x2/2 auto → conv2 3x3/2 pad 1
# no bias → fc1 relu 8 → output softmax 3

OFFSETS = [10.0, 20.0, 30.0]


def small_payloads():
    return [
        input_layer(3, 12, 10, scale=1 / 255, offsets=[o / 255 for o in OFFSETS]),
        layer("conv1", "convo", ["data"], nfilters=4, width=3, height=3, stridevertical=1,
              stridehorizontal=1, act="relu", includebias=True),
        layer("bn1", "batchnorm", ["conv1"], act="leaky"),
        layer("pool1", "pool", ["bn1"], width=2, height=2, stridevertical=2,
              stridehorizontal=2, pool="max"),
        layer("conv2", "convo", ["pool1"], nfilters=6, width=3, height=3, stridevertical=2,
              stridehorizontal=2, act="identity", includebias=False, paddingheight=1,
              paddingwidth=1),
        layer("fc1", "fc", ["conv2"], n=8, act="relu", includebias=True),
        layer("output", "output", ["fc1"], n=3, act="softmax", includebias=True,
              fullconnect=True, error="auto"),
    ]


def small_weights():
    return {
        "conv1": {"kernel": randn(4, 3, 3, 3), "bias": randn(4)},
        "bn1": {"gamma": randn(4), "beta": randn(4), "moving_mean": randn(4, scale=0.1),
                "moving_variance": rng.uniform(0.5, 2, 4).astype(F32)},
        "conv2": {"kernel": randn(6, 4, 3, 3)},
        "fc1": {"kernel": randn(8, 6 * 3 * 3, scale=0.3), "bias": randn(8)},
        "output": {"kernel": randn(3, 8), "bias": randn(3)},
    }


def conv_rows(name, lid, src, src_id, filters, k, stride, pad, act, no_bias):
    rows = [(name, "layertype", "Convolution Layer", 2, lid),
            (name, "convopts.act", *act, lid), (name, "convopts.dropout", "dropout", 0, lid),
            (name, "convopts.init", "Xavier", 1, lid)]
    numeric = dict(height=k, width=k, initbias=0, mean=0, nfilters=filters, no_bias=no_bias,
                   std=1, stride=stride, stride_height=stride, stride_width=stride,
                   truncfact=0, pad_top=pad, pad_bottom=pad, pad_left=pad, pad_right=pad)
    rows += [(name, f"convopts.{k_}", k_, v, lid) for k_, v in numeric.items()]
    return rows + [(name, "srclayers.0", src, src_id, lid)]


def small_table_rows():
    """The small model as a server would store it (viya-target.md §4.2-§4.5 key strings)."""
    rows = [("small", "modeltype", "Convolutional Neural Network", 2, None),
            ("data", "layertype", "Input Layer", 1, 0),
            ("data", "inputopts.crop", "No cropping", 1, 0),
            ("data", "inputopts.flip", "No flipping", 1, 0),
            ("data", "inputopts.mutation", "No mutations", 1, 0),
            ("data", "inputopts.std", "No Standardization", 2, 0),
            ("data", "inputopts.dropout", "dropout", 0, 0),
            ("data", "inputopts.nchannels", "nchannels", 3, 0),
            ("data", "inputopts.height", "height", 12, 0),
            ("data", "inputopts.width", "width", 10, 0),
            ("data", "inputopts.scale", "scale", 1 / 255, 0)]
    # offsets rows deliberately out of order: the index in the key decides the position
    rows += [("data", f"inputopts.offsets.{i}", "offsets", OFFSETS[i] / 255, 0)
             for i in (2, 0, 1)]
    rows += conv_rows("conv1", 1, "data", 0, 4, 3, 1, -1, ("Rectifier", 8), 0)
    rows += [("bn1", "layertype", "Batch Normalization Layer", 8, 2),
             ("bn1", "bnopts.act", "Leaky Activation function", 12, 2),
             ("bn1", "srclayers.0", "conv1", 1, 2)]
    rows += [("pool1", "layertype", "Pooling Layer", 3, 3),
             ("pool1", "poolingopts.poolingtype", "Max Pooling", 1, 3),
             ("pool1", "srclayers.0", "bn1", 2, 3)]
    rows += [("pool1", f"poolingopts.{k}", k, v, 3) for k, v in dict(
        dropout=0, height=2, width=2, stride=2, stride_height=2, stride_width=2, pad_top=-1,
        pad_bottom=-1, pad_left=-1, pad_right=-1).items()]
    rows += conv_rows("conv2", 4, "pool1", 3, 6, 3, 2, 1, ("Identity", 1), 1)
    rows += [("fc1", "layertype", "Full Connect Layer", 4, 5),
             ("fc1", "fcopts.act", "Rectifier", 8, 5), ("fc1", "fcopts.init", "Xavier", 1, 5),
             ("fc1", "srclayers.0", "conv2", 4, 5)]
    rows += [("fc1", f"fcopts.{k}", k, v, 5) for k, v in dict(
        dropout=0, initbias=0, mean=0, n=8, no_bias=0, std=1, truncfact=0).items()]
    rows += [("output", "layertype", "Output Layer", 5, 6),
             ("output", "outputopts.act", "Softmax", 7, 6),
             ("output", "outputopts.error", "Automatic", 0, 6),
             ("output", "outputopts.init", "Xavier", 1, 6),
             ("output", "srclayers.0", "fc1", 5, 6)]
    rows += [("output", f"outputopts.{k}", k, v, 6) for k, v in dict(
        initbias=0, mean=0, n=3, no_bias=0, noFullConnect=0, std=1, target_std=2,
        truncfact=0).items()]
    rng.shuffle(rows)   # row order carries no meaning (§4.1)
    return rows


@pytest.fixture
def small_folder(tmp_path):
    folder = write_folder(tmp_path / "out", small_payloads(), small_weights(), "small")
    write_table_csv(folder / "model_table.csv", small_table_rows())
    return folder


def test_model_json_and_model_table_give_identical_results(small_folder):
    x = rng.uniform(0, 255, (3, 3, 12, 10)).astype(F32)
    from_json = run_folder(small_folder / "model.json", x, all_layers=True)
    from_table = run_folder(small_folder / "model_table.csv", x, all_layers=True)
    assert list(from_json) == list(from_table) == [
        "data", "conv1", "bn1", "pool1", "conv2", "fc1", "output"]
    for name in from_json:
        np.testing.assert_array_equal(from_json[name], from_table[name], err_msg=name)
    assert from_json["conv2"].shape == (3, 6, 3, 3)
    np.testing.assert_allclose(from_json["output"].sum(axis=1), 1, rtol=1e-5)


def test_both_readers_build_the_same_layers(small_folder):
    a = load_viya_model(small_folder / "model.json")
    b = load_viya_model(small_folder / "model_table.csv")
    assert [(x.name, x.type, x.src_layers) for x in a.layers] == \
        [(x.name, x.type, x.src_layers) for x in b.layers]
    for la, lb in zip(a.layers, b.layers):
        assert la.options.keys() == lb.options.keys(), la.name
        for key in la.options:
            np.testing.assert_allclose(la.options[key], lb.options[key], err_msg=key) \
                if key in ("offsets", "normstds", "scale") else \
                (la.options[key] == lb.options[key]) or pytest.fail(f"{la.name}.{key}")
        assert la.weights.keys() == lb.weights.keys()
    assert a.layer("conv1").options["pad_h"] is None      # -1 = automatic
    assert a.layer("conv2").options["pad_w"] == 1
    assert a.layer("bn1").options["act"] == "leaky"


def test_folder_prefers_model_json_and_table_only_folder_finds_weights(small_folder, tmp_path):
    assert load_viya_model(small_folder).model_path.name == "model.json"
    table_only = tmp_path / "table_only"
    table_only.mkdir()
    shutil.copy(small_folder / "model_table.csv", table_only)
    shutil.copy(small_folder / "small_weights.kerasmodel.h5", table_only)
    model = load_viya_model(table_only)
    assert model.model_path.name == "model_table.csv"
    assert model.weights_path.name == "small_weights.kerasmodel.h5"
    (table_only / "small_weights.kerasmodel.h5").rename(table_only / "w.h5")
    with pytest.raises(InvalidModel, match="kerasmodel.h5"):
        load_viya_model(table_only)
    assert load_viya_model(table_only, weights_path=table_only / "w.h5").layers


# ----------------------------------------------------------------------------- weight checks

def write_small_with(folder, change):
    weights = small_weights()
    change(weights)
    return write_folder(folder, small_payloads(), weights, "small")


def test_missing_weight_dataset_names_the_layer(tmp_path):
    folder = write_small_with(tmp_path / "o", lambda w: w["conv1"].pop("bias"))
    with pytest.raises(InvalidModel, match="bias:0") as err:
        load_viya_model(folder)
    assert err.value.node == "conv1" and "conv1" in str(err.value)
    assert err.value.file.endswith("small_weights.kerasmodel.h5")


def test_mis_shaped_kernel_names_the_layer(tmp_path):
    folder = write_small_with(tmp_path / "o",
                              lambda w: w["conv2"].update(kernel=randn(6, 4, 5, 5)))
    with pytest.raises(InvalidModel, match=r"\(6, 4, 5, 5\).*\(6, 4, 3, 3\)") as err:
        load_viya_model(folder)
    assert err.value.node == "conv2"


def test_mis_shaped_fc_kernel_names_the_layer(tmp_path):
    folder = write_small_with(tmp_path / "o", lambda w: w["fc1"].update(kernel=randn(8, 53)))
    with pytest.raises(InvalidModel, match="shape") as err:
        load_viya_model(folder)
    assert err.value.node == "fc1"


def test_bias_dataset_for_layer_without_bias_is_an_error(tmp_path):
    folder = write_small_with(tmp_path / "o", lambda w: w["conv2"].update(bias=randn(6)))
    with pytest.raises(InvalidModel, match="includebias") as err:
        load_viya_model(folder)
    assert err.value.node == "conv2"


def test_unknown_layer_in_layer_names_is_an_error(tmp_path):
    folder = write_folder(tmp_path / "o", small_payloads(), small_weights(), "small")
    weights = small_weights()
    weights["ghost"] = {"kernel": randn(2, 2)}
    write_weights_h5(folder / "small_weights.kerasmodel.h5", weights)
    with pytest.raises(InvalidModel, match="not a layer of the model") as err:
        load_viya_model(folder)
    assert err.value.node == "ghost"


# ----------------------------------------------------------------------------- real tables

def test_simple_cnn_table_parses():
    model = read_model_table(TABLES / "Simple_CNN.csv")
    assert model.name == "simple_cnn"
    assert [(x.name, x.type, x.src_layers) for x in model.layers] == [
        ("data", "input", []), ("conv1_1", "convo", ["data"]), ("pool1", "pool", ["conv1_1"]),
        ("conv2_1", "convo", ["pool1"]), ("pool2", "pool", ["conv2_1"]),
        ("fc1", "fc", ["pool2"]), ("output", "output", ["fc1"])]
    data, conv, pool = model.layers[0].options, model.layers[1].options, model.layers[2].options
    assert (data["nchannels"], data["height"], data["width"]) == (3, 224, 224)
    np.testing.assert_allclose(data["offsets"], [128.54622, 124.35259, 95.11155], rtol=1e-6)
    assert (conv["nfilters"], conv["height"], conv["pad_h"], conv["act"]) == (8, 7, None, "relu")
    assert (pool["pool"], pool["height"], pool["stride_h"]) == ("max", 2, 2)
    assert model.layer("output").options["act"] == "softmax"
    assert model.terminal_layers() == ["output"]


def test_vgg16_table_parses():
    model = read_model_table(TABLES / "vgg16.csv")
    kinds = [x.type for x in model.layers]
    assert len(kinds) == 22
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "input": 1, "convo": 13, "pool": 5, "fc": 2, "output": 1}
    for previous, current in zip(model.layers, model.layers[1:]):
        assert current.src_layers == [previous.name]
    assert all(x.options["height"] == 3 and x.options["pad_h"] is None
               for x in model.layers if x.type == "convo")
    assert [(x.name, x.options["n"]) for x in model.layers[-3:]] == [
        ("fc6", 4096), ("fc7", 4096), ("fc8", 2)]
    assert model.terminal_layers() == ["fc8"]


def test_yolo_and_acoustic_tables_parse():
    yolo = read_model_table(TABLES / "YOLOV2_MULTISIZE.csv")
    kinds = {x.type for x in yolo.layers}
    assert {"batchnorm", "concat", "reshape", "detection"} <= kinds
    reshape = next(x for x in yolo.layers if x.type == "reshape")
    assert (reshape.options["depth"], reshape.options["height"], reshape.options["order"]) \
        == (256, 13, "auto")
    assert all(x.options["act"] == "leaky" for x in yolo.layers if x.type == "batchnorm")
    concat = next(x for x in yolo.layers if x.type == "concat")
    assert len(concat.src_layers) == 2
    acoustic = read_model_table(TABLES / "sample_acoustic_model.csv")
    assert [x.type for x in acoustic.layers].count("recurrent") == 4


def test_acoustic_model_refuses_its_variable_length_input(tmp_path):
    shutil.copy(TABLES / "sample_acoustic_model.csv", tmp_path / "model_table.csv")
    write_weights_h5(tmp_path / "m_weights.kerasmodel.h5", {})
    with pytest.raises(UnsupportedOp, match="width 0 \\(variable-length sequences\\)"):
        load_viya_model(tmp_path)


def test_simple_cnn_executes_with_random_weights(tmp_path):
    shutil.copy(TABLES / "Simple_CNN.csv", tmp_path / "model_table.csv")

    def he(*shape):   # keeps activations in a sane range through the relus
        return randn(*shape, scale=float(np.sqrt(2 / np.prod(shape[1:]))))
    write_weights_h5(tmp_path / "simple_cnn_weights.kerasmodel.h5", {
        "conv1_1": {"kernel": he(8, 3, 7, 7) / 64, "bias": randn(8)},
        "conv2_1": {"kernel": he(8, 8, 7, 7), "bias": randn(8)},
        "fc1": {"kernel": he(16, 8 * 56 * 56), "bias": randn(16)},   # 224 → 112 → 56
        "output": {"kernel": he(2, 16), "bias": randn(2)},
    })
    model = load_viya_model(tmp_path)
    x = rng.uniform(0, 255, (2, 3, 224, 224)).astype(F32)
    out = execute(model, x)
    assert list(out) == ["output"]
    probs = out["output"]
    assert probs.shape == (2, 2) and probs.dtype == F32
    assert np.all((probs > 0) & (probs < 1))
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_table_codes_known_only_from_dlpy(tmp_path):
    """groupconvo (17), residual (9), DLPy's label rules for tanh/sigmoid, an average pool
    label and noFullConnect read as the same model as the equivalent model.json."""
    payloads = [
        input_layer(4, 6, 6),
        layer("gconv", "groupconvo", ["data"], nfilters=4, ngroups=2, width=3, height=3,
              stridevertical=1, stridehorizontal=1, act="tanh", includebias=True),
        layer("res", "residual", ["gconv", "data"], act="sigmoid"),
        layer("pool", "pool", ["res"], pool="mean", width=2, height=2, stridevertical=2,
              stridehorizontal=2),
        layer("out", "output", ["pool"], n=36, act="softmax", includebias=False,
              fullconnect=False, error="auto"),
    ]
    weights = {"gconv": {"kernel": randn(4, 2, 3, 3), "bias": randn(4)}}
    folder = write_folder(tmp_path / "o", payloads, weights, "t")
    rows = [("t", "modeltype", "Convolutional Neural Network", 2, None),
            ("data", "layertype", "Input Layer", 1, 0)]
    rows += [("data", f"inputopts.{k}", k, v, 0) for k, v in dict(
        nchannels=4, height=6, width=6, scale=1).items()]
    rows += [("data", f"inputopts.offsets.{i}", "offsets", 0, 0) for i in range(4)]
    rows += [("gconv", "layertype", "Group Convolution Layer", 17, 1),
             ("gconv", "groupconvopts.act", "Hyperbolic Tangent", 3, 1),
             ("gconv", "srclayers.0", "data", 0, 1)]
    rows += [("gconv", f"groupconvopts.{k}", k, v, 1) for k, v in dict(
        nfilters=4, ngroups=2, width=3, height=3, stride=1, stride_height=1, stride_width=1,
        no_bias=0, pad_top=-1, pad_bottom=-1, pad_left=-1, pad_right=-1).items()]
    rows += [("res", "layertype", "Residual Layer", 9, 2),
             ("res", "residualopts.act", "Logistic", 4, 2),
             ("res", "srclayers.1", "data", 0, 2), ("res", "srclayers.0", "gconv", 1, 2)]
    rows += [("pool", "layertype", "Pooling Layer", 3, 3),
             ("pool", "poolingopts.poolingtype", "Average Pooling", 2, 3),
             ("pool", "srclayers.0", "res", 2, 3)]
    rows += [("pool", f"poolingopts.{k}", k, v, 3) for k, v in dict(
        width=2, height=2, stride=2, stride_height=2, stride_width=2).items()]
    rows += [("out", "layertype", "Output Layer", 5, 4),
             ("out", "outputopts.act", "Softmax", 7, 4), ("out", "srclayers.0", "pool", 3, 4)]
    rows += [("out", f"outputopts.{k}", k, v, 4) for k, v in dict(
        n=36, no_bias=1, noFullConnect=1).items()]
    write_table_csv(folder / "model_table.csv", rows)
    table = load_viya_model(folder / "model_table.csv")
    assert [x.type for x in table.layers] == ["input", "groupconvo", "residual", "pool",
                                              "output"]
    assert [table.layer(n).options["act"] for n in ("gconv", "res", "out")] == \
        ["tanh", "sigmoid", "softmax"]
    assert table.layer("pool").options["pool"] == "mean"
    assert table.layer("out").options["fullconnect"] is False
    x = randn(2, 4, 6, 6)
    a = execute(load_viya_model(folder / "model.json"), x, all_layers=True)
    b = execute(table, x, all_layers=True)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert a["out"].shape == (2, 36)


def test_weights_checked_again_under_the_execution_options(tmp_path):
    """Ceil pool rounding changes the fc input size; loading with floor then executing with
    ceil must not silently misuse the fc kernel."""
    from irc.backends.viya.executor import ExecutorOptions
    payloads = [input_layer(1, 5, 5),
                layer("pool", "pool", ["data"], pool="max", width=2, height=2,
                      stridevertical=2, stridehorizontal=2, paddingheight=0, paddingwidth=0),
                layer("fc1", "fc", ["pool"], n=2, act="identity", includebias=False)]
    folder = write_folder(tmp_path / "o", payloads, {"fc1": {"kernel": randn(2, 4)}})
    model = load_viya_model(folder)                       # floor: 5 → 2, fc input 1·2·2
    assert execute(model, randn(1, 1, 5, 5))["fc1"].shape == (1, 2)
    with pytest.raises(InvalidModel, match="executor options") as err:
        execute(model, randn(1, 1, 5, 5), ExecutorOptions(pool_explicit_rounding="ceil"))
    assert err.value.node == "fc1"
    with pytest.raises(InvalidModel, match="shape"):      # ceil: 5 → 3, fc input 9
        load_viya_model(folder, options=ExecutorOptions(pool_explicit_rounding="ceil"))


def test_model_json_padding_on_one_axis_only_is_refused(tmp_path):
    payloads = [input_layer(1, 5, 5),
                layer("pool", "pool", ["data"], pool="max", width=2, height=2,
                      stridevertical=2, stridehorizontal=2, paddingheight=1)]
    folder = write_folder(tmp_path / "o", payloads, {})
    with pytest.raises(InvalidModel, match="one axis only") as err:
        load_viya_model(folder)
    assert err.value.node == "pool"
