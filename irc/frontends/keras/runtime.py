"""TensorFlow, Keras and tf2onnx, imported only when a Keras model is compiled.

Importing TensorFlow costs seconds and prints CUDA noise; irc must start without it. The
environment is set before the first TensorFlow import: no GPU (conversion and the oracle run on
the CPU) and no C++ log lines.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from types import SimpleNamespace

from irc.errors import InvalidModel

_MODULES: SimpleNamespace | None = None


def tf_modules() -> SimpleNamespace:
    """``tf``, ``keras`` (Keras 3), ``tf_keras`` (None if absent) and ``tf2onnx``."""
    global _MODULES
    if _MODULES is not None:
        return _MODULES
    if "tensorflow" not in sys.modules:
        from irc.progress import report

        report("loading TensorFlow")
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with native_stderr_silenced():  # TF's C++ start-up lines (CUDA, oneDNN) ignore the level
        try:
            import tensorflow as tf
            import tf2onnx
        except ImportError as exc:
            raise InvalidModel(f"the Keras frontend needs TensorFlow and tf2onnx ({exc})",
                               hint="pip install 'irc[keras]'") from None
        try:
            import keras
        except ImportError:
            keras = None
        try:
            import tf_keras
        except ImportError:
            tf_keras = None
    tf.get_logger().setLevel("ERROR")
    _MODULES = SimpleNamespace(tf=tf, keras=keras, tf_keras=tf_keras, tf2onnx=tf2onnx)
    return _MODULES


@contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null inside the block: TensorFlow's C++ code writes
    start-up and graph-optimizer lines there that no Python setting reaches, and irc's
    output is one message. Python-level errors still arrive as exceptions."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (an embedding host): leave it alone
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def flavor_of(obj) -> str | None:
    """"keras3", "tf_keras" or None, judged from the class hierarchy without importing TF."""
    for cls in type(obj).__mro__:
        module = cls.__module__ or ""
        if module == "tf_keras" or module.startswith("tf_keras."):
            return "tf_keras"
        if module == "keras" or module.startswith("keras."):
            return "keras3"
    return None


def is_keras_model(obj) -> bool:
    """A Keras 3 or tf-keras model object (checked by class, without importing TF)."""
    if flavor_of(obj) is None:
        return False
    return any(cls.__name__ in ("Model", "Functional", "Sequential") for cls in type(obj).__mro__)
