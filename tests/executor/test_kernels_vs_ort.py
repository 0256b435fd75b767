"""Each executor layer against onnxruntime on an equivalent single-op ONNX graph (opset 17).

The executor reads files written by tests/executor/viya_files.py; onnxruntime is the independent
reference. Where a layer needs several sources, the sources' executor outputs are fed to the
ONNX op so that only the layer under test is compared.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from irc.backends.viya.executor import ExecutorOptions, run_folder
from irc.errors import InvalidModel, UnsupportedOp

from .viya_files import input_layer, layer, write_folder

F32 = np.float32
RTOL, ATOL = 1e-4, 1e-5
rng = np.random.default_rng(1234)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(F32)


def ort_run(nodes, feeds: dict, outputs: list, inits: dict | None = None) -> list:
    """Run an ONNX graph made of ``nodes``; ``inits`` keep their dtypes (int64 for shapes)."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape))
         for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(outputs, {k: np.asarray(v, F32) for k, v in feeds.items()})


def viya(tmp_path, layers, weights, x, options=None, all_layers=False) -> dict:
    return run_folder(write_folder(tmp_path / "model", layers, weights), x, options,
                      all_layers)


def close(got, want, rtol=RTOL, atol=ATOL):
    assert got.dtype == F32
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- convolution

def conv_layers(c, h, w, o, kernel, stride, pad, groups=1, bias=True, act="identity"):
    options = dict(nfilters=o, height=kernel[0], width=kernel[1], stridevertical=stride[0],
                   stridehorizontal=stride[1], act=act, includebias=bias)
    if pad is not None:
        options.update(paddingheight=pad[0], paddingwidth=pad[1])
    kind = "convo"
    if groups > 1:
        kind, options["ngroups"] = "groupconvo", groups
    return [input_layer(c, h, w), layer("conv", kind, ["data"], **options)]


def conv_weights(c, o, kernel, groups=1, bias=True):
    weights = {"kernel": randn(o, c // groups, *kernel)}
    if bias:
        weights["bias"] = randn(o)
    return {"conv": weights}


def ort_conv(x, weights, **attrs):
    inits = {"W": weights["kernel"]}
    inputs = ["x", "W"]
    if "bias" in weights:
        inits["B"] = weights["bias"]
        inputs.append("B")
    node = helper.make_node("Conv", inputs, ["y"], **attrs)
    return ort_run([node], {"x": x}, ["y"], inits)[0]


@pytest.mark.parametrize("c,h,w,o,kernel,stride,pad", [
    (3, 8, 8, 4, (3, 3), (1, 1), (1, 1)),
    (2, 9, 9, 3, (3, 3), (2, 2), (1, 1)),
    (3, 11, 10, 5, (5, 5), (3, 3), (2, 2)),
    (4, 7, 7, 6, (1, 1), (1, 1), (0, 0)),
    (4, 7, 8, 6, (1, 1), (2, 2), (0, 0)),
    (3, 6, 7, 2, (3, 3), (1, 1), (0, 0)),
    (2, 10, 12, 3, (3, 5), (1, 2), (1, 2)),
    (3, 16, 15, 4, (7, 7), (2, 2), (3, 3)),
])
def test_conv_explicit_symmetric_padding(tmp_path, c, h, w, o, kernel, stride, pad):
    x = randn(2, c, h, w)
    weights = conv_weights(c, o, kernel)
    got = viya(tmp_path, conv_layers(c, h, w, o, kernel, stride, pad), weights, x)["conv"]
    want = ort_conv(x, weights["conv"], kernel_shape=list(kernel), strides=list(stride),
                    pads=[pad[0], pad[1], pad[0], pad[1]])
    close(got, want)


def viya_auto_pads(size, k, s):
    """Viya's automatic padding, by hand (viya-semantics.md §5.2): odd pixel at the end."""
    total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("k,s,size", [
    (7, 2, 15), (7, 2, 16), (3, 1, 8), (3, 2, 9), (3, 2, 10), (5, 3, 11), (1, 2, 7), (2, 2, 7),
    (4, 3, 13), (3, 3, 5),
])
def test_conv_automatic_padding_is_same_upper(tmp_path, k, s, size):
    h, w = size, size + 1
    x = randn(2, 3, h, w)
    weights = conv_weights(3, 4, (k, k))
    got = viya(tmp_path, conv_layers(3, h, w, 4, (k, k), (s, s), None), weights, x)["conv"]
    assert got.shape[2:] == (-(-h // s), -(-w // s))
    same_upper = ort_conv(x, weights["conv"], kernel_shape=[k, k], strides=[s, s],
                          auto_pad="SAME_UPPER")
    (t, b), (left, r) = viya_auto_pads(h, k, s), viya_auto_pads(w, k, s)
    explicit = ort_conv(x, weights["conv"], kernel_shape=[k, k], strides=[s, s],
                        pads=[t, left, b, r])
    close(got, same_upper)
    close(got, explicit)


@pytest.mark.parametrize("c,o,groups,pad", [(4, 6, 2, (1, 1)), (6, 6, 3, None),
                                            (4, 4, 4, (1, 1)), (5, 5, 5, None)])
def test_groupconvo_and_depthwise(tmp_path, c, o, groups, pad):
    x = randn(3, c, 9, 8)
    weights = conv_weights(c, o, (3, 3), groups)
    layers = conv_layers(c, 9, 8, o, (3, 3), (2, 1), pad, groups)
    got = viya(tmp_path, layers, weights, x)["conv"]
    pads = [pad[0], pad[1], pad[0], pad[1]] if pad else None
    attrs = dict(pads=pads) if pads else dict(auto_pad="SAME_UPPER")
    want = ort_conv(x, weights["conv"], kernel_shape=[3, 3], strides=[2, 1], group=groups,
                    **attrs)
    close(got, want)


def test_conv_without_bias(tmp_path):
    x = randn(2, 3, 7, 7)
    weights = conv_weights(3, 5, (3, 3), bias=False)
    layers = conv_layers(3, 7, 7, 5, (3, 3), (1, 1), (1, 1), bias=False)
    got = viya(tmp_path, layers, weights, x)["conv"]
    close(got, ort_conv(x, weights["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))


def test_conv_relu_activation(tmp_path):
    x = randn(2, 3, 6, 6)
    weights = conv_weights(3, 4, (3, 3))
    layers = conv_layers(3, 6, 6, 4, (3, 3), (1, 1), (1, 1), act="relu")
    got = viya(tmp_path, layers, weights, x)["conv"]
    close(got, np.maximum(ort_conv(x, weights["conv"], kernel_shape=[3, 3],
                                   pads=[1, 1, 1, 1]), 0))


# ----------------------------------------------------------------------------- pooling

def pool_layers(c, h, w, kind, kernel, stride, pad):
    options = dict(pool=kind, height=kernel[0], width=kernel[1], stridevertical=stride[0],
                   stridehorizontal=stride[1])
    if pad is not None:
        options.update(paddingheight=pad[0], paddingwidth=pad[1])
    return [input_layer(c, h, w), layer("pool", "pool", ["data"], **options)]


def ort_pool(x, kind, **attrs):
    op = "MaxPool" if kind == "max" else "AveragePool"
    return ort_run([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": x}, ["y"])[0]


POOL_CASES = [((3, 3), (2, 2), (1, 1), 9, 10), ((2, 2), (2, 2), (0, 0), 8, 7),
              ((3, 3), (1, 1), (1, 1), 6, 6), ((3, 3), (3, 3), (1, 1), 10, 11),
              ((5, 5), (2, 2), (2, 2), 12, 9), ((3, 2), (2, 1), (1, 0), 7, 6)]


@pytest.mark.parametrize("kind", ["max", "mean"])
@pytest.mark.parametrize("kernel,stride,pad,h,w", POOL_CASES)
def test_pool_explicit_padding_floor(tmp_path, kind, kernel, stride, pad, h, w):
    x = randn(2, 3, h, w)
    got = viya(tmp_path, pool_layers(3, h, w, kind, kernel, stride, pad), {}, x)["pool"]
    extra = {} if kind == "max" else {"count_include_pad": 0}   # divisor 'valid'
    want = ort_pool(x, kind, kernel_shape=list(kernel), strides=list(stride),
                    pads=[pad[0], pad[1], pad[0], pad[1]], **extra)
    close(got, want)


@pytest.mark.parametrize("kernel,stride,pad,h,w", [((3, 3), (1, 1), (1, 1), 6, 7),
                                                    ((3, 3), (2, 2), (1, 1), 9, 9),
                                                    ((5, 3), (1, 2), (2, 1), 8, 9)])
def test_mean_pool_window_divisor(tmp_path, kernel, stride, pad, h, w):
    x = randn(2, 2, h, w)
    options = ExecutorOptions(avgpool_divisor="window")
    got = viya(tmp_path, pool_layers(2, h, w, "mean", kernel, stride, pad), {}, x,
               options)["pool"]
    want = ort_pool(x, "mean", kernel_shape=list(kernel), strides=list(stride),
                    pads=[pad[0], pad[1], pad[0], pad[1]], count_include_pad=1)
    close(got, want)


@pytest.mark.parametrize("kind", ["max", "mean"])
@pytest.mark.parametrize("k,s,h,w", [(2, 2, 7, 8), (3, 2, 9, 10), (3, 1, 6, 7), (3, 3, 10, 11),
                                     (2, 1, 5, 5), (3, 2, 112, 56)])
def test_pool_automatic_padding_at_end(tmp_path, kind, k, s, h, w):
    x = randn(2, 2, h, w)
    got = viya(tmp_path, pool_layers(2, h, w, kind, (k, k), (s, s), None), {}, x)["pool"]
    ph, pw = sum(viya_auto_pads(h, k, s)), sum(viya_auto_pads(w, k, s))
    extra = {} if kind == "max" else {"count_include_pad": 0}
    want = ort_pool(x, kind, kernel_shape=[k, k], strides=[s, s], pads=[0, 0, ph, pw],
                    **extra)
    assert got.shape[2:] == (-(-h // s), -(-w // s))
    close(got, want)


@pytest.mark.parametrize("kind", ["max", "mean"])
@pytest.mark.parametrize("k,s,p,h,w,out", [
    (3, 2, 0, 6, 8, (3, 4)), (3, 2, 1, 8, 8, (5, 5)), (2, 2, 0, 7, 9, (4, 5)),
    (3, 3, 1, 5, 7, (2, 3)),   # H: the ceil window starting in the end padding is dropped
])
def test_pool_ceil_rounding_option(tmp_path, kind, k, s, p, h, w, out):
    x = randn(2, 2, h, w)
    options = ExecutorOptions(pool_explicit_rounding="ceil")
    got = viya(tmp_path, pool_layers(2, h, w, kind, (k, k), (s, s), (p, p)), {}, x,
               options)["pool"]
    extra = {} if kind == "max" else {"count_include_pad": 0}
    want = ort_pool(x, kind, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p],
                    ceil_mode=1, **extra)
    assert got.shape[2:] == out
    close(got, want)


@pytest.mark.parametrize("k,s,p,h,w", [(3, 2, 1, 8, 8), (3, 2, 1, 6, 9), (2, 2, 1, 5, 6)])
def test_mean_pool_caffe_divisor_counts_pads_not_overhang(tmp_path, k, s, p, h, w):
    """Caffe/ONNX count_include_pad=1 with ceil_mode: pad cells count, the overhang does not."""
    x = randn(2, 2, h, w)
    options = ExecutorOptions(pool_explicit_rounding="ceil", avgpool_divisor="caffe")
    got = viya(tmp_path, pool_layers(2, h, w, "mean", (k, k), (s, s), (p, p)), {}, x,
               options)["pool"]
    want = ort_pool(x, "mean", kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p],
                    ceil_mode=1, count_include_pad=1)
    close(got, want)


@pytest.mark.parametrize("kind,op", [("max", "GlobalMaxPool"), ("mean", "GlobalAveragePool")])
def test_global_pool(tmp_path, kind, op):
    x = randn(3, 4, 7, 5)
    layers = [input_layer(4, 7, 5),
              layer("pool", "pool", ["data"], pool=kind, width=0, height=0, stridevertical=1,
                    stridehorizontal=1)]
    got = viya(tmp_path, layers, {}, x)["pool"]
    close(got, ort_run([helper.make_node(op, ["x"], ["y"])], {"x": x}, ["y"])[0])


@pytest.mark.parametrize("pad", [(1, 1), None])
def test_maxpool_pad_zero_option(tmp_path, pad):
    x = randn(2, 2, 7, 8) - F32(3)        # mostly negative: zero padding changes the result
    layers = pool_layers(2, 7, 8, "max", (3, 3), (2, 2), pad)
    got = viya(tmp_path, layers, {}, x, ExecutorOptions(maxpool_pad="zero"))["pool"]
    pads = [0, 0, 1, 1, 0, 0, 1, 1] if pad else [0, 0, 0, 0, 0, 0, 0, 0]
    if pad is None:   # automatic: everything at the end
        pads = [0, 0, 0, 0, 0, 0, sum(viya_auto_pads(7, 3, 2)), sum(viya_auto_pads(8, 3, 2))]
    want = ort_run([helper.make_node("Pad", ["x", "pads"], ["xp"], mode="constant"),
                    helper.make_node("MaxPool", ["xp"], ["y"], kernel_shape=[3, 3],
                                     strides=[2, 2])],
                   {"x": x}, ["y"], {"pads": np.array(pads, np.int64)})[0]
    close(got, want)
    ignored = viya(tmp_path / "ignore", layers, {}, x)["pool"]
    assert not np.allclose(ignored, got)


def test_pool_auto_pad_option_split_tf_vs_end(tmp_path):
    x = randn(2, 3, 6, 6)
    layers = pool_layers(3, 6, 6, "max", (3, 3), (1, 1), None)
    end = viya(tmp_path / "end", layers, {}, x)["pool"]
    split = viya(tmp_path / "split", layers, {}, x, ExecutorOptions(pool_auto_pad="split_tf"))
    split = split["pool"]
    close(end, ort_pool(x, "max", kernel_shape=[3, 3], pads=[0, 0, 2, 2]))
    close(split, ort_pool(x, "max", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    assert not np.allclose(end, split)


# ----------------------------------------------------------------------------- fc and output

def test_fc_is_flatten_then_gemm(tmp_path):
    x = randn(2, 3, 4, 5)
    kernel, bias = randn(7, 60), randn(7)
    layers = [input_layer(3, 4, 5),
              layer("fc1", "fc", ["data"], n=7, act="identity", includebias=True)]
    got = viya(tmp_path, layers, {"fc1": {"kernel": kernel, "bias": bias}}, x)["fc1"]
    want = ort_run([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                    helper.make_node("Gemm", ["f", "W", "B"], ["y"], transB=1)],
                   {"x": x}, ["y"], {"W": kernel, "B": bias})[0]
    close(got, want)


def test_fc_with_two_sources_concatenates_in_srclayers_order(tmp_path):
    x = randn(2, 3, 4, 4)
    kernel = randn(5, (2 + 3) * 16)
    layers = [input_layer(3, 4, 4),
              layer("ca", "convo", ["data"], nfilters=2, width=1, height=1, stridevertical=1,
                    stridehorizontal=1, act="identity", includebias=False),
              layer("cb", "convo", ["data"], nfilters=3, width=1, height=1, stridevertical=1,
                    stridehorizontal=1, act="identity", includebias=False),
              layer("fc1", "fc", ["cb", "ca"], n=5, act="identity", includebias=False)]
    weights = {"ca": {"kernel": randn(2, 3, 1, 1)}, "cb": {"kernel": randn(3, 3, 1, 1)},
               "fc1": {"kernel": kernel}}
    out = viya(tmp_path, layers, weights, x, all_layers=True)
    want = ort_run([helper.make_node("Flatten", ["b"], ["fb"], axis=1),
                    helper.make_node("Flatten", ["a"], ["fa"], axis=1),
                    helper.make_node("Concat", ["fb", "fa"], ["v"], axis=1),
                    helper.make_node("Gemm", ["v", "W"], ["y"], transB=1)],
                   {"a": out["ca"], "b": out["cb"]}, ["y"], {"W": kernel})[0]
    close(out["fc1"], want)


@pytest.mark.parametrize("act", ["softmax", "identity"])
def test_output_fullconnect(tmp_path, act):
    x = randn(3, 2, 3, 3, scale=2)
    kernel, bias = randn(4, 18), randn(4)
    layers = [input_layer(2, 3, 3),
              layer("out", "output", ["data"], n=4, act=act, includebias=True,
                    fullconnect=True, error="auto")]
    got = viya(tmp_path, layers, {"out": {"kernel": kernel, "bias": bias}}, x)["out"]
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W", "B"], ["g" if act == "softmax" else "y"],
                              transB=1)]
    if act == "softmax":
        nodes.append(helper.make_node("Softmax", ["g"], ["y"], axis=1))
        np.testing.assert_allclose(got.sum(axis=1), 1, rtol=1e-5)
    close(got, ort_run(nodes, {"x": x}, ["y"], {"W": kernel, "B": bias})[0])


def test_output_without_fullconnect_is_softmax_over_all_values(tmp_path):
    x = randn(2, 2, 3, 3, scale=3)
    layers = [input_layer(2, 3, 3),
              layer("out", "output", ["data"], n=18, act="softmax", includebias=False,
                    fullconnect=False, error="auto")]
    got = viya(tmp_path, layers, {}, x)["out"]
    want = ort_run([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                    helper.make_node("Softmax", ["f"], ["y"], axis=1)], {"x": x}, ["y"])[0]
    close(got, want)


# ----------------------------------------------------------------------------- batch norm

def bn_params(c, var_low=0.1):
    return dict(gamma=randn(c), beta=randn(c), mean=randn(c),
                var=rng.uniform(var_low, 2.0, c).astype(F32))


def ort_bn(x, p, eps):
    node = helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"],
                            epsilon=eps)
    return ort_run([node], {"x": x}, ["y"], {"g": p["gamma"], "b": p["beta"],
                                             "m": p["mean"], "v": p["var"]})[0]


def bn_weights(p, stored_var):
    return {"gamma": p["gamma"], "beta": p["beta"], "moving_mean": p["mean"],
            "moving_variance": stored_var}


def test_batchnorm_with_eps_folded_into_variance(tmp_path):
    x = randn(2, 4, 5, 6)
    p = bn_params(4, var_low=0.001)
    layers = [input_layer(4, 5, 6), layer("bn", "batchnorm", ["data"], act="identity")]
    got = viya(tmp_path, layers, {"bn": bn_weights(p, p["var"] + F32(1e-3))}, x)["bn"]
    close(got, ort_bn(x, p, 1e-3))


def test_batchnorm_on_vectors_is_per_neuron(tmp_path):
    x = randn(3, 3, 2, 2)
    p = bn_params(5)
    layers = [input_layer(3, 2, 2),
              layer("fc1", "fc", ["data"], n=5, act="identity", includebias=True),
              layer("bn", "batchnorm", ["fc1"], act="identity")]
    weights = {"fc1": {"kernel": randn(5, 12), "bias": randn(5)},
               "bn": bn_weights(p, p["var"] + F32(1e-5))}
    out = viya(tmp_path, layers, weights, x, all_layers=True)
    close(out["bn"], ort_bn(out["fc1"], p, 1e-5))


def test_bn_extra_eps_option(tmp_path):
    x = randn(2, 3, 4, 4)
    p = bn_params(3, var_low=0.001)
    p["var"][0] = 0.002
    layers = [input_layer(3, 4, 4), layer("bn", "batchnorm", ["data"], act="identity")]
    weights = {"bn": bn_weights(p, p["var"])}
    with_eps = viya(tmp_path, layers, weights, x, ExecutorOptions(bn_extra_eps=1e-3))["bn"]
    close(with_eps, ort_bn(x, p, 1e-3))
    default = viya(tmp_path / "d", layers, weights, x)["bn"]
    assert not np.allclose(default, with_eps, rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------- residual, concat

def three_bn_branches(c, h, w):
    layers = [input_layer(c, h, w)]
    weights = {}
    for i in range(3):
        p = bn_params(c)
        layers.append(layer(f"bn{i}", "batchnorm", ["data"], act="identity"))
        weights[f"bn{i}"] = bn_weights(p, p["var"])
    return layers, weights


@pytest.mark.parametrize("act", ["identity", "relu"])
def test_residual_is_sum(tmp_path, act):
    x = randn(2, 3, 4, 5)
    layers, weights = three_bn_branches(3, 4, 5)
    layers.append(layer("res", "residual", ["bn0", "bn1", "bn2"], act=act))
    out = viya(tmp_path, layers, weights, x, all_layers=True)
    nodes = [helper.make_node("Sum", ["a", "b", "c"], ["s" if act == "relu" else "y"])]
    if act == "relu":
        nodes.append(helper.make_node("Relu", ["s"], ["y"]))
    want = ort_run(nodes, {"a": out["bn0"], "b": out["bn1"], "c": out["bn2"]}, ["y"])[0]
    close(out["res"], want)


def test_concat_of_three_along_channels_in_srclayers_order(tmp_path):
    x = randn(2, 3, 5, 5)
    layers, weights = [input_layer(3, 5, 5)], {}
    for name, filters in (("c1", 1), ("c2", 2), ("c3", 3)):
        layers.append(layer(name, "convo", ["data"], nfilters=filters, width=1, height=1,
                            stridevertical=1, stridehorizontal=1, act="identity",
                            includebias=True))
        weights[name] = {"kernel": randn(filters, 3, 1, 1), "bias": randn(filters)}
    layers.append(layer("cat", "concat", ["c3", "c1", "c2"], act="identity"))
    out = viya(tmp_path, layers, weights, x, all_layers=True)
    want = ort_run([helper.make_node("Concat", ["a", "b", "c"], ["y"], axis=1)],
                   {"a": out["c3"], "b": out["c1"], "c": out["c2"]}, ["y"])[0]
    assert out["cat"].shape == (2, 6, 5, 5)
    close(out["cat"], want)


def test_concat_of_vectors_end_to_end(tmp_path):
    x = randn(2, 2, 3, 3)
    layers = [input_layer(2, 3, 3),
              layer("f1", "fc", ["data"], n=3, act="identity", includebias=False),
              layer("f2", "fc", ["data"], n=4, act="identity", includebias=False),
              layer("cat", "concat", ["f2", "f1"], act="identity")]
    weights = {"f1": {"kernel": randn(3, 18)}, "f2": {"kernel": randn(4, 18)}}
    out = viya(tmp_path, layers, weights, x, all_layers=True)
    want = ort_run([helper.make_node("Concat", ["a", "b"], ["y"], axis=1)],
                   {"a": out["f2"], "b": out["f1"]}, ["y"])[0]
    close(out["cat"], want)


def test_reshape_reinterprets_chw(tmp_path):
    x = randn(2, 4, 3, 6)
    layers = [input_layer(4, 3, 6),
              layer("rs", "reshape", ["data"], depth=2, height=6, width=6, act="identity")]
    got = viya(tmp_path, layers, {}, x)["rs"]
    want = ort_run([helper.make_node("Reshape", ["x", "s"], ["y"])], {"x": x}, ["y"],
                   {"s": np.array([0, 2, 6, 6], np.int64)})[0]
    close(got, want)


# ----------------------------------------------------------------------------- activations

ACT_CASES = [("identity", "Identity", {}), ("relu", "Relu", {}), ("rectifier", "Relu", {}),
             ("tanh", "Tanh", {}), ("sigmoid", "Sigmoid", {}), ("logistic", "Sigmoid", {}),
             ("softplus", "Softplus", {}), ("elu", "Elu", {"alpha": 1.0}),
             ("leaky", "LeakyRelu", {"alpha": 0.1}), ("exp", "Exp", {}), ("sin", "Sin", {}),
             ("cos", "Cos", {})]


def act_carrier(act, c=3, h=4, w=5):
    """An identity batchnorm (γ=1, β=0, μ=0, v=1) that carries ``act``."""
    layers = [input_layer(c, h, w), layer("bn", "batchnorm", ["data"], act=act)]
    ones, zeros = np.ones(c, F32), np.zeros(c, F32)
    return layers, {"bn": {"gamma": ones, "beta": zeros, "moving_mean": zeros,
                           "moving_variance": ones}}


@pytest.mark.parametrize("act,op,attrs", ACT_CASES)
def test_activation_matches_onnx_op(tmp_path, act, op, attrs):
    x = randn(2, 3, 4, 5, scale=4)
    x[0, 0, 0, :3] = [-60.0, 60.0, 0.0]    # overflow guards of sigmoid/softplus
    if op == "Exp":
        x = np.clip(x, -20, 20)
    layers, weights = act_carrier(act)
    got = viya(tmp_path, layers, weights, x)["bn"]
    want = ort_run([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": x}, ["y"])[0]
    close(got, want)
    assert np.all(np.isfinite(got))


def test_elu_alpha_option(tmp_path):
    x = randn(2, 3, 4, 5, scale=3)
    layers, weights = act_carrier("elu")
    got = viya(tmp_path, layers, weights, x, ExecutorOptions(elu_alpha=0.5))["bn"]
    close(got, ort_run([helper.make_node("Elu", ["x"], ["y"], alpha=0.5)], {"x": x},
                       ["y"])[0])


# ----------------------------------------------------------------------------- input layer

def test_input_layer_scale_offsets_normstds(tmp_path):
    x = rng.uniform(0, 255, (3, 3, 4, 5)).astype(F32)
    offsets, stds = [0.4, 0.5, 0.45], [0.25, 0.5, 2.0]
    layers = [input_layer(3, 4, 5, scale=1 / 255, offsets=offsets, normstds=stds)]
    got = viya(tmp_path, layers, {}, x)["data"]
    want = (x.astype(np.float64) / 255 - np.array(offsets)[:, None, None]) \
        / np.array(stds)[:, None, None]
    close(got, want.astype(F32))


def test_input_shape_must_match_exactly(tmp_path):
    with pytest.raises(ValueError, match="does not resize"):
        viya(tmp_path, [input_layer(3, 4, 5)], {}, randn(1, 3, 5, 4))


# ----------------------------------------------------------------------------- options, errors

def test_dropout_scoring_scale_keep(tmp_path):
    x = randn(2, 2, 3, 3)
    layers = [input_layer(2, 3, 3),
              layer("fc1", "fc", ["data"], n=4, act="identity", includebias=False,
                    dropout=0.25)]
    weights = {"fc1": {"kernel": randn(4, 18)}}
    plain = viya(tmp_path, layers, weights, x)["fc1"]
    scaled = viya(tmp_path / "s", layers, weights, x,
                  ExecutorOptions(dropout_scoring="scale_keep"))["fc1"]
    close(scaled, plain * F32(0.75))
    assert not np.allclose(plain, scaled)


@pytest.mark.parametrize("name,value", [
    ("pool_explicit_rounding", "round"), ("pool_auto_pad", "start"), ("maxpool_pad", "nan"),
    ("avgpool_divisor", "all"), ("dropout_scoring", "inverted"), ("multi_source_order", "x"),
    ("reshape_mode", "whd"), ("transconv_layout", "caffe"), ("rnn_gate_act", "relu"),
    ("auto_act_recurrent", "softmax"), ("gru_reset_after", "maybe"), ("lstm_peephole", 2),
    ("bn_extra_eps", "big"), ("elu_alpha", float("nan")), ("rnn_reversed_output", "late"),
])
def test_bad_option_values_raise(name, value):
    with pytest.raises(ValueError, match=name):
        ExecutorOptions(**{name: value})


def test_option_defaults_and_aliases():
    options = ExecutorOptions(auto_act_recurrent="Logistic", gru_reset_after="true",
                              lstm_peephole="on")
    assert (options.auto_act_recurrent, options.gru_reset_after, options.lstm_peephole) \
        == ("sigmoid", True, True)
    defaults = ExecutorOptions().as_dict()
    assert defaults["pool_auto_pad"] == "end" and defaults["avgpool_divisor"] == "valid"
    assert defaults["bn_extra_eps"] == 0.0 and defaults["elu_alpha"] == 1.0


def test_residual_shape_mismatch_is_an_error(tmp_path):
    layers = [input_layer(3, 4, 4),
              layer("c", "convo", ["data"], nfilters=2, width=1, height=1, stridevertical=1,
                    stridehorizontal=1, act="identity", includebias=False),
              layer("res", "residual", ["data", "c"], act="identity")]
    with pytest.raises(InvalidModel, match="identical shapes") as err:
        viya(tmp_path, layers, {"c": {"kernel": randn(2, 3, 1, 1)}}, randn(1, 3, 4, 4))
    assert err.value.node == "res"


def test_reshape_with_other_order_is_refused(tmp_path):
    layers = [input_layer(4, 3, 6),
              layer("rs", "reshape", ["data"], depth=2, height=6, width=6, act="identity",
                    order="whd")]
    with pytest.raises(UnsupportedOp, match="reshape order"):
        viya(tmp_path, layers, {}, randn(1, 4, 3, 6))


def test_softmax_outside_output_layer_is_refused(tmp_path):
    layers, weights = act_carrier("softmax")
    with pytest.raises(InvalidModel, match="output layer"):
        viya(tmp_path, layers, weights, randn(1, 3, 4, 5))


def test_recurrent_layer_reading_the_input_needs_its_kernel(tmp_path):
    """d of the (1, 1, T·d) RNN input comes from the kernel rows (tests/recurrent has more)."""
    layers = [input_layer(1, 1, 12),
              layer("rnn", "recurrent", ["data"], n=4, rnntype="lstm", outputtype="encoding",
                    reversed=False, act="tanh")]
    with pytest.raises(InvalidModel, match="rows of its kernel"):
        viya(tmp_path, layers, {}, randn(1, 1, 1, 12))
