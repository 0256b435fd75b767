"""The Keras layer registry: one handler per layer class, holding everything irc knows of it.

A handler is a class registered by Keras class name, with hooks for the two kinds of model:

- ``check(layer, cfg, ctx)``: in an image model, what Viya cannot compute in this layer's
  configuration, reported through ``ctx.problem`` (the scan runs every check before any
  conversion work and raises one error listing them all). A handler without it is refused in
  image models;
- ``emit(e, layer, cfg, inputs)`` (optional): the ONNX for the layer, written by irc's direct
  route (``e`` is the :class:`~irc.frontends.keras.direct.DirectEmitter`, ``inputs`` the
  :class:`~irc.frontends.keras.handlers.common.Value` of each input; returns the output values).
  A model with a layer that has no emitter goes through tf2onnx;
- ``sequence(spec, flow)`` and ``emit_sequence(e, spec)`` (optional): the same two for a
  sequence model (one with a recurrent layer; see handlers/sequence.py). A handler without
  ``sequence`` is refused in sequence models.

The class docstring's first line is the support-table note (`irc ops keras`).
"""
from __future__ import annotations

from typing import Callable

from irc.frontends.registry import HandlerRegistry


class KerasLayerRegistry(HandlerRegistry):
    def hook(self, cls_name: str, name: str) -> Callable | None:
        """The handler's hook ``name`` (check, emit, sequence, emit_sequence), or None."""
        handler = self.get(cls_name)
        return getattr(handler.fn, name, None) if handler is not None else None

    def check(self, cls_name: str) -> Callable | None:
        return self.hook(cls_name, "check")

    def emitter(self, cls_name: str) -> Callable | None:
        return self.hook(cls_name, "emit")

    def with_hook(self, name: str) -> list[str]:
        """The classes whose handler has hook ``name``."""
        return [op for op in self.op_types() if self.hook(op, name) is not None]

    def missing(self, items: list[tuple[str, str]], hook: str) -> dict[str, list[str]]:
        """Given (class, layer name) pairs, the classes without hook ``hook`` -> layer names."""
        found: dict[str, list[str]] = {}
        for cls_name, layer_name in items:
            if self.hook(cls_name, hook) is None:
                found.setdefault(cls_name, []).append(layer_name)
        return found

    def direct_table(self) -> list[tuple[str, str]]:
        """(class, route) rows: which layers irc writes to ONNX itself."""
        # The input layer has no emitter: it is where the direct route's ONNX input is bound.
        return [(op, "sequence models only" if self.check(op) is None
                 else "direct" if self.emitter(op) or op == "InputLayer" else "tf2onnx only")
                for op in self.op_types()]


KERAS_LAYERS = KerasLayerRegistry("Keras")
