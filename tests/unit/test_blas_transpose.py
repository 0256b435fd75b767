"""irc.utils.blas_transpose: OpenBLAS's omatcopy through ctypes, bit for bit numpy's transpose,
refusing (not writing out of bounds) any layout it was not made for."""
from __future__ import annotations

import numpy as np
import pytest

from irc.ir import weight_expr as we
from irc.utils import blas_transpose

RNG = np.random.default_rng(3)


def _fast(dtype):
    fast = blas_transpose.transposer(dtype)
    if fast is None:
        pytest.skip("this numpy bundles no OpenBLAS omatcopy (irc uses numpy tiles)")
    return fast


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bands_of_wider_arrays_match_numpy(dtype):
    fast = _fast(dtype)
    src = RNG.standard_normal((301, 517)).astype(dtype)
    out = np.full((530, 320), np.nan, dtype)
    fast(src[7:290, 11:509], out[11:509, 5:288])
    expected = np.full_like(out, np.nan)
    expected[11:509, 5:288] = src[7:290, 11:509].T
    np.testing.assert_array_equal(out, expected)  # NaN outside the band: nothing else written


def test_layouts_it_was_not_made_for_are_refused():
    fast = _fast(np.float32)
    src = RNG.standard_normal((40, 30)).astype(np.float32)
    for bad_src, bad_out in [(src[:, ::2], np.empty((15, 40), np.float32)),   # column stride
                             (src, np.empty((30, 41), np.float32)),           # shape
                             (src, np.empty((40, 30), np.float32).T),         # F-order output
                             (src, np.empty((30, 40), np.float32)[::-1]),     # rows backwards
                             (src[::-1], np.empty((30, 40), np.float32)),     # source backwards
                             (src, np.empty((30, 40), np.float64))]:          # dtype
        assert not blas_transpose.usable(bad_src, bad_out)
        with pytest.raises(ValueError):
            fast(bad_src, bad_out)


def test_other_dtypes_have_no_fast_path():
    assert blas_transpose.transposer(np.float16) is None
    assert blas_transpose.transposer(np.dtype(">f4")) is None


def test_weight_expressions_transpose_the_same_either_way(monkeypatch):
    """The expression a transB=0 weight becomes, read in blocks, with and without omatcopy."""
    _fast(np.float32)
    weight = RNG.standard_normal((2051, 777)).astype(np.float32)
    with_blas = we.ArrayLeaf(weight).T.numpy()
    monkeypatch.setattr(blas_transpose, "transposer", lambda dtype: None)
    with_tiles = we.ArrayLeaf(weight).T.numpy()
    np.testing.assert_array_equal(with_blas, weight.T)
    np.testing.assert_array_equal(with_tiles, weight.T)
