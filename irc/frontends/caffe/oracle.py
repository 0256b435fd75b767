"""OpenCV as the Caffe oracle: ``cv2.dnn.readNetFromCaffe`` runs the same prototxt and caffemodel.

cv2 is a test/verify dependency only (imported here, lazily). OpenCV 4.14 cannot feed a net
whose input is a ``Data`` or ``MemoryData`` layer, and it ignores Caffe's net-state rules
entirely (measured: a layer with ``include { phase: TRAIN }``, ``exclude { phase: TEST }``,
``include { stage: "x" }`` or ``include { min_level: 1 }`` still runs), so it cannot apply
them itself. The oracle therefore filters the net with Caffe's rules, read by the one
implementation irc has of Net::FilterNet/StateMeetsRule (reader.caffe_keeps); since irc's
reader and the oracle share it, a mistake there could not show as a mismatch, so
tests/caffe/test_phase_rules.py checks it against expectations written by hand. For such nets
OpenCV gets a temporary copy of the prototxt (re-serialised with irc's schema: fields outside
it are dropped from that copy) with those layers dropped and Data layers replaced by a
top-level ``input`` of x's shape; every other layer is left as written.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from irc.errors import InvalidModel
from irc.frontends.caffe.reader import caffe_keeps, read_prototxt, v1_type

_DATA_LAYERS = ("Data", "MemoryData")


def net_outputs(layers) -> dict[str, str]:
    """Caffe's net outputs: {top name: the layer that writes it last}, in net order."""
    writer: dict[str, str] = {}
    read_after_write: dict[str, bool] = {}
    data_tops: set[str] = set()
    for layer in layers:
        for b in layer.bottoms:
            read_after_write[b] = True
        for top in layer.tops:
            writer[top] = layer.name
            read_after_write[top] = False
        if layer.type in _DATA_LAYERS + ("Input",):
            data_tops.update(layer.tops)
    return {t: name for t, name in writer.items()
            if not read_after_write[t] and t not in data_tops}


def _needs_copy(net) -> bool:
    """Whether OpenCV must get a rewritten copy: a Data layer, or a layer Caffe leaves out of
    a TEST-phase net (OpenCV ignores phase rules and would run it)."""
    for field_name in ("layer", "layers"):
        for layer in getattr(net, field_name):
            layer_type = layer.type if field_name == "layer" else v1_type(layer.type)
            if layer_type in _DATA_LAYERS or not caffe_keeps(layer):
                return True
    return False


def _as_inputs(net, x: dict[str, np.ndarray]):
    """A copy of ``net`` as Caffe builds it for the TEST phase (layers the phase rules leave
    out are dropped), its Data/MemoryData layers made top-level inputs shaped like ``x``."""
    copy = type(net)()
    copy.CopyFrom(net)
    for field_name in ("layer", "layers"):
        kept = []
        for layer in getattr(copy, field_name):
            layer_type = layer.type if field_name == "layer" else v1_type(layer.type)
            if not caffe_keeps(layer):
                continue
            if layer_type in _DATA_LAYERS:
                top = layer.top[0]
                if top not in copy.input:  # TRAIN and TEST variants declare it twice
                    copy.input.append(top)
                    copy.input_shape.add().dim.extend(x[top].shape)
            else:
                kept.append(layer)
        del getattr(copy, field_name)[:]
        getattr(copy, field_name).extend(kept)
    return copy


def run_opencv_oracle(prototxt, caffemodel, x) -> dict[str, np.ndarray]:
    """OpenCV's forward of the Caffe net on ``x`` (an array for a single-input net, or
    {input top: array}): {Caffe top name: array} for every net output."""
    import cv2

    if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # one message only

    caffe_net = read_prototxt(prototxt)
    layers = caffe_net.layers  # filtered as Caffe does (reader.caffe_keeps)
    inputs = list(caffe_net.net.input) + [t for l in layers if l.type == "Input" for t in l.tops] \
        + [l.tops[0] for l in layers if l.type in _DATA_LAYERS]
    feeds = x if isinstance(x, dict) else {inputs[0]: x}
    feeds = {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()}
    outputs = net_outputs(layers)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(prototxt)
        if _needs_copy(caffe_net.net):
            path = Path(tmp) / "net.prototxt"
            path.write_text(text_format.MessageToString(_as_inputs(caffe_net.net, feeds)))
        try:
            net = cv2.dnn.readNetFromCaffe(str(path), str(caffemodel) if caffemodel else "")
            net.enableFusion(False)
            if hasattr(net, "enableWinograd"):
                net.enableWinograd(False)  # Winograd 3x3 convolution rounds differently
            for name, value in feeds.items():
                net.setInput(value, name if len(feeds) > 1 else "")
            results = net.forward(list(outputs.values()))
        except cv2.error as exc:
            first = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else "cv2.error"
            # OpenCV refuses training-time layers (e.g. BatchNorm with batch statistics on a
            # batch > 1); the net is fine then, only not an inference net.
            training = "training" in first.lower()
            raise InvalidModel(f"OpenCV, irc's Caffe oracle, cannot run the net: {first}",
                               file=str(prototxt), hint=(
                                   "a layer is in training mode; set it to inference (e.g. "
                                   "use_global_stats: true) in the deploy prototxt" if training
                                   else "the net or its weights are broken for Caffe too")
                               + " (nothing was written)") from None
    return {top: np.asarray(r) for top, r in zip(outputs, results)}
