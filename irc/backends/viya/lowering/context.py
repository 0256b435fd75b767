"""The state one lowering run shares between its handlers, and the helpers they use.

:class:`LoweringContext` holds the IR graph, the :class:`ViyaModel` being built, which Viya
layer(s) compute each IR value, the per-time-step sequences of a recurrent model, and the
problems found so far (all reported together; nothing is written when there is one).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irc.backends.viya import schema
from irc.backends.viya.model import LazyWeight, LoweredLayer, ViyaModel
from irc.backends.viya.names import NameTable
from irc.input_spec import InputSpec
from irc.problems import Problems
from irc.ir.activations import VIYA_FIXED_ALPHA
from irc.ir.graph import Graph, Node

# Viya fixes these slopes (viya-semantics); any other value is rewritten exactly before
# lowering (PRelu), so meeting one here is a guard.
FIXED_ALPHA = VIYA_FIXED_ALPHA


@dataclass
class Seq:
    """A per-time-step value: the Viya layers computing it (concatenated per step)."""

    layers: list[str]
    steps: int
    width: int


class LoweringContext:
    def __init__(self, graph: Graph, name: str, input_spec: InputSpec, refusals=()):
        self.graph = graph
        self.model = ViyaModel(name=name, layers=[])
        self.names = NameTable()
        self.input_spec = input_spec
        self.layer_of: dict[str, str] = {}  # IR value -> Viya layer computing it
        # IR value -> the Viya layers whose outputs, concatenated, are that value (a
        # bidirectional recurrent op is two layers; consumers list both as srcLayers)
        self.multi: dict[str, list[str]] = {}
        self.flattened: set[str] = set()  # IR values that are a Flatten of a layer's output
        self.problems = Problems()  # every problem, raised together by the driver
        self.refusals: dict[str, list[str]] = {}  # node -> why passes left it alone
        for _pass_name, node_name, reason in refusals:  # the user reads reasons, not passes
            if reason not in self.refusals.get(node_name, []):
                self.refusals.setdefault(node_name, []).append(reason)
        # Recurrent models (lowering/recurrent.py): per-time-step values, final states, and
        # nodes already lowered as part of a per-step dense layer.
        self.seq: dict[str, Seq] = {}
        self.states: set[str] = set()
        self.claimed: set[str] = set()
        # Gemms lowered together with the Softmax reading them (lowering/dense.py), and
        # their outputs, which no layer of their own computes.
        self.merged_gemms: set[str] = set()
        self.merged_values: set[str] = set()

    # ---- problems --------------------------------------------------------------------------
    def problem(self, node: Node, message: str) -> None:
        sources = ", ".join(node.provenance.sources) or node.name
        why = "".join(f"\n      (irc's exact rewrite into Viya layers does not apply: {r})"
                      for r in self.refusals.get(node.name, []))
        # the text names the node itself (with its op and sources), so no separate place
        self.problems.add(None, f"{node.name} ({node.op_type}, from {sources}): {message}{why}")

    def note(self, text: str) -> None:
        """An open point the model relies on, stated once in model.json's notes."""
        if text not in self.model.notes:
            self.model.notes.append(text)

    # ---- layers ----------------------------------------------------------------------------
    def add(self, node: Node | None, kind: str, options: dict, sources: list[str],
            out_value: str | None, weights=None, name_hint: str | None = None) -> LoweredLayer:
        """A layer of ``kind`` (a key of schema.KINDS) reading the layers of ``sources``."""
        _check_kind(kind)
        hint = name_hint or (node.name if node else kind)
        layer = LoweredLayer(self.names.claim(hint, kind), kind, options,
                             [name for s in sources for name in self.sources_of(s)], weights or {},
                             node.provenance.sources if node else (), (),
                             node.provenance.passes if node else ())
        if out_value is not None:
            shape = self.graph.value(out_value).type.shape[1:]
            layer.out_shape = tuple(shape)
            layer.tensor = out_value
            self.layer_of[out_value] = layer.name
        self.model.layers.append(layer)
        return layer

    def append(self, layer: LoweredLayer) -> LoweredLayer:
        """A layer built whole by its handler (input, recurrent and per-step layers)."""
        _check_kind(layer.kind)
        self.model.layers.append(layer)
        return layer

    def sources_of(self, value: str) -> list[str]:
        return self.multi.get(value, [self.layer_of[value]])

    def alias(self, dst: str, src: str) -> None:
        """``dst`` is computed by the same layer(s) as ``src``."""
        self.layer_of[dst] = self.layer_of[src]
        if src in self.multi:
            self.multi[dst] = self.multi[src]

    def computed(self, value: str) -> bool:
        """A value some Viya layer computes (or a Gemm merged into its Softmax's layer)."""
        return (not value or self.graph.is_const(value) or value in self.layer_of
                or value in self.merged_values)

    # ---- weights and options ---------------------------------------------------------------
    def const_weight(self, value: str, transform=None) -> LazyWeight:
        handle = self.graph.value(value).const
        if transform is None:
            return LazyWeight.of(handle)
        probe_shape = transform(np.zeros(handle.shape, np.float32)).shape
        return LazyWeight(tuple(probe_shape), lambda: transform(handle.numpy()))

    def act(self, node: Node) -> str:
        """The Viya act string of the activation fused into ``node``."""
        act = node.attrs.get("activation", "identity")
        alpha = node.attrs.get("activation_alpha")
        fixed = FIXED_ALPHA.get(act)
        if fixed is not None and alpha is not None \
                and np.float32(alpha) != np.float32(fixed):
            self.problem(node, f"activation {act} with alpha {alpha:g}: Viya's {act} fixes it "
                               f"at {fixed:g}; export the model with alpha {fixed:g} or as PRelu")
        found = schema.ACTIVATIONS.get(act)
        if found is None or not found.computed:
            raise AssertionError(f"{node.name}: fused activation {act!r} is not a Viya act")
        return found.name


def _check_kind(kind: str) -> None:
    if kind not in schema.KINDS:
        raise AssertionError(f"lowering emitted {kind!r}, which is not a Viya layer kind")
