"""The IR graph: ops and values in a networkx bipartite multigraph behind a small typed API.

networkx holds the structure: one graph node per op (key ``("op", name)``) and per value
(key ``("val", name)``); an edge value->op for each input slot (attribute ``slot``) and op->value
for each output. A multigraph because one op may read the same value twice (``Add(x, x)``).
Node and value payloads (:class:`Node`, :class:`Value`) sit in the networkx node data.

Constant values hold a :class:`~irc.ir.tensors.WeightHandle`; graph inputs and op outputs hold
none. Graph outputs are value names.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from irc.errors import GraphInvalid
from irc.ir import ops as opdefs
from irc.ir.tensors import TensorType, WeightHandle, WeightStore
from irc.ir.weight_expr import WeightExpr


@dataclass(frozen=True)
class Provenance:
    """Where a node came from: source node/layer names, and the passes that made or rewrote it."""

    sources: tuple[str, ...] = ()
    passes: tuple[str, ...] = ()

    @property
    def pass_name(self) -> str | None:
        """The pass that last created or rewrote the node (None: straight from the frontend)."""
        return self.passes[-1] if self.passes else None

    def merged(self, other: "Provenance", pass_name: str | None) -> "Provenance":
        sources = tuple(dict.fromkeys(self.sources + other.sources))
        passes = tuple(dict.fromkeys(self.passes + other.passes
                                     + ((pass_name,) if pass_name else ())))
        return Provenance(sources, passes)


@dataclass
class Value:
    name: str
    type: TensorType
    const: WeightHandle | None = None

    @property
    def is_const(self) -> bool:
        return self.const is not None


@dataclass
class Node:
    """An op. ``inputs`` is a tuple that only the graph changes (``Graph.set_input``,
    ``set_inputs``, ``replace_uses``, ...), so the graph's edges and version always follow it.
    Attributes are changed through ``Graph.set_attr``/``remove_attr`` for the same reason."""

    name: str
    op_type: str
    inputs: tuple[str, ...]  # "" marks an omitted optional input, as in ONNX
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))

    def __setattr__(self, key, value):
        if key == "inputs" and "inputs" in self.__dict__:
            raise AttributeError(f"{self.name}: inputs change through the graph (set_input, "
                                 "set_inputs, replace_uses), which keeps its edges in step")
        object.__setattr__(self, key, value)

    def _set_inputs(self, inputs) -> None:   # the graph's own edits only
        object.__setattr__(self, "inputs", tuple(inputs))

    def attr(self, name):
        return opdefs.attr(self, name)


def _op(name):
    return ("op", name)


def _val(name):
    return ("val", name)


class Graph:
    def __init__(self, name: str = "model", weights: WeightStore | None = None):
        self.name = name
        self.weights = weights if weights is not None else WeightStore()
        self.version = 0  # bumped by every structural change (the pass manager reads it)
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        # graph input/output -> the axis the source model holds the batch on, where it is not 0
        # (a time-major sequence: 1); the IR itself keeps the batch on axis 0
        self.source_batch_axes: dict[str, int] = {}
        # facts about the model as a whole that no op carries (ONNX metadata_props under
        # "irc.*", such as a detection head: irc.detection_spec)
        self.metadata: dict[str, str] = {}
        self._nx = nx.MultiDiGraph()
        self._counter = itertools.count()

    @property
    def inputs(self) -> list[str]:
        return self._inputs

    @inputs.setter
    def inputs(self, names: list[str]) -> None:
        self._inputs = names
        self.version += 1

    @property
    def outputs(self) -> list[str]:
        return self._outputs

    @outputs.setter
    def outputs(self, names: list[str]) -> None:
        self._outputs = names
        self.version += 1

    # ---- construction ---------------------------------------------------------------------
    def _add_value(self, value: Value) -> Value:
        self.version += 1
        if _val(value.name) in self._nx:
            raise GraphInvalid(f"value {value.name!r} defined twice")
        self._nx.add_node(_val(value.name), value=value)
        return value

    def add_input(self, name: str, ttype: TensorType) -> Value:
        value = self._add_value(Value(name, ttype))
        self.inputs.append(name)
        return value

    def add_const(self, name: str, data: np.ndarray | WeightHandle) -> Value:
        """A constant value; ``data`` is stored by reference (a handle or a new store entry)."""
        handle = data if isinstance(data, WeightHandle) else self.weights.add(data, hint=name)
        ttype = TensorType(handle.shape, handle.dtype.name)
        return self._add_value(Value(self.unique_value_name(name), ttype, handle))

    def add_node(self, op_type: str, inputs: list[str], outputs: list[tuple[str, TensorType]],
                 attrs: dict | None = None, name: str | None = None,
                 provenance: Provenance | None = None) -> Node:
        """Add an op. ``outputs`` are (name, type) pairs of values this op defines."""
        self.version += 1
        name = self.unique_node_name(name or op_type.lower())
        node = Node(name, op_type, tuple(inputs), [o for o, _ in outputs], dict(attrs or {}),
                    provenance or Provenance())
        self._nx.add_node(_op(name), node=node)
        for out_name, ttype in outputs:
            self._add_value(Value(out_name, ttype))
            self._nx.add_edge(_op(name), _val(out_name))
        for slot, inp in enumerate(node.inputs):
            if inp:
                if _val(inp) not in self._nx:
                    raise GraphInvalid(f"node {name!r} reads undefined value {inp!r}")
                self._nx.add_edge(_val(inp), _op(name), slot=slot)
        return node

    def unique_node_name(self, hint: str) -> str:
        name = hint
        while _op(name) in self._nx:
            name = f"{hint}_{next(self._counter)}"
        return name

    def unique_value_name(self, hint: str) -> str:
        name = hint
        while _val(name) in self._nx:
            name = f"{hint}_{next(self._counter)}"
        return name

    # ---- queries --------------------------------------------------------------------------
    def value(self, name: str) -> Value:
        return self._nx.nodes[_val(name)]["value"]

    def has_value(self, name: str) -> bool:
        return _val(name) in self._nx

    def node(self, name: str) -> Node:
        return self._nx.nodes[_op(name)]["node"]

    def has_node(self, name: str) -> bool:
        return _op(name) in self._nx

    def values(self) -> list[Value]:
        return [d["value"] for k, d in self._nx.nodes(data=True) if k[0] == "val"]

    def producer(self, value_name: str) -> Node | None:
        preds = list(self._nx.predecessors(_val(value_name)))
        return self._nx.nodes[preds[0]]["node"] if preds else None

    def consumers(self, value_name: str) -> list[Node]:
        """Consumer ops of a value, each once, in graph order."""
        names = dict.fromkeys(k[1] for k in self._nx.successors(_val(value_name)))
        return [self.node(n) for n in names]

    def use_count(self, value_name: str) -> int:
        """Consumer edges plus one per appearance among the graph outputs."""
        return self._nx.out_degree(_val(value_name)) + self.outputs.count(value_name)

    def is_const(self, value_name: str) -> bool:
        return bool(value_name) and self.value(value_name).is_const

    def const(self, value_name: str) -> np.ndarray:
        return self.value(value_name).const.numpy()

    def nodes(self) -> list[Node]:
        """Ops in a deterministic topological order: among the ready ones, by name."""
        order = self._topological_keys()
        if order is None:
            raise GraphInvalid("graph has a cycle")
        data = self._nx.nodes
        return [data[k]["node"] for k in order if k[0] == "op"]

    def _topological_keys(self) -> list | None:
        """Every networkx key in networkx's ``lexicographical_topological_sort`` order (key: the
        name, ties by insertion), or None for a cyclic graph. Written out because every pass
        and every validation asks for it and networkx's generic version is several times
        slower."""
        succ, pred = self._nx._succ, self._nx._pred
        index = {k: i for i, k in enumerate(succ)}
        indegree = {k: sum(len(keys) for keys in pred[k].values()) for k in succ}
        ready = [(k[1], index[k], k) for k, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, _, k = heapq.heappop(ready)
            order.append(k)
            for child, keys in succ[k].items():
                indegree[child] -= len(keys)
                if indegree[child] == 0:
                    heapq.heappush(ready, (child[1], index[child], child))
        return order if len(order) == len(index) else None

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for k, d in self._nx.nodes(data=True):
            if k[0] == "op":
                counts[d["node"].op_type] = counts.get(d["node"].op_type, 0) + 1
        return counts

    def __len__(self) -> int:
        return sum(1 for k in self._nx if k[0] == "op")

    # ---- mutation -------------------------------------------------------------------------
    def set_input(self, node: Node, slot: int, value_name: str) -> None:
        """``node`` reads ``value_name`` ("" = omitted) at ``slot``; a slot past the last input
        adds one (earlier missing slots are omitted inputs)."""
        self.version += 1
        if slot >= len(node.inputs):
            node._set_inputs(node.inputs + ("",) * (slot + 1 - len(node.inputs)))
        old = node.inputs[slot]
        if old:
            for u, v, k, d in list(self._nx.in_edges(_op(node.name), keys=True, data=True)):
                if u == _val(old) and d.get("slot") == slot:
                    self._nx.remove_edge(u, v, k)
                    break
        node._set_inputs(node.inputs[:slot] + (value_name,) + node.inputs[slot + 1:])
        if value_name:
            self._nx.add_edge(_val(value_name), _op(node.name), slot=slot)

    def set_inputs(self, node: Node, names) -> None:
        """``node`` reads exactly ``names`` (the list may be shorter or longer than before)."""
        self.version += 1
        key = _op(node.name)
        self._nx.remove_edges_from(list(self._nx.in_edges(key, keys=True)))
        node._set_inputs(names)
        for slot, name in enumerate(node.inputs):
            if name:
                if _val(name) not in self._nx:
                    raise GraphInvalid(f"node {node.name!r} reads undefined value {name!r}")
                self._nx.add_edge(_val(name), key, slot=slot)

    def set_attr(self, node: Node, name: str, value) -> None:
        """Set one attribute of ``node`` (a change the pass manager sees)."""
        self.version += 1
        node.attrs[name] = value

    def remove_attr(self, node: Node, name: str) -> None:
        """Drop an attribute (the op then reads the schema default); absent is fine."""
        self.version += 1
        node.attrs.pop(name, None)

    def replace_node(self, node: Node, new_values) -> None:
        """Replace ``node`` by values already computed by the ops that replace it (one per
        output, or one name for a single output): each takes over every reader, graph-output
        role AND the name of the output it replaces, so graph outputs and name_map keep the
        source's names. ``node`` is removed."""
        news = [new_values] if isinstance(new_values, str) else list(new_values)
        if len(news) != len(node.outputs):
            raise GraphInvalid(f"replacing {node.name!r}: {len(news)} values for "
                               f"{len(node.outputs)} outputs")
        outs = list(node.outputs)
        for out, new in zip(outs, news):
            self.replace_uses(out, new)
        self.remove_node(node)
        for out, new in zip(outs, news):
            self.rename_value(new, out)

    def replace_uses(self, old: str, new: str) -> None:
        """Make every reader of value ``old`` (ops and graph outputs) read ``new``."""
        for consumer in self.consumers(old):
            for slot, inp in enumerate(consumer.inputs):
                if inp == old:
                    self.set_input(consumer, slot, new)
        self.outputs = [new if o == old else o for o in self.outputs]

    def rename_value(self, old: str, new: str) -> None:
        """Rename value ``old`` to the unused name ``new`` everywhere (producer, readers, outputs)."""
        self.version += 1
        if self.has_value(new):
            raise GraphInvalid(f"cannot rename {old!r}: {new!r} exists")
        key, value = _val(old), self.value(old)
        edges_in = list(self._nx.in_edges(key, data=True))
        edges_out = list(self._nx.out_edges(key, data=True))
        self._nx.remove_node(key)
        value.name = new
        self._nx.add_node(_val(new), value=value)
        for u, _, d in edges_in:
            node = self._nx.nodes[u]["node"]
            node.outputs = [new if o == old else o for o in node.outputs]
            self._nx.add_edge(u, _val(new), **d)
        for _, v, d in edges_out:
            reader, slot = self._nx.nodes[v]["node"], d["slot"]
            reader._set_inputs(reader.inputs[:slot] + (new,) + reader.inputs[slot + 1:])
            self._nx.add_edge(_val(new), v, **d)
        self.inputs = [new if i == old else i for i in self.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove_node(self, node: Node, remove_outputs: bool = True) -> None:
        self.version += 1
        if remove_outputs:
            for out in node.outputs:
                if self._nx.out_degree(_val(out)) or out in self.outputs:
                    raise GraphInvalid(f"removing {node.name!r} leaves readers of {out!r}")
        self._nx.remove_node(_op(node.name))
        if remove_outputs:
            for out in node.outputs:
                self._nx.remove_node(_val(out))

    def remove_unused_values(self) -> int:
        """Drop constants and op-less values nobody reads; returns how many went."""
        self.version += 1
        dead = [k for k, d in self._nx.nodes(data=True)
                if k[0] == "val" and self._nx.degree(k) == 0
                and k[1] not in self.inputs and k[1] not in self.outputs]
        self._nx.remove_nodes_from(dead)
        return len(dead)

    def set_type(self, value_name: str, ttype: TensorType) -> None:
        self.version += 1
        self.value(value_name).type = ttype

    def replace_const(self, value_name: str, data: "np.ndarray | WeightExpr") -> str:
        """A new constant holding ``data``, named after ``value_name`` (which is left as is).
        A WeightExpr stays lazy: it is computed only when a writer reads it."""
        return self.add_const(value_name, data if isinstance(data, WeightExpr)
                              else np.ascontiguousarray(data)).name

    def copy(self) -> "Graph":
        """A structural copy that shares the weight store (weights are never copied)."""
        clone = Graph(self.name, self.weights)
        clone.inputs, clone.outputs = list(self.inputs), list(self.outputs)
        clone._nx = nx.MultiDiGraph()
        for k, d in self._nx.nodes(data=True):
            if k[0] == "op":
                n = d["node"]
                clone._nx.add_node(k, node=Node(n.name, n.op_type, n.inputs, list(n.outputs),
                                                dict(n.attrs), n.provenance))
            else:
                v = d["value"]
                clone._nx.add_node(k, value=Value(v.name, v.type, v.const))
        clone._nx.add_edges_from(self._nx.edges(keys=True, data=True))
        return clone

    # ---- validation -----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`GraphInvalid` listing every structural problem."""
        problems: list[str] = []
        if self._topological_keys() is None:
            problems.append("graph has a cycle")
        for name in self.inputs + self.outputs:
            if not self.has_value(name):
                problems.append(f"graph input/output {name!r} is not a value")
        for k, d in self._nx.nodes(data=True):
            if k[0] == "val":
                value = d["value"]
                producers = self._nx.in_degree(k)
                if value.is_const and producers:
                    problems.append(f"constant {value.name!r} also has a producer")
                if not value.is_const and not producers and value.name not in self.inputs:
                    problems.append(f"value {value.name!r} has no producer")
                continue
            node = d["node"]
            sch = opdefs.schema(node.op_type)
            problems += [f"{node.name}: {p}" for p in opdefs.validate_attrs(node.op_type, node.attrs)]
            if sch is None:
                continue
            n_in = len(node.inputs)
            if n_in < sch.min_inputs or (sch.max_inputs >= 0 and n_in > sch.max_inputs):
                problems.append(f"{node.name}: {node.op_type} takes {sch.min_inputs}.."
                                f"{sch.max_inputs} inputs, has {n_in}")
            missing = [i for i in range(min(n_in, sch.min_inputs)) if not node.inputs[i]]
            if missing:
                problems.append(f"{node.name}: required input(s) {missing} of {node.op_type} "
                                "are empty")
            for slot in sch.const_inputs:
                if slot < n_in and node.inputs[slot] and not self.is_const(node.inputs[slot]):
                    problems.append(f"{node.name}: input {slot} of {node.op_type} must be a constant")
            edges = sorted(d2["slot"] for _, _, d2 in self._nx.in_edges(k, data=True))
            if edges != [i for i, v in enumerate(node.inputs) if v]:
                problems.append(f"{node.name}: input edges out of sync with inputs")
            if [v[1] for v in self._nx.successors(k)] and \
                    sorted(v[1] for v in self._nx.successors(k)) != sorted(node.outputs):
                problems.append(f"{node.name}: output edges out of sync with outputs")
        if problems:
            raise GraphInvalid("; ".join(problems[:20]) + (" ..." if len(problems) > 20 else ""))
