"""Flatten passes: reshapes that only flatten become Flatten; an NHWC transpose before a
flatten into dense layers moves into the dense weights.

Viya flattens a (C, H, W) source as c·H·W + h·W + w before an fc layer (viya-semantics §1).
A transpose to NHWC before the flatten (Keras-to-ONNX exporters insert one) changes that order,
so its effect goes into the fc weight columns instead (traps 6 and 7).
"""
from __future__ import annotations

import numpy as np

from irc.ir.tensors import BATCH
from irc.ir.forms import reads_as_canonical_gemm
from irc.passes.defs._match import remove_noop
from irc.passes.registry import RewritePass, register_pass


def _shape_text(shape) -> str:
    return "(" + ", ".join("N" if d == BATCH else str(d) for d in shape) + ")"


@register_pass
class ReshapeToFlatten(RewritePass):
    """Turn a Reshape or Squeeze that flattens (N, d1, ..., dk) to (N, d1·…·dk) into Flatten.

    Given:  %y = Reshape(%x float32[N,64,7,7], $shape int64[2] = [1, -1]) -> float32[N,3136]
    Result: %y = Flatten(%x) {axis=1}
    A Flatten, Reshape or Squeeze whose 2-D output equals its 2-D input is removed. Other
    reshapes are refused here (lowering maps them to a Viya reshape layer or rejects them).
    """

    name = "reshape_to_flatten"
    anchors = ("Reshape", "Squeeze", "Flatten")

    def rewrite(self, graph, node, ctx):
        src = graph.value(node.inputs[0]).type.shape
        dst = graph.value(node.outputs[0]).type.shape
        if graph.is_const(node.inputs[0]) or not src or src[0] != BATCH:
            return None  # constant reshapes are fold_constants' business
        if len(src) == 2 and dst == src:
            return remove_noop(graph, node) or ("it changes nothing, but its output is a graph "
                                                "output whose name no other op can take")
        if node.op_type == "Flatten":
            return None  # a real flatten already
        features = int(np.prod(src[1:], dtype=np.int64))
        if len(src) < 2 or dst != (BATCH, features):
            return (f"{node.op_type} {_shape_text(src)} -> {_shape_text(dst)} is not a flatten "
                    "to (N, features)")
        out = node.outputs[0]
        flat = graph.add_node("Flatten", [node.inputs[0]],
                              [(graph.unique_value_name(out + "_flat"), graph.value(out).type)],
                              {"axis": 1}, name=f"{node.name}_flatten",
                              provenance=node.provenance.merged(node.provenance, self.name))
        graph.replace_node(node, flat.outputs[0])
        return True


def _chw_columns(n_columns: int, c: int, h: int, wd: int, start: int = 0) -> np.ndarray:
    """For each column of the permuted weight, the source column it reads: columns start ..
    start + H·W·C in H,W,C order become C,H,W order (the others stay where they are)."""
    size = c * h * wd
    columns = np.arange(n_columns, dtype=np.int64)
    hwc = np.arange(size, dtype=np.int64).reshape(h, wd, c)  # source column of (h, w, c)
    columns[start:start + size] = start + hwc.transpose(2, 0, 1).reshape(-1)
    return columns


def _dense_readers(graph, value: str) -> tuple[list[tuple], list[str]]:
    """(Gemm, first column of ``value`` in its input) for every reader of ``value``, looking
    through Concats of vectors; and the readers that are neither (by name)."""
    found, others = [], []
    for reader in graph.consumers(value):
        if reads_as_canonical_gemm(graph, reader, value):
            found.append((reader, 0))
            continue
        out = reader.outputs[0] if reader.outputs else ""
        if reader.op_type != "Concat" or reader.attrs.get("axis") not in (1, -1) \
                or graph.value(out).type.rank != 2 or out in graph.outputs:
            others.append(reader.name)
            continue
        inner, inner_others = _dense_readers(graph, out)
        others += inner_others if inner or inner_others else [f"{reader.name} (unread)"]
        for slot, inp in enumerate(reader.inputs):
            if inp == value:
                offset = sum(graph.value(i).type.shape[1] for i in reader.inputs[:slot])
                found += [(gemm, start + offset) for gemm, start in inner]
    return found, others


@register_pass
class FlattenTransposeIntoDense(RewritePass):
    """Remove an NCHW->NHWC Transpose before a Flatten by permuting the dense weights after it.

    Given:  %t = Transpose(%x float32[N,C,H,W]) {perm=[0,2,3,1]}; %f = Flatten(%t) {axis=1};
            %y = Gemm(%f, $w float32[n,H·W·C], $b) {transB=1}
    Result: %f = Flatten(%x) {axis=1}; %y = Gemm(%f, $w' float32[n,C·H·W], $b) {transB=1}
    where column c·H·W + h·W + w of $w' is column h·W·C + w·C + c of $w (viya-target §5.4).
    Every reader of the flatten must be a canonical Gemm, or a Concat of vectors read only by
    canonical Gemms (then the flatten's segment of their columns is permuted), and the
    transpose must have no other reader; otherwise the pass refuses.
    """

    name = "flatten_transpose_into_dense"
    requires = ("normalize_gemm", "fold_batchnorm_into_next_dense")
    anchors = ("Transpose",)

    def rewrite(self, graph, node, ctx):
        if list(node.attrs.get("perm") or []) != [0, 2, 3, 1]:
            return None
        x, t = node.inputs[0], node.outputs[0]
        shape = graph.value(x).type.shape
        if len(shape) != 4:
            return None
        flat = graph.consumers(t)
        if graph.use_count(t) != 1 or len(flat) != 1 or flat[0].op_type != "Flatten" \
                or flat[0].attrs.get("axis", 1) != 1:
            return ("the transposed value is not read by exactly one Flatten(axis=1), so the "
                    "transpose cannot move into dense weights")
        flat = flat[0]
        f = flat.outputs[0]
        readers, others = _dense_readers(graph, f)
        if others:
            return (f"the flatten {flat.name} is read by {', '.join(others)}, which are not "
                    "canonical Gemms (transB=1, alpha=beta=1) reading it as A, directly or "
                    "through a Concat of vectors")
        if f in graph.outputs or not readers:
            return f"the flatten {flat.name} output is a graph output or unread"
        _, c, h, wd = shape
        for gemm, start in readers:
            # A column permutation described on the weight, applied block by block when it is
            # written (no copy of the weight here).
            w = graph.value(gemm.inputs[1]).const.lazy()
            new_w = w.take(_chw_columns(w.shape[1], c, h, wd, start), axis=1)
            graph.set_input(gemm, 1, graph.add_const(f"{gemm.inputs[1]}_chw", new_w).name)
            gemm.provenance = gemm.provenance.merged(node.provenance, self.name)
        graph.set_input(flat, 0, x)
        flat.provenance = flat.provenance.merged(node.provenance, self.name)
        graph.remove_node(node)
        return True
