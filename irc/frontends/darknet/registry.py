"""The darknet section registry, and what its handlers share with the converter.

Kept apart from the converter (as the Caffe registry is) so that handler modules import this
module and the converter imports the handlers, with no import circle.
"""
from __future__ import annotations

from irc.frontends.registry import HandlerRegistry

DARKNET_SECTIONS = HandlerRegistry("darknet")

# Sections irc knows and refuses, with the reason (a handler-less unknown section is refused
# as unknown instead).
REFUSED = {
    "upsample": "nearest-neighbour upsampling (YOLOv3) has no exact Viya layer",
    "yolo": "YOLOv3's [yolo] head is not Viya's detection layer, which is YOLO v1/v2 "
            "([detection]/[region])",
    "local": "a locally connected layer (a different kernel per position) has no Viya layer",
}


class Skip(Exception):
    """A section cannot be converted (the problem is already recorded) or reads one that
    could not; the converter goes on so that one error lists every problem."""
