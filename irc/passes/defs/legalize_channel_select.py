"""Legalize channel selection and cropping: Slice, Gather and channel shuffles become 0/1
convolutions (viya-semantics §15a rows 8 and 11).

Viya has no slice, split, gather or transpose layer. Selecting, reordering or dropping
channels is a 1×1 conv with a 0/1 kernel (one 1 per output channel); on a (N, n) vector it is
a Gemm with a 0/1 matrix. A Slice on H/W with a positive step is a selection conv (see
legalize_pad). Every output is one input value times 1 plus zeros: exact.
Exact for finite inputs: 0·inf is NaN, so an inf in one cell turns every output that reads
its pixel (or K×K neighbourhood) NaN, even where the source dropped that value.
"""
from __future__ import annotations

import numpy as np

from irc.ir.tensors import BATCH, TensorType
from irc.passes.defs._match import remove_noop
from irc.passes.defs.legalize_pad import add_selection_conv
from irc.passes.registry import RewritePass, register_pass

_PROBE_LIMIT = 1 << 24  # elements of the index probe that identifies a channel shuffle


def _slice_indices(graph, node) -> tuple[dict[int, list[int]] | None, str]:
    """Axis -> the input indices a Slice keeps along it, or None and why."""
    shape = graph.value(node.inputs[0]).type.shape
    rank = len(shape)
    starts, ends = (np.asarray(graph.const(v)).reshape(-1) for v in node.inputs[1:3])
    axes = (np.asarray(graph.const(node.inputs[3])).reshape(-1)
            if len(node.inputs) > 3 and node.inputs[3] else np.arange(len(starts)))
    steps = (np.asarray(graph.const(node.inputs[4])).reshape(-1)
             if len(node.inputs) > 4 and node.inputs[4] else np.ones(len(starts), np.int64))
    kept = {}
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = int(axis) % rank
        if axis == 0:
            if int(start) != 0 or int(step) != 1 or int(end) < np.iinfo(np.int32).max:
                return None, "it slices the batch axis"
            continue
        # ONNX clamps start/end like Python's slice.indices
        kept[axis] = list(range(*slice(int(start), int(end), int(step)).indices(shape[axis])))
    return kept, ""


def _progression(indices: list[int]) -> tuple[int, int, int] | None:
    """(offset, step, count) when ``indices`` step forward evenly, else None."""
    if not indices:
        return None
    step = indices[1] - indices[0] if len(indices) > 1 else 1
    if step < 1 or indices != list(range(indices[0], indices[0] + step * len(indices), step)):
        return None
    return indices[0], step, len(indices)


def _select(graph, node, kept: dict[int, list[int]], prov) -> tuple[str | None, str]:
    """The value computing ``node``'s output by selection, or None and why not."""
    x = node.inputs[0]
    ttype = graph.value(x).type
    name = f"{node.name}_select"
    if ttype.rank == 2:
        rows = kept.get(1, list(range(ttype.shape[1])))
        matrix = np.zeros((len(rows), ttype.shape[1]), np.dtype(ttype.dtype))
        matrix[np.arange(len(rows)), rows] = 1
        out_type = TensorType((ttype.shape[0], len(rows)), ttype.dtype)
        gemm = graph.add_node("Gemm", [x, graph.add_const(f"{name}_w", matrix).name],
                              [(graph.unique_value_name(name), out_type)], {"transB": 1},
                              name=name, provenance=prov)
        return gemm.outputs[0], ""
    if ttype.rank != 4:
        return None, f"it selects from a rank-{ttype.rank} tensor; only (N, n) and (N, C, H, W)"
    _, channels, height, width = ttype.shape
    spans = []
    for axis, size in ((2, height), (3, width)):
        span = _progression(kept.get(axis, list(range(size))))
        if span is None:
            return None, (f"along axis {axis} it takes {kept[axis][:6]}..., not evenly "
                          "forward: no convolution window visits cells in that order")
        spans.append(span)
    rows = kept.get(1)
    if rows == list(range(channels)):
        rows = None
    return add_selection_conv(graph, x, spans[0], spans[1], name, prov, rows), ""


def _channel_permutation(graph, first, transpose, last) -> list[int] | None:
    """The channel order of Reshape -> Transpose -> Reshape when it only permutes channels
    of a (N, C, H, W) map (a channel shuffle), else None."""
    in_shape = graph.value(first.inputs[0]).type.shape
    mid_shape = graph.value(first.outputs[0]).type.shape
    if len(in_shape) != 4 or graph.value(last.outputs[0]).type.shape != in_shape \
            or mid_shape[0] != BATCH or (transpose.attrs.get("perm") or [None])[0] != 0:
        return None
    _, channels, height, width = in_shape
    if channels * height * width > _PROBE_LIMIT:
        return None
    probe = np.arange(channels * height * width).reshape(1, *in_shape[1:])
    moved = probe.reshape((1, *mid_shape[1:])).transpose(transpose.attrs["perm"])
    moved = moved.reshape(1, *in_shape[1:])[0]
    rows = moved[:, 0, 0] // (height * width)
    plane = np.arange(height * width).reshape(height, width)
    if not np.array_equal(moved, rows[:, None, None] * height * width + plane):
        return None
    return [int(r) for r in rows]


@register_pass
class LegalizeChannelSelect(RewritePass):
    """Rewrite Slice/Gather on channels, H/W crops and channel shuffles into 0/1 convolutions.

    Given:  %y = Slice(%x float32[N,8,H,W], starts=[2], ends=[6], axes=[1])
    Result: %y = Conv(%x, $sel float32[4,8,1,1])        (sel[k, 2+k] = 1, no bias)
    Given:  %a = Reshape(%x, [N,2,4,H,W]); %b = Transpose(%a) {perm=[0,2,1,3,4]};
            %y = Reshape(%b, [N,8,H,W])
    Result: %y = Conv(%x, $perm float32[8,8,1,1])
    A Slice on H/W with a positive step is a selection conv (one-hot kernel, legalize_pad);
    on a (N, n) vector the selection is a Gemm with a 0/1 matrix. Exact. Refuses batch
    slices and H/W selections that do not step forward evenly (a flip has no window order).
    """

    name = "legalize_channel_select"
    requires = ("fold_constants",)
    anchors = ("Transpose", "Slice", "Gather")

    def rewrite(self, graph, node, ctx):
        if node.op_type == "Transpose":
            return self._shuffle(graph, node)
        if node.op_type == "Slice":
            kept, why = _slice_indices(graph, node)
        else:
            kept, why = self._gather_indices(graph, node)
        if kept is None:
            return why
        shape = graph.value(node.inputs[0]).type.shape
        if all(kept[a] == list(range(shape[a])) for a in kept) and remove_noop(graph, node):
            return True
        prov = node.provenance.merged(node.provenance, self.name)
        out, why = _select(graph, node, kept, prov)
        if out is None:
            return why
        assert graph.value(out).type.shape == graph.value(node.outputs[0]).type.shape
        graph.replace_node(node, out)
        return True

    @staticmethod
    def _gather_indices(graph, node) -> tuple[dict[int, list[int]] | None, str]:
        shape = graph.value(node.inputs[0]).type.shape
        axis = int(node.attrs.get("axis", 0)) % len(shape)
        indices = np.asarray(graph.const(node.inputs[1]))
        if axis != 1:
            return None, f"it gathers along axis {axis}; only channels (axis 1) are legalized"
        if indices.ndim != 1:
            return None, (f"its indices have rank {indices.ndim}; only a list of channels "
                          "keeps the tensor's rank")
        return {1: [int(i) % shape[1] for i in indices]}, ""

    def _shuffle(self, graph, transpose) -> bool | str:
        first = graph.producer(transpose.inputs[0])
        last = graph.consumers(transpose.outputs[0])
        if first is None or first.op_type != "Reshape" or len(last) != 1 \
                or last[0].op_type != "Reshape" or graph.use_count(transpose.inputs[0]) != 1 \
                or graph.use_count(transpose.outputs[0]) != 1:
            return False
        last = last[0]
        rows = _channel_permutation(graph, first, transpose, last)
        if rows is None:
            return ("Reshape -> Transpose -> Reshape that does more than permute the channels "
                    "of a (N, C, H, W) map")
        prov = last.provenance.merged(first.provenance, None).merged(transpose.provenance,
                                                                       self.name)
        x = first.inputs[0]
        _, _, height, width = graph.value(x).type.shape
        out = add_selection_conv(graph, x, (0, 1, height), (0, 1, width),
                                 f"{last.name}_shuffle", prov, rows)
        graph.replace_node(last, out)
        graph.remove_node(transpose)
        graph.remove_node(first)
        return True
