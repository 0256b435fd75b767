"""WeightStore.release_pages: once the weights file is written, the source pages the writer
touched leave the process's resident set (measured per mapping in /proc/self/smaps), and the
values read afterwards are unchanged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from irc.ir.tensors import WeightStore

SMAPS = Path("/proc/self/smaps")


def _resident_kb(address: int) -> int:
    """Rss of the mapping holding ``address``."""
    lines = SMAPS.read_text().splitlines()
    for i, line in enumerate(lines):
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            start, end = (int(x, 16) for x in head.split("-"))
            if start <= address < end:
                rss = next(l for l in lines[i + 1:] if l.startswith("Rss:"))
                return int(rss.split()[1])
    raise AssertionError("mapping not found")


@pytest.mark.skipif(not SMAPS.exists(), reason="needs Linux /proc/self/smaps")
def test_released_pages_leave_the_resident_set_and_values_stay(tmp_path):
    data = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)  # 2 MB
    path = tmp_path / "w.bin"
    data.tofile(path)
    store = WeightStore()
    handle = store.add_lazy(lambda: np.memmap(path, np.float32, "r", shape=data.shape),
                            data.shape, np.float32, hint="w")
    mapped = handle.numpy()
    assert float(mapped.sum()) == pytest.approx(float(data.sum()), rel=1e-5)  # touch every page
    address = mapped.ctypes.data
    assert _resident_kb(address) >= 2000
    assert store.release_pages() >= data.nbytes
    assert _resident_kb(address) == 0
    np.testing.assert_array_equal(handle.numpy(), data)  # read again: the same values


def test_in_memory_weights_are_left_alone():
    store = WeightStore()
    handle = store.add(np.ones((4, 4), np.float32))
    assert store.release_pages() == 0
    np.testing.assert_array_equal(handle.numpy(), np.ones((4, 4)))


def test_save_releases_source_pages_before_the_check(tmp_path, monkeypatch):
    """Verification (the check) runs after the source pages are released; the model's fc
    weight (256 KB, inline in the .onnx file) is memory-mapped, so there is something to drop."""
    import onnx

    from irc.api import compile as compile_model
    from irc.backends.viya.model import ViyaModel
    from irc.utils.onnx_builder import OnnxBuilder

    b = OnnxBuilder("fc", ("N", 256))
    path = tmp_path / "fc.onnx"
    onnx.save(b.build([b.gemm(b.input, 256, 256)]), str(path))
    model = compile_model(str(path))
    events = []
    real = ViyaModel.release_source_pages
    monkeypatch.setattr(ViyaModel, "release_source_pages",
                        lambda self: events.append(("release", real(self))))
    model.save(tmp_path / "out", check=lambda folder: events.append(("check", None)))
    assert [e[0] for e in events] == ["release", "check"]
    assert events[0][1] >= 256 * 256 * 4  # the mapped .onnx file, advised
