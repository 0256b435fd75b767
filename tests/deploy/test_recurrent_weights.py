"""Recurrent models through the stand-in, every kind (RNN, LSTM, GRU reset-before and
reset-after) one-way and bidirectional; the weights the stand-in imported are compared VALUE by
value with the layout viya-target.md §5.5 states, computed here from the ONNX source's own
W, R, B (not from irc's code):

- kernel (d, G*n) and recurrent_kernel (n, G*n): the transposed per-gate blocks, in Keras gate
  order (LSTM i, f, c, o; GRU z, r, h; RNN one block); ONNX holds LSTM gates as i, o, f, c and
  GRU gates as z, r, h;
- bias (G*n) = input bias + recurrent bias, except a reset-after GRU (ONNX
  linear_before_reset=1): bias (2, 3n), row 0 the input bias, row 1 the recurrent bias;
- bidirectional: two layers on the same source, the forward one (reversed false) with ONNX
  direction 0, the backward one (reversed true) with direction 1, listed in that order.

Tolerance: the bias sum is one float32 addition (irc may add in another precision): 1 ulp
(rtol 1e-6); kernels are copies: exact.
"""
from __future__ import annotations

import io
import json
import tempfile

import h5py
import numpy as np
import pytest
from onnx import numpy_helper

import irc
from irc.backends.viya.deploy import deploy
from tests.deploy.fake_cas import FakeCAS
from tests.recurrent.conftest import onnx_recurrent

KERAS_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [0, 1, 2], "RNN": [0]}  # ONNX gate block per Keras


def _blocks(a: np.ndarray, op: str, n: int) -> list[np.ndarray]:
    """The (n, ...) gate blocks of an ONNX (G*n, ...) array, in Keras order."""
    return [a[g * n:(g + 1) * n] for g in KERAS_ORDER[op]]


def expected(source, op: str, direction: int, n: int, reset_after: bool) -> dict:
    weights = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer}
    w, r, b = weights["W"][direction], weights["R"][direction], weights["B"][direction]
    g = len(KERAS_ORDER[op])
    wb, rb = b[:g * n], b[g * n:]
    kernel = np.concatenate([blk.T for blk in _blocks(w, op, n)], axis=1)
    recurrent = np.concatenate([blk.T for blk in _blocks(r, op, n)], axis=1)
    wb_k = np.concatenate(_blocks(wb, op, n))
    rb_k = np.concatenate(_blocks(rb, op, n))
    bias = np.stack([wb_k, rb_k]) if reset_after else wb_k + rb_k
    return {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}


CASES = [("RNN", "forward", {}), ("RNN", "bidirectional", {}),
         ("GRU", "forward", {}), ("GRU", "forward", {"linear_before_reset": 1}),
         ("GRU", "bidirectional", {}), ("LSTM", "forward", {}), ("LSTM", "bidirectional", {})]


@pytest.mark.parametrize("op,direction,attrs", CASES)
def test_imported_weights_have_the_spec_layout(tmp_path, op, direction, attrs):
    source = onnx_recurrent(op, direction, head="state", extra_attrs=attrs)
    out = tmp_path / "seq"
    irc.compile(source, name="seq").save(out)
    conn = FakeCAS(caslibs={"CASUSER": tempfile.mkdtemp(dir=tmp_path)})
    report = deploy(out, conn)
    assert not conn.violations and report.check.ok
    assert conn.params("deepLearn.buildModel")[0]["type"] == "RNN"
    layers = [c for c in json.loads((out / "model.json").read_text())["addLayer"]
              if c["layer"]["type"] == "recurrent"]
    assert [c["layer"]["rnntype"] for c in layers] == [op.lower()] * len(layers)
    assert [c["layer"]["reversed"] for c in layers] == (
        [False, True] if direction == "bidirectional" else [False])
    n = 5
    reset_after = bool(attrs.get("linear_before_reset"))
    with h5py.File(io.BytesIO(conn.models["seq"]["h5"]), "r") as f:  # what the server read
        names = [x.decode() for x in f.attrs["layer_names"]]
        assert [c["name"] for c in layers] == [x for x in names if x != "dense"]
        for d, call in enumerate(layers):
            name = call["name"]
            order = [x.decode() for x in f[name].attrs["weight_names"]]
            assert order == [f"{name}/{p}:0" for p in ("kernel", "recurrent_kernel", "bias")]
            want = expected(source, op, d, n, reset_after)
            got = {p: f[name][name][f"{p}:0"][...] for p in want}
            assert np.array_equal(got["kernel"], want["kernel"]), name
            assert np.array_equal(got["recurrent_kernel"], want["recurrent_kernel"]), name
            assert got["bias"].shape == want["bias"].shape, name
            np.testing.assert_allclose(got["bias"], want["bias"], rtol=1e-6, atol=0)


def test_the_value_check_is_live(tmp_path):
    """Injected: the LSTM's gate blocks written in ONNX order (i, o, f, c) instead of Keras's;
    shapes stay right (the stand-in's shape checks pass), the value comparison fails, and the
    server-side check of the same folder reports a mismatch."""
    source = onnx_recurrent("LSTM", "forward", head="state")
    out = tmp_path / "seq"
    irc.compile(source, name="seq").save(out)
    path = out / "seq_weights.kerasmodel.h5"
    with h5py.File(path, "r+") as f:
        k = f["rnn"]["rnn"]["kernel:0"]
        blocks = [k[:, g * 5:(g + 1) * 5] for g in range(4)]
        k[...] = np.concatenate([blocks[0], blocks[3], blocks[1], blocks[2]], axis=1)
    conn = FakeCAS(caslibs={"CASUSER": tempfile.mkdtemp(dir=tmp_path)})
    report = deploy(out, conn)
    assert not conn.violations  # the shapes are the spec's
    with h5py.File(io.BytesIO(conn.models["seq"]["h5"]), "r") as f:
        got = f["rnn"]["rnn"]["kernel:0"][...]
    assert not np.array_equal(got, expected(source, "LSTM", 0, 5, False)["kernel"])
    assert report.check_failed and report.check.first_bad == "rnn"
