"""Every legalization pass is visible where a user looks: `irc compile` (verification on) names
it in name_map.json's provenance of the layers it made, and the --dump-after dump of that pass
differs from the one before it (the rewrite is in the dumped graph)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from irc.passes.pipeline import DEFAULT_PIPELINE
from irc.utils.onnx_builder import OnnxBuilder


def _conv(b, x, name, pads=(1, 1, 1, 1), k=3):
    w = np.random.default_rng(len(name)).standard_normal((4, 4, k, k)).astype(np.float32)
    return b.op("Conv", x, b.const(w * 0.3), kernel_shape=[k, k], pads=list(pads), name=name)


def _model(pass_name):
    b = OnnxBuilder("m", (1, 4, 8, 8), opset=17)
    x = _conv(b, b.input, "conv_a")
    if pass_name == "legalize_clip":
        y = b.op("Clip", x, b.const(np.float32(0)), b.const(np.float32(6)), name="relu6")
    elif pass_name == "legalize_prelu":
        y = b.op("PRelu", x, b.const(np.full((4, 1, 1), 0.25, np.float32)), name="prelu")
    elif pass_name == "legalize_pad":
        p = b.op("Pad", x, b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)), name="pad")
        y = b.op("MaxPool", p, kernel_shape=[3, 3], strides=[2, 2], name="pool")
    elif pass_name == "legalize_channel_select":
        s = b.op("Slice", x, b.const(np.array([1], np.int64)), b.const(np.array([3], np.int64)),
                 b.const(np.array([1], np.int64)), name="channels")
        y = b.op("Relu", s)
    elif pass_name == "legalize_avgpool_include_pad":
        y = b.op("AveragePool", x, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                 count_include_pad=1, name="avg")
    elif pass_name == "legalize_layer_padding":
        y = _conv(b, x, "conv_asym", pads=(0, 0, 1, 1))
    else:  # legalize_max_min
        y = b.op("Max", x, _conv(b, b.input, "conv_b"), name="mx")
    return b.build([y])


LEGALIZATIONS = [p for p in DEFAULT_PIPELINE if p.startswith("legalize_")]


def test_every_legalization_has_a_case_here():
    assert len(LEGALIZATIONS) == 7


@pytest.mark.parametrize("pass_name", LEGALIZATIONS)
def test_rewrite_in_provenance_and_dumps(pass_name, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model(pass_name), path)
    result = subprocess.run(
        [sys.executable, "-m", "irc", "compile", path, "-o", tmp_path / "o", "--dump-after",
         "all", "--dump-dir", tmp_path / "d", "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    layers = json.loads((tmp_path / "o" / "name_map.json").read_text())["layers"]
    assert any(pass_name in info["passes"] for info in layers.values()), layers
    index = DEFAULT_PIPELINE.index(pass_name) + 1
    before = (tmp_path / "d" / f"{index - 1:03d}_{DEFAULT_PIPELINE[index - 2]}.txt"
              if index > 1 else tmp_path / "d" / "000_input.txt")
    after = tmp_path / "d" / f"{index:03d}_{pass_name}.txt"
    assert after.read_text() != before.read_text()
