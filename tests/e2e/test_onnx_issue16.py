"""Issue 16, models built in code: 1-D layers as height-1 2-D layers, Softmax over (N, C, 1, 1)
at the output, and the refusals a user can act on. Numbers: the written files re-run by the
executor against onnxruntime (rtol 1e-4, atol 1e-5, tests/e2e/conftest.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper, numpy_helper

from irc.api import compile as compile_model
from irc.errors import IrcError, UnsupportedOp, ViyaCannotExpress
from tests.e2e.conftest import compile_and_verify

RNG = np.random.default_rng(16)


def _model(nodes, x_shape, inits, opset=17):
    consts = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, x_shape)],
                              [helper.make_tensor_value_info("y", 1, None)], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _r(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def test_conv1d_batchnorm_prelu_pool_chain_verifies_as_height_one_layers(tmp_path):
    """Was: 'Conv needs a 4-D (N,C,H,W) input'."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3], pads=[1, 2],
                              strides=[2]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"]),
             helper.make_node("PRelu", ["n", "slope"], ["p"]),
             helper.make_node("Conv", ["p", "w2"], ["c2"], kernel_shape=[1]),
             helper.make_node("MaxPool", ["c2"], ["y"], kernel_shape=[2], strides=[2])]
    inits = {"w": _r(4, 3, 3), "b": _r(4), "s": _r(4) + 2, "bb": _r(4), "m": _r(4),
             "v": np.abs(_r(4)) + 0.5, "slope": _r(4, 1), "w2": _r(5, 4, 1)}
    result = compile_and_verify(_model(nodes, ["N", 3, 16], inits), tmp_path)
    assert result.ok
    model = json.loads((tmp_path / "out" / "model.json").read_text())
    text = json.dumps(model)
    assert "nchannels C, height 1, width L" in text


def test_global_pool_1d_into_dense_verifies(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    result = compile_and_verify(_model(nodes, ["N", 2, 10], {"w": _r(6, 2, 3),
                                                             "fc": _r(3, 6)}), tmp_path)
    assert result.ok


@pytest.mark.parametrize("opset", [9, 13])
def test_softmax_over_channels_of_unit_map_at_the_output(tmp_path, opset):
    """Was (light zoo squeezenet, opset 9): 'Softmax is supported over the last axis'."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Softmax", ["g"], ["y"], axis=1)]
    result = compile_and_verify(_model(nodes, ["N", 3, 4, 4], {"w": _r(5, 3, 1, 1)}, opset),
                                tmp_path)
    assert result.ok


def test_softmin_at_the_output(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "fc"], ["h"], transB=1),
             helper.make_node("Neg", ["h"], ["n"]),
             helper.make_node("Softmax", ["n"], ["y"], axis=1)]
    assert compile_and_verify(_model(nodes, ["N", 6], {"fc": _r(4, 6)}), tmp_path).ok


def test_3d_input_without_recurrent_layer_is_refused_as_such():
    """Was: 'Unsqueeze on a per-time-step sequence: after a same-length recurrent layer'."""
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    with pytest.raises(ViyaCannotExpress) as err:
        compile_model(_model(nodes, ["N", 3, 7], {}), name="m")
    text = str(err.value)
    assert "no recurrent layer reads it" in text and "recurrent layer has" not in text
    assert "1-D convolution, pooling or batchnorm" in text


def test_leftover_op_message_names_shapes_and_no_pass():
    """Was: 'no Viya layer computes Squeeze here (it should have been folded ... by a pass)'."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Transpose", ["c"], ["y"], perm=[0, 1, 3, 2])]
    with pytest.raises(IrcError) as err:
        compile_model(_model(nodes, ["N", 3, 4, 5], {"w": _r(2, 3, 1, 1)}), name="m")
    text = str(err.value)
    assert "Transpose of 2x4x5 -> 2x5x4" in text and "Viya has no transpose layer" in text
    assert "pass" not in text.split("hint")[0]


def test_conv_transpose_refusal_names_the_open_weight_layout():
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"])]
    with pytest.raises(UnsupportedOp, match=r"weight layout .* not public .*§14"):
        compile_model(_model(nodes, ["N", 3, 4, 4], {"w": _r(3, 2, 3, 3)}), name="m")
