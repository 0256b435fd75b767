"""InputSpec: the input preprocessing validated once, read back from model.json by verify."""
from __future__ import annotations

import json

import numpy as np
import pytest

import irc
from irc.errors import UnsupportedAttribute
from irc.input_spec import InputSpec
from irc.utils.onnx_builder import OnnxBuilder


def test_defaults_and_normalisation():
    spec = InputSpec(scale=1, offsets=[1, 2, 3], normstds=np.array([2.0, 2.0, 2.0]))
    assert spec.scale == 1.0 and spec.offsets == (1.0, 2.0, 3.0)
    assert spec.normstds == (2.0, 2.0, 2.0) and spec.channel_order == "bgr"
    assert InputSpec().is_default and not spec.is_default
    with pytest.raises(Exception):
        spec.scale = 2.0  # frozen: validated once, never changed after


@pytest.mark.parametrize("kwargs,message", [
    ({"scale": 0.0}, "scale has a zero: it would erase the input"),
    ({"normstds": [1.0, 0.0]}, "normstds has a zero: Viya divides by it"),
    ({"scale": 1e-45}, "scale 1e-45 is outside float32"),
    ({"offsets": [1e308, 0.0]}, "offsets 1e\\+308,0 is outside float32"),
    ({"normstds": [float("nan")]}, "normstds nan is outside float32"),
    ({"scale": [1.0, 2.0]}, "scale .* must be one number"),
    ({"offsets": "a,b"}, "offsets 'a,b' must be a list of numbers"),
    ({"channel_order": "rbg"}, "channel_order 'rbg' is not one of"),
])
def test_bad_values_are_refused_once(kwargs, message):
    with pytest.raises(UnsupportedAttribute, match=message):
        InputSpec(**kwargs)


def test_cli_spelling_names_the_flag():
    with pytest.raises(UnsupportedAttribute, match="--scale 1e\\+308 is outside float32"):
        InputSpec(scale=1e308, spelling="--")


def test_dict_compatibility():
    assert InputSpec.of(None) == InputSpec()
    spec = InputSpec(scale=0.5)
    assert InputSpec.of(spec) is spec
    assert InputSpec.of({"scale": 0.5, "offsets": [1.0]}) == InputSpec(0.5, (1.0,))
    with pytest.raises(UnsupportedAttribute, match="'offset'"):
        InputSpec.of({"offset": [1.0]})  # a typo is named, not ignored


def test_per_channel_is_in_viyas_order():
    spec = InputSpec(offsets=(1.0, 2.0, 3.0), normstds=(4.0, 5.0, 6.0), channel_order="rgb")
    assert spec.per_channel(3) == ([3.0, 2.0, 1.0], [6.0, 5.0, 4.0])
    assert spec.per_channel(1) is None  # lengths checked where the channel count is known
    assert InputSpec().per_channel(2) == ([0.0, 0.0], [1.0, 1.0])


def _conv_model():
    b = OnnxBuilder("m", (1, 3, 6, 6))
    y = b.conv("input", 4, 3, pads=(1, 1, 1, 1))
    return b.build([b.op("Relu", y)])


def test_recorded_in_model_json_and_read_back_by_verify(tmp_path):
    """What model.json records gives back the spec lowering used; verify feeds the source
    (x*scale - offsets)/normstds from it and matches onnxruntime (verify's tolerance)."""
    from irc.verify import verify

    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(), path)
    spec = InputSpec(scale=0.5, offsets=(1.0, 2.0, 3.0), normstds=(2.0, 4.0, 8.0),
                     channel_order="rgb")
    model = irc.compile(str(path), input_options=spec)
    model.save(tmp_path / "out")
    payloads = json.loads((tmp_path / "out" / "model.json").read_text())
    layer = payloads["addLayer"][0]["layer"]
    assert layer["offsets"] == [3.0, 2.0, 1.0] and layer["normstds"] == [8.0, 4.0, 2.0]
    assert payloads["input"]["source_channel_order"] == "rgb"
    assert InputSpec.recorded(payloads) == spec
    assert verify(str(path), tmp_path / "out").ok


def test_channel_count_checked_in_lowering(tmp_path):
    from irc.errors import ViyaCannotExpress

    with pytest.raises(ViyaCannotExpress, match="offsets/normstds need 3 values"):
        irc.compile(_conv_model(), input_options={"offsets": [1.0, 2.0]})
