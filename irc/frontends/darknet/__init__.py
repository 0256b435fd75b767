"""The darknet frontend, without darknet: ``.cfg`` (+ ``.weights``) -> ONNX -> IR.

    conv = darknet_to_onnx("yolov2-tiny-voc.cfg", "yolov2-tiny-voc.weights")
    conv.model.metadata_props  # irc.detection: the [region] head, for Viya's detection layer
    reference = run_opencv("net.cfg", "net.weights", x)  # OpenCV's darknet importer (cv2)

The ONNX computes darknet's numbers (opset 17, NCHW, input "data": darknet's network input,
R, G, B in [0, 1]). Detectors end at their head's input; see ``heads.py``.
"""
from __future__ import annotations

from irc.frontends.darknet.convert import DETECTION_KEY, DarknetConversion
from irc.frontends.darknet.frontend import darknet_layout, darknet_to_onnx
from irc.frontends.darknet.oracle import run_opencv, run_opencv_region
from irc.frontends.darknet.registry import DARKNET_SECTIONS

__all__ = ["DARKNET_SECTIONS", "DETECTION_KEY", "DarknetConversion", "darknet_layout",
           "darknet_to_onnx", "run_opencv", "run_opencv_region"]
