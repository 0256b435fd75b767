"""The darknet conversion's entry points: the .cfg read, the handler modules registered, the
ONNX built (or only the layout of the net and its .weights worked out)."""
from __future__ import annotations

# the handler modules fill DARKNET_SECTIONS as they are imported
from irc.frontends.darknet import heads as _heads, layers as _layers  # noqa: F401
from irc.frontends.darknet.cfg import read_cfg
from irc.frontends.darknet.convert import Converter, DarknetConversion
from irc.frontends.darknet.weights import WeightsFile


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
