"""What the Keras frontend refuses, and how: one error listing every unsupported layer (found
before tf2onnx runs), clear reasons for configurations Viya cannot compute."""
from __future__ import annotations

import pytest

from irc.errors import IrcError, UnsupportedAttribute, UnsupportedOp
from irc.frontends.keras import import_keras, keras_to_onnx
from tests.keras.conftest import compile_keras, set_random_weights


def test_unsupported_layers_listed_in_one_error(keras, no_tf2onnx):
    L = keras.layers
    x = keras.Input((8, 8, 3))
    h = L.Conv2DTranspose(4, 3, name="deconv")(x)
    h = L.UpSampling2D(name="up_a")(h)
    h = L.UpSampling2D(name="up_b")(h)
    h = L.Conv2D(4, 3, activation="hard_sigmoid", name="hard")(h)
    h = L.ReLU(threshold=0.5, name="thresholded")(h)
    h = L.GlobalAveragePooling2D()(h)
    h = L.Dense(4, activation="gelu", name="gelu_dense")(h)
    model = keras.Model(x, L.Dense(2, activation="softmax")(h))
    with pytest.raises(UnsupportedOp) as err:
        import_keras(model)
    text = str(err.value)
    assert "Conv2DTranspose x1: 'deconv'" in text
    assert "UpSampling2D x2: 'up_a', 'up_b'" in text
    assert "hard: activation 'hard_sigmoid'" in text
    assert "thresholded: ReLU threshold=0.5" in text
    assert "gelu_dense: activation 'gelu'" in text
    assert "irc converts these Keras layers:" in text


def test_prelu_with_a_slope_per_position_refused(keras, no_tf2onnx):
    L = keras.layers
    x = keras.Input((6, 6, 2))
    model = keras.Model(x, L.PReLU()(L.Conv2D(2, 3)(x)))
    with pytest.raises(UnsupportedAttribute, match=r"PReLU shared_axes=None: a slope per "
                                                   r"position"):
        import_keras(model)


def test_recurrent_layers_convert_without_tf2onnx(keras, no_tf2onnx):
    """Issue 6: sequence models are emitted directly (tests/recurrent has the numbers)."""
    L = keras.layers
    x = keras.Input((5, 4))
    h = L.LSTM(3, return_sequences=True, name="lstm")(x)
    model = keras.Model(x, L.Dense(2)(L.GRU(3, name="gru")(h)))
    assert {"LSTM", "GRU"} <= set(import_keras(model).op_counts())


@pytest.mark.parametrize("make, message", [
    (lambda L, x: L.Dense(2)(L.Dense(3, activation="softmax")(L.Flatten()(x))),
     "softmax before the end of the model"),
    (lambda L, x: L.Conv2D(2, 3, dilation_rate=2, padding="same")(x), r"dilation_rate=\(2, 2\)"),
    (lambda L, x: L.ReLU(max_value=6.0, negative_slope=0.1)(x),
     "negative_slope=0.1 together with max_value"),
    (lambda L, x: L.ELU(alpha=0.5)(x), "ELU alpha=0.5"),
    (lambda L, x: L.Reshape((2, 2, 8))(x), r"Reshape \(4, 4, 2\) -> \(2, 2, 8\)"),
    (lambda L, x: L.Activation("swish")(x), "activation '(swish|silu)': Viya has no swish"),
    (lambda L, x: L.Softmax()(x), r"softmax over a tensor of shape \(4, 4, 2\)"),
    (lambda L, x: L.Dense(3)(x), "Dense on a tensor of shape"),
], ids=["mid_softmax", "dilation", "leaky_relu6", "elu_alpha", "reshape", "swish",
        "softmax_4d", "dense_4d"])
def test_configuration_refused(keras, no_tf2onnx, make, message):
    x = keras.Input((4, 4, 2))
    model = keras.Model(x, make(keras.layers, x))
    with pytest.raises(UnsupportedAttribute, match=message):
        import_keras(model)


def test_two_inputs_refused(keras, no_tf2onnx):
    L = keras.layers
    a, b = keras.Input((4, 4, 2)), keras.Input((4, 4, 2))
    with pytest.raises(UnsupportedAttribute, match="2 inputs"):
        import_keras(keras.Model([a, b], L.Add()([a, b])))


def test_dynamic_input_needs_input_shape(keras, tmp_path):
    L = keras.layers
    x = keras.Input((None, None, 3))
    model = set_random_weights(keras.Model(x, L.Conv2D(2, 3)(x)))
    with pytest.raises(UnsupportedAttribute, match="input_shape"):
        import_keras(model)
    for shape in [(8, 8, 3), (1, 3, 8, 8)]:  # Keras (H, W, C) or irc's N,C,H,W
        proto = keras_to_onnx(model, input_shape=shape)
        dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]]
        assert dims == [3, 8, 8]
    with pytest.raises(UnsupportedAttribute, match="does not fit"):
        keras_to_onnx(model, input_shape=(8, 8, 4))


def _refused_after_conversion(keras, make, tmp_path):
    x = keras.Input((8, 8, 3))
    model = set_random_weights(keras.Model(x, make(keras.layers, x)))
    with pytest.raises(IrcError) as err:
        compile_keras(model, tmp_path)
    return str(err.value)


def test_flatten_as_model_output_refused(keras, tmp_path):
    text = _refused_after_conversion(keras, lambda L, x: L.Flatten()(L.Conv2D(2, 3)(x)),
                                     tmp_path)
    assert "read by a model output" in text


def test_lambda_with_unsupported_ops_names_them(keras, tmp_path):
    L = keras.layers
    x = keras.Input((8, 8, 3))
    model = keras.Model(x, L.Lambda(lambda t: keras.ops.sin(t), name="sine")(L.Conv2D(2, 3)(x)))
    with pytest.raises(UnsupportedOp, match=r"sine(_1)?/Sin: ONNX Sin, which irc does not convert"):
        keras_to_onnx(model, allow_lambda=True)


def test_not_a_model(tmp_path):
    with pytest.raises(IrcError, match="cannot read a Keras model"):
        import_keras(42)
    with pytest.raises(IrcError, match="file not found"):
        import_keras(tmp_path / "missing.keras")


def test_layer_computing_in_float16_is_refused_up_front(keras, no_tf2onnx):
    """A float16 dtype policy rounds Keras's numbers where Viya computes in float32 (fuzz:
    such models used to fail verification, exit 1, with no reason given)."""
    L = keras.layers
    x = keras.Input((6, 6, 2))
    h = L.Conv2D(3, 3, dtype="float16", name="half")(x)
    model = keras.Model(x, L.Dense(2)(L.Flatten()(h)))
    with pytest.raises(UnsupportedAttribute, match=r"half: computes in float16 \(dtype policy "
                                                   r"'float16'\); Viya computes in float32"):
        import_keras(model)
