"""The ONNX op registry: one handler per op type, filled by the handler modules.

Handler modules import :data:`ONNX_OPS` from here (never from the importer, which imports them:
that would be an import circle); this module imports none of them. A reader of the registry
(the importer, ``irc ops``, the Keras clean-up check) calls
:func:`irc.frontends.onnx.catalog.onnx_ops`, which imports every handler module first.
"""
from __future__ import annotations

from irc.frontends.registry import HandlerRegistry

ONNX_OPS = HandlerRegistry("ONNX")
