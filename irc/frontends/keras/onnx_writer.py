"""A small ONNX graph writer shared by irc's own Keras emitters (sequence and feed-forward).

It hands out unique value and node names (Keras layer names are kept where they are free), and
collects nodes and initializers for ``helper.make_graph``.
"""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper, helper

from irc.utils.unique_name import unique_name


class OnnxWriter:
    def __init__(self, reserved=()):
        self.nodes, self.inits = [], []
        self._names: set[str] = set(reserved)

    def fresh(self, hint: str) -> str:
        """``hint`` itself if unused, else ``hint_2``, ``hint_3``, ..."""
        return unique_name(hint, self._names)

    def const(self, hint: str, array) -> str:
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list, name: str, n_out: int = 1, **attrs) -> list[str]:
        outs = [self.fresh(f"{name}_out{k}" if k else f"{name}_out") for k in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.fresh(name), **attrs))
        return outs
