"""ONNX handlers for constants: Constant and ConstantOfShape become constant values."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from irc.frontends.onnx.registry import ONNX_OPS as reg


@reg.register("Constant")
def constant(imp, node, attrs):
    """Constant -> a constant value."""
    if "value" in attrs:
        array = numpy_helper.to_array(attrs["value"])
    elif "value_float" in attrs:
        array = np.array(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        array = np.array(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        array = np.array(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        array = np.array(attrs["value_ints"], np.int64)
    else:
        imp.problem(f"Constant with attributes {sorted(attrs)} is not supported")
        return
    _define_const(imp, node.output[0], array)


@reg.register("ConstantOfShape")
def constant_of_shape(imp, node, attrs):
    """ConstantOfShape of a constant shape -> a constant value."""
    shape = imp.const(node.input[0])
    if shape is None:
        imp.problem("ConstantOfShape of a shape computed at run time")
        return
    fill = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    _define_const(imp, node.output[0], np.full(tuple(int(d) for d in shape), fill.reshape(-1)[0],
                                               dtype=fill.dtype))


def _define_const(imp, name: str, array: np.ndarray) -> None:
    if imp.graph.has_value(name):
        imp.problem(f"value {name!r} is defined twice")
        return
    handle = imp.graph.weights.add(np.asarray(array, order="C"), hint=name)
    imp.graph.add_const(name, handle)
