"""Legalize the element-wise maximum and minimum of two tensors into residual and batchnorm
layers (viya-semantics §15a, the Caffe Eltwise MAX row).

    max(a, b) = a + relu(b − a)        min(a, b) = a − relu(a − b)
b − a is a residual of b and a batchnorm γ = −1 of a, its relu the residual's own act; the
outer sum is a second residual (for min, after a batchnorm γ = −1).

Exact for finite inputs whose difference is finite: operands of opposite signs whose
magnitudes sum past float32's largest value (±3e38) make b − a overflow to ±inf, and the
result is inf or NaN (inf − inf) where the source's max is finite. Neither refused nor guarded
(a guard of halved operands would cost two more layers on every max and lose the lowest bit of
subnormal values); stated here and in the README, and irc verify says so when a source output
is finite and the Viya one is not.
"""
from __future__ import annotations

from irc.passes.defs._match import add_batchnorm, add_sum, replace_with
from irc.passes.registry import Pass, register_pass


@register_pass
class LegalizeMaxMin(Pass):
    """Rewrite Max/Min of two tensors of one shape into Sum and BatchNormalization.

    Given:  %y = Max(%a, %b)
    Result: %n = BatchNormalization(%a) {γ=-1} ; %d = Sum(%b, %n) {act relu} ; %y = Sum(%a, %d)
    Given:  %y = Min(%a, %b)
    Result: %n = BatchNormalization(%b) {γ=-1} ; %d = Sum(%a, %n) {act relu} ;
            %m = BatchNormalization(%d) {γ=-1} ; %y = Sum(%a, %m)
    Deviation: the rounding of b − a and of the sum back, at most 1 ulp of max(|a|, |b|), for
    finite a, b with a finite difference (|a − b| ≤ 3.4e38; beyond, inf or NaN).
    """

    name = "legalize_max_min"

    def run(self, graph, ctx):
        changed = False
        for node in graph.nodes():
            if node.op_type not in ("Max", "Min"):
                continue
            a, b = node.inputs
            rank = graph.value(a).type.rank
            if rank not in (2, 4) or graph.value(a).type != graph.value(b).type:
                ctx.refuse(node, f"its inputs have shapes {graph.value(a).type} and "
                                 f"{graph.value(b).type}; the residual and batchnorm layers "
                                 "computing it need one (N, C) or (N, C, H, W) shape")
                continue
            prov = node.provenance.merged(node.provenance, self.name)
            first, second = (a, b) if node.op_type == "Max" else (b, a)
            # Max: relu(b - a); Min: relu(a - b)
            negated = add_batchnorm(graph, first, -1.0, 0.0, f"{node.name}_neg", prov)
            excess = add_sum(graph, [second, negated], f"{node.name}_excess", prov, "relu")
            if node.op_type == "Min":
                excess = add_batchnorm(graph, excess, -1.0, 0.0, f"{node.name}_negexcess", prov)
            replace_with(graph, node, add_sum(graph, [a, excess], f"{node.name}_sum", prov))
            changed = True
        return changed
