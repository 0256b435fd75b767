"""The Keras model as a graph: its input/output tensors and its layers, nested models opened.

Shared by the layer scan, the direct emitter and the recurrent frontend; Keras 3 and tf-keras
models alike (both keep ``_keras_history`` on their symbolic tensors).
"""
from __future__ import annotations

from irc.errors import InvalidModel

CONTAINERS = ("Functional", "Sequential", "Model")


def model_tensors(model, which: str) -> list:
    """``model.inputs`` or ``model.outputs`` as a list; a clear error if undefined."""
    try:
        tensors = getattr(model, which)
    except (AttributeError, ValueError) as exc:
        raise InvalidModel(f"the Keras model has no defined {which} ({exc})",
                           hint="build the model with keras.Input(...) or call it once") from None
    if tensors is None:
        raise InvalidModel(f"the Keras model has no defined {which}",
                           hint="build the model with keras.Input(...) or call it once")
    return list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]


def is_container(layer) -> bool:
    """A nested model (Functional, Sequential or a Model subclass)."""
    return hasattr(layer, "layers") and any(c.__name__ in CONTAINERS
                                            for c in type(layer).__mro__)


def all_layers(model) -> list:
    """Every layer of ``model``, nested models expanded in place (the containers left out)."""
    out = []
    for layer in model.layers:
        if is_container(layer):
            out.extend(all_layers(layer))
        else:
            out.append(layer)
    return out


def output_layer_names(model) -> set[str]:
    """Names of the layers whose outputs are model outputs (looking into nested models)."""
    names = set()
    for tensor in model_tensors(model, "outputs"):
        op = tensor._keras_history[0]
        names.add(op.name)
        if is_container(op):
            names |= output_layer_names(op)
    return names
