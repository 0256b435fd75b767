"""A compiled 2-D transpose from the OpenBLAS that numpy's own wheels bundle, when it is there.

numpy's wheels ship OpenBLAS (the "scipy-openblas" build, 64-bit integers), whose
``cblas_somatcopy`` / ``cblas_domatcopy`` copy a matrix transposed with cache blocking:
measured 0.10 s for a 25088 x 4096 float32 weight on one thread, against 0.19 s for numpy
tile copies on two (a strided copy with a power-of-two row stride misses the cache on most
reads). numpy does not expose it, so it is reached through ctypes, and only when all of these
hold: numpy reports that BLAS build, the library file and the exact ILP64 symbol are present,
and a self-test on a ragged matrix agrees with numpy bit for bit. Anything else (another
numpy build, a platform without the library) leaves :func:`transposer` returning None, and
irc on its numpy tiles: slower, never different.
"""
from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache
from typing import Callable

import numpy as np

_ROW_MAJOR, _TRANS = 101, 112  # CBLAS enum values
_SYMBOLS = {np.dtype(np.float32): ("scipy_cblas_somatcopy64_", ctypes.c_float),
            np.dtype(np.float64): ("scipy_cblas_domatcopy64_", ctypes.c_double)}

Transposer = Callable[[np.ndarray, np.ndarray], None]


def _library() -> ctypes.CDLL | None:
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
    except (AttributeError, KeyError, TypeError):
        return None
    if blas.get("name") != "scipy-openblas" or "USE64BITINT" not in \
            str(blas.get("openblas configuration", "")):
        return None
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    found = sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*.so")))
    if len(found) != 1:
        return None
    try:
        return ctypes.CDLL(found[0])
    except OSError:
        return None


def _bind(lib: ctypes.CDLL, dtype: np.dtype) -> Transposer | None:
    name, scalar = _SYMBOLS[dtype]
    function = getattr(lib, name, None)
    if function is None:
        return None
    function.restype = None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, scalar,
                         ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
    itemsize = dtype.itemsize

    def transpose_into(src: np.ndarray, out: np.ndarray) -> None:
        """out[:, :] = src.T for a (R, C) ``src`` with unit column stride and a C-contiguous
        (C, ...) ``out`` whose rows are at least R long (a column band of a wider array)."""
        if not usable(src, out):  # a wrong stride or shape here would write out of bounds
            raise ValueError(f"omatcopy of {src.shape} {src.strides} into {out.shape} "
                             f"{out.strides}")
        rows, cols = src.shape
        function(_ROW_MAJOR, _TRANS, rows, cols, 1.0, src.ctypes.data,
                 src.strides[0] // itemsize, out.ctypes.data, out.strides[0] // itemsize)

    # Self-test: a ragged band of a wider source into a band of a wider output.
    probe = np.arange(37 * 53, dtype=dtype).reshape(37, 53) * dtype.type(0.5)
    out = np.zeros((45, 60), dtype)
    transpose_into(probe[3:30, 5:46], out[2:43, 7:34])
    expected = np.zeros_like(out)
    expected[2:43, 7:34] = probe[3:30, 5:46].T
    return transpose_into if np.array_equal(out, expected) else None


@lru_cache(maxsize=None)
def transposer(dtype) -> Transposer | None:
    """``transpose_into(src, out)`` for float32/float64 ``dtype``, or None (see the module)."""
    dtype = np.dtype(dtype)
    if dtype not in _SYMBOLS or dtype.byteorder == ">":
        return None
    lib = _library()
    return _bind(lib, dtype) if lib is not None else None


def _rows_forward(array: np.ndarray) -> bool:
    """Unit column stride and a forward row stride of whole elements, at least a row long:
    the only 2-D layout a BLAS leading dimension describes (a negative or overlapping row
    stride would make omatcopy read or write outside the array)."""
    item = array.dtype.itemsize
    return (array.ndim == 2 and array.strides[1] == item and array.strides[0] % item == 0
            and array.strides[0] >= max(array.shape[1], 1) * item)


def usable(src: np.ndarray, out: np.ndarray) -> bool:
    """``src`` and ``out`` are laid out as :func:`transposer`'s function needs."""
    return (src.dtype == out.dtype and _rows_forward(src) and _rows_forward(out)
            and out.shape == (src.shape[1], src.shape[0]))
