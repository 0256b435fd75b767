"""The ONNX op registry, full: importing this module imports every handler module, each of
which registers its handlers in :data:`irc.frontends.onnx.registry.ONNX_OPS`. The registry
never imports them back, so there is no import circle.
"""
from __future__ import annotations

from irc.frontends.onnx import (handlers, handlers_constants, handlers_dense,  # noqa: F401
                                handlers_rnn, handlers_select, handlers_shape)
from irc.frontends.onnx.registry import ONNX_OPS
from irc.frontends.registry import HandlerRegistry


def onnx_ops() -> HandlerRegistry:
    """The registry with every handler module imported."""
    return ONNX_OPS
