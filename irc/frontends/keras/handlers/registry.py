"""The Keras layer registry: one handler per layer class, holding everything irc knows of it.

A handler is a class registered by Keras class name, with

- ``check(layer, cfg, ctx)``: what Viya cannot compute in this layer's configuration, reported
  through ``ctx.problem`` (the scan runs every check before any conversion work and raises one
  error listing them all);
- ``emit(e, layer, cfg, inputs)`` (optional): the ONNX for the layer, written by irc's direct
  route (``e`` is the :class:`~irc.frontends.keras.direct.DirectEmitter`, ``inputs`` the
  :class:`~irc.frontends.keras.handlers.common.Value` of each input; returns the output values).
  A model with a layer that has no emitter goes through tf2onnx.

The class docstring's first line is the support-table note (`irc ops keras`).
"""
from __future__ import annotations

from typing import Callable

from irc.frontends.registry import HandlerRegistry


class KerasLayerRegistry(HandlerRegistry):
    def check(self, cls_name: str) -> Callable | None:
        handler = self.get(cls_name)
        return handler.fn.check if handler is not None else None

    def emitter(self, cls_name: str) -> Callable | None:
        handler = self.get(cls_name)
        return getattr(handler.fn, "emit", None) if handler is not None else None

    def direct_table(self) -> list[tuple[str, str]]:
        """(class, route) rows: which layers irc writes to ONNX itself."""
        # The input layer has no emitter: it is where the direct route's ONNX input is bound.
        return [(op, "direct" if self.emitter(op) or op == "InputLayer" else "tf2onnx only")
                for op in self.op_types()]


KERAS_LAYERS = KerasLayerRegistry("Keras")
