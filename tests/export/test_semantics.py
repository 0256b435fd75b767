"""Viya semantics made explicit, checked against the reference executor layer by layer on a
hand-written model.json that irc's compiler never emits (AUTO activations, multi-source fc,
min/global pools, reshape, batch norm on a vector, several outputs), under every value of the
open-point options both share."""
from __future__ import annotations

import json

import numpy as np
import pytest

from irc.backends.viya.executor import ExecutorOptions, execute, load_viya_model
from irc.errors import UnsupportedAttribute
from irc.frontends.viya import ExportOptions, export, read_viya, to_graph, write_weights_h5
from irc.ir.onnx_export import run_onnxruntime, to_onnx

from .common import assert_close, nodes, attr


def layer(name, kind, srcs=None, **options):
    entry = {"model": "t", "name": name, "layer": {"type": kind, **options}}
    if srcs:
        entry["srcLayers"] = srcs
    return entry


def window(k, s, pad=None):
    opts = {"width": k, "height": k, "stridevertical": s, "stridehorizontal": s}
    if pad is not None:
        opts.update(paddingheight=pad, paddingwidth=pad)
    return opts


LAYERS = [
    layer("data", "input", nchannels=3, width=12, height=12, scale=1 / 255,
          offsets=[0.4, 0.5, 0.6], normstds=[0.5, 1.0, 2.0], dropout=0.1),
    layer("conv1", "convo", ["data"], nfilters=4, act="auto", includebias=True, **window(3, 2)),
    layer("bn1", "batchnorm", ["conv1"], act="leaky"),
    layer("pool1", "pool", ["bn1"], pool="max", **window(3, 1)),            # auto: Ptot 2
    layer("gconv", "groupconvo", ["pool1"], nfilters=4, ngroups=2, act="elu",
          includebias=False, **window(3, 1, pad=1)),
    layer("res", "residual", ["pool1", "gconv"], act="identity"),
    layer("pool2", "pool", ["res"], pool="mean", dropout=0.5, **window(3, 2, pad=0)),
    layer("pool3", "pool", ["res"], pool="min", **window(3, 2, pad=1)),
    layer("pool4", "pool", ["res"], pool="mean", **window(3, 2)),           # auto: Ptot 1
    layer("cat", "concat", ["res", "bn1", "pool1"], act="sigmoid"),
    layer("rs", "reshape", ["cat"], depth=3, height=12, width=12, act="tanh"),
    layer("gpool", "pool", ["rs"], pool="max", **window(0, 1)),
    layer("fc1", "fc", ["pool2", "pool3", "pool4", "gpool"], n=5, act="auto", includebias=True,
          dropout=0.2),
    layer("bnv", "batchnorm", ["fc1"], act="identity"),
    layer("out", "output", ["bnv"], n=5, act="softmax", includebias=False, fullconnect=False),
    layer("out2", "output", ["fc1", "pool3"], n=3, act="identity", includebias=True,
          fullconnect=True),
]

OPTIONS = [
    {},
    {"pool_auto_pad": "split_tf"},
    {"pool_explicit_rounding": "ceil"},
    {"avgpool_divisor": "window"},
    {"avgpool_divisor": "caffe"},
    {"maxpool_pad": "zero"},
    {"bn_extra_eps": 1e-3, "elu_alpha": 0.5},
    {"dropout_scoring": "scale_keep"},
]


def write_model(folder, layers=LAYERS):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": "irc.viya.payloads/1", "model_name": "t",
           "buildModel": {"model": {"name": "t", "replace": True}, "type": "CNN"},
           "addLayer": layers,
           "dlImportModelWeights": {"formatType": "KERAS",
                                    "weightFilePath": "t_weights.kerasmodel.h5"}}
    (folder / "model.json").write_text(json.dumps(doc))
    return folder / "model.json"


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(map(str, o.values())) or
                         "defaults")
def test_every_layer_equals_the_executor(tmp_path, options):
    path = write_model(tmp_path)
    model = read_viya(path, generate_weights=True, options={**options, "seed": 5})
    write_weights_h5(model, tmp_path / "t_weights.kerasmodel.h5")
    proto = to_onnx(to_graph(model, ExportOptions.make(options)), with_intermediates=True)
    x = np.random.default_rng(1).uniform(0, 255, (3, 3, 12, 12)).astype(np.float32)
    got = run_onnxruntime(proto, {"data": x})
    ex = ExecutorOptions(**options)
    expected = execute(load_viya_model(tmp_path, options=ex), x, options=ex, all_layers=True)
    assert {o.name for o in proto.graph.output[:2]} == {"out", "out2"}
    for entry in LAYERS[1:]:
        name = entry["name"]
        assert_close(expected[name], got[name], f"{name} under {options}",
                     scaled=name not in ("out", "out2"))
    # the file written from the folder's own HDF5 computes the same
    again = run_onnxruntime(export(tmp_path, options=options), {"data": x})
    assert_close(got["out2"], again["out2"], "export() of the folder")


def test_explicit_geometry_in_the_onnx_model(tmp_path):
    proto = export(write_model(tmp_path), generate_weights=True)
    pools = {n.name.split("__")[0]: n for n in nodes(proto, "MaxPool") + nodes(proto, "AveragePool")}
    assert attr(pools["pool1"], "pads") == [0, 0, 2, 2]       # automatic pool padding: all after
    assert attr(pools["pool2"], "pads") == [0, 0, 0, 0] and attr(pools["pool2"], "ceil_mode") == 0
    assert attr(nodes(proto, "Conv")[0], "pads") == [0, 0, 1, 1]
    assert attr(nodes(proto, "LeakyRelu")[0], "alpha") == pytest.approx(0.1)
    assert [n.op_type for n in proto.graph.node if n.name.startswith("fc1")][:5] == \
        ["Flatten"] * 4 + ["Concat"]
    assert attr(pools["pool4"], "pads") == [0, 0, 1, 1]
    assert attr(pools["pool4"], "count_include_pad") == 0
    assert any(n.op_type == "Tanh" and n.name.startswith("fc1") for n in proto.graph.node)
    assert any(n.op_type == "Relu" and n.name.startswith("conv1") for n in proto.graph.node)
    split = export(tmp_path, generate_weights=True, options={"pool_auto_pad": "split_tf"})
    assert attr(nodes(split, "MaxPool")[0], "pads") == [1, 1, 1, 1]


def test_inexpressible_options_and_activations_are_refused_together(tmp_path):
    layers = LAYERS[:6] + [
        layer("pool2", "pool", ["res"], pool="mean", **window(3, 2, pad=0)),
        layer("c2", "convo", ["pool2"], nfilters=2, act="exp", includebias=True,
              **window(1, 1)),
        layer("o", "output", ["c2"], n=0, act="identity", includebias=False,
              fullconnect=False)]
    path = write_model(tmp_path, layers)
    with pytest.raises(UnsupportedAttribute) as err:
        export(path, generate_weights=True,
               options={"pool_explicit_rounding": "ceil", "avgpool_divisor": "window"})
    assert "pool2 (pool)" in str(err.value) and "c2 (convo)" in str(err.value)


def test_options_are_checked():
    with pytest.raises(ValueError, match="unknown export option"):
        ExportOptions.make({"pool_auto_padding": "end"})
    with pytest.raises(ValueError, match="fc_weight_order"):
        ExportOptions.make({"fc_weight_order": "rows"})
    with pytest.raises(ValueError, match="pool_auto_pad"):
        ExportOptions.make({"pool_auto_pad": "start"})
    made = ExportOptions.make({"pool_auto_pad": "split_tf", "fc_weight_order": "out_major"})
    assert made.executor.pool_auto_pad == "split_tf" and made.fc_weight_order == "out_major"
    text = ExportOptions.make({"bn_extra_eps": "1e-3", "seed": "7", "elu_alpha": "0.5"})
    assert (text.executor.bn_extra_eps, text.seed, text.executor.elu_alpha) == (1e-3, 7, 0.5)
    with pytest.raises(ValueError, match="must be a number"):
        ExportOptions.make({"seed": "x"})
