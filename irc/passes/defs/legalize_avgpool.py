"""Legalize average pooling that counts padded cells (viya-semantics §15a row 9).

Viya's divisor for padded cells in a mean pool is not public (§5.3), so lowering refuses
count_include_pad=1 where a window touches padding. With the divisor fixed at kh·kw, the
pool is a per-channel convolution with every weight 1/(kh·kw).
"""
from __future__ import annotations

import numpy as np

from irc.passes.registry import RewritePass, register_pass


def touches_padding(in_hw, kernel, strides, pads, out_hw) -> bool:
    """Some window covers a padded cell (or runs past the data, with ceil_mode)."""
    if any(pads):
        return True
    return any((out_hw[a] - 1) * strides[a] + kernel[a] > in_hw[a] for a in range(2))


@register_pass
class LegalizeAvgPoolIncludePad(RewritePass):
    """Rewrite an average pool counting padded cells into a per-channel averaging conv.

    Given:  %y = AveragePool(%x float32[N,C,H,W]) {kernel_shape=[3,3], pads=[1,1,1,1],
                                                   count_include_pad=1}
    Result: %y = Conv(%x, $w float32[C,1,3,3] = 1/9) {group=C, pads=[1,1,1,1]}
    Rounding only: 1/(kh·kw) is rounded to the weight type once and the sum of products is
    rounded in a different order than sum-then-divide (a few ulp of the mean). Pools whose
    windows never touch padding are left alone (Viya's pool layer is exact there); ceil_mode
    windows running past the padding and dilated pools are refused.
    """

    name = "legalize_avgpool_include_pad"
    anchors = ("AveragePool",)

    def rewrite(self, graph, node, ctx):
        if not node.attrs.get("count_include_pad", 0):
            return None
        x_type = graph.value(node.inputs[0]).type
        out_type = graph.value(node.outputs[0]).type
        kernel, strides = node.attrs["kernel_shape"], node.attrs["strides"]
        pads = list(node.attrs.get("pads") or [0, 0, 0, 0])
        if x_type.rank != 4 or not touches_padding(x_type.shape[2:], kernel, strides, pads,
                                                   out_type.shape[2:]):
            return None
        if any(d != 1 for d in node.attrs.get("dilations") or [1, 1]):
            return "dilated average pooling"
        if node.attrs.get("ceil_mode", 0) and any(
                (out_type.shape[2 + a] - 1) * strides[a] + kernel[a]
                > x_type.shape[2 + a] + pads[a] + pads[a + 2] for a in range(2)):
            return ("ceil_mode=1 windows run past the padding, where the divisor counts only "
                    "part of the window")
        channels = x_type.shape[1]
        weight = np.full((channels, 1, *kernel), 1.0 / (kernel[0] * kernel[1]),
                         np.dtype(x_type.dtype))
        attrs = {"kernel_shape": list(kernel), "strides": list(strides), "pads": pads}
        if channels > 1:
            attrs["group"] = channels
        conv = graph.add_node(
            "Conv", [node.inputs[0], graph.add_const(f"{node.name}_mean", weight).name],
            [(graph.unique_value_name(node.outputs[0] + "_conv"), out_type)], attrs,
            name=f"{node.name}_conv", provenance=node.provenance.merged(node.provenance, self.name))
        graph.replace_node(node, conv.outputs[0])
        return True
