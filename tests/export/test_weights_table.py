"""Weights from a server-style weights TABLE (viya-target.md §7.2: ``_LayerID_``,
``_WeightID_``, ``_Weight_``; conv kernel OIHW then bias; fc kernel then bias in the order of
``fc_weight_order``; batch norm pairs (γ, β) then pairs (μ, σ) with σ a standard deviation),
written here from irc's HDF5 file by an independent writer, give the same ONNX numbers."""
from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest

from irc.errors import InvalidModel
from irc.frontends.viya import export
from irc.ir.onnx_export import run_onnxruntime
from irc.utils.onnx_builder import OnnxBuilder
from irc.verify import viya_input

from .common import assert_close, compile_folder, source_batch


def source_model():
    b = OnnxBuilder("m", ("N", 3, 8, 8), seed=4)
    x = b.op("Relu", b.conv(b.input, 4, 3, stride=2, pads=[0, 0, 1, 1]))
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Relu", b.batchnorm(x, epsilon=1e-3))
    x = b.op("Relu", b.gemm(b.op("Flatten", x), 4 * 2 * 2, 6))
    return b.build([b.op("Softmax", b.gemm(x, 6, 3))])


def write_weights_table(folder, path, fc_order="in_major", seed=0):
    """The HDF5 weights of an irc output folder as a weights table, rows shuffled."""
    doc = json.loads((folder / "model.json").read_text())
    layers = {c["name"]: (i, c["layer"]["type"]) for i, c in enumerate(doc["addLayer"])}
    rows = []
    with h5py.File(folder / doc["dlImportModelWeights"]["weightFilePath"], "r") as f:
        for raw in f.attrs["layer_names"]:
            name = raw.decode()
            data = {k.split(":")[0]: np.asarray(v[()], np.float64)
                    for k, v in f[name][name].items()}
            layer_id, kind = layers[name]
            if kind == "batchnorm":
                sigma = np.sqrt(data["moving_variance"])
                values = np.concatenate([np.stack([data["gamma"], data["beta"]], 1).ravel(),
                                         np.stack([data["moving_mean"], sigma], 1).ravel()])
            else:
                kernel = data["kernel"]
                if kind in ("fc", "output") and fc_order == "in_major":
                    kernel = kernel.T   # stored (n, in); the table reads (in, n)
                values = np.concatenate([kernel.ravel(), data.get("bias", np.zeros(0))])
            rows += [(layer_id, k, v) for k, v in enumerate(values)]
    order = np.random.default_rng(seed).permutation(len(rows))
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["_LayerID_", "_WeightID_", "_Weight_"])
        out.writerows((float(rows[i][0]), float(rows[i][1]), repr(float(rows[i][2]))) for i in order)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return compile_folder(source_model(), tmp_path_factory.mktemp("wt"))


def run(proto, x):
    return run_onnxruntime(proto, {proto.graph.input[0].name: x})


def test_weights_table_round_trip(folder, tmp_path):
    model = source_model()
    payloads = json.loads((folder / "model.json").read_text())
    y = np.random.default_rng(0).standard_normal((source_batch(model), 3, 8, 8)).astype(np.float32)
    reference = run_onnxruntime(model, {"input": y})
    x = viya_input(payloads, y)
    (out_layer,) = json.loads((folder / "name_map.json").read_text())["outputs"].values()
    table = write_weights_table(folder, tmp_path / "w.csv")
    from_h5 = run(export(folder), x)[out_layer]
    from_table = run(export(folder, weights=table), x)[out_layer]
    assert_close(list(reference.values())[0], from_table, "weights table vs source")
    assert_close(from_h5, from_table, "weights table vs HDF5")
    assert (folder / "model_table.csv").is_file()
    via_model_table = run(export(folder / "model_table.csv", weights=table), x)[out_layer]
    assert_close(from_h5, via_model_table, "model_table.csv + weights table")

    out_major = write_weights_table(folder, tmp_path / "w_out.csv", fc_order="out_major")
    got = run(export(folder, weights=out_major, options={"fc_weight_order": "out_major"}), x)
    assert_close(from_h5, got[out_layer], "out_major table")
    wrong = run(export(folder, weights=out_major), x)[out_layer]   # default in_major
    assert not np.allclose(from_h5, wrong, rtol=1e-3)


def test_weights_table_as_a_dataframe(folder, tmp_path):
    import pandas as pd

    frame = pd.read_csv(write_weights_table(folder, tmp_path / "w.csv"))
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    a, b = run(export(folder), x), run(export(folder, weights=frame), x)
    for name in a:
        assert_close(a[name], b[name], name)


def test_weights_table_problems_are_reported_together(folder, tmp_path):
    table = write_weights_table(folder, tmp_path / "w.csv")
    lines = table.read_text().splitlines()
    doc = json.loads((folder / "model.json").read_text())
    ids = {c["name"]: i for i, c in enumerate(doc["addLayer"])}
    conv = next(c["name"] for c in doc["addLayer"] if c["layer"]["type"] == "convo")
    pool = next(c["name"] for c in doc["addLayer"] if c["layer"]["type"] == "pool")
    dropped = [ln for ln in lines if not ln.startswith(f"{float(ids[conv])},0.0,")]
    dropped.append(f"{float(ids[pool])},0.0,1.0")
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(dropped) + "\n")
    with pytest.raises(InvalidModel) as err:
        export(folder, weights=broken)
    text = str(err.value)
    assert f"layer {conv!r}" in text and f"layer {pool!r} has no weights" in text
    bad_columns = tmp_path / "bad.csv"
    bad_columns.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidModel, match="_LayerID_"):
        export(folder, weights=bad_columns)
    with pytest.raises(InvalidModel, match="not both"):
        export(folder, weights=table, generate_weights=True)
