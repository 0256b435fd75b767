"""keras.applications models (random weights, small inputs). Slow: run with IRC_SLOW=1."""
from __future__ import annotations

from collections import Counter

import pytest

from irc.errors import UnsupportedAttribute
from irc.frontends.keras import import_keras
from tests.keras.conftest import compile_and_compare, set_random_weights, types

pytestmark = pytest.mark.slow


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
