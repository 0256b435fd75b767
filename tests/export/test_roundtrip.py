"""Round trip: source ONNX → irc.compile().save() → irc.frontends.viya.export → onnxruntime
equals the source model's onnxruntime output (rtol 1e-4, atol 1e-5), through model.json and,
when irc writes one, through model_table.csv."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from irc.utils.onnx_builder import OnnxBuilder

from .common import attr, count, nodes, op_types, roundtrip

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "small_cnn.onnx"


def builder(hw=8, c=3, seed=0) -> OnnxBuilder:
    return OnnxBuilder("m", ("N", c, hw, hw), seed=seed)


def layer_options(result, kind: str) -> list[dict]:
    return [c["layer"] for c in result["payloads"]["addLayer"] if c["layer"]["type"] == kind]


# ---- convolution --------------------------------------------------------------------------

def test_conv_explicit_padding_and_stride(tmp_path):
    b = builder(8)
    y = b.op("Relu", b.conv(b.input, 4, 3, stride=2, pads=[1, 1, 1, 1]))
    y = b.conv(y, 5, (3, 1), stride=2, pads=[1, 0, 1, 0])
    r = roundtrip(b.build([y]), tmp_path)
    assert [(c.get("paddingheight"), c.get("paddingwidth"))
            for c in layer_options(r, "convo")] == [(1, 1), (1, 0)]
    assert [attr(n, "pads") for n in nodes(r["onnx"], "Conv")] == [[1, 1, 1, 1], [1, 0, 1, 0]]
    assert r["table_checked"] is False   # explicit padding values are unverified in a table


def test_conv_automatic_padding(tmp_path):
    """Asymmetric source pads equal to Viya's automatic split become automatic padding, and
    back in ONNX the explicit floor/ceil split (odd pixel after)."""
    b = builder(8)
    y = b.op("Relu", b.conv(b.input, 4, 3, stride=2, pads=[0, 0, 1, 1]))
    y = b.op("Relu", b.conv(y, 4, 4, pads=[1, 1, 2, 2]))
    y = b.conv(y, 6, 5, stride=1, pads=[2, 2, 2, 2])
    r = roundtrip(b.build([y]), tmp_path)
    assert all("paddingheight" not in c for c in layer_options(r, "convo")[:2])
    assert [attr(n, "pads") for n in nodes(r["onnx"], "Conv")][:2] == [[0, 0, 1, 1],
                                                                       [1, 1, 2, 2]]
    assert r["table_checked"]


@pytest.mark.parametrize("group", [2, 4], ids=["grouped", "depthwise"])
def test_grouped_and_depthwise_conv_without_bias(tmp_path, group):
    b = builder(8, c=4)
    y = b.op("Relu", b.conv(b.input, 8 if group == 2 else 4, 3, pads=[1, 1, 1, 1], group=group,
                            bias=False))
    r = roundtrip(b.build([y]), tmp_path)
    (conv,) = nodes(r["onnx"], "Conv")
    assert attr(conv, "group") == group and len(conv.input) == 2


# ---- pooling ------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_explicit_padding(tmp_path, op):
    b = builder(8)
    x = b.op("Relu", b.conv(b.input, 4, 3, pads=[1, 1, 1, 1]))
    y = b.op(op, x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    r = roundtrip(b.build([y]), tmp_path)
    (pool,) = nodes(r["onnx"], op)
    assert attr(pool, "pads") == [1, 1, 1, 1]


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_automatic_padding_goes_after(tmp_path, op):
    b = builder(8)
    x = b.conv(b.input, 4, 3, pads=[1, 1, 1, 1])
    y = b.op(op, x, kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])
    y = b.op(op, y, kernel_shape=[2, 2], strides=[2, 2])
    r = roundtrip(b.build([y]), tmp_path)
    assert "paddingheight" not in layer_options(r, "pool")[0]
    assert attr(nodes(r["onnx"], op)[0], "pads") == [0, 0, 1, 1]


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool_then_dense(tmp_path, op):
    b = builder(6)
    x = b.op("Relu", b.conv(b.input, 5, 3, pads=[1, 1, 1, 1]))
    y = b.gemm(b.op("Flatten", b.op(op, x)), 5, 3)
    r = roundtrip(b.build([y]), tmp_path)
    assert layer_options(r, "pool")[0]["width"] == 0
    assert count(r["onnx"], op) == 1 and count(r["onnx"], "Flatten") == 1


# ---- normalisation, merges, dense ---------------------------------------------------------

def test_standalone_batchnorm_after_pool(tmp_path):
    b = builder(8)
    x = b.conv(b.input, 4, 3, pads=[1, 1, 1, 1])
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    y = b.op("Relu", b.batchnorm(x, epsilon=1e-3))
    r = roundtrip(b.build([y]), tmp_path)
    (bn,) = nodes(r["onnx"], "BatchNormalization")
    assert attr(bn, "epsilon") == 0.0   # the source eps is folded into the variance
    assert count(r["onnx"], "Relu") == 1


def test_residual(tmp_path):
    b = builder(8)
    x = b.op("Relu", b.conv(b.input, 4, 3, pads=[1, 1, 1, 1]))
    y = b.conv(b.op("Relu", b.conv(x, 4, 3, pads=[1, 1, 1, 1])), 4, 3, pads=[1, 1, 1, 1])
    r = roundtrip(b.build([b.op("Relu", b.op("Add", x, y))]), tmp_path)
    assert count(r["onnx"], "Sum") == 1


def test_concat_of_three(tmp_path):
    b = builder(8)
    branches = [b.op("Relu", b.conv(b.input, c, k, pads=[k // 2] * 4))
                for c, k in ((2, 1), (3, 3), (4, 5))]
    y = b.op("Concat", *branches, axis=1)
    b.channels[y] = 9
    y = b.op("MaxPool", y, kernel_shape=[2, 2], strides=[2, 2])
    r = roundtrip(b.build([y]), tmp_path)
    (cat,) = nodes(r["onnx"], "Concat")
    assert len(cat.input) == 3 and attr(cat, "axis") == 1


def test_fc_after_flatten_fc_chain_softmax_output(tmp_path):
    b = builder(6)
    x = b.op("Relu", b.conv(b.input, 4, 3, stride=2, pads=[1, 1, 1, 1]))
    x = b.op("Tanh", b.gemm(b.op("Flatten", x), 4 * 3 * 3, 10))
    x = b.op("Sigmoid", b.gemm(x, 10, 7))
    y = b.op("Softmax", b.gemm(x, 7, 4))
    r = roundtrip(b.build([y]), tmp_path)
    assert count(r["onnx"], "Gemm") == 3 and op_types(r["onnx"])[-1] == "Softmax"
    assert r["table_checked"] is False   # tanh/sigmoid codes are unknown in a table


def test_dense_output_without_softmax(tmp_path):
    b = builder(6)
    x = b.op("Relu", b.gemm(b.op("Flatten", b.input), 3 * 36, 8))
    r = roundtrip(b.build([b.gemm(x, 8, 3)]), tmp_path)
    assert "Softmax" not in op_types(r["onnx"])


def test_loss_only_outputs(tmp_path):
    """Outputs that are no dense layer: a softmax over a global pool, and a raw feature map."""
    b = builder(6)
    x = b.op("Relu", b.conv(b.input, 4, 3, pads=[1, 1, 1, 1]))
    prob = b.op("Softmax", b.op("Flatten", b.op("GlobalAveragePool", x)))
    r = roundtrip(b.build([prob, x]), tmp_path)
    outputs = layer_options(r, "output")
    assert [o["fullconnect"] for o in outputs] == [False, False]
    assert count(r["onnx"], "Gemm") == 0 and count(r["onnx"], "Softmax") == 1


def test_leaky_and_elu_activations(tmp_path):
    b = builder(6)
    x = b.op("LeakyRelu", b.conv(b.input, 4, 3, pads=[1, 1, 1, 1]), alpha=0.1)
    y = b.op("Elu", b.conv(x, 4, 3, pads=[1, 1, 1, 1]), alpha=1.0)
    r = roundtrip(b.build([y]), tmp_path)
    assert attr(nodes(r["onnx"], "LeakyRelu")[0], "alpha") == pytest.approx(0.1)
    assert attr(nodes(r["onnx"], "Elu")[0], "alpha") == 1.0


# ---- input preprocessing ------------------------------------------------------------------

def test_input_scale_offsets_normstds(tmp_path):
    b = builder(6)
    y = b.op("Softmax", b.gemm(b.op("Flatten", b.op("Relu", b.conv(b.input, 4, 3, pads=[1] * 4))),
                               4 * 36, 3))
    options = {"scale": 1 / 255, "offsets": [0.4, 0.5, 0.6], "normstds": [0.2, 0.25, 0.3]}
    r = roundtrip(b.build([y]), tmp_path, input_options=options)
    assert op_types(r["onnx"])[:3] == ["Mul", "Sub", "Div"]
    assert r["onnx"].graph.input[0].name == "input"


def test_bundled_example(tmp_path):
    model = onnx.load(EXAMPLE)
    r = roundtrip(model, tmp_path, input_options={"scale": 1 / 255, "offsets": [0.5] * 3})
    proto = r["onnx"]
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim[1:]] == [10]
    assert count(proto, "Concat") == 1 and count(proto, "Sum") == 1


def test_exported_file_is_written_and_checked(tmp_path, monkeypatch):
    from irc.frontends.viya import exporter, export

    b = builder(6)
    y = b.op("Relu", b.conv(b.input, 4, 3, pads=[1, 1, 1, 1]))
    r = roundtrip(b.build([y]), tmp_path)
    target = tmp_path / "sub" / "m.onnx"
    proto = export(r["folder"], target)
    onnx.checker.check_model(str(target))
    assert onnx.load(target).graph == proto.graph
    assert [p.name for p in target.parent.iterdir()] == ["m.onnx"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["irc.viya.weights"].endswith("m_weights.kerasmodel.h5")
    assert json.loads(props["irc.viya.options"])["pool_auto_pad"] == "end"

    # past the protobuf limit the weights go to <file>.data; the returned model keeps them
    monkeypatch.setattr(exporter, "_PROTO_LIMIT", 0)
    for _ in range(2):   # writing twice must replace, not append to, the data file
        large = export(r["folder"], target)
    assert (tmp_path / "sub" / "m.onnx.data").is_file()
    onnx.checker.check_model(str(target))
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    (out,) = [o.name for o in proto.graph.output]
    from irc.ir.onnx_export import run_onnxruntime

    by_path = run_onnxruntime(target, {"input": x})[out]
    np.testing.assert_array_equal(by_path, run_onnxruntime(large, {"input": x})[out])
    np.testing.assert_array_equal(by_path, run_onnxruntime(proto, {"input": x})[out])
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_cli_export_round_trip(tmp_path):
    """`irc compile` then `irc export`: the exported ONNX computes the source's numbers."""
    import subprocess
    import sys

    import onnx

    from irc.ir.onnx_export import run_onnxruntime

    example = Path(__file__).resolve().parents[2] / "examples" / "small_cnn.onnx"
    out, target = tmp_path / "out", tmp_path / "back.onnx"
    run = lambda *a: subprocess.run([sys.executable, "-m", "irc", *map(str, a)],
                                    capture_output=True, text=True)
    assert run("compile", example, "-o", out, "--no-verify").returncode == 0
    result = run("export", out, "-o", target)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    source = run_onnxruntime(onnx.load(example), {"input": x})["prob"]
    (back,) = run_onnxruntime(onnx.load(target), {"input": x}).values()
    np.testing.assert_allclose(back.reshape(source.shape), source, rtol=1e-4, atol=1e-5)
