"""Lazy weight expressions: reorderings and per-channel arithmetic on weights, evaluated in blocks.

A pass that only reorders a weight (a transpose, a column permutation, a reversed axis) or
scales it per channel does not need the result in memory: it needs a description of it. A
:class:`WeightExpr` is that description, composed without touching data; values are computed
only when a writer (HDF5, ONNX export) or a reader asks, one bounded block at a time
(:data:`BLOCK_BYTES`), so a 400 MB dense weight is never held twice, or in float64.

Rounding: reorderings keep the source's values bit for bit. Arithmetic (``scale``, ``shift``)
computes in float64 per block, and the result is rounded once, to the expression's dtype, when
a block is produced; ``astype`` is the only intermediate rounding point (used when a type
really changes).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np

from irc.utils import blas_transpose
from irc.utils.threads import signals_blocked_while_starting

BLOCK_BYTES = 64 << 20  # the most one block may hold, counted at 8 bytes an element

Index = tuple[slice, ...]


def _full(shape) -> Index:
    return tuple(slice(0, d) for d in shape)


def _size(index: Index) -> tuple[int, ...]:
    return tuple(s.stop - s.start for s in index)


def _replace(index: Index, axis: int, new: slice) -> Index:
    return index[:axis] + (new,) + index[axis + 1:]


def block_indices(shape, item_bytes: int = 8, max_bytes: int = BLOCK_BYTES) -> Iterator[Index]:
    """Regions covering ``shape`` in C order, each at most ``max_bytes`` at ``item_bytes`` an
    element: whole rows of the leading axis where they fit, else finer along later axes."""
    shape = tuple(int(d) for d in shape)
    budget = max(1, max_bytes // item_bytes)
    if not shape or 0 in shape:
        yield _full(shape)
        return
    axis, inner = len(shape) - 1, 1
    while axis > 0 and inner * shape[axis] <= budget:  # the first axis whose sub-array fits
        inner *= shape[axis]
        axis -= 1
    step = max(1, budget // inner)
    tail = _full(shape[axis + 1:])
    for outer in np.ndindex(*shape[:axis]):
        head = tuple(slice(i, i + 1) for i in outer)
        for start in range(0, shape[axis], step):
            yield head + (slice(start, min(start + step, shape[axis])),) + tail


_COPY_THREADS = min(4, os.cpu_count() or 1)
_THREADED_BYTES = 8 << 20  # below this a block is copied on the calling thread


def _transposed_copy(block: np.ndarray, perm) -> np.ndarray:
    """``block.transpose(perm)`` as a contiguous array. A 2-D transpose goes to OpenBLAS's
    omatcopy where numpy bundles it (irc.utils.blas_transpose); anything else is copied in
    tiles over the output axes that are the input's first and last: a whole-array strided copy
    misses the cache on every read (measured 3-6x slower on a 25088 x 4096 weight). Large
    blocks are split into bands over a few threads (both release the GIL); each thread writes
    its own part of the output."""
    view = block.transpose(perm)
    out = np.empty(view.shape, block.dtype)
    fast = blas_transpose.transposer(block.dtype) if tuple(perm) == (1, 0) else None
    if fast is not None and blas_transpose.usable(block, out):
        band = 1024

        def copy_part(starts) -> None:  # source rows a.. = output columns a..
            for a in starts:
                fast(block[a:a + band], out[:, a:a + band])
        starts = list(range(0, block.shape[0], band))
    else:
        j, k, band = list(perm).index(0), list(perm).index(view.ndim - 1), 256
        k_steps = range(0, view.shape[k], band) if k != j else [0]

        def copy_part(starts) -> None:
            for a in starts:
                cut = _replace(_full(view.shape), j, slice(a, min(a + band, view.shape[j])))
                for b in k_steps:
                    if k != j:
                        cut = _replace(cut, k, slice(b, min(b + band, view.shape[k])))
                    out[cut] = view[cut]
        starts = list(range(0, view.shape[j], band))
    workers = min(_COPY_THREADS, len(starts)) if out.nbytes >= _THREADED_BYTES else 1
    if workers <= 1:
        copy_part(starts)
    else:
        with ThreadPoolExecutor(workers) as pool:
            with signals_blocked_while_starting():  # pool threads start on submit
                done = [pool.submit(copy_part, starts[i::workers]) for i in range(workers)]
            for future in done:
                future.result()
    return out


class WeightExpr:
    """A weight described, not computed. ``shape`` and ``dtype`` are the result's."""

    shape: tuple[int, ...]
    dtype: np.dtype

    # ---- evaluation -------------------------------------------------------------------------
    def _region(self, index: Index) -> np.ndarray:
        """Values of ``index`` (one step-1 slice per axis), in this dtype or float64 (exact
        intermediate arithmetic). May be a read-only view."""
        raise NotImplementedError

    def region(self, index: Index) -> np.ndarray:
        """Values of ``index`` as a contiguous array of this expression's dtype."""
        return np.ascontiguousarray(np.asarray(self._region(index)).astype(self.dtype, copy=False))

    def blocks(self, max_bytes: int = BLOCK_BYTES) -> Iterator[tuple[Index, np.ndarray]]:
        """(index, values) covering the result in C order, one bounded block at a time."""
        for index in block_indices(self.shape, 8, max_bytes):
            yield index, self.region(index)

    def numpy(self) -> np.ndarray:
        """The whole result in memory (for small weights and callers that need an array)."""
        out = np.empty(self.shape, self.dtype)
        for index, block in self.blocks():
            out[index] = block
        return out

    def matvec(self, vector) -> np.ndarray:
        """``self @ vector`` in float64 for a 2-D expression, streamed block by block (the
        matrix's exact values, before the final rounding to its dtype)."""
        vector = np.asarray(vector, np.float64)
        if len(self.shape) != 2 or vector.shape != (self.shape[1],):
            raise ValueError(f"matvec of {self.shape} by {vector.shape}")
        out = np.zeros(self.shape[0], np.float64)
        for index in block_indices(self.shape):
            rows, cols = index
            out[rows] += np.asarray(self._region(index), np.float64) @ vector[cols]
        return out

    # ---- composition (no data is touched) ---------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def transpose(self, perm=None) -> "WeightExpr":
        perm = tuple(reversed(range(self.ndim))) if perm is None else tuple(int(p) for p in perm)
        if sorted(perm) != list(range(self.ndim)):
            raise ValueError(f"perm {perm} for a rank-{self.ndim} weight")
        if isinstance(self, Transpose):  # one transpose, never a chain
            return self.child.transpose(tuple(self.perm[p] for p in perm))
        return self if perm == tuple(range(self.ndim)) else Transpose(self, perm)

    @property
    def T(self) -> "WeightExpr":  # noqa: N802 (numpy's name)
        return self.transpose()

    def take(self, indices, axis: int) -> "WeightExpr":
        """Entry i along ``axis`` is entry ``indices[i]`` of this weight (a row or column
        permutation, selection or repetition)."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        axis = axis % self.ndim
        n = self.shape[axis]
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"indices outside 0..{n - 1} along axis {axis}")
        if indices.size == n and np.array_equal(indices, np.arange(n)):
            return self
        return Take(self, indices, axis)

    def flip(self, axis: int) -> "WeightExpr":
        """This weight with ``axis`` reversed (e.g. R,G,B input channels read as B,G,R)."""
        return Flip(self, axis % self.ndim)

    def scale(self, factors, axis: int | None = None) -> "WeightExpr":
        """Multiplied by ``factors`` (a scalar, or one value per entry along ``axis``)."""
        return Affine(self, factors, axis, "mul")

    def shift(self, offsets, axis: int | None = None) -> "WeightExpr":
        """Plus ``offsets`` (a scalar, or one value per entry along ``axis``)."""
        return Affine(self, offsets, axis, "add")

    def astype(self, dtype) -> "WeightExpr":
        """Rounded to ``dtype``. The same dtype changes nothing (the result is rounded to it
        anyway; arithmetic before and after stays exact in float64)."""
        dtype = np.dtype(dtype)
        return self if dtype == self.dtype else Cast(self, dtype)

    def __repr__(self) -> str:
        return f"{self.describe()} -> {self.dtype}{list(self.shape)}"

    def describe(self) -> str:
        raise NotImplementedError


# ---- leaves ---------------------------------------------------------------------------------
class HandleLeaf(WeightExpr):
    """A stored weight (memory-mapped source data or an in-memory array), read as it is."""

    def __init__(self, handle):
        self.handle = handle
        self.shape, self.dtype = tuple(handle.shape), np.dtype(handle.dtype)

    def _region(self, index):
        return self.handle.numpy()[index]

    def numpy(self):
        return self.handle.numpy()

    def describe(self):
        return self.handle.key


def leaf_handles(expr: WeightExpr) -> Iterator:
    """The stored weights (WeightHandles) an expression reads."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, HandleLeaf):
            yield node.handle
        child = getattr(node, "child", None)  # every transform has exactly one child
        if child is not None:
            stack.append(child)


class ArrayLeaf(WeightExpr):
    """An array given directly (tests, small generated values)."""

    def __init__(self, array):
        self.array = np.asarray(array)
        self.shape, self.dtype = tuple(self.array.shape), self.array.dtype

    def _region(self, index):
        return self.array[index]

    def numpy(self):
        return self.array

    def describe(self):
        return "array"


class Generated(WeightExpr):
    """Values made on demand by ``fill(index) -> array of that region`` (constant kernels)."""

    def __init__(self, shape, dtype, fill: Callable[[Index], np.ndarray], label: str):
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self.fill, self.label = fill, label

    def _region(self, index):
        return self.fill(index)

    def describe(self):
        return self.label


def constant(shape, value, dtype="float32") -> WeightExpr:
    """``value`` everywhere."""
    return Generated(shape, dtype, lambda index: np.full(_size(index), value, dtype),
                     f"constant({value})")


def sparse(shape, coords, values=1.0, dtype="float32") -> WeightExpr:
    """Zeros except ``values`` (a scalar or one per entry) at ``coords`` (one int array per
    axis): the 0/1 kernels of identity, selection and one-hot convolutions, without a dense
    array until a block is written."""
    shape = tuple(int(d) for d in shape)
    coords = tuple(np.asarray(c, np.int64).reshape(-1) for c in coords)
    if len(coords) != len(shape) or len({c.size for c in coords}) > 1:
        raise ValueError(f"sparse: need {len(shape)} coordinate arrays of one length")
    for axis, (c, d) in enumerate(zip(coords, shape)):
        if c.size and (c.min() < 0 or c.max() >= d):
            raise ValueError(f"sparse: coordinate outside 0..{d - 1} on axis {axis}")
    nnz = coords[0].size if coords else 1
    values = np.broadcast_to(np.asarray(values, dtype), (nnz,))

    def fill(index):
        out = np.zeros(_size(index), dtype)
        inside = np.ones(nnz, bool)
        for c, s in zip(coords, index):
            inside &= (c >= s.start) & (c < s.stop)
        out[tuple(c[inside] - s.start for c, s in zip(coords, index))] = values[inside]
        return out

    return Generated(shape, dtype, fill, f"sparse({nnz} nonzero)")


def identity_kernel(channels: int, kernel=(1, 1), dtype="float32") -> WeightExpr:
    """The (C, C, kh, kw) convolution kernel that copies every channel (1 at the centre tap)."""
    kh, kw = kernel
    c = np.arange(channels)
    return sparse((channels, channels, kh, kw), (c, c, np.full(channels, kh // 2),
                                                 np.full(channels, kw // 2)), 1.0, dtype)


def selection_kernel(picks, in_channels: int, dtype="float32") -> WeightExpr:
    """The (len(picks), C, 1, 1) kernel whose output channel o copies input channel picks[o]
    (Slice/Gather over channels as a 1x1 convolution)."""
    picks = np.asarray(picks, np.int64).reshape(-1)
    zero = np.zeros(picks.size, np.int64)
    return sparse((picks.size, in_channels, 1, 1), (np.arange(picks.size), picks, zero, zero),
                  1.0, dtype)


def as_expr(data) -> WeightExpr:
    """A WeightExpr for a WeightExpr, a WeightHandle (its stored expression, if any) or an
    array."""
    if isinstance(data, WeightExpr):
        return data
    if hasattr(data, "lazy"):
        return data.lazy()
    return ArrayLeaf(data)


# ---- transforms -----------------------------------------------------------------------------
class Transpose(WeightExpr):
    def __init__(self, child: WeightExpr, perm):
        self.child, self.perm = child, tuple(perm)
        self.shape, self.dtype = tuple(child.shape[p] for p in self.perm), child.dtype

    def _region(self, index):
        inner = [None] * len(index)
        for out_axis, in_axis in enumerate(self.perm):
            inner[in_axis] = index[out_axis]
        return _transposed_copy(np.asarray(self.child._region(tuple(inner))), self.perm)

    def describe(self):
        return f"transpose({self.child.describe()}, {list(self.perm)})"


class Take(WeightExpr):
    def __init__(self, child: WeightExpr, indices: np.ndarray, axis: int):
        if isinstance(child, Take) and child.axis == axis:  # a permutation of a permutation
            indices, child = child.indices[indices], child.child
        self.child, self.indices, self.axis = child, indices, axis
        self.shape = _size(_replace(_full(child.shape), axis, slice(0, indices.size)))
        self.dtype = child.dtype

    def _region(self, index):
        wanted = self.indices[index[self.axis]]
        if wanted.size == 0:
            return np.zeros(_size(index), self.dtype)
        lo, hi = int(wanted.min()), int(wanted.max()) + 1
        if hi - lo <= max(4 * wanted.size, 64):  # one read of the span covers the block
            span = np.asarray(self.child._region(_replace(index, self.axis, slice(lo, hi))))
            return np.take(span, wanted - lo, axis=self.axis)
        # Scattered entries (a permutation along the blocked axis): read them one by one, so
        # the memory stays one block's.
        return np.concatenate([np.asarray(self.child._region(
            _replace(index, self.axis, slice(int(i), int(i) + 1)))) for i in wanted],
            axis=self.axis)

    def describe(self):
        return f"take({self.child.describe()}, axis={self.axis})"


class Flip(WeightExpr):
    def __init__(self, child: WeightExpr, axis: int):
        self.child, self.axis = child, axis
        self.shape, self.dtype = child.shape, child.dtype

    def _region(self, index):
        n, s = self.shape[self.axis], index[self.axis]
        inner = _replace(index, self.axis, slice(n - s.stop, n - s.start))
        return np.flip(np.asarray(self.child._region(inner)), self.axis)

    def flip(self, axis):
        return self.child if axis % self.ndim == self.axis else Flip(self, axis % self.ndim)

    def describe(self):
        return f"flip({self.child.describe()}, axis={self.axis})"


class Affine(WeightExpr):
    """child · v or child + v, v a scalar or a vector along ``axis``, in float64."""

    def __init__(self, child: WeightExpr, values, axis, op: str):
        values = np.asarray(values, np.float64)
        if axis is None:
            if values.size != 1:
                raise ValueError("a scale or shift without an axis takes one value")
            values = values.reshape(())
        else:
            axis = axis % child.ndim
            if values.shape != (child.shape[axis],):
                raise ValueError(f"{values.shape} values for axis {axis} of {child.shape}")
        self.child, self.values, self.axis, self.op = child, values, axis, op
        self.shape, self.dtype = child.shape, child.dtype

    def _region(self, index):
        block = np.array(self.child._region(index), np.float64)  # a float64 copy: ours
        v = self.values
        if self.axis is not None:
            v = v[index[self.axis]].reshape((-1,) + (1,) * (self.ndim - 1 - self.axis))
        if self.op == "mul":
            block *= v
        else:
            block += v
        return block

    def describe(self):
        what = "scalar" if self.axis is None else f"axis={self.axis}"
        return f"{'scale' if self.op == 'mul' else 'shift'}({self.child.describe()}, {what})"


class Cast(WeightExpr):
    def __init__(self, child: WeightExpr, dtype):
        self.child, self.dtype, self.shape = child, np.dtype(dtype), child.shape

    def _region(self, index):
        return np.asarray(self.child._region(index)).astype(self.child.dtype, copy=False) \
            .astype(self.dtype, copy=False)

    def describe(self):
        return f"cast({self.child.describe()}, {self.dtype})"
