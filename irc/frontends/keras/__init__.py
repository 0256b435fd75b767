"""The Keras frontend: Keras 3 and tf-keras models (in memory, ``.keras``, full-model ``.h5``).

    proto = keras_to_onnx(model)                 # clean ONNX, input N,C,H,W
    graph = import_keras("model.keras")          # an irc IR graph
    outputs = run_keras(model, x_nchw)           # the oracle: {ONNX output name: array}

Keras layers are checked first (``KERAS_LAYERS``: one handler per layer class; everything
unsupported is reported in one error), then written to ONNX by irc itself when every layer has
a direct handler (:mod:`direct`), else converted through tf2onnx, and cleaned up into ONNX that
irc's ONNX frontend takes. TensorFlow is imported only when a Keras model is compiled.
Lambda layers and custom objects need ``allow_lambda=True``: nothing stored in a model file is
executed without it.
"""
from __future__ import annotations

from irc.frontends.keras.handlers import KERAS_LAYERS
from irc.frontends.keras.loading import KERAS_SUFFIXES

__all__ = ["KERAS_LAYERS", "KERAS_SUFFIXES", "import_keras", "keras_to_onnx", "run_keras"]


def keras_to_onnx(source, input_shape=None, allow_lambda: bool = False, route: str = "auto"):
    """``source`` (keras.Model, tf_keras model, or a .keras/.h5 path) as a clean ONNX ModelProto.

    ``input_shape``: (H, W, C) as in Keras, or (N, C, H, W) as for ONNX models; needed only
    when the model's input has dynamic dimensions. ``route``: "auto" (irc's own emitter when
    every layer has a direct handler, else tf2onnx), "direct" or "tf2onnx".
    """
    from irc.frontends.keras.convert import to_onnx
    from irc.frontends.keras.loading import load

    return to_onnx(load(source, allow_lambda), input_shape, allow_lambda, route)


def import_keras(source, input_shape=None, allow_lambda: bool = False, route: str = "auto"):
    """``source`` as an irc IR graph (before any pass)."""
    from irc.frontends.keras.convert import to_onnx
    from irc.frontends.keras.loading import load
    from irc.frontends.onnx import import_onnx

    src = load(source, allow_lambda)
    return import_onnx(to_onnx(src, input_shape, allow_lambda, route), label=src.label)


def run_keras(source, x_nchw, allow_lambda: bool = False, float64: bool = False):
    """Keras's outputs for the N,C,H,W batch ``x_nchw``: {ONNX output name: array}, 4-D
    outputs as N,C,H,W (the verification oracle; ``float64``: the model rebuilt under a
    float64 dtype policy, same weights)."""
    from irc.frontends.keras.convert import run

    return run(source, x_nchw, allow_lambda, float64)
