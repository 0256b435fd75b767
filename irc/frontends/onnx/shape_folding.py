"""Shape computations folded into constants where they are static.

Exporters compute shapes at run time: TorchScript's flatten is
``Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))``; channel shuffles and splits use
``Shape -> Gather -> Div/Slice`` chains. Every size but the batch is static in irc, so such a
sub-graph (nodes computed from initializers and ``Shape``/``Size`` alone) is evaluated here, by
ONNX's reference evaluator, once for each of two batch sizes (3 and 5: 1 is special, a size-1
axis broadcasts and squeezes). A value equal in both runs is a constant. A Reshape target whose
first entry is the batch in both runs (and nothing else differs) becomes 0, ONNX's "copy the
input's axis 0": exact, as the input's axis 0 is the batch. Any other use of the batch size is
refused with the reason.
"""
from __future__ import annotations

import numpy as np
import onnx

from irc.frontends.onnx import const_eval, loader

_SHAPE_OPS = ("Shape", "Size")
_BATCHES = (3, 5)


def shape_nodes(model: onnx.ModelProto, folded: set[int]) -> set[int]:
    """Indices of the nodes computed from initializers, folded values and Shape/Size only."""
    g = model.graph
    static = {t.name for t in g.initializer}
    for index in folded:
        static.update(o for o in g.node[index].output if o)
    found = set()
    for index, node in enumerate(g.node):
        if index in folded:
            continue
        if node.domain not in ("", "ai.onnx") or node.op_type in const_eval.NOT_FOLDABLE:
            continue
        inputs = [i for i in node.input if i]
        if node.op_type in _SHAPE_OPS or (inputs and all(i in static for i in inputs)):
            found.add(index)
            static.update(o for o in node.output if o)
    return found


def _shape_value(node: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
    if node.op_type == "Size":
        return np.asarray(int(np.prod(shape, dtype=np.int64)), np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    rank = len(shape)
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    return np.asarray(shape[slice(start, end)], np.int64)


def _evaluate_ready(pending, runs, run_types, opset) -> list[onnx.NodeProto]:
    """Evaluate, for each batch, every pending node whose inputs are known (a Shape/Size node:
    its input's inferred type); returns those evaluated (``runs`` gets their values)."""
    done = []
    for node in pending:
        if node.op_type in _SHAPE_OPS:
            if any(node.input[0] not in types for types in run_types):
                continue
            for values, types in zip(runs, run_types):
                values[node.output[0]] = _shape_value(node, types[node.input[0]].shape)
            done.append(node)
            continue
        if any(i and i not in runs[0] for i in node.input):
            continue
        for values in runs:
            inputs = {i: np.asarray(values[i]) for i in dict.fromkeys(node.input) if i}
            for out, result in zip([o for o in node.output if o],
                                   const_eval.evaluate(node, inputs, opset)):
                values[out] = result
        done.append(node)
    return done


def fold_shapes(imp, indices: set[int], folded_values: dict, folded_nodes: set[int]) -> None:
    """Evaluate the shape nodes ``indices``; their values read by other nodes become constants
    (added to ``folded_values``, the nodes to ``folded_nodes``) or problems of the reader."""
    g = imp.model.graph
    nodes = [g.node[i] for i in sorted(indices)]
    produced = {o for n in nodes for o in n.output if o}
    consts = {name: np.asarray(imp.graph.const(name)) for n in nodes for name in n.input
              if name and name not in produced and imp.is_const(name)}
    # In rounds: a Shape of a value after a Reshape whose target is itself computed (a channel
    # shuffle exported with a dynamic batch) has a type only once that target is known, so each
    # round infers types with the values found so far (for each batch, that batch's values),
    # evaluates what has become computable, and stops when nothing more is.
    runs = [dict(consts) for _ in _BATCHES]
    pending, done_indices = list(nodes), set()
    index_of = {id(node): i for i, node in zip(sorted(indices), nodes)}
    def infer():
        types = []
        for values, batch in zip(runs, _BATCHES):
            known = {o: values[o] for i in done_indices for o in g.node[i].output if o}
            types.append(loader.infer_types(imp.model, imp._input_shapes, imp.label,
                                            {**folded_values, **known},
                                            folded_nodes | done_indices, batch=batch))
        return types

    rounds = 0
    while pending:
        run_types = infer()
        rounds += 1
        try:
            done = _evaluate_ready(pending, runs, run_types, imp.opset)
        except Exception as exc:  # the reference evaluator raises many unrelated types
            imp.problem(f"evaluating the shape computation failed: {exc}")
            return
        if not done:
            blocked = next(n for n in pending if n.op_type in _SHAPE_OPS)
            imp.problem(f"evaluating the shape computation failed: the shape of "
                        f"{blocked.input[0]!r} cannot be inferred statically")
            return
        done_indices |= {index_of[id(n)] for n in done}
        pending = [n for n in pending if index_of[id(n)] not in done_indices]
    if rounds > 1:  # the readers' types with every value known (the last round's lack some)
        run_types = infer()
    readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for index, node in enumerate(g.node):
        if index not in indices:
            for slot, name in enumerate(node.input):
                if name in produced:
                    readers.setdefault(name, []).append((node, slot))
    outputs = {o.name for o in g.output}
    for name in sorted(produced & (set(readers) | outputs)):
        first, second = runs[0][name], runs[1][name]
        if first.shape == second.shape and np.array_equal(first, second):
            folded_values[name] = first
            continue
        target = _batch_reshape_target(first, second, readers.get(name, []), name in outputs,
                                       run_types)
        if target is None:
            node = (readers.get(name) or [(None, 0)])[0][0]
            imp._current = (node.name or node.op_type) if node is not None else name
            imp.problem(f"{name!r} is computed from the batch size ({first.tolist()} for a "
                        f"batch of {_BATCHES[0]}, {second.tolist()} for {_BATCHES[1]}); irc "
                        "keeps the batch axis apart and folds only a Reshape target whose first "
                        "entry is the batch: re-export with static shapes (e.g. x.flatten(1))")
            continue
        folded_values[name] = target
    folded_nodes.update(indices)
    imp._current = None


def _batch_reshape_target(first, second, readers, is_output, run_types) -> np.ndarray | None:
    """The Reshape target with the batch entry as 0, or None when that is not exact."""
    if is_output or not readers or any(n.op_type != "Reshape" or slot != 1 for n, slot in readers):
        return None
    for node, _ in readers:  # 0 copies the data's axis 0, which must be the batch
        dims = [types.get(node.input[0]) for types in run_types]
        if any(t is None or not t.shape for t in dims) or \
                tuple(t.shape[0] for t in dims) != _BATCHES:
            return None
    if any(a.name == "allowzero" and a.i for n, _ in readers for a in n.attribute):
        return None
    if first.ndim != 1 or first.shape != second.shape or not len(first):
        return None
    if (first[0], second[0]) != _BATCHES or not np.array_equal(first[1:], second[1:]):
        return None
    target = first.astype(np.int64).copy()
    target[0] = 0
    return target
