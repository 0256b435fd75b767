"""Every ONNX op irc converts (`irc ops`), end to end: ONNX model -> compile -> output folder ->
reference executor vs onnxruntime, plus a look at the emitted layers where the op's mapping
matters (folded, carried, moved, output layer)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from irc.utils.onnx_builder import OnnxBuilder
from tests.e2e.conftest import compile_and_verify, layer_types, viya_layers

C_IN, HW = 3, 8
DYN = ("N", C_IN, HW, HW)


def builder(shape=DYN, opset: int = 17, seed: int = 0) -> OnnxBuilder:
    return OnnxBuilder("m", shape, seed=seed, opset=opset)


def conv3(b: OnnxBuilder, x: str, c: int = 4, **kw) -> str:
    """A 3x3 'same' conv (explicit symmetric padding 1)."""
    return b.conv(x, c, 3, pads=[1, 1, 1, 1], **kw)


def per_channel(b: OnnxBuilder, c: int, low: float = 0.5, high: float = 1.5, shape=None) -> str:
    data = b.rng.uniform(low, high, size=c).astype(np.float32)
    return b.const(data.reshape(shape or (1, c, 1, 1)))


def by_type(tmp_path, kind: str) -> list[dict]:
    return [layer for layer in viya_layers(tmp_path) if layer["type"] == kind]


# ---- the builder itself ---------------------------------------------------------------------


def test_dynamic_batch_builder_verifies_with_batch_2(tmp_path):
    b = builder()
    y = b.op("Relu", conv3(b, b.input))
    model = b.build([y])
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    result = compile_and_verify(model, tmp_path)
    assert result.n_examples == 2


def test_fixed_batch_1_model(tmp_path):
    b = builder(shape=(1, C_IN, HW, HW))
    y = b.op("Relu", conv3(b, b.input))
    compile_and_verify(b.build([y]), tmp_path)


# ---- Conv -----------------------------------------------------------------------------------


def test_conv(tmp_path):
    b = builder()
    y = conv3(b, b.input, 6)
    compile_and_verify(b.build([y]), tmp_path)
    (conv,) = by_type(tmp_path, "convo")
    assert conv["nfilters"] == 6 and conv["act"] == "identity" and conv["includebias"] is True


# ---- Add / Sum (residual) and constant Add --------------------------------------------------


def test_add_residual(tmp_path):
    b = builder()
    x = b.op("Relu", conv3(b, b.input))
    y = conv3(b, x)
    z = b.op("Relu", b.op("Add", x, y))
    compile_and_verify(b.build([z]), tmp_path)
    (res,) = by_type(tmp_path, "residual")
    assert res["act"] == "relu" and len(res["srcLayers"]) == 2


@pytest.mark.parametrize("shape", [(1, 4, 1, 1), (4, 1, 1)], ids=["1C11", "C11"])
def test_add_constant_after_conv_is_folded_into_the_bias(tmp_path, shape):
    b = builder()
    y = b.op("Add", conv3(b, b.input), per_channel(b, 4, -1, 1, shape))
    compile_and_verify(b.build([y]), tmp_path)
    assert "batchnorm" not in layer_types(tmp_path)


def test_add_constant_after_pool_becomes_a_batchnorm(tmp_path):
    b = builder()
    p = b.op("AveragePool", conv3(b, b.input), kernel_shape=[2, 2], strides=[2, 2])
    y = b.op("Add", p, per_channel(b, 4, -1, 1))
    compile_and_verify(b.build([y]), tmp_path)
    assert "batchnorm" in layer_types(tmp_path)


def test_sum_of_three(tmp_path):
    b = builder()
    x = b.op("Relu", conv3(b, b.input))
    y1, y2 = conv3(b, x), b.conv(x, 4, 1)
    z = b.op("Sum", x, y1, y2)
    compile_and_verify(b.build([z]), tmp_path)
    (res,) = by_type(tmp_path, "residual")
    assert len(res["srcLayers"]) == 3


# ---- pooling --------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_2x2_stride_2(tmp_path, op):
    b = builder()
    y = b.op(op, conv3(b, b.input), kernel_shape=[2, 2], strides=[2, 2])
    compile_and_verify(b.build([y]), tmp_path)
    (pool,) = by_type(tmp_path, "pool")
    assert pool["pool"] == ("max" if op == "MaxPool" else "mean")


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(tmp_path, op):
    b = builder()
    y = b.op(op, conv3(b, b.input, 5))
    compile_and_verify(b.build([y]), tmp_path)
    (pool,) = by_type(tmp_path, "pool")
    assert pool["width"] == 0 and pool["height"] == 0


# ---- BatchNormalization ---------------------------------------------------------------------

EPSILONS = [pytest.param(1e-5, id="eps1e-5"), pytest.param(1e-3, id="eps1e-3"),
            pytest.param(0.1, id="eps0.1")]


@pytest.mark.parametrize("eps", EPSILONS)
def test_batchnorm_after_conv_is_folded(tmp_path, eps):
    b = builder()
    y = b.op("Relu", b.batchnorm(conv3(b, b.input), epsilon=eps))
    compile_and_verify(b.build([y]), tmp_path)
    assert "batchnorm" not in layer_types(tmp_path)
    (conv,) = by_type(tmp_path, "convo")
    assert conv["act"] == "relu"


@pytest.mark.parametrize("eps", EPSILONS)
def test_batchnorm_after_pool_stays_a_batchnorm_layer(tmp_path, eps):
    b = builder()
    p = b.op("MaxPool", conv3(b, b.input), kernel_shape=[2, 2], strides=[2, 2])
    y = b.batchnorm(p, epsilon=eps)
    compile_and_verify(b.build([y]), tmp_path)
    assert len(by_type(tmp_path, "batchnorm")) == 1


def test_batchnorm_on_the_input(tmp_path):
    b = builder()
    y = conv3(b, b.batchnorm(b.input, epsilon=1e-3))
    compile_and_verify(b.build([y]), tmp_path)


# ---- Concat ---------------------------------------------------------------------------------


def test_concat_of_three_branches(tmp_path):
    b = builder()
    x = b.op("Relu", conv3(b, b.input))
    y1, y2, y3 = b.conv(x, 2, 1), conv3(b, x, 3), b.conv(x, 5, 5, pads=[2, 2, 2, 2])
    z = b.op("Concat", y1, y2, y3, axis=1)
    compile_and_verify(b.build([z]), tmp_path)
    (cat,) = by_type(tmp_path, "concat")
    assert len(cat["srcLayers"]) == 3


def test_concat_negative_channel_axis_of_nchw(tmp_path):
    b = builder()
    y1, y2 = conv3(b, b.input, 2), conv3(b, b.input, 3)
    z = b.op("Relu", b.op("Concat", y1, y2, axis=-3))
    compile_and_verify(b.build([z]), tmp_path)
    (cat,) = by_type(tmp_path, "concat")
    assert cat["act"] == "relu"


# ---- Gemm / MatMul --------------------------------------------------------------------------


def _flat_features(b: OnnxBuilder, c: int = 4) -> tuple[str, int]:
    """conv -> 2x2 max pool -> Flatten: (N, c*4*4)."""
    x = b.op("MaxPool", b.op("Relu", conv3(b, b.input, c)), kernel_shape=[2, 2], strides=[2, 2])
    return b.op("Flatten", x), c * (HW // 2) ** 2


@pytest.mark.parametrize("trans_b", [0, 1], ids=["transB0", "transB1"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0)], ids=["a1b1", "a0.5b2"])
@pytest.mark.parametrize("bias", ["n", "1n", "none"], ids=["bias(n,)", "bias(1,n)", "nobias"])
def test_gemm(tmp_path, trans_b, alpha, beta, bias):
    b = builder()
    f, n_in = _flat_features(b)
    n = 7
    w = b.weight((n, n_in) if trans_b else (n_in, n))
    inputs = [f, w]
    if bias != "none":
        inputs.append(b.weight((n,) if bias == "n" else (1, n), scale=0.5))
    y = b.op("Gemm", *inputs, transA=0, transB=trans_b, alpha=alpha, beta=beta)
    compile_and_verify(b.build([y]), tmp_path)
    (out,) = by_type(tmp_path, "output")
    assert out["n"] == n and out["act"] == "identity"
    assert out["includebias"] is (bias != "none")


def test_gemm_on_a_vector_input(tmp_path):
    b = builder(shape=("N", 12))
    y = b.op("Relu", b.gemm(b.input, 12, 6))
    y = b.gemm(y, 6, 3)
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path) == ["input", "fc", "output"]


def test_gemm_hidden_then_output(tmp_path):
    b = builder()
    f, n_in = _flat_features(b)
    h = b.op("Tanh", b.gemm(f, n_in, 10))
    y = b.gemm(h, 10, 4)
    compile_and_verify(b.build([y]), tmp_path)
    (fc,) = by_type(tmp_path, "fc")
    assert fc["act"] == "tanh"


@pytest.mark.parametrize("as_output", [False, True], ids=["fc", "softmax_output"])
def test_concat_of_flattened_maps_into_dense_is_a_multi_source_fc(tmp_path, as_output):
    """Two flattened maps of different shapes and a vector, concatenated, into a Gemm: Viya's fc
    takes several srcLayers and flattens each, in srcLayers order (viya-semantics §1)."""
    b = builder()
    x = b.op("Relu", conv3(b, b.input, 4))
    a = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])  # 4 x 4 x 4
    c = b.conv(x, 3, 3, stride=2, pads=[1, 1, 1, 1])  # 3 x 4 x 4
    v = b.op("Relu", b.gemm(b.op("Flatten", a), 64, 5))  # a vector
    cat = b.op("Concat", b.op("Flatten", a), b.op("Flatten", c), v, axis=1)
    y = b.gemm(cat, 64 + 48 + 5, 6)
    y = b.op("Softmax", y) if as_output else b.op("Relu", y)
    compile_and_verify(b.build([y]), tmp_path)
    (dense,) = [layer for layer in viya_layers(tmp_path) if layer.get("n") == 6]
    assert len(dense["srcLayers"]) == 3
    assert "concat" not in layer_types(tmp_path)


@pytest.mark.parametrize("bias", [True, False], ids=["with_add_bias", "no_bias"])
def test_matmul(tmp_path, bias):
    b = builder()
    f, n_in = _flat_features(b)
    y = b.op("MatMul", f, b.weight((n_in, 6)))
    if bias:
        y = b.op("Add", y, b.weight((6,), scale=0.5))
    compile_and_verify(b.build([y]), tmp_path)
    (out,) = by_type(tmp_path, "output")
    assert out["includebias"] is bias and out["n"] == 6


# ---- activations ----------------------------------------------------------------------------

ACTIVATIONS = [
    pytest.param("Relu", {}, "relu", id="Relu"),
    pytest.param("LeakyRelu", {"alpha": 0.1}, "leaky", id="LeakyRelu0.1"),
    pytest.param("Sigmoid", {}, "sigmoid", id="Sigmoid"),
    pytest.param("Tanh", {}, "tanh", id="Tanh"),
    pytest.param("Elu", {"alpha": 1.0}, "elu", id="Elu1"),
    pytest.param("Softplus", {}, "softplus", id="Softplus"),
]


@pytest.mark.parametrize("op,attrs,act", ACTIVATIONS)
def test_activation_after_conv_is_fused(tmp_path, op, attrs, act):
    b = builder()
    y = b.op(op, conv3(b, b.input), **attrs)
    compile_and_verify(b.build([y]), tmp_path)
    (conv,) = by_type(tmp_path, "convo")
    assert conv["act"] == act
    assert "batchnorm" not in layer_types(tmp_path)


def test_leaky_relu_without_alpha_takes_the_default_slope(tmp_path):
    """ONNX LeakyRelu with no alpha attribute slopes 0.01 (the operator's default): every other
    test gave alpha, so reading a missing alpha as Viya's own leaky slope (0.1) stayed green.
    Verified against onnxruntime; the written slope is 0.01."""
    import h5py

    b = builder()
    node_input = conv3(b, b.input)
    y = b.op("LeakyRelu", node_input, name="/act/LeakyRelu")
    model = b.build([y])
    assert not model.graph.node[-1].attribute  # no alpha: the default
    compile_and_verify(model, tmp_path)
    slopes = set()
    with h5py.File(tmp_path / "out" / "m_weights.kerasmodel.h5") as h5:
        h5.visititems(lambda name, obj: slopes.update(
            np.abs(obj[...]).astype(np.float64).round(6).tolist()) if name.endswith("gamma:0")
            else None)
    assert 0.01 in slopes and 0.1 not in slopes, slopes


@pytest.mark.parametrize("op,attrs,act", ACTIVATIONS)
def test_activation_after_average_pool_needs_a_carrier(tmp_path, op, attrs, act):
    b = builder()
    p = b.op("AveragePool", conv3(b, b.input), kernel_shape=[2, 2], strides=[2, 2])
    y = b.op(op, p, **attrs)
    compile_and_verify(b.build([y]), tmp_path)
    (bn,) = by_type(tmp_path, "batchnorm")
    assert bn["act"] == act
    (conv,) = by_type(tmp_path, "convo")
    assert conv["act"] == "identity"


@pytest.mark.parametrize("op,attrs,act", ACTIVATIONS)
def test_activation_after_max_pool_moves_before_it(tmp_path, op, attrs, act):
    b = builder()
    p = b.op("MaxPool", conv3(b, b.input), kernel_shape=[2, 2], strides=[2, 2])
    y = b.op(op, p, **attrs)
    compile_and_verify(b.build([y]), tmp_path)
    (conv,) = by_type(tmp_path, "convo")
    assert conv["act"] == act
    assert "batchnorm" not in layer_types(tmp_path)


@pytest.mark.parametrize("op,attrs,act", ACTIVATIONS)
def test_activation_after_global_max_pool(tmp_path, op, attrs, act):
    b = builder()
    y = b.op(op, b.op("GlobalMaxPool", conv3(b, b.input)), **attrs)
    compile_and_verify(b.build([y]), tmp_path)


def test_activation_on_an_activated_conv_needs_a_carrier(tmp_path):
    b = builder()
    y = b.op("Sigmoid", b.op("Relu", conv3(b, b.input)))
    compile_and_verify(b.build([y]), tmp_path)
    (bn,) = by_type(tmp_path, "batchnorm")
    assert bn["act"] == "sigmoid"


def test_activation_after_concat(tmp_path):
    b = builder()
    z = b.op("Concat", conv3(b, b.input, 2), conv3(b, b.input, 3), axis=1)
    compile_and_verify(b.build([b.op("Tanh", z)]), tmp_path)
    (cat,) = by_type(tmp_path, "concat")
    assert cat["act"] == "tanh"


# ---- Softmax at the output ------------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_softmax_after_gemm_is_the_output_layer(tmp_path, opset):
    b = builder(opset=opset)
    f, n_in = _flat_features(b)
    y = b.op("Softmax", b.gemm(f, n_in, 5), axis=1)
    compile_and_verify(b.build([y]), tmp_path)
    (out,) = by_type(tmp_path, "output")
    assert out["act"] == "softmax" and out.get("fullconnect", True) is True
    assert "fc" not in layer_types(tmp_path)


def test_softmax_after_global_average_pool_and_flatten_has_no_weights(tmp_path):
    b = builder()
    g = b.op("GlobalAveragePool", conv3(b, b.input, 6))
    y = b.op("Softmax", b.op("Flatten", g))
    compile_and_verify(b.build([y]), tmp_path)
    (out,) = by_type(tmp_path, "output")
    assert out["act"] == "softmax" and out["fullconnect"] is False
    assert out["includebias"] is False and out["n"] == 6


# ---- no-ops ---------------------------------------------------------------------------------


def test_identity_inside_the_graph(tmp_path):
    b = builder()
    y = b.op("Relu", b.op("Identity", conv3(b, b.input)))
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "output"]


def test_identity_as_the_graph_output(tmp_path):
    """The source output name survives removing the Identity (name_map speaks of it)."""
    b = builder()
    y = b.op("Identity", b.op("Relu", conv3(b, b.input)))
    result = compile_and_verify(b.build([y]), tmp_path)
    assert [c.source_output for c in result.comparisons] == [y]


def test_dropout_as_the_graph_output(tmp_path):
    b = builder(opset=13)
    y = b.op("Dropout", b.op("Relu", conv3(b, b.input)), b.const(np.array(0.5, np.float32)))
    compile_and_verify(b.build([y]), tmp_path)


@pytest.mark.parametrize("opset", [12, 13, 17])
@pytest.mark.parametrize("training_input", [False, True], ids=["ratio", "ratio+training_false"])
def test_dropout_with_ratio_input(tmp_path, opset, training_input):
    b = builder(opset=opset)
    f, n_in = _flat_features(b)
    inputs = [f, b.const(np.array(0.5, np.float32))]
    if training_input:
        inputs.append(b.const(np.array(False)))
    d = b.op("Dropout", *inputs)
    y = b.gemm(d, n_in, 4)
    compile_and_verify(b.build([y]), tmp_path)
    for layer in viya_layers(tmp_path):
        assert not layer.get("dropout"), layer


def test_dropout_between_conv_and_pool(tmp_path):
    b = builder()
    d = b.op("Dropout", b.op("Relu", conv3(b, b.input)), b.const(np.array(0.3, np.float32)))
    y = b.op("MaxPool", d, kernel_shape=[2, 2], strides=[2, 2])
    compile_and_verify(b.build([y]), tmp_path)


# ---- flatten forms --------------------------------------------------------------------------


def test_flatten_after_conv_into_gemm(tmp_path):
    b = builder()
    x = b.op("Relu", conv3(b, b.input, 4))
    y = b.gemm(b.op("Flatten", x, axis=1), 4 * HW * HW, 5)
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "output"]


def test_flatten_as_the_graph_output(tmp_path):
    b = builder()
    y = b.op("Flatten", b.op("Relu", conv3(b, b.input, 2)))
    compile_and_verify(b.build([y]), tmp_path)


@pytest.mark.parametrize("shape,batch", [
    pytest.param([0, -1], "N", id="[0,-1]-dynamic"),
    pytest.param([-1, 64], "N", id="[-1,64]-dynamic"),
    pytest.param([1, -1], 1, id="[1,-1]-batch1"),
    pytest.param([0, -1], 1, id="[0,-1]-batch1"),
])
def test_reshape_as_flatten(tmp_path, shape, batch):
    b = builder(shape=(batch, C_IN, HW, HW))
    x = b.op("MaxPool", b.op("Relu", conv3(b, b.input, 4)), kernel_shape=[2, 2], strides=[2, 2])
    r = b.op("Reshape", x, b.const(np.array(shape, np.int64)))
    y = b.gemm(r, 64, 5)
    compile_and_verify(b.build([y]), tmp_path)
    assert "reshape" not in layer_types(tmp_path)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_after_global_pool_is_a_flatten(tmp_path, opset):
    b = builder(opset=opset)
    g = b.op("GlobalAveragePool", b.op("Relu", conv3(b, b.input, 6)))
    if opset >= 13:
        s = b.op("Squeeze", g, b.const(np.array([2, 3], np.int64)))
    else:
        s = b.op("Squeeze", g, axes=[2, 3])
    y = b.gemm(s, 6, 3)
    compile_and_verify(b.build([y]), tmp_path)


def test_transpose_nhwc_flatten_gemm(tmp_path):
    b = builder()
    x = b.op("Relu", conv3(b, b.input, 4))
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    t = b.op("Transpose", x, perm=[0, 2, 3, 1])
    y = b.gemm(b.op("Flatten", t), 64, 5)
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "pool", "output"]


def test_transpose_nhwc_reshape_matmul(tmp_path):
    b = builder()
    x = b.op("Relu", conv3(b, b.input, 4))
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    t = b.op("Transpose", x, perm=[0, 2, 3, 1])
    r = b.op("Reshape", t, b.const(np.array([0, -1], np.int64)))
    y = b.op("Add", b.op("MatMul", r, b.weight((64, 5))), b.weight((5,), scale=0.5))
    compile_and_verify(b.build([y]), tmp_path)


# ---- Pad ------------------------------------------------------------------------------------


def _pad_model(opset: int, spatial_pads, conv_pads=(0, 0, 0, 0), stride: int = 1, hw: int = HW):
    t, l, bt, r = spatial_pads
    b = builder(shape=("N", C_IN, hw, hw), opset=opset)
    full = [0, 0, t, l, 0, 0, bt, r]
    if opset >= 11:
        p = b.op("Pad", b.input, b.const(np.array(full, np.int64)), mode="constant")
    else:
        p = b.op("Pad", b.input, mode="constant", pads=full, value=0.0)
    b.channels[p] = C_IN
    y = b.conv(p, 4, 3, stride=stride, pads=list(conv_pads))
    return b.build([b.op("Relu", y)])


@pytest.mark.parametrize("opset", [10, 11, 13, 18], ids=lambda o: f"opset{o}")
def test_pad_folded_into_conv(tmp_path, opset):
    compile_and_verify(_pad_model(opset, (1, 1, 1, 1)), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "output"]
    (conv,) = by_type(tmp_path, "convo")
    # symmetric 1 on a 3x3/1 conv: automatic padding is the same and preferred
    assert conv.get("paddingheight", 1) == 1


def test_pad_added_to_the_conv_own_pads(tmp_path):
    compile_and_verify(_pad_model(13, (1, 1, 1, 1), conv_pads=(1, 1, 1, 1)), tmp_path)
    (conv,) = by_type(tmp_path, "convo")
    assert conv["paddingheight"] == 2 and conv["paddingwidth"] == 2


def test_asymmetric_pad_equal_to_automatic_split(tmp_path):
    # 16 px, 3x3/2: Viya automatic padding is 0 before, 1 after (TF 'same')
    compile_and_verify(_pad_model(13, (0, 0, 1, 1), stride=2, hw=16), tmp_path)
    (conv,) = by_type(tmp_path, "convo")
    assert "paddingheight" not in conv and "paddingwidth" not in conv


def test_pad_before_max_pool_after_relu(tmp_path):
    b = builder()
    x = b.op("Relu", conv3(b, b.input))
    p = b.op("Pad", x, b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)))
    y = b.op("MaxPool", p, kernel_shape=[3, 3], strides=[2, 2])
    compile_and_verify(b.build([y]), tmp_path)
    assert "pad" not in " ".join(layer_types(tmp_path))


# ---- constants ------------------------------------------------------------------------------


def test_constant_node_feeding_mul(tmp_path):
    b = builder()
    x = conv3(b, b.input)
    k = np.linspace(0.5, 2.0, 4, dtype=np.float32).reshape(1, 4, 1, 1)
    b.nodes.append(helper.make_node("Constant", [], ["k"], name="k",
                                    value=numpy_helper.from_array(k, "k")))
    y = b.op("Relu", b.op("Mul", x, "k"))
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "output"]


def test_constant_value_float_scalar(tmp_path):
    b = builder()
    x = b.op("AveragePool", conv3(b, b.input), kernel_shape=[2, 2], strides=[2, 2])
    b.nodes.append(helper.make_node("Constant", [], ["k"], name="k", value_float=1.5))
    compile_and_verify(b.build([b.op("Mul", x, "k")]), tmp_path)


def test_constant_value_floats_as_a_dense_bias(tmp_path):
    b = builder(shape=("N", 12))
    b.nodes.append(helper.make_node("Constant", [], ["k"], name="k",
                                    value_floats=[0.5, -1.0, 1.5, 2.0]))
    y = b.op("Add", b.op("MatMul", b.input, b.weight((12, 4))), "k")
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path) == ["input", "output"]


@pytest.mark.parametrize("op", ["Mul", "Add"])
def test_constant_of_shape(tmp_path, op):
    b = builder()
    x = conv3(b, b.input)
    fill = numpy_helper.from_array(np.array([1.75], np.float32), "fill")
    c = b.op("ConstantOfShape", b.const(np.array([1, 4, 1, 1], np.int64)), value=fill)
    y = b.op(op, x, c)
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "output"]


def _const_chain(b: OnnxBuilder, how: str, opset: int) -> str:
    """A (1,4,1,1) or (4,1,1) float constant computed by a constant-only op."""
    if how == "Unsqueeze":
        vec = b.const(np.array([0.5, -1.0, 0.25, 2.0], np.float32))
        if opset >= 13:
            return b.op("Unsqueeze", vec, b.const(np.array([1, 2], np.int64)))   # (4,1,1)
        return b.op("Unsqueeze", vec, axes=[1, 2])
    if how == "Squeeze":
        big = b.const(np.array([1.5, 0.5, 1.0, 2.0], np.float32).reshape(1, 1, 4, 1, 1))
        if opset >= 13:
            return b.op("Squeeze", big, b.const(np.array([0], np.int64)))        # (1,4,1,1)
        return b.op("Squeeze", big, axes=[0])
    k = numpy_helper.from_array(np.array([1.5, 0.5, 1.0, 2.0], np.float32), "k")
    b.nodes.append(helper.make_node("Constant", [], ["k"], name="k", value=k))
    return b.op("Reshape", "k", b.const(np.array([1, 4, 1, 1], np.int64)))


@pytest.mark.parametrize("opset", [11, 13], ids=lambda o: f"opset{o}")
@pytest.mark.parametrize("how,op", [("Unsqueeze", "Add"), ("Squeeze", "Mul"),
                                    ("Reshape", "Mul")],
                         ids=["Unsqueeze->Add", "Squeeze->Mul", "Reshape(Constant)->Mul"])
def test_constant_only_ops_feeding_a_per_channel_op(tmp_path, how, op, opset):
    b = builder(opset=opset)
    y = b.op(op, conv3(b, b.input), _const_chain(b, how, opset))
    compile_and_verify(b.build([y], output_shapes=[("N", 4, HW, HW)]), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "output"]


@pytest.mark.parametrize("opset", [11, 13], ids=lambda o: f"opset{o}")
def test_squeezed_constant_as_gemm_bias(tmp_path, opset):
    b = builder(shape=("N", 12), opset=opset)
    c = b.const(np.arange(5, dtype=np.float32).reshape(1, 1, 5))
    if opset >= 13:
        s = b.op("Squeeze", c, b.const(np.array([0], np.int64)))
    else:
        s = b.op("Squeeze", c, axes=[0])
    y = b.op("Gemm", b.input, b.weight((5, 12)), s, transB=1)
    compile_and_verify(b.build([y]), tmp_path)


def test_mul_and_add_per_channel_fold_into_the_conv(tmp_path):
    b = builder()
    x = conv3(b, b.input)
    y = b.op("Add", b.op("Mul", x, per_channel(b, 4)), per_channel(b, 4, -1, 1))
    compile_and_verify(b.build([b.op("Relu", y)]), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "output"]


def test_mul_and_add_per_channel_after_pool_become_one_batchnorm(tmp_path):
    b = builder()
    x = b.op("MaxPool", conv3(b, b.input), kernel_shape=[2, 2], strides=[2, 2])
    y = b.op("Add", b.op("Mul", x, per_channel(b, 4)), per_channel(b, 4, -1, 1))
    compile_and_verify(b.build([y]), tmp_path)
    assert len(by_type(tmp_path, "batchnorm")) == 1


def test_mul_by_scalar_on_the_input(tmp_path):
    b = builder()
    x = b.op("Mul", b.input, b.const(np.array(0.5, np.float32)))
    compile_and_verify(b.build([conv3(b, x)]), tmp_path)


def test_sub_and_div_by_constants(tmp_path):
    b = builder()
    x = conv3(b, b.input)
    y = b.op("Div", b.op("Sub", x, per_channel(b, 4, -1, 1)), per_channel(b, 4, 0.5, 2.0))
    compile_and_verify(b.build([b.op("Relu", y)]), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "output"]


def test_sub_and_div_normalising_the_input(tmp_path):
    b = builder()
    mean = b.const(np.array([0.1, -0.2, 0.3], np.float32).reshape(1, 3, 1, 1))
    std = b.const(np.array([0.5, 0.25, 2.0], np.float32).reshape(1, 3, 1, 1))
    x = b.op("Div", b.op("Sub", b.input, mean), std)
    compile_and_verify(b.build([conv3(b, x)]), tmp_path)


# ---- opsets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 21], ids=lambda o: f"opset{o}")
def test_small_cnn_at_opset(tmp_path, opset):
    b = builder(opset=opset)
    x = b.op("Relu", conv3(b, b.input, 4))
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    f = b.op("Flatten", x)
    y = b.gemm(b.op("Relu", b.gemm(f, 64, 8)), 8, 3)
    model = b.build([y])
    assert model.opset_import[0].version == opset
    compile_and_verify(model, tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "pool", "fc", "output"]


def test_model_built_with_onnx_helper_directly(tmp_path):
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="/conv/Conv",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="/relu/Relu")]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["batch", 3, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             ["batch", 4, 9, 9])],
                              initializer=[w, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    compile_and_verify(model, tmp_path)


# ---- structure around the ops ---------------------------------------------------------------


@pytest.mark.parametrize("hw", [(8, 6), (6, 10)], ids=["8x6", "6x10"])
def test_transpose_nhwc_on_non_square_maps(tmp_path, hw):
    b = builder(shape=("N", C_IN, *hw))
    x = conv3(b, b.input, 5)
    f = b.op("Flatten", b.op("Transpose", x, perm=[0, 2, 3, 1]))
    f = b.op("Dropout", f, b.const(np.array(0.5, np.float32)))
    y = b.gemm(f, 5 * hw[0] * hw[1], 3)
    compile_and_verify(b.build([y]), tmp_path)
    assert layer_types(tmp_path) == ["input", "convo", "output"]


def test_reshape_to_4d_is_a_viya_reshape_layer(tmp_path):
    b = builder()
    x = b.op("MaxPool", conv3(b, b.input, 4), kernel_shape=[2, 2], strides=[2, 2])  # 4x4x4
    r = b.op("Reshape", x, b.const(np.array([0, 16, 2, 2], np.int64)))
    b.channels[r] = 16
    compile_and_verify(b.build([conv3(b, r, 4)]), tmp_path)
    (reshape,) = by_type(tmp_path, "reshape")
    assert (reshape["depth"], reshape["height"], reshape["width"]) == (16, 2, 2)


def test_residual_with_the_input_layer(tmp_path):
    b = builder()
    y = b.op("Add", b.input, conv3(b, b.input, C_IN))
    compile_and_verify(b.build([y]), tmp_path)
    (res,) = by_type(tmp_path, "residual")
    assert by_type(tmp_path, "input")[0]["name"] in res["srcLayers"]


def test_residual_and_concat_of_vectors(tmp_path):
    b = builder(shape=("N", 12))
    x = b.op("Relu", b.gemm(b.input, 12, 6))
    r = b.op("Add", x, b.gemm(x, 6, 6))
    z = b.op("Concat", r, b.op("Tanh", b.gemm(b.input, 12, 4)), axis=-1)
    compile_and_verify(b.build([b.op("Softmax", b.gemm(z, 10, 3))]), tmp_path)
    assert {"residual", "concat"} <= set(layer_types(tmp_path))


def test_several_graph_outputs(tmp_path):
    b = builder()
    x = b.op("Relu", conv3(b, b.input))
    p = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    f = b.op("Flatten", p)
    h = b.gemm(f, 64, 6)
    y1 = b.op("Softmax", b.gemm(b.op("Relu", h), 6, 3))
    result = compile_and_verify(b.build([x, f, h, y1]), tmp_path)
    assert [c.source_output for c in result.comparisons] == [x, f, h, y1]


def test_pre_activation_value_that_is_also_a_graph_output(tmp_path):
    """conv -> (output) and conv -> relu -> (output): the relu must not be fused into the conv
    because the conv's own output is read unactivated."""
    b = builder()
    x = conv3(b, b.input)
    y = b.op("Relu", x)
    p = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    z = b.op("Sigmoid", p)
    compile_and_verify(b.build([x, y, z]), tmp_path)
    (conv,) = by_type(tmp_path, "convo")
    assert conv["act"] == "identity"


def test_input_preprocessing_options(tmp_path):
    b = builder()
    model = b.build([b.op("Relu", conv3(b, b.input))])
    compile_and_verify(model, tmp_path, input_options={
        "scale": 1 / 255, "offsets": [0.5, 1.0, 1.5], "normstds": [0.2, 0.3, 0.4]})
    (inp,) = by_type(tmp_path, "input")
    assert inp["scale"] == pytest.approx(1 / 255) and inp["offsets"] == [0.5, 1.0, 1.5]
    assert inp["normstds"] == [0.2, 0.3, 0.4]


def test_weights_file_is_float32_and_names_match(tmp_path):
    import h5py

    b = builder()
    x = b.op("Relu", b.batchnorm(conv3(b, b.input)))
    p = b.op("AveragePool", x, kernel_shape=[2, 2], strides=[2, 2])
    y = b.gemm(b.op("Flatten", b.batchnorm(p)), 64, 3)
    compile_and_verify(b.build([y]), tmp_path)
    weighted = [layer["name"] for layer in viya_layers(tmp_path)
                if layer["type"] in ("convo", "batchnorm", "fc", "output")]
    with h5py.File(tmp_path / "out" / "m_weights.kerasmodel.h5", "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
        assert names == weighted
        for name in names:
            for ds in f[name][name].values():
                assert ds.dtype == np.float32, (name, ds.name, ds.dtype)
