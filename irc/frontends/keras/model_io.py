"""The ONNX names of a Keras model's input and outputs.

Both Keras routes (tf2onnx and the direct emitter, in convert.py) and the recurrent emitter
name the graph's ends the same way, so verification can feed and read them by name.
"""
from __future__ import annotations

from irc.frontends.keras.model_graph import model_tensors


def output_names(model) -> list[str]:
    """ONNX output names: the Keras output layer names, made unique, in model.outputs order."""
    names, used = [], set()
    for tensor in model_tensors(model, "outputs"):
        base = tensor._keras_history[0].name or "output"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names.append(name)
    return names


def input_name(model) -> str:
    """ONNX input name: the first input layer's name ("input" when it has none)."""
    (tensor,) = model_tensors(model, "inputs")[:1] or (None,)
    name = tensor._keras_history[0].name if tensor is not None else ""
    return name or "input"
