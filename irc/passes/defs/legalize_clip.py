"""Legalize Clip (ReLU6 and other clipping) into relu, batchnorm and residual layers
(viya-semantics §15a rows 1, 2 and 2b).

Viya has no clip activation; with a batchnorm of mean 0 and variance 1 computing γ·x + β:
    max(x, lo)          = relu(x − lo) + lo
    min(x, hi)          = hi − relu(hi − x)
    clip(x, lo, hi)     = c − relu(c − relu(x − lo)) + lo,  c = hi − lo    (lo ≥ 0 or hi ≤ 0)
    clip(x, lo, hi)     = min(relu(x), hi) − min(relu(−x), −lo)          (lo < 0 < hi)
A relu of x (lo = 0) is emitted as a separate Relu op, so fuse_activation puts it on the conv
before: ReLU6 after a conv costs two batchnorm layers. A relu(x − lo) is a batchnorm with
act relu, which fold_batchnorm can push into that conv.

lo < 0 < hi: the positive and the negative part are clipped apart and summed; at most one of
them is non-zero, so the sum is exact. Each part min(r, b) (r ≥ 0, b > 0) is computed one of
two ways, each exact where the other is not (Sterbenz: a − b is exact for b/2 ≤ a ≤ 2b):
    near form  b − relu(b − r)    for b ≤ NEAR_BOUND: b exactly for every r ≥ b, r exactly for
                                  r ≥ b/2, else within 0.5 ulp(b) (b − r rounds once, the
                                  outer subtraction is exact);
    far form   r − relu(r − b)    for b > NEAR_BOUND: r exactly for every r ≤ b, b exactly for
                                  r ≤ 2b, else within 0.5 ulp(r − b) of b.
The near form's error is absolute in units of the bound: for a large bound and small values it
is larger than the values' own precision (Clip(−1e-3, 1e4) on values of ~3 would be off by
4.9e-4); the far form is exact there. Both need finite values (∞ − ∞ is NaN).
"""
from __future__ import annotations

import numpy as np

from irc.passes.defs._match import add_batchnorm, add_sum, add_unary, non_negative, \
    remove_noop, replace_with
from irc.passes.registry import Pass, register_pass

# A bound up to this size is clipped by the near form (error <= 0.5 ulp(64) = 3.8e-6 inside the
# range, the bound exact beyond it); a larger one by the far form (exact inside the range).
NEAR_BOUND = 64.0


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
    The Relu is left out when y is never negative (and lo ≤ 0); a lower bound lo > 0 becomes
    relu(x − lo) and the last β is hi (c = hi − lo computed in float64, rounded once).
    lo < 0 < hi: the positive and negative parts apart (module docstring), summed by a Sum.
    Deviation (finite inputs): lo < 0 < hi: ≤ 0.5 ulp of the bound on the output's side
    (|lo| or hi) if it is ≤ NEAR_BOUND, and lo or hi exactly for inputs beyond them; past
    NEAR_BOUND, exact inside [lo, hi] and within 0.5 ulp(|x − bound|) beyond twice it.
    ReLU6 (lo = 0): ≤ 0.5 ulp(hi), 0 and hi exact. Other two-sided clips: ≤ 1.5 ulp of
    max(|lo|, |hi|) (x − lo, c − r and the last sum round). One-sided: ≤ 1 ulp of
    max(|x|, |bound|); min(x, hi) past NEAR_BOUND (also a clip whose lo < 0 is dropped on
    non-negative x) takes the far form: exact for x ≤ 2·hi. Measured in
    tests/passes/test_legalize_clip.py.
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
        if lo is not None and hi is not None and lo < 0 < hi:
            return _split(graph, name, x, lo, hi, prov)
        if lo is None and hi is not None and hi > NEAR_BOUND:  # far form: x − relu(x − hi)
            excess = add_batchnorm(graph, x, 1.0, -hi, f"{name}_over_hi", prov, "relu")
            return add_sum(graph, [x, add_batchnorm(graph, excess, -1.0, 0.0,
                                                    f"{name}_minus_over_hi", prov)],
                           f"{name}_clip", prov)
        if lo is not None:  # r = relu(x - lo) >= 0
            x = (add_unary(graph, "Relu", x, f"{name}_relu", prov) if lo == 0 else
                 add_batchnorm(graph, x, 1.0, -lo, f"{name}_above_lo", prov, "relu"))
        if hi is None:  # max(x, lo) = r + lo
            return x if lo == 0 else add_batchnorm(graph, x, 1.0, lo, f"{name}_shift", prov)
        c = hi - (lo or 0.0)
        gap = add_batchnorm(graph, x, -1.0, c, f"{name}_below_hi", prov, "relu")  # relu(c - r)
        return add_batchnorm(graph, gap, -1.0, hi, f"{name}_clip", prov)  # c - gap + lo


def _split(graph, name, x, lo, hi, prov) -> str:
    """clip(x, lo, hi) for lo < 0 < hi: min(relu(x), hi) − min(relu(−x), −lo), as a Sum of
    terms of which at most two (one part's) are non-zero at any x."""
    terms = []
    far_hi, far_lo = hi > NEAR_BOUND, -lo > NEAR_BOUND
    if far_hi and far_lo:  # relu(x) − relu(−x) = x: the Sum reads x itself
        terms.append(x)
    if far_hi:  # relu(x) − relu(x − hi), x itself standing for relu(x) when far_lo
        if not far_lo:
            terms.append(add_unary(graph, "Relu", x, f"{name}_pos", prov))
        excess = add_batchnorm(graph, x, 1.0, -hi, f"{name}_over_hi", prov, "relu")
        terms.append(add_batchnorm(graph, excess, -1.0, 0.0, f"{name}_minus_over_hi", prov))
    else:  # hi − relu(hi − relu(x))
        pos = add_unary(graph, "Relu", x, f"{name}_pos", prov)
        gap = add_batchnorm(graph, pos, -1.0, hi, f"{name}_below_hi", prov, "relu")
        terms.append(add_batchnorm(graph, gap, -1.0, hi, f"{name}_pos_clip", prov))
    if far_lo:  # −relu(−x) + relu(lo − x), x itself standing for the first when far_hi
        if not far_hi:
            neg = add_batchnorm(graph, x, -1.0, 0.0, f"{name}_neg", prov, "relu")
            terms.append(add_batchnorm(graph, neg, -1.0, 0.0, f"{name}_minus_neg", prov))
        terms.append(add_batchnorm(graph, x, -1.0, lo, f"{name}_under_lo", prov, "relu"))
    else:  # lo + relu(−lo − relu(−x))
        neg = add_batchnorm(graph, x, -1.0, 0.0, f"{name}_neg", prov, "relu")
        gap = add_batchnorm(graph, neg, -1.0, -lo, f"{name}_above_lo", prov, "relu")
        terms.append(add_batchnorm(graph, gap, 1.0, lo, f"{name}_neg_clip", prov))
    return add_sum(graph, terms, f"{name}_clip", prov)
