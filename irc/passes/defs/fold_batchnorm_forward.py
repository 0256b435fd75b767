"""fold_batchnorm_into_next_dense: a batch norm on a vector folds into the dense layers after it.

A head like GlobalAveragePooling -> BatchNormalization -> Dense normalises a flattened vector,
which no Viya layer can hold (Viya flattens only into fc/output layers) and fold_batchnorm
cannot push backwards (a pool computes it). It is affine, so it moves forward into the Gemms
that read it instead: W·(a⊙x + b) + c = (W·diag(a))·x + (W·b + c).
"""
from __future__ import annotations

import numpy as np

from irc.ir.forms import reads_as_canonical_gemm
from irc.passes.defs._match import has_identity_act
from irc.passes.registry import RewritePass, register_pass


@register_pass
class FoldBatchNormIntoNextDense(RewritePass):
    """Fold a BatchNormalization on an (N, F) vector into every canonical Gemm reading it.

    Given:  %z = BatchNormalization(%v float32[N,F], $g, $beta, $m, $var) {epsilon=e};
            %y = Gemm(%z, $w float32[n,F], $c) {transB=1}
    Result: %y = Gemm(%v, $w', $c')   with a = g/sqrt(var+e), b = beta - m·a,
            $w' = $w·a (column f scaled by a[f]) and $c' = $c + $w·b
    Refuses when the batchnorm carries an activation, is a graph output, or is read by anything
    but canonical Gemms (transB=1, alpha=beta=1) reading it as A.
    """

    name = "fold_batchnorm_into_next_dense"
    requires = ("fold_batchnorm",)
    anchors = ("BatchNormalization",)

    def rewrite(self, graph, bn, ctx):
        if graph.value(bn.inputs[0]).type.rank != 2:
            return None
        z = bn.outputs[0]
        readers = graph.consumers(z)
        others = [r.name for r in readers if not reads_as_canonical_gemm(graph, r, z)]
        if not has_identity_act(bn) or z in graph.outputs or not readers or others:
            return ("a batchnorm on a vector folds forward only into canonical Gemms that are "
                    "all its readers, without an activation between"
                    + (f" (also read by {', '.join(others)})" if others else ""))
        gamma, beta, mean, var = (np.asarray(graph.const(n), np.float64) for n in bn.inputs[1:5])
        a = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        b = beta - mean * a
        for gemm in readers:
            w = graph.value(gemm.inputs[1]).const.lazy()
            new_w = w.scale(a, axis=1)  # column f scaled by a[f], evaluated when written
            has_bias = len(gemm.inputs) > 2 and gemm.inputs[2]
            c = np.asarray(graph.const(gemm.inputs[2]), np.float64).reshape(-1) \
                if has_bias else np.zeros(w.shape[0])
            new_c = c + w.matvec(b)  # W·b in float64, one block of W at a time
            graph.set_input(gemm, 1, graph.add_const(f"{gemm.inputs[1]}_bn", new_w).name)
            graph.set_input(gemm, 2, graph.add_const(f"{gemm.name}_bias_bn",
                                                     new_c.astype(w.dtype)).name)
            graph.set_input(gemm, 0, bn.inputs[0])
            gemm.provenance = gemm.provenance.merged(bn.provenance, self.name)
        graph.remove_node(bn)
        return True
