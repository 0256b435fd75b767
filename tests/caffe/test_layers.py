"""Every Caffe layer irc converts, in small synthetic nets: prototxt text + random caffemodel
(written with irc's schema) -> irc compile -> Viya files -> reference executor vs OpenCV's
forward of the same files. Where Viya cannot express a case, the clear error is asserted (and
the ONNX that caffe_to_onnx writes is still checked against OpenCV)."""
from __future__ import annotations

import pytest

from irc.errors import UnsupportedAttribute, ViyaCannotExpress
from tests.caffe.conftest import check_against_opencv, compile_caffe, onnx_vs_opencv, \
    random_caffemodel, write_net


def net(body: str, c: int = 3, h: int = 14, w: int = 14) -> str:
    return (f'name: "t"\nlayer {{ name: "data" type: "Input" top: "data" '
            f'input_param {{ shape {{ dim: 1 dim: {c} dim: {h} dim: {w} }} }} }}\n' + body)


def conv(name, bottom, n, k=3, extra="", top=None):
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" '
            f'top: "{top or name}" convolution_param {{ num_output: {n} kernel_size: {k} '
            f'{extra} }} }}\n')


def pool(name, bottom, method, k, s, pad=0, extra=""):
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
            f'pooling_param {{ pool: {method} kernel_size: {k} stride: {s} pad: {pad} '
            f'{extra} }} }}\n')


def layer(name, type_, bottoms, top=None, params=""):
    bottoms = [bottoms] if isinstance(bottoms, str) else bottoms
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    return f'layer {{ name: "{name}" type: "{type_}" {b} top: "{top or name}" {params} }}\n'


X = (2, 3, 14, 14)

# ---- convolution ----------------------------------------------------------------------------

CONV_CASES = {
    "pad1": conv("c", "data", 4, 3, "pad: 1"),
    "stride2_pad1": conv("c", "data", 4, 3, "pad: 1 stride: 2"),
    "k5_pad2": conv("c", "data", 5, 5, "pad: 2"),
    "pad_h_w": 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
               'convolution_param { num_output: 4 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 } }\n',
    "no_bias": conv("c", "data", 4, 3, "pad: 1 bias_term: false"),
    "group2": conv("c0", "data", 6, 1) + conv("c", "c0", 4, 3, "pad: 1 group: 2"),
    "depthwise": conv("c0", "data", 6, 1) + conv("c", "c0", 6, 3, "pad: 1 group: 6 stride: 2"),
}


@pytest.mark.parametrize("body", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_convolution(tmp_path, body):
    check_against_opencv(tmp_path, net(body + layer("r", "ReLU", "c", "c")), X)


# ---- pooling: Caffe rounds up -----------------------------------------------------------------

# (method, size, pad) where Viya can express it: 3x3/2 on 14 pad 0 (Caffe 7, floor 6 -> Viya
# automatic padding), on 15 pad 0 (7 = floor -> explicit 0), max pool on 15 pad 1 (8 = floor);
# a padded AVE pool on 15 (Caffe counts the pad cells in its divisor) becomes a depthwise
# convolution with weights 1/9 (legalize_avgpool_include_pad).
POOL_OK = [("MAX", 14, 0), ("MAX", 15, 0), ("MAX", 15, 1), ("AVE", 14, 0), ("AVE", 15, 0),
           ("AVE", 15, 1)]


@pytest.mark.parametrize("method,size,pad", POOL_OK, ids=[f"{m}-{s}-pad{p}" for m, s, p in POOL_OK])
def test_pooling_ceil(tmp_path, method, size, pad):
    body = conv("c", "data", 4, 1) + pool("p", "c", method, 3, 2, pad)
    got = check_against_opencv(tmp_path, net(body, h=size, w=size), (2, 3, size, size))
    expected = -(-(size + 2 * pad - 3) // 2) + 1
    assert got["p"].shape[2:] == (expected, expected)


def test_pooling_2x2_on_odd_size(tmp_path):
    body = conv("c", "data", 4, 1) + pool("p", "c", "MAX", 2, 2)
    got = check_against_opencv(tmp_path, net(body, h=7, w=7), (2, 3, 7, 7))
    assert got["p"].shape[2:] == (4, 4)  # floor would give 3


# Refused by irc's Viya backend (the ONNX is still checked): 3x3/2 pad 1 on 14 rounds up to 8
# (no Viya padding gives 8 with windows starting at -1).
POOL_REFUSED = [("MAX", 14, 1, "cannot be expressed in Viya"),
                ("AVE", 14, 1, "cannot be expressed in Viya")]


@pytest.mark.parametrize("method,size,pad,why", POOL_REFUSED,
                         ids=[f"{m}-{s}-pad{p}" for m, s, p, _ in POOL_REFUSED])
def test_pooling_refused_by_viya(tmp_path, method, size, pad, why):
    body = conv("c", "data", 4, 1) + pool("p", "c", method, 3, 2, pad)
    proto, weights = onnx_vs_opencv(tmp_path, net(body, h=size, w=size), (2, 3, size, size))
    with pytest.raises(ViyaCannotExpress, match=why) as err:
        compile_caffe(proto, weights, tmp_path / "out")
    assert "'p'" in str(err.value) or " p " in str(err.value) or "p (" in str(err.value)


def test_pooling_whose_ceil_rule_differs_between_axes(tmp_path):
    """Caffe drops a last window starting beyond input + pad: here on W (6, pad 2 -> 4) but not
    on H (14, pad 1 -> 8, rounded up). No ceil_mode gives both; larger end pads do."""
    import onnx

    from irc.frontends.caffe import caffe_to_onnx

    body = conv("c", "data", 4, 1) + layer("p", "Pooling", "c", params="pooling_param { pool: "
                                           "MAX kernel_size: 3 stride: 2 pad_h: 1 pad_w: 2 }")
    text = net(body, h=14, w=6)
    proto, weights = onnx_vs_opencv(tmp_path, text, (2, 3, 14, 6))
    (node,) = [n for n in caffe_to_onnx(proto).model.graph.node if n.op_type == "MaxPool"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["ceil_mode"] == 0 and attrs["pads"] == [1, 2, 2, 1]
    with pytest.raises(UnsupportedAttribute, match="ceil rule differs between axes"):
        caffe_to_onnx(write_net(tmp_path, text.replace("MAX", "AVE")))


def test_pooling_round_mode_floor(tmp_path):
    from irc.frontends.caffe import caffe_to_onnx

    body = conv("c", "data", 4, 1) + pool("p", "c", "MAX", 3, 2, 0, "round_mode: FLOOR")
    out = caffe_to_onnx(write_net(tmp_path, net(body))).model.graph.output[0]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim[2:]] == [6, 6]  # ceil: 7


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling(tmp_path, method):
    body = conv("c", "data", 4, 3) + layer("p", "Pooling", "c", params=f"pooling_param {{ pool: "
                                                                       f"{method} global_pooling: true }}")
    got = check_against_opencv(tmp_path, net(body), X)
    assert got["p"].size == 2 * 4


# ---- normalisation --------------------------------------------------------------------------

BN = 'layer { name: "bn" type: "BatchNorm" bottom: "c" top: "c" %s }\n'
SCALE = 'layer { name: "sc" type: "Scale" bottom: "c" top: "c" scale_param { %s } }\n'


@pytest.mark.parametrize("factor", [0.25, 1.0, 0.0], ids=["factor0.25", "factor1", "factor0"])
def test_batchnorm_scale(tmp_path, factor):
    import numpy as np

    rng = np.random.default_rng(3)
    blobs = [rng.standard_normal(4) * factor, rng.uniform(0.5, 2, 4) * factor, [factor]]
    body = conv("c", "data", 4, 3, "pad: 1 bias_term: false") + BN % "" \
        + SCALE % "bias_term: true" + layer("r", "ReLU", "c", "c")
    check_against_opencv(tmp_path, net(body), X, override={"bn": blobs})


def test_batchnorm_without_scale_and_custom_eps(tmp_path):
    body = layer("c", "Convolution", "data", params="convolution_param { num_output: 4 "
                 "kernel_size: 3 }") + layer("p", "Pooling", "c", params="pooling_param { "
                                              "pool: MAX kernel_size: 2 stride: 2 }") \
        + 'layer { name: "bn" type: "BatchNorm" bottom: "p" top: "bn" ' \
          'batch_norm_param { eps: 0.001 } }\n'
    check_against_opencv(tmp_path, net(body), X)


def test_batchnorm_with_batch_statistics_is_refused_up_front(tmp_path):
    """use_global_stats: false normalizes each batch with its own statistics (issue 16: it
    compiled and then verified as a mismatch, max abs 0.62)."""
    body = conv("c", "data", 4, 3) + BN % "batch_norm_param { use_global_stats: false }"
    proto = write_net(tmp_path, net(body))
    with pytest.raises(UnsupportedAttribute, match="bn: BatchNorm with use_global_stats: false "
                                                   "normalizes with the statistics of each batch"):
        compile_caffe(proto, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_scale_without_bias_after_batchnorm(tmp_path):
    body = conv("c", "data", 4, 3) + BN % "" + SCALE % "bias_term: false"
    check_against_opencv(tmp_path, net(body), X)


@pytest.mark.parametrize("bias", ["true", "false"])
def test_standalone_scale(tmp_path, bias):
    body = conv("c0", "data", 4, 3) + layer("r", "ReLU", "c0", "c0") \
        + f'layer {{ name: "sc" type: "Scale" bottom: "c0" top: "s" scale_param {{ bias_term: '\
          f'{bias} }} }}\n'
    check_against_opencv(tmp_path, net(body), X)


def test_scale_after_inner_product(tmp_path):
    body = layer("ip", "InnerProduct", "data", params="inner_product_param { num_output: 5 }") \
        + 'layer { name: "sc" type: "Scale" bottom: "ip" top: "s" scale_param { bias_term: true } }\n'
    check_against_opencv(tmp_path, net(body), X)


# ---- element-wise, concat, activations --------------------------------------------------------

def _two_branches(coeffs: str, op: str = "SUM") -> str:
    return (conv("a", "data", 4, 3, "pad: 1") + conv("b", "data", 4, 1)
            + layer("e", "Eltwise", ["a", "b"], params=f"eltwise_param {{ operation: {op} "
                                                     f"{coeffs} }}"))


@pytest.mark.parametrize("coeffs", ["", "coeff: 1 coeff: -1", "coeff: 0.5 coeff: 2"],
                         ids=["plain", "1,-1", "0.5,2"])
def test_eltwise_sum(tmp_path, coeffs):
    check_against_opencv(tmp_path, net(_two_branches(coeffs) + layer("r", "ReLU", "e", "e")), X)


def test_eltwise_sum_of_three_with_coefficients_after_relu(tmp_path):
    body = conv("a", "data", 4, 3, "pad: 1") + layer("ra", "ReLU", "a", "a") \
        + conv("b", "a", 4, 3, "pad: 1") + conv("c", "a", 4, 1) \
        + layer("e", "Eltwise", ["a", "b", "c"], params="eltwise_param { coeff: 1 coeff: -1 "
                                                        "coeff: 0.5 }")
    check_against_opencv(tmp_path, net(body), X)


@pytest.mark.parametrize("shared", [False, True], ids=["per_channel", "channel_shared"])
def test_prelu(tmp_path, shared):
    """PReLU -> relu(x) - a*relu(-x) (legalize_prelu); slopes from the caffemodel."""
    params = "prelu_param { channel_shared: true }" if shared else ""
    body = conv("c", "data", 4, 3, "pad: 1") + layer("p", "PReLU", "c", params=params)
    check_against_opencv(tmp_path, net(body), X)


def test_eltwise_max_of_three(tmp_path):
    """Eltwise MAX -> two chained max(a, b) = a + relu(b - a) rewrites (legalize_max_min)."""
    body = conv("a", "data", 4, 3, "pad: 1") + conv("b", "data", 4, 1) \
        + conv("c", "data", 4, 3, "pad: 1") \
        + layer("m", "Eltwise", ["a", "b", "c"], params="eltwise_param { operation: MAX }")
    check_against_opencv(tmp_path, net(body), X)


# own_phase: Caffe keeps a layer whose own phase field is TRAIN (Net::Init only fills it when
# unset), and so do irc and the oracle (tests/caffe/test_phase_rules.py).
@pytest.mark.parametrize("rule", ["include { phase: TRAIN }", "exclude { phase: TEST }",
                                  'include { stage: "deploy" }', "include { min_level: 1 }",
                                  "phase: TRAIN"],
                         ids=["include_train", "exclude_test", "stage", "level", "own_phase"])
def test_layers_outside_the_test_phase_are_left_out_by_irc_and_the_oracle(tmp_path, rule):
    """Caffe builds the TEST-phase net for inference; OpenCV ignores phase rules (it ran this
    TRAIN-only in-place ReLU), so the oracle gets the net without it (fuzz: verification used
    to fail, exit 1)."""
    body = conv("c", "data", 4, 3, "pad: 1") + layer("r", "ReLU", "c", "c", params=rule) \
        + conv("d", "c", 3, 3)
    check_against_opencv(tmp_path, net(body), X)


def test_concat_of_three(tmp_path):
    body = conv("a", "data", 2, 1) + conv("b", "data", 3, 3, "pad: 1") \
        + conv("c", "data", 4, 5, "pad: 2") + layer("cat", "Concat", ["a", "b", "c"]) \
        + layer("r", "ReLU", "cat", "cat")
    got = check_against_opencv(tmp_path, net(body), X)
    assert got["cat"].shape[1] == 9


@pytest.mark.parametrize("act", ['ReLU" relu_param { negative_slope: 0.1 }', 'Sigmoid"',
                                 'TanH"', 'ReLU"', 'ReLU" relu_param { negative_slope: 0.2 }',
                                 'ReLU" relu_param { negative_slope: -0.5 }'],
                         ids=["leaky0.1", "sigmoid", "tanh", "relu", "leaky0.2", "leaky-0.5"])
def test_activations(tmp_path, act):
    type_, _, params = act.partition('"')
    body = conv("c", "data", 4, 3, "pad: 1") + \
        f'layer {{ name: "act" type: "{type_}" bottom: "c" top: "c" {params} }}\n'
    check_against_opencv(tmp_path, net(body), X)


def test_dropout_split_flatten_innerproduct_softmax(tmp_path):
    body = conv("c", "data", 4, 3, "stride: 2") \
        + layer("drop", "Dropout", "c", "c", "dropout_param { dropout_ratio: 0.3 }") \
        + 'layer { name: "split" type: "Split" bottom: "c" top: "c1" top: "c2" }\n' \
        + layer("flat", "Flatten", "c1") \
        + layer("ip", "InnerProduct", "flat", params="inner_product_param { num_output: 6 }") \
        + layer("ip2", "InnerProduct", "c2", params="inner_product_param { num_output: 6 }") \
        + layer("sum", "Eltwise", ["ip", "ip2"]) + layer("prob", "Softmax", "sum")
    check_against_opencv(tmp_path, net(body), X)


def test_inner_product_on_4d_input(tmp_path):
    body = conv("c", "data", 4, 3) + layer("ip", "InnerProduct", "c", params="inner_product_param"
                                          " { num_output: 7 }")
    check_against_opencv(tmp_path, net(body), X)


def test_inner_product_transpose_against_numpy(tmp_path):
    """``transpose: true`` stores W as (in, out) and computes x W. OpenCV 4.14 ignores the flag
    (it reads the blob as (out, in)), so Caffe's formula is the reference here."""
    import numpy as np

    from tests.caffe.conftest import run_viya_files

    body = layer("ip", "InnerProduct", "data", params="inner_product_param { num_output: 7 "
                 "transpose: true }")
    proto = write_net(tmp_path, net(body, c=2, h=3, w=4))
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((24, 7)), rng.standard_normal(7)
    weights = random_caffemodel(proto, override={"ip": [w, b]})
    x = rng.standard_normal((2, 2, 3, 4)).astype(np.float32)
    compile_caffe(proto, weights, tmp_path / "out")
    got = run_viya_files(tmp_path / "out", x)["ip"]
    np.testing.assert_allclose(got, x.reshape(2, -1) @ w + b, rtol=1e-4, atol=1e-5)


def test_inner_product_without_bias_then_softmax_output(tmp_path):
    body = layer("ip", "InnerProduct", "data", params="inner_product_param { num_output: 5 "
                 "bias_term: false }") + layer("prob", "Softmax", "ip")
    check_against_opencv(tmp_path, net(body), X)


def test_softmax_after_global_pool_is_flattened(tmp_path):
    body = conv("c", "data", 5, 1) + layer("p", "Pooling", "c", params="pooling_param { pool: AVE "
                                           "global_pooling: true }") + layer("prob", "Softmax", "p")
    check_against_opencv(tmp_path, net(body), X)


# ---- refusals: one error listing every problem ------------------------------------------------

def test_refused_parameters_are_listed_together(tmp_path):
    # A refused element-wise layer still gives its shape, so the layers after it are checked.
    body = conv("dil", "data", 4, 3, "dilation: 2") + layer("lk", "ReLU", "dil", "dil",
                                                             "relu_param { negative_slope: 0.2 }") \
        + conv("b", "data", 4, 5) + layer("prod", "Eltwise", ["dil", "b"],
                                          params="eltwise_param { operation: PROD }") \
        + layer("mx", "Eltwise", ["prod", "b"], params="eltwise_param { operation: MAX }") \
        + layer("cat", "Concat", ["mx", "b"], params="concat_param { axis: 2 }") \
        + layer("sm", "Softmax", "b")
    proto = write_net(tmp_path, net(body))
    with pytest.raises(UnsupportedAttribute) as err:
        compile_caffe(proto, None, tmp_path / "out")
    text = str(err.value)
    for name, why in [("dil", "dilation [2]"), ("prod", "PROD"),
                      ("cat", "axis 2"), ("sm", "Softmax over axis 1")]:
        assert f"{name}: " in text and why in text, (name, why, text)
    assert "lk: " not in text  # any ReLU slope converts now (exact, legalize_prelu)
    assert "mx: " not in text  # Eltwise MAX converts now (exact, legalize_max_min)
    assert err.value.file == str(proto) and err.value.node == "dil" and err.value.hint


def test_eltwise_with_one_bottom_is_refused_as_caffe_does(tmp_path):
    # Caffe's EltwiseLayer needs two bottoms (the net would not load); OpenCV runs it anyway.
    body = conv("c", "data", 4) + layer("one", "Eltwise", "c") + layer("r", "ReLU", "one", "one")
    proto = write_net(tmp_path, net(body))
    with pytest.raises(UnsupportedAttribute, match="one: Eltwise with 1 bottom"):
        compile_caffe(proto, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_softmax_mid_graph_is_refused_by_viya(tmp_path):
    body = layer("ip", "InnerProduct", "data", params="inner_product_param { num_output: 5 }") \
        + layer("prob", "Softmax", "ip") + layer("ip2", "InnerProduct", "prob",
                                                 params="inner_product_param { num_output: 3 }")
    proto = write_net(tmp_path, net(body))
    weights = random_caffemodel(proto)
    with pytest.raises(ViyaCannotExpress, match="Softmax in the middle"):
        compile_caffe(proto, weights, tmp_path / "out")


def test_unsupported_layers_and_refused_values_in_one_error(tmp_path):
    from irc.errors import UnsupportedOp
    from irc.frontends.caffe import caffe_to_onnx

    lrn = 'lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 }'
    body = layer("n1", "LRN", "data", params=lrn) + conv("dil", "n1", 4, 3, "dilation: 2") \
        + layer("n2", "LRN", "dil", params=lrn) + layer("up", "Deconvolution", "n2", params=
                                                        "convolution_param { num_output: 2 "
                                                        "kernel_size: 2 stride: 2 }")
    proto = write_net(tmp_path, net(body))
    with pytest.raises(UnsupportedOp) as err:
        caffe_to_onnx(proto)
    text = str(err.value)
    assert "3 Caffe node(s) of 2 unsupported type(s)" in text
    assert "LRN x2: 'n1', 'n2'" in text and "Deconvolution x1: 'up'" in text
    assert "1 other problem(s)" in text and "dil: dilation [2]" in text
    # drop_lrn: the LRN layers go (with warnings); what remains is still refused.
    with pytest.raises(UnsupportedOp) as err:
        caffe_to_onnx(proto, drop_lrn=True)
    assert "LRN" not in str(err.value).split("irc converts")[0]
