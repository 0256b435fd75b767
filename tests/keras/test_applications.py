"""keras.applications models with weights=None (no downloads), random weights, small inputs:
the real architectures, about 20 s in all."""
from __future__ import annotations

from collections import Counter

import pytest

from irc.errors import UnsupportedAttribute
from irc.frontends.keras import import_keras
from tests.keras.conftest import compile_and_compare, set_random_weights, types

def test_resnet50(keras, tmp_path):
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=5)
    layers = compile_and_compare(set_random_weights(model), tmp_path)
    counts = Counter(types(layers))
    assert counts["convo"] == 53 and counts["residual"] == 16 and counts["output"] == 1


def test_mobilenet_v2_relu6_refused_in_one_error(keras):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=5)
    with pytest.raises(UnsupportedAttribute) as err:
        import_keras(model)
    text = str(err.value)
    assert text.count("max_value=6.0: Viya has no clipped relu") == 35


def test_vgg16(keras, tmp_path):
    model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=5)
    layers = compile_and_compare(set_random_weights(model), tmp_path)
    counts = Counter(types(layers))
    assert counts["convo"] == 13 and counts["pool"] == 5 and counts["fc"] == 2
    assert counts["output"] == 1


def test_densenet121(keras, tmp_path):
    """Pre-activation BatchNorm after every concat stays a Viya batchnorm layer (with relu)."""
    model = keras.applications.DenseNet121(weights=None, input_shape=(32, 32, 3), classes=5)
    layers = compile_and_compare(set_random_weights(model), tmp_path)
    counts = Counter(types(layers))
    assert counts["convo"] == 120 and counts["concat"] == 58 and counts["output"] == 1
    assert counts["batchnorm"] > 0


@pytest.mark.parametrize("name, size", [("InceptionV3", 75), ("Xception", 71)])
def test_inception_v3_and_xception(keras, tmp_path, name, size):
    """Branchy nets ('same' average pools, channel concats; separable convs, residuals)."""
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                                classes=5)
    layers = compile_and_compare(set_random_weights(model), tmp_path)
    assert types(layers).count("output") == 1


def test_resnet50_v2_max_pool_over_zero_padding_refused(keras):
    """ResNet50V2 max-pools a zero-padded, not yet activated, map: Keras's padded zeros can
    win the maximum where Viya's pool padding never does."""
    from irc.errors import UnsupportedOp

    model = keras.applications.ResNet50V2(weights=None, input_shape=(64, 64, 3), classes=5)
    with pytest.raises(UnsupportedOp, match="pool1_pad: ZeroPadding2D before a max pool"):
        import_keras(model)
