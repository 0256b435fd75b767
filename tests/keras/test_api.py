"""The Keras frontend's API: lazy TensorFlow, the layer registry, the ONNX it hands over and the
oracle's output layout."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from irc.frontends.keras import KERAS_LAYERS, keras_to_onnx, run_keras
from tests.keras.conftest import nchw_input, set_random_weights

# Layers irc must keep supporting (a handler added needs no entry here: its test is in
# test_layers.py or tests/recurrent).
REQUIRED = ["Activation", "Add", "AveragePooling2D", "BatchNormalization", "Concatenate",
            "Conv2D", "Dense", "Dropout", "Flatten", "GlobalAveragePooling2D", "InputLayer",
            "Lambda", "MaxPooling2D", "ZeroPadding2D", "ReLU", "LeakyReLU", "Softmax", "ELU",
            "DepthwiseConv2D", "SeparableConv2D", "GlobalMaxPooling2D", "Reshape", "Rescaling",
            "Normalization", "PReLU", "Cropping2D", "CustomScaleLayer"]
SEQUENCE = ["SimpleRNN", "LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU", "Bidirectional",
            "TimeDistributed", "Dense", "Dropout", "SpatialDropout1D", "Activation", "Softmax",
            "InputLayer"]


def test_registry_lists_every_supported_layer_with_a_note():
    assert set(REQUIRED) <= set(KERAS_LAYERS.with_hook("check"))
    assert set(SEQUENCE) <= set(KERAS_LAYERS.with_hook("sequence"))
    assert all(note for _, note in KERAS_LAYERS.support_table())


def test_tensorflow_imported_only_when_a_model_is_compiled():
    code = textwrap.dedent("""
        import os, sys
        import irc.frontends.keras as k
        from irc.api import optimize
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        assert k.KERAS_LAYERS.op_types()
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        from irc.frontends.keras.runtime import tf_modules
        keras = tf_modules().keras
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
        x = keras.Input((4, 4, 1))
        proto = k.keras_to_onnx(keras.Model(x, keras.layers.Conv2D(1, 3)(x)))
        print(sorted({n.op_type for n in proto.graph.node}))
    """)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['Conv']"


@pytest.fixture(scope="module")
def two_output_model(keras):
    L = keras.layers
    x = keras.Input((8, 8, 3), name="pixels")
    c = L.Conv2D(4, 3, padding="same", activation="relu", name="features")(x)
    f = L.Dropout(0.5)(L.Flatten()(L.MaxPooling2D(name="pooled")(c)))
    y = L.Dense(3, activation="softmax", name="probs")(f)
    return set_random_weights(keras.Model(x, [y, c]))


def test_onnx_is_clean_nchw_and_named_after_keras(two_output_model):
    from irc.frontends.onnx.catalog import onnx_ops

    ONNX_OPS = onnx_ops()

    proto = keras_to_onnx(two_output_model)
    assert proto.opset_import[0].version == 17
    (inp,) = proto.graph.input
    assert inp.name == "pixels"
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [3, 8, 8]
    assert [o.name for o in proto.graph.output] == ["probs", "features"]
    features = proto.graph.output[1].type.tensor_type.shape.dim
    assert [d.dim_value for d in features[1:]] == [4, 8, 8]  # N,C,H,W
    ops = [n.op_type for n in proto.graph.node]
    assert all(op in ONNX_OPS for op in ops), ops
    for node in proto.graph.node:  # the one remaining transpose feeds the Flatten
        if node.op_type == "Transpose":
            readers = [n.op_type for n in proto.graph.node if node.output[0] in n.input]
            assert list(node.attribute[0].ints) == [0, 2, 3, 1] and readers == ["Flatten"]
    assert ops.count("Transpose") == 1


def test_run_keras_returns_nchw_keyed_by_onnx_output(two_output_model):
    x = nchw_input(two_output_model)
    out = run_keras(two_output_model, x)
    assert list(out) == ["probs", "features"]
    probs, feats = two_output_model(x.transpose(0, 2, 3, 1), training=False)
    np.testing.assert_allclose(out["probs"], probs.numpy(), rtol=1e-6)
    np.testing.assert_allclose(out["features"], feats.numpy().transpose(0, 3, 1, 2), rtol=1e-6)


def test_onnx_matches_keras_in_onnxruntime(two_output_model):
    """The cleaned ONNX itself computes Keras's numbers (before any irc pass)."""
    import onnxruntime as ort

    proto = keras_to_onnx(two_output_model)
    x = nchw_input(two_output_model, batch=3)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"pixels": x})))
    for name, ref in run_keras(two_output_model, x).items():
        np.testing.assert_allclose(got[name], ref, rtol=1e-4, atol=1e-5)


def test_every_keras_layer_but_lambda_has_a_direct_handler():
    """The direct route covers the whole support list; only Lambda needs tf2onnx."""
    routes = dict(KERAS_LAYERS.direct_table())
    missing = {op for op, route in routes.items() if route == "tf2onnx only"}
    assert missing == {"Lambda"}
    assert all(KERAS_LAYERS.emitter(op).__doc__ for op in KERAS_LAYERS.with_hook("check")
               if op not in missing | {"InputLayer"})
    # sequence-only handlers write their ONNX through the sequence emitter
    assert all(KERAS_LAYERS.hook(op, "emit_sequence") or op == "SpatialDropout1D"
               for op, route in routes.items() if route == "sequence models only")
