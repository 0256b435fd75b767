"""The darknet frontend, without darknet: ``.cfg`` (+ ``.weights``) -> ONNX -> IR.

    conv = darknet_to_onnx("yolov2-tiny-voc.cfg", "yolov2-tiny-voc.weights")
    conv.model.metadata_props  # irc.detection: the [region] head, for Viya's detection layer
    reference = run_opencv("net.cfg", "net.weights", x)  # OpenCV's darknet importer (cv2)

The ONNX computes darknet's numbers (opset 17, NCHW, input "data": darknet's network input,
R, G, B in [0, 1]). Detectors end at their head's input; see ``heads.py``.
"""
from __future__ import annotations

from irc.frontends.darknet.cfg import read_cfg
from irc.frontends.darknet.convert import DETECTION_KEY, Converter, DarknetConversion
from irc.frontends.darknet.registry import DARKNET_SECTIONS
from irc.frontends.darknet.weights import WeightsFile

# the handler modules fill DARKNET_SECTIONS as they are imported
from irc.frontends.darknet import heads as _heads, layers as _layers  # noqa: F401,E402

__all__ = ["DARKNET_SECTIONS", "DETECTION_KEY", "DarknetConversion", "darknet_layout",
           "darknet_to_onnx", "run_opencv", "run_opencv_region"]


def darknet_to_onnx(cfg, weights=None, input_shape=None) -> DarknetConversion:
    """The darknet net as an ONNX model computing darknet's numbers.

    ``input_shape``: (C, H, W) or (N, C, H, W), overriding [net]'s channels/height/width.
    Without ``weights`` every array is zero (``has_weights=False``: structure only).
    """
    parsed = read_cfg(cfg)
    stream = WeightsFile(weights) if weights is not None else None
    return Converter(parsed, stream, input_shape).run()


def darknet_layout(cfg, input_shape=None) -> DarknetConversion:
    """The net's outputs, head and .weights layout (``weight_specs``) without building the
    ONNX model (``model`` is None): cheap for large nets."""
    return Converter(read_cfg(cfg), None, input_shape, layout_only=True).run()


def run_opencv(cfg, weights, x, outputs=None):
    """OpenCV's forward of the net on ``x``: {ONNX graph output name: array}, or
    {OpenCV layer name: array} for the given ``outputs`` (see oracle.run_opencv)."""
    from irc.frontends.darknet.oracle import run_opencv as run

    return run(cfg, weights, x, outputs)


def run_opencv_region(cfg, weights, x):
    """OpenCV's [region] layer output: its decoded rows (see oracle.run_opencv_region)."""
    from irc.frontends.darknet.oracle import run_opencv_region as run

    return run(cfg, weights, x)
