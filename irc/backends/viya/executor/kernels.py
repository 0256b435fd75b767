"""Vectorised float32 NumPy kernels computing what Viya computes (viya-semantics.md).

Tensors are (N, C, H, W) batches or (N, n) vectors. Every kernel returns a freshly allocated
float32 array, so callers may apply activations in place.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from irc.ir.activations import VIYA_FIXED_ALPHA


F32 = np.float32
LEAKY_SLOPE = F32(VIYA_FIXED_ALPHA["leaky"])   # fixed in Viya (viya-semantics.md §3)


# ----------------------------------------------------------------------------- geometry (§5)

def auto_pad_total(size: int, kernel: int, stride: int) -> int:
    """Viya's automatic total padding per axis (§5.2); it always yields ceil(size/stride)."""
    if size % stride == 0:
        return max(kernel - stride, 0)
    return max(kernel - size % stride, 0)


def axis_geometry(size: int, kernel: int, stride: int, pad: int | None, *, pool: bool,
                  rounding: str = "floor", auto_placement: str = "split_tf"):
    """Padding and output size along one axis.

    ``pad`` None means automatic padding. Returns (before, after, overhang, out): ``before``/
    ``after`` are real padding cells (explicit or automatic); ``overhang`` is the extra room a
    ceil-rounded pool window reaches past the padded data, which is never counted as padding.
    """
    if pad is None:
        total = auto_pad_total(size, kernel, stride)
        # conv: odd pixel at the end like TF 'same'; pool: per the pool_auto_pad option (§5.2)
        before = 0 if (pool and auto_placement == "end") else total // 2
        after = total - before
        out = (size + total - kernel) // stride + 1
        return before, after, 0, out
    span = size + 2 * pad - kernel
    if span < 0:
        return pad, pad, 0, 0
    if pool and rounding == "ceil":
        out = -(-span // stride) + 1
        # as Caffe/ONNX: a last window that would start inside the end padding is dropped
        if (out - 1) * stride >= size + pad:
            out -= 1
        overhang = max((out - 1) * stride + kernel - (size + 2 * pad), 0)
        return pad, pad, overhang, out
    return pad, pad, 0, span // stride + 1


# ----------------------------------------------------------------------------- activations (§3)

def activate(x: np.ndarray, act: str, *, elu_alpha: float = 1.0, inplace: bool = False):
    """Apply a Viya activation; ``inplace`` may reuse ``x`` (only for freshly computed arrays)."""
    out = x if inplace else None
    if act == "identity":
        return x if inplace else x.copy()
    if act == "relu":
        return np.maximum(x, F32(0), out=out)
    if act == "tanh":
        return np.tanh(x, out=out)
    if act == "sigmoid":
        # exp of -|x| never overflows; both branches are then exact to float32 rounding
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, F32(1) / (F32(1) + e), e / (F32(1) + e)).astype(F32, copy=False)
    if act == "softplus":
        return np.logaddexp(F32(0), x, out=out)   # ln(1 + e^x) without overflow
    if act == "elu":
        neg = F32(elu_alpha) * np.expm1(np.minimum(x, F32(0)))
        return np.where(x > 0, x, neg).astype(F32, copy=False)
    if act == "leaky":
        return np.where(x >= 0, x, LEAKY_SLOPE * x).astype(F32, copy=False)
    if act == "softmax":
        return softmax_all(x)
    if act == "exp":
        return np.exp(x, out=out)
    if act == "sin":
        return np.sin(x, out=out)
    if act == "cos":
        return np.cos(x, out=out)
    raise ValueError(f"unknown activation {act!r}")


def softmax_all(x: np.ndarray) -> np.ndarray:
    """Softmax over all values of each example (§3: over all n outputs), max-shifted."""
    flat = x.reshape(x.shape[0], -1)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


# ----------------------------------------------------------------------------- layers

def pad_spatial(x: np.ndarray, top: int, bottom: int, left: int, right: int,
                fill: float = 0.0) -> np.ndarray:
    """Pad H and W of an (N, C, H, W) array with a constant (a copy, even when no padding)."""
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), fill, dtype=F32)
    out[:, :, top:top + h, left:left + w] = x
    return out


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: tuple,
           pads: tuple, groups: int = 1) -> np.ndarray:
    """Grouped cross-correlation (§4): one matmul per group over an im2col matrix.

    ``pads`` is ((top, bottom), (left, right)); ``kernel`` is (O, C/g, kH, kW).
    """
    n, c, h, w = x.shape
    o, cg, kh, kw = kernel.shape
    sh, sw = stride
    (top, bottom), (left, right) = pads
    oh = (h + top + bottom - kh) // sh + 1
    ow = (w + left + right - kw) // sw + 1
    if kh == kw == 1 and top == bottom == left == right == 0:
        # 1x1: the input (subsampled by the stride) already is the im2col matrix
        cols = x[:, :, ::sh, ::sw][:, :, :oh, :ow] if (sh, sw) != (1, 1) else x
        cols = np.ascontiguousarray(cols).reshape(n, groups, cg, oh * ow)
    else:
        xp = pad_spatial(x, top, bottom, left, right) if (top or bottom or left or right) else x
        # A window as large as the whole output grid, slid over the kH x kW kernel offsets,
        # lays the data out directly as (N, C, kH, kW, OH, OW): one contiguous copy, no
        # transpose, and the rows of each (kh, kw) plane stay contiguous for stride 1.
        grid = sliding_window_view(xp, ((oh - 1) * sh + 1, (ow - 1) * sw + 1), axis=(2, 3))
        grid = grid[:, :, :kh, :kw, ::sh, ::sw]
        cols = np.ascontiguousarray(grid).reshape(n, groups, cg * kh * kw, oh * ow)
    weights = kernel.reshape(groups, o // groups, cg * kh * kw)
    y = np.matmul(weights, cols).reshape(n, o, oh, ow)    # (N, g, O/g, L) → (N, O, OH, OW)
    if bias is not None:
        y += bias.reshape(1, o, 1, 1)
    return y


def _window_reduce(x: np.ndarray, axis: int, size: int, stride: int, count: int, ufunc):
    """Reduce ``count`` windows of ``size`` cells, ``stride`` apart, along one axis.

    Accumulates one strided slice per kernel tap (``size`` passes over whole planes): NumPy
    reductions over a sliding_window_view axis are ~30x slower than these ufunc passes.
    """
    span = (count - 1) * stride + 1
    index = [slice(None)] * x.ndim

    def tap(start):
        index[axis] = slice(start, start + span, stride)
        return x[tuple(index)]

    acc = tap(0).copy()
    for start in range(1, size):
        ufunc(acc, tap(start), out=acc)
    return acc


def _cells_inside(kernel: int, stride: int, out: int, start: int, stop: int) -> np.ndarray:
    """How many of each window's cells lie in [start, stop) (coordinates of the padded axis)."""
    first = np.arange(out) * stride
    return (np.minimum(first + kernel, stop) - np.maximum(first, start)).clip(min=0)


def pool2d(x: np.ndarray, kind: str, kernel: tuple, stride: tuple, geometry: tuple,
           maxpool_pad: str = "ignore", avgpool_divisor: str = "valid") -> np.ndarray:
    """Max/min/mean pooling (§5.3, §6); ``geometry`` holds axis_geometry() for H and for W.

    Windows are rectangles, so the reduction is done per axis (W, then H): kH + kW work per
    output instead of kH · kW.
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    (top, bottom, over_h, oh), (left, right, over_w, ow) = geometry
    if kind == "mean":
        fill_pad = fill_over = 0.0
        op = np.add
    else:
        ignored = -np.inf if kind == "max" else np.inf
        fill_pad = 0.0 if maxpool_pad == "zero" else ignored
        fill_over = ignored    # ceil overhang is outside the data, never a padded cell
        op = np.maximum if kind == "max" else np.minimum
    xp = pad_spatial(x, top, bottom + over_h, left, right + over_w, fill_over)
    if fill_pad != fill_over:
        hp, wp = top + h + bottom, left + w + right
        xp[:, :, :hp, :wp] = pad_spatial(x, top, bottom, left, right, fill_pad)
    y = _window_reduce(xp, 3, kw, sw, ow, op)
    y = _window_reduce(y, 2, kh, sh, oh, op)
    if kind == "mean":
        if avgpool_divisor == "window":
            y /= F32(kh * kw)
        else:
            # 'valid' counts real input cells; 'caffe' also counts pad cells, not the overhang
            lo_h, hi_h = (top, top + h) if avgpool_divisor == "valid" else (0, top + h + bottom)
            lo_w, hi_w = (left, left + w) if avgpool_divisor == "valid" else (0, left + w + right)
            rows = _cells_inside(kh, sh, oh, lo_h, hi_h)
            cols = _cells_inside(kw, sw, ow, lo_w, hi_w)
            y /= np.maximum(np.outer(rows, cols), 1).astype(F32)
    else:
        # a window made only of ignored cells has no value; Viya's result is unknown, use 0
        y[y == ignored] = 0
    return np.ascontiguousarray(y, dtype=F32)


def global_pool(x: np.ndarray, kind: str) -> np.ndarray:
    """Window = whole H x W (§6: width = height = 0) → (N, C, 1, 1)."""
    op = {"max": np.max, "min": np.min, "mean": np.mean}[kind]
    return op(x, axis=(2, 3), keepdims=True).astype(F32, copy=False)


def flatten_concat(sources: list) -> np.ndarray:
    """Flatten each source (C,H,W → c·H·W + h·W + w) and join them end to end (§1)."""
    n = sources[0].shape[0]
    flat = [s.reshape(n, -1) for s in sources]
    return flat[0].copy() if len(flat) == 1 else np.concatenate(flat, axis=1)


def dense(v: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """y = W·v + b with W (n, in) as stored in the HDF5 file (§7)."""
    y = v @ kernel.T
    if bias is not None:
        y += bias
    return y


def batchnorm(x: np.ndarray, gamma, beta, mean, variance, extra_eps: float) -> np.ndarray:
    """γ(x − μ)/sqrt(v + eps) + β per channel (4-D) or per neuron (vectors), §9."""
    scale = (gamma / np.sqrt(variance + F32(extra_eps))).astype(F32)
    shift = (beta - mean * scale).astype(F32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = x * scale.reshape(shape)
    y += shift.reshape(shape)   # in place: one temporary fewer on large feature maps
    return y


def spatial_geometry(opts: dict, h: int, w: int, pool: bool, options) -> tuple:
    """axis_geometry() for H and W of a convo/groupconvo/pool layer under ``options``."""
    return tuple(
        axis_geometry(size, opts[k], opts[s], opts[p], pool=pool,
                      rounding=options.pool_explicit_rounding,
                      auto_placement=options.pool_auto_pad if pool else "split_tf")
        for size, k, s, p in ((h, "height", "stride_h", "pad_h"),
                              (w, "width", "stride_w", "pad_w")))
