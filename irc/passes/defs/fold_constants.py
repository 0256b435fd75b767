"""fold_constants: ops whose inputs are all constants become constants.

Shape arithmetic exported by tracers (Constant -> Unsqueeze -> Concat -> Reshape shape) and
weight pre-processing (a Transpose of a weight) must be plain constants before the structural
passes look for constant operands.
"""
from __future__ import annotations

import numpy as np

from irc.ir.graph import Graph
from irc.ir.onnx_export import to_onnx
from irc.passes.registry import RewritePass, register_pass


def _evaluate(graph: Graph, node) -> list[np.ndarray]:
    """Run ``node`` alone on its constant inputs with ONNX's reference evaluator."""
    sub = Graph(f"fold_{node.name}", graph.weights)
    for inp in dict.fromkeys(i for i in node.inputs if i):
        sub.add_const(inp, graph.value(inp).const)  # the handle: no weight is copied
    sub.add_node(node.op_type, node.inputs,
                 [(o, graph.value(o).type) for o in node.outputs], node.attrs, name=node.name)
    sub.outputs = list(node.outputs)
    from onnx.reference import ReferenceEvaluator  # imported only when something folds

    results = ReferenceEvaluator(to_onnx(sub)).run(None, {})
    return [np.asarray(r) for r in results]


@register_pass
class FoldConstants(RewritePass):
    """Evaluate every op whose inputs are all constants and replace it by its result.

    Given:  $s = Concat($a int64[1], $b int64[1]) {axis=0}; %y = Reshape(%x, $s)
    Result: %y = Reshape(%x, $s int64[2])            ($s now a constant holding the result)
    The output keeps its name. A Transpose of one constant becomes a lazy transposed weight of
    any size (nothing is computed until it is written). Other results larger than ``ctx.const_fold_max_elements`` and graph
    outputs are left alone (a Viya model cannot output a constant). One topological sweep
    reaches the fixed point: a folded op's readers come later in the order.
    """

    name = "fold_constants"
    anchors = None   # any op

    def rewrite(self, graph, node, ctx):
        inputs = [i for i in node.inputs if i]
        if not inputs or not all(graph.is_const(i) for i in inputs):
            return None
        if any(o in graph.outputs for o in node.outputs):
            return "its result is a graph output; a constant cannot be a model output"
        if node.op_type == "Transpose" and len(inputs) == 1:
            # A transposed weight (an exporter's weight pre-processing) is described, not
            # computed: any size, evaluated block by block when written.
            data = graph.value(inputs[0]).const.lazy()
            _replace_by_const(graph, node, [data.transpose(node.attrs.get("perm"))])
            return True
        types = [graph.value(o).type for o in node.outputs]
        size = max(int(np.prod(t.shape, dtype=np.int64)) for t in types)
        if size > ctx.const_fold_max_elements:
            return (f"the result has {size} elements, more than "
                    f"const_fold_max_elements={ctx.const_fold_max_elements}")
        try:
            results = _evaluate(graph, node)
        except Exception as exc:  # the reference evaluator raises many unrelated types
            return f"evaluating it on its constants failed: {type(exc).__name__}: {exc}"
        bad = [(o, r.shape, t.shape) for o, r, t in zip(node.outputs, results, types)
               if tuple(r.shape) != t.shape]
        if bad:
            return ("the evaluated shape differs from the inferred type: "
                    + ", ".join(f"{o} is {r} not {t}" for o, r, t in bad))
        _replace_by_const(graph, node, [np.ascontiguousarray(r.astype(t.dtype, copy=False))
                                        for r, t in zip(results, types)])
        return True


def _replace_by_const(graph: Graph, node, results) -> None:
    """``node`` gone, each output a constant (an array or weight expression) of its name."""
    graph.replace_node(node, [graph.add_const(f"{out}_folded", data).name
                              for out, data in zip(node.outputs, results)])
