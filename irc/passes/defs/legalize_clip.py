"""Legalize Clip (ReLU6 and other clipping) into relu and batchnorm layers
(viya-semantics §15a rows 1-2).

Viya has no clip activation; with a batchnorm of mean 0 and variance 1 computing γ·x + β:
    max(x, lo)          = relu(x − lo) + lo
    min(x, hi)          = hi − relu(hi − x)
    clip(x, lo, hi)     = c − relu(c − relu(x − lo)) + lo,  c = hi − lo
A relu of x (lo = 0) is emitted as a separate Relu op, so fuse_activation puts it on the conv
before: ReLU6 after a conv costs two batchnorm layers. A relu(x − lo) is a batchnorm with
act relu, which fold_batchnorm can push into that conv.
"""
from __future__ import annotations

import numpy as np

from irc.passes.defs._match import add_batchnorm, add_unary, non_negative, remove_noop, \
    replace_with
from irc.passes.registry import Pass, register_pass


def _bound(graph, value: str) -> float | None:
    if not value:
        return None
    data = np.asarray(graph.const(value))
    return float(data.reshape(-1)[0]) if data.size == 1 else None


@register_pass
class LegalizeClip(Pass):
    """Rewrite Clip(x, lo, hi) into Relu and batchnorm layers (γ = ±1, act relu).

    Given:  %y = Conv(%x, $w) ; %z = Clip(%y, 0, 6)
    Result: %r = Relu(%y) ; %n = BatchNormalization(%r) {γ=-1, β=6, act relu} ;
            %z = BatchNormalization(%n) {γ=-1, β=6}        i.e. 6 − relu(6 − relu(y))
    The Relu is left out when y is never negative (and lo ≤ 0); a lower bound lo ≠ 0 becomes
    relu(x − lo) and the last β is hi (c = hi − lo computed in float64, rounded once).
    Deviation: ≤ 1 ulp of max(|lo|, |hi|) for results inside [lo, hi] (x − lo and c − r
    round); for a one-sided clip, ≤ 1 ulp of max(|x|, |bound|).
    """

    name = "legalize_clip"

    def run(self, graph, ctx):
        changed = False
        for node in graph.nodes():
            if node.op_type != "Clip":
                continue
            x = node.inputs[0]
            lo, hi = (_bound(graph, node.inputs[i]) if len(node.inputs) > i else None
                      for i in (1, 2))
            if any(len(node.inputs) > i and node.inputs[i] and b is None
                   for i, b in ((1, lo), (2, hi))):
                ctx.refuse(node, "its bounds are not scalars")
                continue
            if graph.value(x).type.rank not in (2, 4):
                ctx.refuse(node, f"its input has rank {graph.value(x).type.rank}; the batchnorm "
                                 "layers computing it need (N, C) or (N, C, H, W)")
                continue
            if lo is not None and lo <= 0 and non_negative(graph, x):
                lo = None  # max(x, lo) = x already
            if lo is None and hi is None:
                if remove_noop(graph, node):
                    changed = True
                else:
                    ctx.refuse(node, "an unbounded clip whose output name cannot move")
                continue
            prov = node.provenance.merged(node.provenance, self.name)
            replace_with(graph, node, self._compose(graph, node, x, lo, hi, prov))
            changed = True
        return changed

    @staticmethod
    def _compose(graph, node, x, lo, hi, prov) -> str:
        name = node.name
        if lo is not None:  # r = relu(x - lo) >= 0
            x = (add_unary(graph, "Relu", x, f"{name}_relu", prov) if lo == 0 else
                 add_batchnorm(graph, x, 1.0, -lo, f"{name}_above_lo", prov, "relu"))
        if hi is None:  # max(x, lo) = r + lo
            return x if lo == 0 else add_batchnorm(graph, x, 1.0, lo, f"{name}_shift", prov)
        c = hi - (lo or 0.0)
        gap = add_batchnorm(graph, x, -1.0, c, f"{name}_below_hi", prov, "relu")  # relu(c - r)
        return add_batchnorm(graph, gap, -1.0, hi, f"{name}_clip", prov)  # c - gap + lo
