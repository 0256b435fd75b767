"""Keras layers Viya has no single layer for, converted through irc's exact rewrites
(viya-semantics §15a): clipped relu (ReLU(max_value), 'relu6'), any leaky slope and PReLU,
Cropping2D, InceptionResNetV2's CustomScaleLayer, zero padding before a max pool of values that
may be negative. Each model goes through both Keras routes and is compared with Keras
(rtol 1e-4, atol 1e-5: the rewrites are exact up to float32 rounding of intermediate values).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.keras.conftest import compile_and_compare, set_random_weights, types


def _model(keras, inputs, outputs, seed=0):
    return set_random_weights(keras.Model(inputs, outputs), seed)


def clipped_relus(keras, L):
    x = keras.Input((8, 8, 3))
    h = L.ReLU(max_value=6.0)(L.Conv2D(4, 3, padding="same")(x))
    h = L.Conv2D(4, 3, activation="relu6")(h)
    h = L.ReLU(max_value=0.5)(L.BatchNormalization()(h))  # a cap below most values
    return _model(keras, x, L.Dense(3)(L.Flatten()(h)))


def leaky_slopes(keras, L):
    x = keras.Input((8, 8, 3))
    h = L.LeakyReLU(negative_slope=0.3)(L.Conv2D(4, 3, padding="same")(x))
    h = L.ReLU(negative_slope=0.05)(L.Conv2D(4, 3)(h))
    h = L.Conv2D(3, 1, activation="leaky_relu")(h)
    return _model(keras, x, L.GlobalAveragePooling2D()(h))


def prelu(keras, L):
    x = keras.Input((8, 8, 3))
    h = L.PReLU(shared_axes=[1, 2])(L.Conv2D(4, 3, padding="same")(x))
    h = L.Dense(5)(L.Flatten()(h))
    return _model(keras, x, L.PReLU()(h))


def cropping(keras, L):
    x = keras.Input((9, 10, 3))
    h = L.Cropping2D(((1, 2), (0, 3)))(L.Conv2D(4, 3, padding="same")(x))
    h = L.Cropping2D(1)(L.Conv2D(4, 1)(h))
    return _model(keras, x, L.Dense(3)(L.Flatten()(h)))


def zero_padding_before_max_pool(keras, L):
    # ResNet50V2's stem: the padded values are not activated, so a zero pad is not an
    # ignored (-inf) pad: irc pads with an identity depthwise convolution first.
    x = keras.Input((8, 8, 3))
    h = L.ZeroPadding2D(((1, 1), (1, 1)))(L.Conv2D(4, 3)(x))
    h = L.MaxPooling2D(3, strides=2)(h)
    return _model(keras, x, L.GlobalAveragePooling2D()(h))


def custom_scale(keras, L):
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    x = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    b = L.Conv2D(4, 1)(a)
    h = L.Activation("relu")(CustomScaleLayer(0.17)([a, b]))
    return _model(keras, x, L.GlobalAveragePooling2D()(h))


BUILDERS = [clipped_relus, leaky_slopes, prelu, cropping, zero_padding_before_max_pool,
            custom_scale]


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_rewritten_layer_matches_keras(build, keras, tmp_path):
    compile_and_compare(build(keras, keras.layers), tmp_path)


@pytest.mark.parametrize("build", [clipped_relus, cropping, zero_padding_before_max_pool],
                         ids=["clipped_relus", "cropping", "zero_padding_before_max_pool"])
def test_rewritten_layer_matches_keras_through_tf2onnx(build, keras, tmp_path):
    compile_and_compare(build(keras, keras.layers), tmp_path, route="tf2onnx")


def test_relu6_costs_two_batchnorm_layers(keras, tmp_path):
    """ReLU6 after a conv: the relu fuses into the conv, the cap is two batchnorm layers."""
    L = keras.layers
    x = keras.Input((6, 6, 3))
    model = _model(keras, x, L.Dense(2)(L.Flatten()(L.ReLU(6.0)(L.Conv2D(4, 3)(x)))))
    layers = compile_and_compare(model, tmp_path)
    assert types(layers).count("batchnorm") == 2
    conv = next(la for la in layers if la["type"] == "convo")
    assert conv["act"] == "relu"


def test_custom_scale_folds_into_the_branch(keras, tmp_path):
    """x + 0.17*y: the scale joins the weights of the conv producing y; no extra layer."""
    layers = compile_and_compare(custom_scale(keras, keras.layers), tmp_path)
    assert "batchnorm" not in types(layers)
    assert types(layers).count("residual") == 1


def test_clip_is_saturated_on_both_sides(keras, tmp_path):
    """A cap that many values reach: the comparison sees values at exactly 6."""
    L = keras.layers
    x = keras.Input((6, 6, 3))
    model = _model(keras, x, L.Dense(2)(L.Flatten()(L.ReLU(6.0)(L.Conv2D(4, 3)(x)))))
    big = (np.random.default_rng(3).standard_normal((2, 3, 6, 6)) * 20).astype(np.float32)
    compile_and_compare(model, tmp_path, x=big)
