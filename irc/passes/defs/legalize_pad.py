"""Legalize padding Viya cannot express: explicit Pad ops fold_pad left, and conv/pool padding
that is neither symmetric nor Viya's automatic split (viya-semantics §15a rows 7-8).

The tool is a selection convolution: a conv whose kernel holds a single 1 (per output
channel) at tap u, with explicit symmetric padding P and stride s, so that output o reads
input offset + o·s exactly (a padded zero where that falls outside the data). Pads, crops and
strided slices on H/W are all such selections; a 0/1 channel map makes it select or pad
channels at the same time. Every output is one input value times 1 plus zeros: exact.
Exact for finite inputs: 0·inf is NaN, so an inf in one cell turns every output that reads
its pixel (or K×K neighbourhood) NaN, even where the source dropped that value.
"""
from __future__ import annotations

import numpy as np

from irc.backends.viya import padding as viya_padding
from irc.ir.tensors import TensorType
from irc.passes.defs._match import insert_after, non_negative
from irc.passes.registry import RewritePass, register_pass


def selection_window(size: int, offset: int, step: int, count: int) -> tuple[int, int, int]:
    """(P, K, u) such that a conv with symmetric padding P, kernel K, stride ``step`` and its
    one tap at u gives ``count`` outputs, output o reading input ``offset + o·step``."""
    last = offset + (count - 1) * step
    pad = max(0, -offset, last - (size - 1))  # every read cell lies in the padded input
    tap = offset + pad
    # floor((size + 2P - K) / step) + 1 == count, and the tap inside the kernel
    kernel = max(tap + 1, size + 2 * pad - count * step + 1)
    return pad, kernel, tap


def add_selection_conv(graph, x: str, h: tuple[int, int, int], w: tuple[int, int, int],
                       name: str, provenance, rows: list[int] | None = None) -> str:
    """A Conv whose output (n, k, i, j) is input (n, rows[k], h0 + i·hs, w0 + j·ws), zero where
    rows[k] is -1 or the cell lies outside the data. ``h``/``w`` are (offset, step, count);
    ``rows`` None keeps every channel (one group per channel). Returns the output value."""
    ttype = graph.value(x).type
    batch, channels, height, width = ttype.shape
    (ph, kh, uh), (pw, kw, uw) = selection_window(height, *h), selection_window(width, *w)
    dtype = np.dtype(ttype.dtype)
    if rows is None:
        weight = np.zeros((channels, 1, kh, kw), dtype)
        weight[:, 0, uh, uw] = 1
        out_channels, group = channels, channels
    else:
        weight = np.zeros((len(rows), channels, kh, kw), dtype)
        for k, source in enumerate(rows):
            if source >= 0:
                weight[k, source, uh, uw] = 1
        out_channels, group = len(rows), 1
    attrs = {"kernel_shape": [kh, kw], "strides": [h[1], w[1]], "pads": [ph, pw, ph, pw]}
    if group > 1:
        attrs["group"] = group
    out_type = TensorType((batch, out_channels, h[2], w[2]), ttype.dtype)
    node = graph.add_node("Conv", [x, graph.add_const(f"{name}_select", weight).name],
                          [(graph.unique_value_name(name), out_type)], attrs, name=name,
                          provenance=provenance)
    return node.outputs[0]


def _pads_of(graph, node) -> tuple[list[int] | None, str]:
    """The Pad's 8 amounts (begins then ends over N, C, H, W), or None and why not."""
    if node.attrs.get("mode", "constant") != "constant":
        return None, f"mode={node.attrs['mode']!r}; only constant zero padding is exact"
    if len(node.inputs) > 2 and node.inputs[2]:
        value = np.asarray(graph.const(node.inputs[2])).reshape(-1)
        if value.size and float(value[0]) != 0.0:
            return None, (f"pad value {float(value[0]):g}; a convolution pads with zeros only")
    rank = graph.value(node.inputs[0]).type.rank
    if rank != 4:
        return None, f"it pads a rank-{rank} tensor; only (N, C, H, W) maps are legalized"
    amounts = [int(p) for p in np.asarray(graph.const(node.inputs[1])).reshape(-1)]
    if len(node.inputs) > 3 and node.inputs[3]:
        axes = [int(a) % 4 for a in np.asarray(graph.const(node.inputs[3])).reshape(-1)]
        full = [0] * 8
        for i, axis in enumerate(axes):
            full[axis], full[axis + 4] = amounts[i], amounts[i + len(axes)]
        amounts = full
    if amounts[0] or amounts[4]:
        return None, f"pads {amounts} pad the batch axis"
    return amounts, ""


@register_pass
class LegalizePad(RewritePass):
    """Rewrite a zero Pad that fold_pad could not fold into a selection convolution.

    Given:  %p = Pad(%x float32[N,C,H,W], $pads = [0,0,1,0, 0,0,0,-2])
    Result: %p = Conv(%x, $onehot float32[C,1,3,1]) {group=C, pads=[1,0,1,0]}
    Per spatial axis with pads (t, b), either may be negative (a crop): P = max(t, b, 0),
    K = 2P + 1 - t - b, tap at P - t, stride 1, output I + t + b. Channel pads become a 1×1
    0/1 channel map in the same conv (zero rows for added channels). Exact: every output is
    one input value or a zero. Refuses other modes, non-zero values and batch padding.
    """

    name = "legalize_pad"
    requires = ("fold_pad",)
    anchors = ("Pad",)

    def rewrite(self, graph, node, ctx):
        pads, why = _pads_of(graph, node)
        if pads is None:
            return why
        _, channels, height, width = graph.value(node.inputs[0]).type.shape
        rows = None
        if pads[1] or pads[5]:
            rows = [k - pads[1] if 0 <= k - pads[1] < channels else -1
                    for k in range(channels + pads[1] + pads[5])]
        h = (-pads[2], 1, height + pads[2] + pads[6])
        w = (-pads[3], 1, width + pads[3] + pads[7])
        prov = node.provenance.merged(node.provenance, self.name)
        graph.replace_node(node, add_selection_conv(graph, node.inputs[0], h, w,
                                                    f"{node.name}_conv", prov, rows))
        return True


def _viya_padding_problem(graph, node, pads, out_hw=None) -> str | None:
    """Why Viya cannot pad ``node`` with ``pads`` giving ``out_hw`` (default: its output's
    H, W) outputs; None when it can (the same judgement as lowering's)."""
    x_shape = graph.value(node.inputs[0]).type.shape
    out_hw = out_hw or graph.value(node.outputs[0]).type.shape[2:]
    kind = "conv" if node.op_type == "Conv" else "pool"
    choice = viya_padding.choose(kind, x_shape[2:], node.attrs["kernel_shape"],
                                 node.attrs["strides"], pads, out_hw)
    return choice if isinstance(choice, str) else None


@register_pass
class LegalizeLayerPadding(RewritePass):
    """Move conv/max-pool padding Viya cannot express into a selection convolution before it.

    Given:  %y = Conv(%x, $w) {pads=[1,1,0,0]}   (neither symmetric nor the automatic split)
    Result: %x_pad = Conv(%x, $onehot) {group=C, pads=[1,1,1,1], kernel 2x2, tap (0,0)};
            %y = Conv(%x_pad, $w) {pads=[0,0,0,0]}
    Exact for a conv (it pads zeros either way). A max pool ignores padded cells: the zeros
    may move out only when its input is never negative; otherwise, where the begin padding
    differs from max(begin, end) by a multiple of the stride, the pool takes that symmetric
    padding and a selection conv after it crops the extra windows. Average pools that do not
    count padding and ceil_mode pools are refused.
    """

    name = "legalize_layer_padding"
    requires = ("fold_pad", "legalize_avgpool_include_pad")
    anchors = ("Conv", "MaxPool", "AveragePool")

    def rewrite(self, graph, node, ctx):
        pads = list(node.attrs.get("pads") or [0, 0, 0, 0])
        if len(pads) != 4 or _viya_padding_problem(graph, node, pads) is None:
            return None
        return self._move(graph, node, pads) or True

    def _move(self, graph, node, pads) -> str:
        """Rewrite ``node``'s padding; the reason it cannot be done exactly, or ""."""
        if node.attrs.get("ceil_mode", 0):
            return "ceil_mode=1: the windows running past the padding cannot move"
        if any(d != 1 for d in node.attrs.get("dilations") or [1, 1]):
            return "dilated windows"
        if node.op_type == "AveragePool":
            return ("an average pool that does not count padded cells: moved zeros would "
                    "enter its divisor")
        kernel = node.attrs["kernel_shape"]
        prov = node.provenance.merged(node.provenance, self.name)
        if node.op_type == "MaxPool" and not non_negative(graph, node.inputs[0]):
            return self._crop_after_pool(graph, node, pads, prov)
        if node.op_type == "MaxPool" and any(p >= kernel[i % 2] for i, p in enumerate(pads)):
            return f"padding {pads} is not smaller than the kernel {kernel}"
        _, _, height, width = graph.value(node.inputs[0]).type.shape
        h = (-pads[0], 1, height + pads[0] + pads[2])
        w = (-pads[1], 1, width + pads[1] + pads[3])
        padded = add_selection_conv(graph, node.inputs[0], h, w, f"{node.name}_pad", prov)
        graph.set_input(node, 0, padded)
        graph.set_attr(node, "pads", [0, 0, 0, 0])
        node.provenance = prov
        problem = _viya_padding_problem(graph, node, [0, 0, 0, 0])
        assert problem is None, problem  # unpadded windows of the original count always fit
        return ""

    def _crop_after_pool(self, graph, node, pads, prov) -> str:
        kernel, strides = node.attrs["kernel_shape"], node.attrs["strides"]
        sym = [max(pads[0], pads[2]), max(pads[1], pads[3])]
        if any((sym[a] - pads[a]) % strides[a] or sym[a] >= kernel[a] for a in range(2)):
            return (f"a max pool of values that may be negative with padding {pads}: padded "
                    "cells are ignored, so zeros cannot stand in for them, and symmetric "
                    f"padding {sym} does not keep the windows on the source's stride grid")
        batch, channels, height, width = graph.value(node.inputs[0]).type.shape
        out_shape = graph.value(node.outputs[0]).type.shape
        wide = [(size + 2 * p - k) // s + 1
                for size, p, k, s in zip((height, width), sym, kernel, strides)]
        if _viya_padding_problem(graph, node, [sym[0], sym[1], sym[0], sym[1]], wide):
            return f"symmetric padding {sym} is not expressible either"
        graph.set_attr(node, "pads", [sym[0], sym[1], sym[0], sym[1]])
        node.provenance = prov
        graph.set_type(node.outputs[0], TensorType((batch, channels, *wide),
                                                   graph.value(node.outputs[0]).type.dtype))
        h = ((sym[0] - pads[0]) // strides[0], 1, out_shape[2])
        w = ((sym[1] - pads[1]) // strides[1], 1, out_shape[3])
        insert_after(graph, node.outputs[0], lambda v: add_selection_conv(
            graph, v, h, w, f"{node.name}_crop", prov))
        return ""

