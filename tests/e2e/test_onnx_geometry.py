"""Convolution and pooling geometry, end to end: padding (explicit, asymmetric, auto_pad),
strides, kernel sizes, odd/even inputs, ceil_mode, count_include_pad, groups.

Every case that compiles must re-execute exactly (no silent off-by-one); a case irc refuses
must be one Viya really cannot express (viya-semantics.md §5) and be refused with
ViyaCannotExpress, never with a crash.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from irc.api import compile as compile_model
from irc.errors import ViyaCannotExpress
from irc.utils.onnx_builder import OnnxBuilder
from tests.e2e.conftest import compile_and_verify, viya_layers

C_IN = 3


def builder(hw, c: int = C_IN, seed: int = 0) -> OnnxBuilder:
    h, w = (hw, hw) if isinstance(hw, int) else hw
    return OnnxBuilder("g", ("N", c, h, w), seed=seed)


def only(tmp_path, kind: str) -> dict:
    (layer,) = [x for x in viya_layers(tmp_path) if x["type"] == kind]
    return layer


def padding_of(layer: dict):
    """'auto' or (paddingheight, paddingwidth)."""
    if "paddingheight" not in layer and "paddingwidth" not in layer:
        return "auto"
    return layer["paddingheight"], layer["paddingwidth"]


# ---- an independent oracle: which source window grids does Viya have? ----------------------


def viya_auto_grid(size, kernel, stride, kind):
    """(begin padding, output count) of Viya's automatic padding (§5.2)."""
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    begin = total // 2 if kind == "conv" else 0
    return begin, math.ceil(size / stride), total


def viya_explicit_grid(size, kernel, stride, pad):
    return pad, (size + 2 * pad - kernel) // stride + 1


def expressible(size, kernel, stride, begin, out, kind) -> bool:
    """Does some Viya padding form place the same windows as a source with ``begin`` padding
    before the data and ``out`` outputs along one axis? (Cells past the input are zeros for
    conv and ignored for max / count_include_pad=0 average pools, so only the grid matters.)"""
    a_begin, a_out, a_total = viya_auto_grid(size, kernel, stride, kind)
    auto = (a_begin, a_out) == (begin, out) and (kind == "conv" or a_total <= 1)
    explicit = viya_explicit_grid(size, kernel, stride, begin) == (begin, out) and begin < kernel
    return auto or explicit


def onnx_same_pads(size, kernel, stride, lower: bool):
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def conv_out(size, kernel, stride, pb, pe):
    return (size + pb + pe - kernel) // stride + 1


# ---- conv: explicit pads --------------------------------------------------------------------


@pytest.mark.parametrize("hw,kernel,stride,pads,expect", [
    pytest.param(16, 3, 2, [0, 0, 1, 1], "auto", id="16px-3x3s2-pads0011-is-automatic"),
    pytest.param(8, 3, 2, [0, 0, 1, 1], "auto", id="8px-3x3s2-pads0011-is-automatic"),
    pytest.param(16, 3, 1, [1, 1, 1, 1], "auto", id="16px-3x3s1-pads1111"),
    pytest.param(16, 3, 2, [1, 1, 1, 1], (1, 1), id="16px-3x3s2-pads1111-explicit"),
    pytest.param(15, 3, 2, [1, 1, 1, 1], "auto", id="15px-3x3s2-pads1111"),
    pytest.param(16, 5, 2, [1, 1, 2, 2], "auto", id="16px-5x5s2-pads1122-automatic-split"),
    pytest.param(16, 7, 2, [3, 3, 3, 3], (3, 3), id="16px-7x7s2-pads3333-explicit"),
    pytest.param(16, 7, 2, [2, 2, 3, 3], "auto", id="16px-7x7s2-pads2233-automatic"),
    pytest.param(17, 5, 1, [2, 2, 2, 2], "auto", id="17px-5x5s1-pads2222"),
    pytest.param(16, 3, 1, [0, 0, 0, 0], (0, 0), id="16px-3x3s1-valid-explicit0"),
    pytest.param((15, 16), 3, 2, [0, 1, 0, 1], (0, 1), id="15x16px-3x3s2-pads0101"),
    pytest.param(16, 5, 1, [2, 1, 2, 1], (2, 1), id="16px-5x5s1-pads2121-per-axis"),
])
def test_conv_explicit_pads(tmp_path, hw, kernel, stride, pads, expect):
    b = builder(hw)
    y = b.op("Relu", b.conv(b.input, 4, kernel, stride=stride, pads=pads))
    compile_and_verify(b.build([y]), tmp_path)
    conv = only(tmp_path, "convo")
    if expect is not None:
        assert padding_of(conv) == expect
    assert conv["stridevertical"] == stride and conv["stridehorizontal"] == stride


# ---- conv: auto_pad x kernel x stride x size -------------------------------------------------

AUTO_PADS = ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET_symmetric"]


@pytest.mark.parametrize("auto_pad", AUTO_PADS)
@pytest.mark.parametrize("kernel", [1, 3, 5, 7], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("stride", [1, 2, 3], ids=lambda s: f"s{s}")
@pytest.mark.parametrize("size", [15, 16, 17], ids=lambda s: f"{s}px")
def test_conv_geometry_grid(tmp_path, auto_pad, kernel, stride, size):
    b = builder(size)
    if auto_pad == "NOTSET_symmetric":
        p = kernel // 2
        y = b.conv(b.input, 4, kernel, stride=stride, pads=[p, p, p, p])
        pb = pe = p
    else:
        y = b.conv(b.input, 4, kernel, stride=stride, auto_pad=auto_pad)
        if auto_pad == "VALID":
            pb = pe = 0
        else:
            pb, pe = onnx_same_pads(size, kernel, stride, auto_pad == "SAME_LOWER")
    model = b.build([b.op("Relu", y)])
    out = conv_out(size, kernel, stride, pb, pe)
    if expressible(size, kernel, stride, pb, out, "conv"):
        compile_and_verify(model, tmp_path)
        conv = only(tmp_path, "convo")
        assert conv["width"] == conv["height"] == kernel
        if auto_pad == "SAME_UPPER":
            assert padding_of(conv) == "auto"  # the same split as Viya's automatic padding
    else:
        # No Viya padding has these windows: the padding moves into a one-hot groupconv
        # before the conv (legalize_layer_padding, exact) and the conv pads nothing.
        compile_and_verify(model, tmp_path)
        assert only(tmp_path, "groupconvo")["srcLayers"] == [viya_layers(tmp_path)[0]["name"]]


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("kernel", [2, 4], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("stride", [1, 2], ids=lambda s: f"s{s}")
@pytest.mark.parametrize("size", [15, 16], ids=lambda s: f"{s}px")
def test_conv_even_kernel_same_padding(tmp_path, auto_pad, kernel, stride, size):
    """Even kernels give odd total SAME padding at stride 1: SAME_UPPER is Viya's automatic
    split; SAME_LOWER (odd pixel first) has no Viya form, so its padding moves into a one-hot
    groupconv before the conv (exact)."""
    b = builder(size)
    y = b.conv(b.input, 4, kernel, stride=stride, auto_pad=auto_pad)
    model = b.build([y])
    pb, pe = onnx_same_pads(size, kernel, stride, auto_pad == "SAME_LOWER")
    out = conv_out(size, kernel, stride, pb, pe)
    if expressible(size, kernel, stride, pb, out, "conv"):
        compile_and_verify(model, tmp_path)
    else:
        assert auto_pad == "SAME_LOWER" and (pb + pe) % 2 == 1
        compile_and_verify(model, tmp_path)
        assert [layer["type"] for layer in viya_layers(tmp_path)][:3] == [
            "input", "groupconvo", "convo"]


def test_same_upper_and_valid_are_always_expressible():
    """The oracle above agrees with the spec: SAME_UPPER is Viya's automatic conv padding, and
    VALID / symmetric pads are explicit padding."""
    for size in (15, 16, 17):
        for k in (1, 3, 5, 7):
            for s in (1, 2, 3):
                pb, pe = onnx_same_pads(size, k, s, lower=False)
                assert expressible(size, k, s, pb, conv_out(size, k, s, pb, pe), "conv")
                assert expressible(size, k, s, 0, conv_out(size, k, s, 0, 0), "conv")
                p = k // 2
                assert expressible(size, k, s, p, conv_out(size, k, s, p, p), "conv")


@pytest.mark.parametrize("size,kernel,stride", [
    pytest.param(16, 3, 2, id="16px-3x3s2-total1"),
    pytest.param(15, 4, 2, id="15px-4x4s2-total3"),
    pytest.param(17, 5, 3, id="17px-5x5s3-total3"),
])
def test_same_lower_with_odd_total_but_stride_2_or_more_is_explicit(tmp_path, size, kernel,
                                                                     stride):
    """SAME_LOWER puts the odd pixel first; with stride >= 2 the explicit form (begin padding on
    both sides) yields the same windows because the extra end row is never reached."""
    pb, pe = onnx_same_pads(size, kernel, stride, lower=True)
    assert (pb + pe) % 2 == 1
    b = builder(size)
    y = b.conv(b.input, 4, kernel, stride=stride, auto_pad="SAME_LOWER")
    compile_and_verify(b.build([y]), tmp_path)
    assert padding_of(only(tmp_path, "convo")) == (pb, pb)


@pytest.mark.parametrize("kernel,strides,pads", [
    pytest.param((3, 5), (1, 2), [1, 2, 1, 2], id="3x5-s1x2-pads1212"),
    pytest.param((1, 3), (2, 1), [0, 1, 0, 1], id="1x3-s2x1-pads0101"),
    pytest.param((5, 1), (3, 1), [2, 0, 2, 0], id="5x1-s3x1-pads2020"),
])
def test_rectangular_kernels_and_strides(tmp_path, kernel, strides, pads):
    b = builder((15, 16))
    w = b.weight((4, C_IN, *kernel))
    bias = b.weight((4,), scale=0.1)
    y = b.op("Conv", b.input, w, bias, kernel_shape=list(kernel), strides=list(strides),
             pads=pads)
    b.channels[y] = 4
    compile_and_verify(b.build([y]), tmp_path)
    conv = only(tmp_path, "convo")
    assert (conv["height"], conv["width"]) == kernel
    assert (conv["stridevertical"], conv["stridehorizontal"]) == strides


# ---- groups, depthwise, no bias -------------------------------------------------------------


@pytest.mark.parametrize("cin,cout,group", [
    pytest.param(8, 8, 2, id="group2"),
    pytest.param(8, 12, 4, id="group4"),
    pytest.param(8, 8, 8, id="depthwise"),
    pytest.param(4, 8, 4, id="depthwise-multiplier2"),
])
@pytest.mark.parametrize("stride", [1, 2], ids=lambda s: f"s{s}")
def test_grouped_conv(tmp_path, cin, cout, group, stride):
    b = builder(9, c=cin)
    y = b.op("Relu", b.conv(b.input, cout, 3, stride=stride, pads=[1, 1, 1, 1], group=group))
    compile_and_verify(b.build([y]), tmp_path)
    conv = only(tmp_path, "groupconvo")
    assert conv["ngroups"] == group and conv["nfilters"] == cout


@pytest.mark.parametrize("group", [1, 2], ids=lambda g: f"group{g}")
def test_conv_without_bias(tmp_path, group):
    b = builder(10, c=4)
    y = b.conv(b.input, 6, 3, pads=[1, 1, 1, 1], bias=False, group=group)
    compile_and_verify(b.build([y]), tmp_path)
    conv = only(tmp_path, "convo" if group == 1 else "groupconvo")
    assert conv["includebias"] is False


def test_conv_without_bias_then_batchnorm_gets_a_bias(tmp_path):
    b = builder(10)
    y = b.batchnorm(b.conv(b.input, 6, 3, pads=[1, 1, 1, 1], bias=False))
    compile_and_verify(b.build([y]), tmp_path)
    assert only(tmp_path, "convo")["includebias"] is True


# ---- pooling --------------------------------------------------------------------------------


def onnx_pool_out(size, kernel, stride, pb, pe, ceil_mode):
    span = size + pb + pe - kernel
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pb:
        out -= 1  # the last window must start inside the input or the begin padding
    return out


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("size,expect", [
    pytest.param(14, "auto", id="14px-needs-automatic"),
    pytest.param(15, (0, 0), id="15px-explicit0"),
])
def test_pool_3x3_s2_ceil_mode(tmp_path, op, size, expect):
    b = builder(size)
    x = b.conv(b.input, 4, 3, pads=[1, 1, 1, 1])
    attrs = {"count_include_pad": 0} if op == "AveragePool" else {}
    y = b.op(op, x, kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=1, **attrs)
    compile_and_verify(b.build([y]), tmp_path)
    assert onnx_pool_out(size, 3, 2, 0, 0, 1) == 7
    assert padding_of(only(tmp_path, "pool")) == expect


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("ceil_mode", [0, 1], ids=["floor", "ceil"])
@pytest.mark.parametrize("kernel,stride,pad", [
    pytest.param(2, 2, 0, id="2x2s2p0"), pytest.param(3, 2, 0, id="3x3s2p0"),
    pytest.param(3, 1, 1, id="3x3s1p1"), pytest.param(3, 2, 1, id="3x3s2p1"),
    pytest.param(3, 3, 0, id="3x3s3p0"), pytest.param(5, 2, 2, id="5x5s2p2"),
])
@pytest.mark.parametrize("size", [14, 15, 16, 17], ids=lambda s: f"{s}px")
def test_pool_geometry_grid(tmp_path, op, ceil_mode, kernel, stride, pad, size):
    """count_include_pad=0: padded cells are ignored, as Viya does (executor default)."""
    b = builder(size)
    x = b.op("Relu", b.conv(b.input, 4, 3, pads=[1, 1, 1, 1]))
    attrs = {"count_include_pad": 0} if op == "AveragePool" else {}
    y = b.op(op, x, kernel_shape=[kernel, kernel], strides=[stride, stride],
             pads=[pad] * 4, ceil_mode=ceil_mode, **attrs)
    model = b.build([y])
    out = onnx_pool_out(size, kernel, stride, pad, pad, ceil_mode)
    if expressible(size, kernel, stride, pad, out, "pool"):
        compile_and_verify(model, tmp_path)
    else:
        with pytest.raises(ViyaCannotExpress, match="cannot be expressed in Viya"):
            compile_model(model)


def test_average_pool_count_include_pad_0_with_pads_1(tmp_path):
    b = builder(9)
    x = b.conv(b.input, 4, 3, pads=[1, 1, 1, 1])
    y = b.op("AveragePool", x, kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
             count_include_pad=0)
    compile_and_verify(b.build([y]), tmp_path)
    assert padding_of(only(tmp_path, "pool")) in ("auto", (1, 1))


@pytest.mark.parametrize("size,kernel,stride", [
    pytest.param(8, 2, 2, id="8px-2x2s2"), pytest.param(15, 3, 2, id="15px-3x3s2"),
    pytest.param(16, 4, 4, id="16px-4x4s4"), pytest.param(9, 3, 3, id="9px-3x3s3"),
])
def test_average_pool_count_include_pad_1_without_padding(tmp_path, size, kernel, stride):
    b = builder(size)
    x = b.conv(b.input, 4, 3, pads=[1, 1, 1, 1])
    y = b.op("AveragePool", x, kernel_shape=[kernel, kernel], strides=[stride, stride],
             count_include_pad=1)
    compile_and_verify(b.build([y]), tmp_path)


def test_max_pool_pads_0011_on_even_input_is_automatic(tmp_path):
    b = builder(16)
    x = b.conv(b.input, 4, 3, pads=[1, 1, 1, 1])
    y = b.op("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])
    compile_and_verify(b.build([y]), tmp_path)
    assert padding_of(only(tmp_path, "pool")) == "auto"


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_same_upper_total_1(tmp_path, op):
    b = builder(16)
    x = b.conv(b.input, 4, 3, pads=[1, 1, 1, 1])
    y = b.op(op, x, kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    compile_and_verify(b.build([y]), tmp_path)
    assert padding_of(only(tmp_path, "pool")) == "auto"


def test_pool_stride_defaults_to_1(tmp_path):
    b = builder(9)
    x = b.conv(b.input, 4, 3, pads=[1, 1, 1, 1])
    y = b.op("MaxPool", x, kernel_shape=[2, 2])
    compile_and_verify(b.build([y]), tmp_path)
    pool = only(tmp_path, "pool")
    assert pool["stridevertical"] == pool["stridehorizontal"] == 1


def test_small_cnn_with_mixed_geometry(tmp_path):
    b = builder(17)
    x = b.op("Relu", b.conv(b.input, 8, 7, stride=2, auto_pad="SAME_UPPER"))       # 9
    x = b.op("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)       # 4
    x = b.op("Relu", b.conv(x, 8, 3, pads=[1, 1, 1, 1], group=8))
    x = b.op("Relu", b.conv(x, 16, 1))
    x = b.op("GlobalAveragePool", x)
    y = b.gemm(b.op("Flatten", x), 16, 5)
    compile_and_verify(b.build([y]), tmp_path)
    assert np.array_equal(
        [layer["type"] for layer in viya_layers(tmp_path)],
        ["input", "convo", "pool", "groupconvo", "convo", "pool", "output"])
