"""Handlers for the forms modern exporters write that Viya has no single layer for: selection
(Split, Slice, Gather), bounded and parametric activations (Clip, PRelu, LeakyRelu, Neg; ONNX
has no Softmin op: PyTorch writes Neg then Softmax) and spatial reductions (ReduceMean and
ReduceMax). They emit IR ops with ONNX semantics and constant operands in one normalised form; the legalization passes turn them into Viya
layers exactly, or refuse them with the reason.
"""
from __future__ import annotations

import math

import numpy as np

from irc.frontends.onnx.registry import ONNX_OPS as reg
from irc.ir.activations import VIYA_FIXED_ALPHA
from irc.ir.tensors import BATCH, TensorType

_LEAKY_VIYA_SLOPE = VIYA_FIXED_ALPHA["leaky"]  # Viya's leaky activation has this slope only


def _int_list(imp, node, slot: int, attrs: dict, attr_name: str, opset_inputs: int):
    """An int list given as an attribute (opset < ``opset_inputs``) or a constant input.

    Returns (list or None when absent, error text or None)."""
    if imp.opset < opset_inputs:
        value = attrs.get(attr_name)
        return (None if value is None else [int(v) for v in value]), None
    if len(node.input) <= slot or not node.input[slot]:
        return None, None
    const = imp.const(node.input[slot])
    if const is None:
        return None, f"{node.op_type}'s {attr_name} are computed at run time; irc needs constants"
    return [int(v) for v in np.asarray(const).reshape(-1)], None


def _axes(raw, rank: int) -> list[int] | None:
    axes = [a + rank if a < 0 else a for a in raw]
    return axes if all(0 <= a < rank for a in axes) else None


def _i64(imp, node, what: str, values) -> str:
    return imp.add_const(imp.graph.unique_value_name(f"{node.output[0] or node.name}_{what}"),
                         np.asarray(values, np.int64).reshape(-1))


def _emit_slice(imp, node, data: str, out: str, starts, ends, axes, steps) -> None:
    inputs = [data, _i64(imp, node, "starts", starts), _i64(imp, node, "ends", ends),
              _i64(imp, node, "axes", axes), _i64(imp, node, "steps", steps)]
    imp.emit("Slice", node, inputs=inputs, outputs=[out])


def _not_batch_axis(imp, node, data: str, axes) -> bool:
    x_type = imp.type_of(data)
    if 0 in axes and x_type is not None and x_type.shape and x_type.shape[0] == BATCH:
        imp.problem(f"{node.op_type} along axis 0, the batch axis; Viya layers compute each "
                    "example apart")
        return False
    return True


@reg.register("Split")
def split(imp, node, attrs):
    """Split -> one Slice per output (along a feature axis)."""
    x_type = imp.inferred_type(node.input[0])
    if x_type is None:
        imp.problem("the shape of Split's input cannot be inferred statically")
        return
    rank = x_type.rank
    axes = _axes([int(attrs.get("axis", 0))], rank)
    if axes is None:
        imp.problem(f"Split axis {attrs.get('axis')} is outside a {rank}-D tensor")
        return
    axis = axes[0]
    if not _not_batch_axis(imp, node, node.input[0], [axis]):
        return
    sizes, error = _int_list(imp, node, 1, attrs, "split", 13)
    if error:
        imp.problem(error)
        return
    dim, parts = x_type.shape[axis], len(node.output)
    if sizes is None:  # equal parts; opset 18's num_outputs makes the last one smaller
        chunk = -(-dim // parts)
        sizes = [min(chunk, dim - i * chunk) for i in range(parts)]
    if len(sizes) != parts or sum(sizes) != dim or min(sizes) < 0:
        imp.problem(f"Split sizes {sizes} do not divide axis {axis} of size {dim} into {parts}")
        return
    start = 0
    for out, size in zip(node.output, sizes):
        if out:
            _emit_slice(imp, node, node.input[0], out, [start], [start + size], [axis], [1])
        start += size


def normalize_slice(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
    """ONNX's clamping of one axis' start and end, as explicit in-range numbers. A backward
    slice that runs past index 0 gets end -dim-1 (ONNX reads it as 'before the first')."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return start, (-dim - 1 if end == -1 else end)


@reg.register("Slice")
def slice_(imp, node, attrs):
    """Slice with constant bounds -> Slice with explicit, clamped starts/ends/axes/steps."""
    x_type = imp.inferred_type(node.input[0])
    if x_type is None:
        imp.problem("the shape of Slice's input cannot be inferred statically")
        return
    values = []
    for slot, name in ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps")):
        got, error = _int_list(imp, node, slot, attrs, name, 10)
        if error:
            imp.problem(error)
            return
        values.append(got)
    starts, ends, axes, steps = values
    if starts is None or ends is None or len(starts) != len(ends):
        imp.problem("Slice needs starts and ends of the same length")
        return
    axes = _axes(axes if axes is not None else list(range(len(starts))), x_type.rank)
    steps = steps if steps is not None else [1] * len(starts)
    if axes is None or len(axes) != len(starts) or len(steps) != len(starts) or 0 in steps \
            or len(set(axes)) != len(axes):
        imp.problem(f"Slice axes {values[2]} / steps {steps} do not fit a {x_type.rank}-D input")
        return
    bounds = [normalize_slice(x_type.shape[a], s, e, st)
              for a, s, e, st in zip(axes, starts, ends, steps)]
    # An axis sliced whole (tf2onnx writes every axis, the batch axis included) selects nothing.
    kept = [k for k, (a, st) in enumerate(zip(axes, steps))
            if not (st == 1 and bounds[k] == (0, x_type.shape[a]))]
    if not kept:
        imp.alias(node.output[0], node.input[0], node)
        return
    axes, steps, bounds = [axes[k] for k in kept], [steps[k] for k in kept], [bounds[k]
                                                                               for k in kept]
    if not _not_batch_axis(imp, node, node.input[0], axes):
        return
    _emit_slice(imp, node, node.input[0], node.output[0], [b[0] for b in bounds],
                [b[1] for b in bounds], axes, steps)


@reg.register("Gather")
def gather(imp, node, attrs):
    """Gather with constant indices -> Gather (a scalar index drops the axis, as in ONNX)."""
    x_type = imp.inferred_type(node.input[0])
    indices = imp.const(node.input[1])
    if indices is None:
        imp.problem("Gather's indices are computed at run time; irc needs constant indices")
        return
    if x_type is None:
        imp.problem("the shape of Gather's input cannot be inferred statically")
        return
    axes = _axes([int(attrs.get("axis", 0))], x_type.rank)
    if axes is None or not _not_batch_axis(imp, node, node.input[0], axes):
        if axes is None:
            imp.problem(f"Gather axis {attrs.get('axis')} is outside a {x_type.rank}-D input")
        return
    dim = x_type.shape[axes[0]]
    idx = np.asarray(indices).astype(np.int64)
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        imp.problem(f"Gather indices {idx.reshape(-1).tolist()[:8]} are outside an axis of "
                    f"size {dim}")
        return
    idx = np.where(idx < 0, idx + dim, idx)
    index_const = imp.add_const(imp.graph.unique_value_name(f"{node.output[0]}_indices"), idx)
    imp.emit("Gather", node, inputs=[node.input[0], index_const], attrs={"axis": axes[0]})


# ---- activations ----------------------------------------------------------------------------


def _scalar(imp, node, what: str, value: float, dtype) -> str:
    return imp.add_const(imp.graph.unique_value_name(f"{node.output[0]}_{what}"),
                         np.asarray(value, dtype=dtype))


@reg.register("Clip")
def clip(imp, node, attrs):
    """Clip (ReLU6, hard tanh) -> Clip with constant scalar bounds ("" = unbounded)."""
    dtype = np.dtype((imp.inferred_type(node.input[0]) or TensorType((1,))).dtype)
    bounds = []
    for slot, name in ((1, "min"), (2, "max")):
        if imp.opset < 11:
            value = attrs.get(name)
        elif len(node.input) > slot and node.input[slot]:
            const = imp.const(node.input[slot])
            if const is None:
                imp.problem(f"Clip's {name} is computed at run time; irc needs a constant")
                return
            if np.asarray(const).size != 1:
                imp.problem(f"Clip's {name} has shape {np.asarray(const).shape}, not a scalar")
                return
            value = float(np.asarray(const).reshape(-1)[0])
        else:
            value = None
        bounds.append("" if value is None or math.isinf(value) and (value < 0) == (name == "min")
                      else _scalar(imp, node, name, value, dtype))
    imp.emit("Clip", node, inputs=[node.input[0], *bounds])


@reg.register("Max", "Min")
def max_min(imp, node, attrs):
    """Max/Min of a tensor and a constant scalar (tf2onnx's clip_by_value) -> Clip; of two
    tensors of one shape -> Max/Min (rewritten as a + relu(b - a) into residual layers)."""
    tensors = [i for i in node.input if i and not imp.is_const(i)]
    consts = [imp.const(i) for i in node.input if i and imp.is_const(i)]
    types = [imp.type_of(t) for t in tensors]
    if len(tensors) == 2 and not consts and types[0] is not None and types[0] == types[1]:
        imp.emit(node.op_type, node, inputs=tensors)  # legalize_max_min: a + relu(b - a)
        return
    if len(tensors) != 1 or any(np.asarray(c).size != 1 for c in consts):
        imp.problem(f"{node.op_type} of {len(tensors)} tensor(s) and constants of shapes "
                    f"{[np.asarray(c).shape for c in consts]}: an element-wise "
                    f"{node.op_type.lower()} of tensors of different shapes, of more than two, or by a "
                    "non-scalar constant, which Viya lacks; irc converts two tensors of one shape, "
                    "or a tensor clipped by one constant scalar")
        return
    if not consts:
        imp.alias(node.output[0], tensors[0], node)
        return
    dtype = np.dtype((imp.inferred_type(tensors[0]) or TensorType((1,))).dtype)
    pick = max if node.op_type == "Max" else min
    bound = _scalar(imp, node, "bound", pick(float(np.asarray(c).reshape(-1)[0]) for c in consts),
                    dtype)
    imp.emit("Clip", node, inputs=[tensors[0], bound] if node.op_type == "Max"
             else [tensors[0], "", bound])


@reg.register("PRelu")
def prelu(imp, node, attrs):
    """PRelu with a constant slope -> PRelu."""
    if not imp.is_const(node.input[1]):
        imp.problem("PRelu's slope is not a constant; Viya needs fixed parameters")
        return
    imp.emit("PRelu", node)


@reg.register("LeakyRelu")
def leaky_relu(imp, node, attrs):
    """LeakyRelu(alpha=0.1) -> act leaky; another alpha -> PRelu with that scalar slope."""
    alpha = float(attrs.get("alpha", 0.01))
    if math.isclose(alpha, _LEAKY_VIYA_SLOPE, rel_tol=1e-6):
        imp.emit("LeakyRelu", node, attrs={"alpha": _LEAKY_VIYA_SLOPE})
        return
    dtype = np.dtype((imp.inferred_type(node.input[0]) or TensorType((1,))).dtype)
    imp.emit("PRelu", node, inputs=[node.input[0], _scalar(imp, node, "slope", alpha, dtype)])


@reg.register("Neg")
def neg(imp, node, attrs):
    """Neg -> Neg (a multiplication by -1 to Viya)."""
    imp.emit("Neg", node)


# ---- reductions -----------------------------------------------------------------------------

_GLOBAL_POOL = {"ReduceMean": "GlobalAveragePool", "ReduceMax": "GlobalMaxPool"}


@reg.register("ReduceMean", "ReduceMax")
def reduce_spatial(imp, node, attrs):
    """ReduceMean/ReduceMax over axes (2, 3) of (N,C,H,W) -> global pooling (+ Flatten)."""
    x_type = imp.inferred_type(node.input[0])
    if x_type is None:
        imp.problem(f"the shape of {node.op_type}'s input cannot be inferred statically")
        return
    raw, error = _int_list(imp, node, 1, attrs, "axes", 18)
    if error:
        imp.problem(error)
        return
    keepdims = int(attrs.get("keepdims", 1))
    if not raw:
        if int(attrs.get("noop_with_empty_axes", 0)):
            imp.alias(node.output[0], node.input[0], node)
            return
        raw = list(range(x_type.rank))
    axes = _axes(raw, x_type.rank)
    if x_type.rank != 4 or axes is None or sorted(axes) != [2, 3]:
        imp.problem(f"{node.op_type} over axes {raw} of a {x_type.rank}-D tensor; irc reduces "
                    "the spatial axes (2, 3) of an (N, C, H, W) tensor only (global pooling)")
        return
    pool = _GLOBAL_POOL[node.op_type]
    if keepdims:
        imp.emit(pool, node, inputs=[node.input[0]])
        return
    n, c = x_type.shape[:2]
    pooled = imp.fresh_value(f"{node.output[0]}_pooled", TensorType((n, c, 1, 1), x_type.dtype))
    imp.emit(pool, node, inputs=[node.input[0]], outputs=[pooled])
    imp.emit("Flatten", node, inputs=[pooled], attrs={"axis": 1})
