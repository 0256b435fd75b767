"""Tensor types and the weight store.

Weights never live inside graph nodes: a constant value holds a :class:`WeightHandle`, a small
key into a :class:`WeightStore`. The store keeps the source's own arrays (memory-mapped files,
views on protobuf bytes) and loads lazy ones on first use. Passes that do not change a weight
pass its handle along; passes that compute a new weight add a new entry. A pass that only
reorders or rescales a weight adds an expression entry (:mod:`irc.ir.weight_expr`): the result
is described, not computed, and writers evaluate it block by block. Copying a graph never
copies weights.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from irc.ir.weight_expr import WeightExpr

# Static shapes only: irc targets Viya, whose layers have fixed sizes. The batch axis is
# carried as the symbol BATCH so that shapes stay ints everywhere else.
BATCH = -1


@dataclass(frozen=True)
class TensorType:
    """Shape and element type of a value. ``BATCH`` (-1) marks the batch axis."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        np.dtype(self.dtype)  # refuses unknown names early

    @property
    def rank(self) -> int:
        return len(self.shape)

    def numel_per_example(self) -> int:
        """Element count with the batch axis taken as 1."""
        n = 1
        for d in self.shape:
            n *= 1 if d == BATCH else d
        return n

    def __str__(self) -> str:
        dims = ",".join("N" if d == BATCH else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


class WeightHandle:
    """A reference to one array in a :class:`WeightStore`. Cheap to copy, never copies data."""

    __slots__ = ("store", "key")

    def __init__(self, store: "WeightStore", key: str):
        self.store = store
        self.key = key

    @property
    def shape(self) -> tuple[int, ...]:
        return self.store.meta(self.key)[0]

    @property
    def dtype(self) -> np.dtype:
        return self.store.meta(self.key)[1]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def numpy(self) -> np.ndarray:
        """The array itself (read-only where the source is read-only). Do not mutate it.
        An expression entry is computed here, in full: big weights go through :meth:`lazy`."""
        return self.store.load(self.key)

    def lazy(self) -> "WeightExpr":
        """The weight as an expression to compose transforms on, without touching data."""
        return self.store.lazy(self.key)

    @property
    def is_expr(self) -> bool:
        """True when the weight is a described transform, computed only when read."""
        return self.store.is_expr(self.key)

    def __repr__(self) -> str:
        return f"WeightHandle({self.key!r}, {self.shape}, {self.dtype})"


class WeightStore:
    """Arrays by key. Entries are arrays (memory-mapped or in memory), lazy loaders, or
    expressions over other entries (computed on read, never kept when large)."""

    # An expression read whole with numpy() is kept when at most this big (passes reading a
    # small folded vector twice); a large one is computed again rather than held.
    EXPR_CACHE_BYTES = 1 << 20

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}
        self._loaders: dict[str, Callable[[], np.ndarray]] = {}
        self._exprs: dict[str, "WeightExpr"] = {}
        self._meta: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self._counter = itertools.count()

    def _fresh_key(self, hint: str) -> str:
        key = hint or "w"
        while key in self._meta:
            key = f"{hint}.{next(self._counter)}"
        return key

    def add(self, array, hint: str = "w") -> WeightHandle:
        """Store ``array`` (no copy is made), or a :class:`WeightExpr`, and return its handle."""
        from irc.ir.weight_expr import WeightExpr

        if isinstance(array, WeightExpr):
            return self.add_expr(array, hint)
        array = np.asarray(array)
        key = self._fresh_key(hint)
        self._arrays[key] = array
        self._meta[key] = (tuple(array.shape), array.dtype)
        return WeightHandle(self, key)

    def add_lazy(self, loader: Callable[[], np.ndarray], shape, dtype, hint: str = "w") -> WeightHandle:
        """Store a loader called on first use; shape and dtype are known without loading."""
        key = self._fresh_key(hint)
        self._loaders[key] = loader
        self._meta[key] = (tuple(int(d) for d in shape), np.dtype(dtype))
        return WeightHandle(self, key)

    def add_expr(self, expr: "WeightExpr", hint: str = "w") -> WeightHandle:
        """Store a weight described by ``expr``; an expression that is just another entry of
        this store gives back that entry's handle."""
        from irc.ir.weight_expr import HandleLeaf

        if isinstance(expr, HandleLeaf) and expr.handle.store is self:
            return expr.handle
        key = self._fresh_key(hint)
        self._exprs[key] = expr
        self._meta[key] = (tuple(expr.shape), np.dtype(expr.dtype))
        return WeightHandle(self, key)

    def lazy(self, key: str) -> "WeightExpr":
        from irc.ir.weight_expr import HandleLeaf

        expr = self._exprs.get(key)
        return expr if expr is not None else HandleLeaf(WeightHandle(self, key))

    def is_expr(self, key: str) -> bool:
        return key in self._exprs

    def meta(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        return self._meta[key]

    def load(self, key: str) -> np.ndarray:
        array = self._arrays.get(key)
        if array is None and key in self._exprs:
            array = self._exprs[key].numpy()
            if array.nbytes <= self.EXPR_CACHE_BYTES:
                self._arrays[key] = array
            return array
        if array is None:
            array = self._loaders.pop(key)()
            shape, dtype = self._meta[key]
            if tuple(array.shape) != shape or array.dtype != dtype:
                raise ValueError(f"weight {key!r}: loader gave {array.shape} {array.dtype}, "
                                 f"declared {shape} {dtype}")
            self._arrays[key] = array
        return array

    def release_pages(self) -> int:
        """Drop the pages this process touched in memory-mapped source files from its resident
        set (madvise DONTNEED). They stay in the page cache, and a later read maps them again,
        so values are unchanged; what changes is that a step that no longer reads the source
        (verification reads the written files) does not carry it in its peak RSS. Returns the
        bytes of mapping advised."""
        import mmap

        advised: dict[int, int] = {}
        for array in self._arrays.values():
            mapped = getattr(array, "_mmap", None)  # where numpy.memmap keeps its mmap.mmap
            if mapped is None or id(mapped) in advised or not hasattr(mapped, "madvise"):
                continue
            try:
                mapped.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # closed, or not supported here: nothing to gain
                continue
            advised[id(mapped)] = len(mapped)
        return sum(advised.values())

    def is_loaded(self, key: str) -> bool:
        return key in self._arrays

    def __contains__(self, key: str) -> bool:
        return key in self._meta

    def __len__(self) -> int:
        return len(self._meta)
