"""keras.applications models with weights=None (no downloads), random weights, small inputs:
the real architectures.

Random deep nets die without care: uncalibrated batchnorm statistics let activations shrink or
blow up layer by layer until the output no longer depends on the input, and then a comparison
proves little. So, as tests/caffe's real-net tests do, each model's batchnorm statistics are
set to those of a calibration input (one training-mode pass with momentum 0), and every test
checks that its compared output depends on the input: two different inputs give outputs that
differ by at least 100x the tolerance used. (Checked by hand: VGG16 with set_random_weights
alone, uncalibrated, fails that check: its two outputs differ by 3.5e-4, 8x the tolerance.)"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.keras.conftest import ATOL, RTOL, compile_and_compare, nchw_input, set_random_weights, \
    types


def calibrated(keras, model, seed: int = 2):
    """Random weights, then statistics taken from a random calibration input (8 examples).
    With batchnorm layers: their moving statistics = the batch statistics (one training-mode
    pass with momentum 0), so each outputs ~gamma*N(0,1)+beta. Without (VGG16): each
    convolution/dense kernel and bias is scaled, in order, so the layer's output has unit
    standard deviation (relu is positively homogeneous, so only the scale changes)."""
    set_random_weights(model)
    shape = (8,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    bns = [layer for layer in model.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        for layer in model.layers:
            if not hasattr(layer, "kernel") or getattr(layer, "activation", None) is \
                    keras.activations.softmax:
                continue
            std = float(np.std(keras.Model(model.inputs, layer.output)(x)))
            for w in layer.weights:
                w.assign(w.numpy() / std)
        return model
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(bns, saved):
        layer.momentum = momentum
    return model


def assert_depends_on_input(model) -> float:
    """The two examples compile_and_compare uses give outputs far apart (ratio returned)."""
    from irc.frontends.keras import run_keras

    (out,) = run_keras(model, nchw_input(model)).values()
    spread = float(np.abs(out[0] - out[1]).max())
    tolerance = ATOL + RTOL * float(np.abs(out).max())
    assert spread > 100 * tolerance, (spread, tolerance)
    print(f"\n{model.name}: outputs of two inputs differ by {spread:.3g}, "
          f"{spread / tolerance:.0f}x the tolerance")
    return spread / tolerance

def test_resnet50(keras, tmp_path):
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=5)
    layers = compile_and_compare(calibrated(keras, model), tmp_path)
    assert_depends_on_input(model)
    counts = Counter(types(layers))
    assert counts["convo"] == 53 and counts["residual"] == 16 and counts["output"] == 1


@pytest.mark.parametrize("name", ["MobileNet", "MobileNetV2"])
def test_mobilenets(keras, tmp_path, name):
    """ReLU6 everywhere (ReLU(max_value=6)): each becomes the conv's relu plus two batchnorm
    layers (legalize_clip, exact up to 1 ulp of 6); depthwise convs become groupconvo."""
    model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=5)
    layers = compile_and_compare(calibrated(keras, model), tmp_path)
    assert_depends_on_input(model)
    counts = Counter(types(layers))
    relu6 = 27 if name == "MobileNet" else 35
    assert counts["batchnorm"] == 2 * relu6 and counts["groupconvo"] >= 13


def test_vgg16(keras, tmp_path):
    model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=5)
    layers = compile_and_compare(calibrated(keras, model), tmp_path)
    assert_depends_on_input(model)
    counts = Counter(types(layers))
    assert counts["convo"] == 13 and counts["pool"] == 5 and counts["fc"] == 2
    assert counts["output"] == 1


def test_densenet121(keras, tmp_path):
    """Pre-activation BatchNorm after every concat stays a Viya batchnorm layer (with relu)."""
    model = keras.applications.DenseNet121(weights=None, input_shape=(32, 32, 3), classes=5)
    layers = compile_and_compare(calibrated(keras, model), tmp_path)
    assert_depends_on_input(model)
    counts = Counter(types(layers))
    assert counts["convo"] == 120 and counts["concat"] == 58 and counts["output"] == 1
    assert counts["batchnorm"] > 0


@pytest.mark.parametrize("name, size", [("InceptionV3", 75), ("Xception", 71)])
def test_inception_v3_and_xception(keras, tmp_path, name, size, monkeypatch):
    """Branchy nets ('same' average pools, channel concats; separable convs, residuals).

    InceptionV3 with live activations amplifies float32 rounding: on the same model,
    onnxruntime and Keras differ by 1.6e-4 of the output's scale, the executor and Keras by
    5.8e-4 (the two inputs' outputs differ by 0.2 of 0.46). So its rtol is 1e-3 (the default
    1e-4 elsewhere)."""
    if name == "InceptionV3":
        import tests.keras.conftest as keras_tests

        monkeypatch.setattr(keras_tests, "RTOL", 1e-3)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                                classes=5)
    layers = compile_and_compare(calibrated(keras, model), tmp_path)
    assert_depends_on_input(model)
    assert types(layers).count("output") == 1


def test_resnet50_v2(keras, tmp_path):
    """ResNet50V2 max-pools a zero-padded map that is not yet activated: Keras's padded zeros
    can win the maximum where Viya's pool padding never does, so the padding becomes an
    identity groupconvo with explicit zero padding before the pool (legalize_pad, exact)."""
    model = keras.applications.ResNet50V2(weights=None, input_shape=(64, 64, 3), classes=5)
    layers = compile_and_compare(calibrated(keras, model), tmp_path)
    assert_depends_on_input(model)
    pool1 = [la for la in layers if la["type"] == "pool" and la.get("pool") == "max"]
    assert pool1 and types(layers).count("groupconvo") >= 1


@pytest.mark.parametrize("name, size", [("NASNetMobile", 32), ("InceptionResNetV2", 75)])
def test_nasnet_mobile_and_inception_resnet_v2(keras, tmp_path, name, size):
    """NASNetMobile: Cropping2D after ZeroPadding2D (one-hot groupconvo), separable convs,
    'same' average pools. InceptionResNetV2: CustomScaleLayer x + s*y, the scale folded into
    the conv producing y."""
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                                classes=5)
    layers = compile_and_compare(calibrated(keras, model), tmp_path)
    assert_depends_on_input(model)
    assert types(layers).count("output") == 1
