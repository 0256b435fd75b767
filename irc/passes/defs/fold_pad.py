"""fold_pad: an explicit zero Pad joins the padding of the conv/pool ops that read it.

Viya has no pad layer; convolutions pad with zeros, max pools ignore padded cells and the
average-pool divisor over padded cells is an open point (viya-semantics §5.3). The padding is
attached to the actual graph readers, never to "the next layer" (trap 18); whether the result
is legal Viya padding (symmetric or the automatic split) is judged in lowering (trap 17).
"""
from __future__ import annotations

import numpy as np

from irc.passes.defs._match import non_negative
from irc.passes.registry import RewritePass, register_pass



def _spatial_pads(graph, node) -> tuple[list[int] | None, str]:
    """The Pad's [top, left, bottom, right], or None and why it cannot fold."""
    if node.attrs.get("mode", "constant") != "constant":
        return None, f"mode={node.attrs['mode']!r}; only constant zero padding folds"
    if len(node.inputs) > 2 and node.inputs[2]:
        value = np.asarray(graph.const(node.inputs[2])).reshape(-1)
        if value.size and float(value[0]) != 0.0:
            return None, f"pad value {float(value[0]):g}; only zero padding folds"
    if len(node.inputs) > 3 and node.inputs[3]:
        return None, "it has an axes input; only pads over all four axes fold"
    rank = graph.value(node.inputs[0]).type.rank
    pads = [int(p) for p in np.asarray(graph.const(node.inputs[1])).reshape(-1)]
    if rank != 4 or len(pads) != 8:
        return None, f"it pads a rank-{rank} tensor; only (N, C, H, W) spatial padding folds"
    if any(p < 0 for p in pads):
        return None, f"pads {pads} crop (negative amounts)"
    if pads[0] or pads[1] or pads[4] or pads[5]:
        return None, f"pads {pads} pad the batch or channel axis"
    return [pads[2], pads[3], pads[6], pads[7]], ""


def _reader_problem(graph, pad, reader, extra) -> str:
    """Why ``reader`` cannot take the Pad's ``extra`` padding ("" when it can)."""
    out = pad.outputs[0]
    if reader.inputs[0] != out or out in reader.inputs[1:]:
        return f"{reader.name} reads the padded value other than as its data input"
    if reader.op_type == "Conv":
        return ""
    if reader.op_type not in ("AveragePool", "MaxPool"):
        return f"{reader.name} is a {reader.op_type}, which has no padding of its own"
    if reader.attrs.get("ceil_mode", 0):
        return f"{reader.name} uses ceil_mode=1; its overhanging windows would change"
    own = list(reader.attrs.get("pads") or [0, 0, 0, 0])
    if reader.op_type == "AveragePool":
        # The padded zeros are data the pool averages: folded, they must count in the divisor.
        # An unpadded pool then counts them with count_include_pad=1 (set by the fold); a pool
        # padded already counts its own padding only with count_include_pad=1.
        if any(own) and not reader.attrs.get("count_include_pad", 0):
            return (f"{reader.name} has padding of its own {own} left out of the divisor "
                    "(count_include_pad=0), while folded zeros would count")
    elif not non_negative(graph, pad.inputs[0]):
        return (f"{reader.name} is a max pool and the padded value may be negative: a zero pad "
                "is not an ignored (-inf) pad")
    kernel = list(reader.attrs.get("kernel_shape"))
    total = [a + b for a, b in zip(own, extra)]
    if any(p >= kernel[i % 2] for i, p in enumerate(total)):
        return (f"{reader.name}: padding {total} is not smaller than the kernel {kernel}, so a "
                "window could hold padding only")
    return ""


@register_pass
class FoldPad(RewritePass):
    """Add a zero Pad's spatial amounts to the pads of every conv/pool reading it.

    Given:  %p = Pad(%x, $pads int64[8] = [0,0,1,1,0,0,2,2]); %y = Conv(%p, $w) {pads=[0,0,0,0]}
    Result: %y = Conv(%x, $w) {pads=[1,1,2,2]}
    Given:  %p = Pad(%x, [0,0,1,1,0,0,1,1]); %y = AveragePool(%p) {kernel_shape=[3,3]}
    Result: %y = AveragePool(%x) {kernel_shape=[3,3], pads=[1,1,1,1], count_include_pad=1}
    An average pool averages the padded zeros as data, so it takes them as padding it counts
    (count_include_pad=1; legalize_avgpool_include_pad then makes it an exact averaging
    conv); a pool with padding of its own takes them only if it counts that padding too. Max
    pools take them only when the padded value is never negative (after relu/sigmoid/softplus)
    and, for any pool, when each pad stays smaller than the kernel. If any reader cannot take
    it, the Pad stays.
    """

    name = "fold_pad"
    anchors = ("Pad",)

    def rewrite(self, graph, node, ctx):
        extra, why = _spatial_pads(graph, node)
        if extra is None:
            return why
        out = node.outputs[0]
        readers = graph.consumers(out)
        if out in graph.outputs or not readers:
            return "its output is a graph output or unread"
        problems = [p for p in (_reader_problem(graph, node, r, extra) for r in readers) if p]
        if problems:
            return "; ".join(problems)
        for reader in readers:
            own = list(reader.attrs.get("pads") or [0, 0, 0, 0])
            graph.set_attr(reader, "pads", [a + b for a, b in zip(own, extra)])
            if reader.op_type == "AveragePool":
                graph.set_attr(reader, "count_include_pad", 1)
            graph.set_input(reader, 0, node.inputs[0])
            reader.provenance = reader.provenance.merged(node.provenance, self.name)
        graph.remove_node(node)
        return True
