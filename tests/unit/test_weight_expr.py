"""Lazy weight expressions (irc.ir.weight_expr) against NumPy, on blocks small enough that every
transform crosses block boundaries; and the places that stream them (store, HDF5, ONNX export)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from onnx import numpy_helper

from irc.ir import weight_expr as we
from irc.ir.graph import Graph
from irc.ir.onnx_export import _initializer
from irc.ir.tensors import TensorType, WeightStore

RNG = np.random.default_rng(7)
W2 = RNG.standard_normal((37, 53)).astype(np.float32)
W4 = RNG.standard_normal((6, 5, 3, 4)).astype(np.float32)
TINY = 8 * 40  # 40 float64 elements a block: blocks cut rows and, for W4, inner axes


def _blocked(expr, max_bytes=TINY) -> np.ndarray:
    """The expression assembled from its blocks, checking every block stays within budget."""
    out = np.full(expr.shape, np.nan, expr.dtype)
    seen = np.zeros(expr.shape, int)
    for index, block in expr.blocks(max_bytes):
        assert block.size <= max(1, max_bytes // 8)
        assert block.dtype == expr.dtype and block.flags.c_contiguous
        out[index] = block
        seen[index] += 1
    assert (seen == 1).all()  # every entry exactly once
    return out


def test_block_indices_cover_in_c_order():
    idx = list(we.block_indices((4, 3, 10), 8, 8 * 7))
    assert idx[0] == (slice(0, 1), slice(0, 1), slice(0, 7))
    assert idx[1] == (slice(0, 1), slice(0, 1), slice(7, 10))
    assert len(idx) == 4 * 3 * 2
    assert list(we.block_indices((5, 4), 8, 8 * 9)) == [(slice(0, 2), slice(0, 4)),
                                                         (slice(2, 4), slice(0, 4)),
                                                         (slice(4, 5), slice(0, 4))]


@pytest.mark.parametrize("build, expected", [
    (lambda e: e.T, W2.T),
    (lambda e: e.T.T, W2),
    (lambda e: e.flip(1), W2[:, ::-1]),
    (lambda e: e.flip(0).flip(0), W2),
    (lambda e: e.take(np.arange(53)[::-1], axis=1), W2[:, ::-1]),
    (lambda e: e.take([3, 3, 0, 36], axis=0), W2[[3, 3, 0, 36]]),
    (lambda e: e.take(RNG.permutation(37), axis=0), None),  # scattered: read one by one
    (lambda e: e.T.take(np.arange(37)[::-1], axis=1), W2.T[:, ::-1]),
])
def test_reorderings_match_numpy_bit_for_bit(build, expected):
    expr = build(we.ArrayLeaf(W2))
    if expected is None:
        expected = W2[expr.indices]
    np.testing.assert_array_equal(_blocked(expr), expected)
    np.testing.assert_array_equal(expr.numpy(), expected)


def test_four_d_transpose_and_channel_reversal():
    expr = we.ArrayLeaf(W4).transpose((2, 0, 3, 1)).flip(1)
    np.testing.assert_array_equal(_blocked(expr), W4.transpose(2, 0, 3, 1)[:, ::-1])


def test_transposes_copied_on_several_threads_match_numpy(monkeypatch):
    """Blocks past the threading threshold are split by tile rows across threads; ragged
    sizes (not multiples of the tile or of the thread count) must still land exactly."""
    monkeypatch.setattr(we, "_THREADED_BYTES", 1)
    monkeypatch.setattr(we, "_COPY_THREADS", 3)
    big = RNG.standard_normal((1031, 517)).astype(np.float32)
    np.testing.assert_array_equal(we.ArrayLeaf(big).T.numpy(), big.T)
    cube = RNG.standard_normal((300, 7, 259)).astype(np.float32)
    np.testing.assert_array_equal(we.ArrayLeaf(cube).transpose((2, 0, 1)).numpy(),
                                  cube.transpose(2, 0, 1))


def test_hwc_to_chw_column_permutation():
    from irc.passes.defs.flatten import _chw_columns

    c, h, w, n = 3, 2, 4, 5
    x_chw = RNG.standard_normal((c, h, w))
    weight = RNG.standard_normal((n, 2 + c * h * w + 1)).astype(np.float32)
    permuted = we.ArrayLeaf(weight).take(_chw_columns(weight.shape[1], c, h, w, 2), axis=1)
    flat_hwc = np.concatenate([[1.0, 2.0], x_chw.transpose(1, 2, 0).reshape(-1), [3.0]])
    flat_chw = np.concatenate([[1.0, 2.0], x_chw.reshape(-1), [3.0]])
    np.testing.assert_allclose(_blocked(permuted) @ flat_chw, weight @ flat_hwc, rtol=1e-6)


def test_scale_and_shift_in_float64_rounded_once():
    s = RNG.uniform(0.5, 2.0, 53)
    t = RNG.uniform(-1, 1, 37)
    expr = we.ArrayLeaf(W2).scale(s, axis=1).shift(t, axis=0).scale(3.0)
    exact = (W2.astype(np.float64) * s + t[:, None]) * 3.0
    np.testing.assert_array_equal(_blocked(expr), exact.astype(np.float32))
    # an explicit astype is an intermediate rounding point
    rounded = we.ArrayLeaf(W2).scale(s, axis=1).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(_blocked(rounded),
                                  (W2 * s).astype(np.float32).astype(np.float16)
                                  .astype(np.float32))


def test_per_output_channel_scale_on_conv_kernel():
    s = RNG.uniform(0.5, 2.0, 6)
    expr = we.ArrayLeaf(W4).scale(s, axis=0)
    np.testing.assert_array_equal(_blocked(expr),
                                  (W4 * s[:, None, None, None]).astype(np.float32))


def test_matvec_streams_exact_values():
    b = RNG.standard_normal(53)
    expr = we.ArrayLeaf(W2).scale(RNG.uniform(0.5, 2, 53), axis=1)
    s = expr.values
    np.testing.assert_allclose(expr.matvec(b), (W2.astype(np.float64) * s) @ b, rtol=1e-12)


def test_generated_kernels():
    eye = we.identity_kernel(5, (3, 3))
    dense = np.zeros((5, 5, 3, 3), np.float32)
    dense[np.arange(5), np.arange(5), 1, 1] = 1
    np.testing.assert_array_equal(_blocked(eye, 8 * 7), dense)
    pick = we.selection_kernel([2, 0, 2], 4)
    assert pick.shape == (3, 4, 1, 1)
    np.testing.assert_array_equal(pick.numpy()[:, :, 0, 0], np.eye(4, dtype=np.float32)[[2, 0, 2]])
    np.testing.assert_array_equal(_blocked(we.constant((7, 9), 0.5)), np.full((7, 9), 0.5))
    with pytest.raises(ValueError):
        we.sparse((2, 2), ([0], [2]))


def test_store_entries_compose_and_read_back():
    store = WeightStore()
    src = store.add(W2, "w")
    assert store.add_expr(src.lazy()).key == src.key  # untransformed: not a new entry
    t = store.add(src.lazy().T, "w_t")
    assert t.is_expr and t.shape == (53, 37) and not store.is_loaded(t.key)
    back = store.add(t.lazy().T, "w_tt")  # composed: one transpose of a transpose is none
    assert back.key == src.key and len(store) == 2
    np.testing.assert_array_equal(t.numpy(), W2.T)  # graph.const still works, on demand
    assert store.is_loaded(t.key) == (W2.nbytes <= store.EXPR_CACHE_BYTES)


def test_large_expression_is_not_kept_after_a_whole_read():
    store = WeightStore()
    big = store.add(np.ones((600, 600), np.float32), "big")  # 1.4 MB, past the cache size
    t = store.add(big.lazy().scale(2.0), "big_x2")
    assert t.numpy()[0, 0] == 2.0 and not store.is_loaded(t.key)


def test_hdf5_writer_streams_expressions(tmp_path):
    from irc.backends.viya.hdf5 import write_weights
    from irc.backends.viya.model import LazyWeight, LoweredLayer, ViyaModel

    store = WeightStore()
    handle = store.add(W2.T.copy(), "w_in_out")
    expr = handle.lazy().T.scale(np.linspace(1, 2, 53), axis=1)
    layer = LoweredLayer("fc1", "fc", {"n": 37}, [], {"kernel": LazyWeight.of(expr),
                                                  "bias": LazyWeight((37,), lambda: np.ones(37))})
    assert LazyWeight.of(handle).expr is not None  # lowering's form streams too
    write_weights(ViyaModel("m", [layer]), tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        kernel = f["fc1/fc1/kernel:0"][()]
    np.testing.assert_array_equal(kernel, (W2 * np.linspace(1, 2, 53)).astype(np.float32))


def test_hdf5_writer_thread_writes_every_block_in_place(tmp_path, monkeypatch):
    """Blocks go to the file on the writer thread while the next is computed: with blocks of
    a few rows, a transposed weight must still land whole and in place."""
    from irc.backends.viya import hdf5
    from irc.backends.viya.model import LazyWeight, LoweredLayer, ViyaModel

    real_blocks = LazyWeight.blocks
    monkeypatch.setattr(LazyWeight, "blocks", lambda self, max_bytes=TINY * 10:
                        real_blocks(self, max_bytes))
    layer = LoweredLayer("fc1", "fc", {"n": 53}, [], {"kernel": LazyWeight.of(we.ArrayLeaf(W2).T)})
    assert len(list(layer.weights["kernel"].blocks())) > 5
    hdf5.write_weights(ViyaModel("m", [layer]), tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        np.testing.assert_array_equal(f["fc1/fc1/kernel:0"][()], W2.T)


def test_hdf5_writer_thread_failure_is_raised_in_the_caller():
    from irc.backends.viya.hdf5 import _BackgroundWrites

    class Refusing:
        def __setitem__(self, index, block):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with _BackgroundWrites() as writes:
            for _ in range(3):
                writes.put(Refusing(), (slice(0, 1),), np.ones(1, np.float32))


def test_hdf5_writer_refuses_non_finite_values_of_an_expression(tmp_path):
    from irc.backends.viya import hdf5
    from irc.backends.viya.model import LazyWeight, LoweredLayer, ViyaModel
    from irc.errors import InvalidModel

    bad = W2.copy()
    bad[-1, -1] = np.inf
    layer = LoweredLayer("fc1", "fc", {"n": 53}, [],
                      {"kernel": LazyWeight.of(we.ArrayLeaf(bad).T)})
    with pytest.raises(InvalidModel, match="NaN or infinite"):
        hdf5.write_weights(ViyaModel("m", [layer]), tmp_path / "w.h5")


def test_onnx_export_reads_expressions():
    g = Graph("g")
    g.add_input("x", TensorType((-1, 37)))
    w = g.add_const("w", g.weights.add(we.ArrayLeaf(W2).T.flip(0), "w")).name
    g.add_node("MatMul", ["x", w], [("y", TensorType((-1, 53)))], name="mm")
    tensor = _initializer(g.value(w).const, w)
    np.testing.assert_array_equal(numpy_helper.to_array(tensor), W2.T[::-1])
