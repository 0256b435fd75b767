"""Worker threads (the HDF5 writer, the transpose tiles) leave SIGINT/SIGTERM to the main
thread: a signal the kernel handed to a worker would wait, unhandled, while the main thread
sleeps or blocks (seen: a Ctrl-C during a paused write hanging for a minute)."""
from __future__ import annotations

import signal
import threading

import numpy as np
import pytest

from irc.utils.threads import signals_blocked_while_starting

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX only")


def _mask() -> set:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_threads_started_inside_block_the_signals_and_the_caller_keeps_its_mask():
    before = _mask()
    seen = {}
    with signals_blocked_while_starting():
        worker = threading.Thread(target=lambda: seen.update(mask=_mask()))
        worker.start()
    worker.join()
    assert {signal.SIGINT, signal.SIGTERM} <= seen["mask"]
    assert _mask() == before and signal.SIGINT not in before


def test_the_hdf5_writer_thread_blocks_the_signals():
    from irc.backends.viya.hdf5 import _BackgroundWrites

    seen = {}

    class Recording:
        def __setitem__(self, index, block):
            seen["mask"] = _mask()

    with _BackgroundWrites() as writes:
        writes.put(Recording(), (slice(0, 1),), np.ones(1, np.float32))
    assert {signal.SIGINT, signal.SIGTERM} <= seen["mask"]


@pytest.mark.parametrize("path", ["numpy tiles", "omatcopy"])
def test_transpose_threads_block_the_signals(monkeypatch, path):
    from irc.ir import weight_expr as we

    masks = []
    monkeypatch.setattr(we, "_THREADED_BYTES", 1)
    monkeypatch.setattr(we, "_COPY_THREADS", 2)
    if path == "numpy tiles":
        real_empty = np.empty

        class Spy(np.ndarray):  # records the mask of every thread that writes a tile
            def __setitem__(self, key, value):
                masks.append((threading.current_thread() is threading.main_thread(), _mask()))
                super().__setitem__(key, value)

        monkeypatch.setattr(we.blas_transpose, "transposer", lambda dtype: None)
        monkeypatch.setattr(we.np, "empty", lambda *a, **k: real_empty(*a, **k).view(Spy))
    else:
        real = we.blas_transpose.transposer(np.float32)
        if real is None:
            pytest.skip("this numpy bundles no OpenBLAS omatcopy (irc uses numpy tiles)")

        def recording(src, out):
            masks.append((threading.current_thread() is threading.main_thread(), _mask()))
            real(src, out)
        monkeypatch.setattr(we.blas_transpose, "transposer", lambda dtype: recording)
    data = np.arange(3000 * 300, dtype=np.float32).reshape(3000, 300)
    out = we._transposed_copy(data, (1, 0))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.asarray(out), data.T)
    workers = [mask for on_main, mask in masks if not on_main]
    assert workers and all({signal.SIGINT, signal.SIGTERM} <= m for m in workers)
