"""Resource limits: refuse, before allocating, what a model declares but memory cannot hold.

A model file is untrusted input. A 40-byte ONNX file can declare an initializer of shape
(10**12, 10**12) or an input of 10**6 x 10**6 pixels; numpy then either raises a bare
``MemoryError``/``ValueError`` (a traceback, not an irc error) or, worse, succeeds lazily and the
process is killed when the pages are touched. The loaders, the importer and verify call the
checks here first, with the sizes the model declares, so such a model is refused with one
message naming the file, the node and the limit.

Limits (bytes or counts; every one can be overridden by an environment variable):

=============================  ====================================  ===============================
what                           default                               environment variable
=============================  ====================================  ===============================
one declared tensor            50% of physical RAM                   ``IRC_MAX_TENSOR_BYTES``
all activations x batch        50% of physical RAM                   ``IRC_MAX_ACTIVATION_BYTES``
graph nodes                    100 000                               ``IRC_MAX_NODES``
graph depth (longest chain)    10 000                                ``IRC_MAX_GRAPH_DEPTH``
reading a Keras .h5's metadata 60 seconds                            ``IRC_H5_READ_SECONDS``
=============================  ====================================  ===============================

Byte limits accept a plain integer or one with a K/M/G/T suffix (powers of 1024), e.g.
``IRC_MAX_TENSOR_BYTES=2G``. Sizes are computed with Python integers, so dimensions whose
product overflows int64 (and wraps to a small, plausible number in numpy) are still caught.
"""
from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Sequence

import numpy as np

from irc.errors import InvalidModel, IrcError

DEFAULT_MAX_NODES = 100_000
DEFAULT_MAX_DEPTH = 10_000
DEFAULT_H5_READ_SECONDS = 60
_RAM_FRACTION = 0.5
_FALLBACK_RAM = 8 << 30  # when the platform cannot say how much memory it has
_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class ResourceLimitExceeded(IrcError):
    """The model declares a tensor, an activation budget or a graph larger than irc allows."""

    kind = "resource limit"


# ---- the limits ---------------------------------------------------------------------------


def physical_ram() -> int:
    """Bytes of physical memory (``os.sysconf``); a fixed 8 GiB where the platform lacks it."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_RAM
    if pages <= 0 or page_size <= 0:
        return _FALLBACK_RAM
    return int(pages) * int(page_size)


def _env_int(variable: str, default: int, *, suffixes: bool) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    text, factor = raw.replace("_", ""), 1
    if suffixes and text[-1:].upper() in _SUFFIXES:
        text, factor = text[:-1], _SUFFIXES[text[-1].upper()]
    if suffixes and text[-1:].upper() == "B" and text[-2:-1].upper() in _SUFFIXES:
        text, factor = text[:-2], _SUFFIXES[text[-2].upper()]  # "2GB"
    try:
        value = int(text) * factor
    except ValueError:
        raise ResourceLimitExceeded(
            f"environment variable {variable}={raw!r} is not a whole number"
            + (" (a K/M/G/T suffix is allowed)" if suffixes else ""),
            hint=f"unset {variable} or give e.g. {variable}=" + ("4G" if suffixes else "100000")
        ) from None
    if value <= 0:
        raise ResourceLimitExceeded(f"environment variable {variable}={raw!r} must be positive",
                                    hint=f"unset {variable} to use the default")
    return value


def max_tensor_bytes() -> int:
    """The largest single tensor irc will allocate (``IRC_MAX_TENSOR_BYTES``)."""
    return _env_int("IRC_MAX_TENSOR_BYTES", int(physical_ram() * _RAM_FRACTION), suffixes=True)


def max_activation_bytes() -> int:
    """The largest sum of layer activations verify will execute (``IRC_MAX_ACTIVATION_BYTES``)."""
    return _env_int("IRC_MAX_ACTIVATION_BYTES", int(physical_ram() * _RAM_FRACTION),
                    suffixes=True)


def max_nodes() -> int:
    return _env_int("IRC_MAX_NODES", DEFAULT_MAX_NODES, suffixes=False)


def max_depth() -> int:
    return _env_int("IRC_MAX_GRAPH_DEPTH", DEFAULT_MAX_DEPTH, suffixes=False)


def h5_read_seconds() -> int:
    """How long reading a Keras .h5 file's attributes may take (``IRC_H5_READ_SECONDS``):
    libhdf5 can spin forever on a damaged file, so irc reads them in a child it can stop."""
    return _env_int("IRC_H5_READ_SECONDS", DEFAULT_H5_READ_SECONDS, suffixes=False)


def format_bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# ---- sizes --------------------------------------------------------------------------------


def itemsize(dtype) -> int:
    """Bytes per element of a numpy dtype, a dtype name, or an ONNX ``TensorProto`` type code."""
    if isinstance(dtype, numbers.Integral) and not isinstance(dtype, (bool, np.bool_)):
        from onnx import helper

        try:
            return np.dtype(helper.tensor_dtype_to_np_dtype(int(dtype))).itemsize
        except (KeyError, TypeError, ValueError):
            raise InvalidModel(f"unknown ONNX element type {int(dtype)}",
                               hint="the file may be corrupt") from None
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        raise InvalidModel(f"unknown element type {dtype!r}") from None


def element_count(shape: Iterable, what: str = "tensor", file: str | None = None,
                  node: str | None = None, allow_empty: bool = False) -> int:
    """The number of elements of ``shape``, as an exact Python integer.

    Every dimension must be a fixed integer >= 1 (>= 0 with ``allow_empty``); anything else is
    :class:`~irc.errors.InvalidModel` naming ``what``.
    """
    dims = list(shape)
    count = 1
    for axis, d in enumerate(dims):
        if type(d) is not int and (isinstance(d, (bool, np.bool_)) or  # ABC checks are slow
                                   not isinstance(d, numbers.Integral)):
            raise InvalidModel(f"{what} has dimension {d!r} at axis {axis} of shape "
                               f"{_show(dims)}; a fixed integer size is needed", file=file,
                               node=node, hint="give the model fixed sizes (--input-shape for "
                                               "inputs)")
        d = int(d)
        if d < 0 or (d == 0 and not allow_empty):
            raise InvalidModel(f"{what} has {'a negative' if d < 0 else 'a zero'} dimension "
                               f"({d} at axis {axis} of shape {_show(dims)})", file=file,
                               node=node, hint="the file is corrupt, or the shape was not "
                                               "fixed when it was exported")
        count *= d
    return count


def tensor_bytes(shape: Iterable, dtype, what: str = "tensor", file: str | None = None,
                 node: str | None = None, allow_empty: bool = False) -> int:
    """Bytes a tensor of ``shape`` and ``dtype`` occupies (exact; validates the dims)."""
    return element_count(shape, what, file, node, allow_empty) * itemsize(dtype)


def check_tensor_bytes(shape: Iterable, dtype, what: str = "tensor", file: str | None = None,
                       node: str | None = None, *, allow_empty: bool = False,
                       limit: int | None = None) -> int:
    """Refuse a declared tensor larger than the limit, before anything allocates it.

    Returns its size in bytes. Raises :class:`~irc.errors.InvalidModel` for a negative, zero
    (unless ``allow_empty``) or non-integer dimension and :class:`ResourceLimitExceeded` when
    the tensor is larger than ``limit`` (default :func:`max_tensor_bytes`).
    """
    dims = list(shape)
    size = tensor_bytes(dims, dtype, what, file, node, allow_empty)
    limit = max_tensor_bytes() if limit is None else limit
    if size > limit:
        raise ResourceLimitExceeded(
            f"{what} of shape {_show(dims)} would take {format_bytes(size)}, more than the "
            f"{format_bytes(limit)} irc allows for one tensor", file=file, node=node,
            hint="the file is corrupt or the shape is wrong; if the model really is this "
                 "large, raise IRC_MAX_TENSOR_BYTES (bytes, K/M/G/T suffixes allowed)")
    return size


def check_activation_budget(layer_shapes, batch: int, file: str | None = None,
                            node: str | None = None, *, limit: int | None = None) -> int:
    """Refuse executing a model whose activations (float32, all layers, x ``batch``) exceed
    the limit; returns the total in bytes.

    ``layer_shapes``: per-example output shapes, a mapping {layer: shape} or an iterable of
    shapes (the reference executor keeps every layer's output when verifying). A mapping lets
    the message name the largest layer.
    """
    items = (list(layer_shapes.items()) if hasattr(layer_shapes, "items")
             else [(None, s) for s in layer_shapes])
    if isinstance(batch, (bool, np.bool_)) or not isinstance(batch, numbers.Integral) \
            or batch < 1:
        raise InvalidModel(f"batch size {batch!r} must be a whole number >= 1", file=file,
                           node=node)
    total, largest = 0, (None, 0)
    for name, shape in items:
        what = f"layer {name!r} output" if name is not None else "a layer output"
        size = tensor_bytes(shape, np.float32, what, file, name or node) * int(batch)
        total += size
        if size > largest[1]:
            largest = (name, size)
    limit = max_activation_bytes() if limit is None else limit
    if total > limit:
        biggest = (f"; the largest is layer {largest[0]!r} with {format_bytes(largest[1])}"
                   if largest[0] is not None else "")
        raise ResourceLimitExceeded(
            f"executing {len(items)} layer(s) with batch {batch} needs {format_bytes(total)} of "
            f"float32 activations, more than the {format_bytes(limit)} allowed{biggest}",
            file=file, node=node,
            hint="verify with a smaller batch (irc verify --batch 1), fix the input shape, or "
                 "raise IRC_MAX_ACTIVATION_BYTES")
    return total


# ---- graphs -------------------------------------------------------------------------------


def graph_depth(nodes: Iterable[tuple[Iterable[str], Iterable[str]]]) -> int:
    """The longest chain of nodes, for ``nodes`` given as (inputs, outputs) in topological order.

    Values produced by no node (graph inputs, initializers) have depth 0; iterative, so a
    100 000-node chain needs no recursion.
    """
    depth_of: dict[str, int] = {}
    deepest = 0
    for inputs, outputs in nodes:
        d = 1 + max((depth_of.get(i, 0) for i in inputs if i), default=0)
        for o in outputs:
            if o:
                depth_of[o] = d
        deepest = max(deepest, d)
    return deepest


def check_graph_size(n_nodes: int, depth: int | None = None, file: str | None = None, *,
                     limit_nodes: int | None = None, limit_depth: int | None = None) -> None:
    """Refuse a graph with more than ``IRC_MAX_NODES`` nodes or a chain deeper than
    ``IRC_MAX_GRAPH_DEPTH`` (see :func:`graph_depth`)."""
    limit_nodes = max_nodes() if limit_nodes is None else limit_nodes
    limit_depth = max_depth() if limit_depth is None else limit_depth
    if n_nodes > limit_nodes:
        raise ResourceLimitExceeded(
            f"the graph has {n_nodes:,} nodes, more than the {limit_nodes:,} irc allows",
            file=file, hint="raise IRC_MAX_NODES if the model really is this large")
    if depth is not None and depth > limit_depth:
        raise ResourceLimitExceeded(
            f"the graph is {depth:,} nodes deep, more than the {limit_depth:,} irc allows",
            file=file, hint="raise IRC_MAX_GRAPH_DEPTH if the model really is this deep")


def _show(dims: Sequence) -> str:
    text = "x".join(str(d) for d in dims) or "scalar"
    return text if len(text) <= 80 else text[:77] + "..."
