"""The executor's recurrent kernels against onnxruntime single-op graphs (an independent
implementation), its open-point options, and reading recurrent layers from files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from irc.backends.viya.executor import ExecutorOptions, rnn
from irc.errors import InvalidModel, UnsupportedOp
from tests.recurrent.conftest import GATES, assert_close, sequences

TABLES = Path(__file__).resolve().parents[1] / "fixtures" / "viya-tables"
CELL = {"RNN": rnn._rnn_step, "LSTM": rnn._lstm_step, "GRU": rnn._gru_step}
ONNX_TO_KERAS_LSTM = [0, 2, 3, 1]


def ort_single_op(op, x, w, r, b, direction="forward", **attrs):
    """Y as (N, T, dirs, n) and Y_h as (N, dirs, n) from onnxruntime (layout 0 inside)."""
    import onnxruntime as ort

    node = helper.make_node(op, ["x", "W", "R", "B"], ["y", "y_h"],
                            hidden_size=r.shape[-1], direction=direction, **attrs)
    time_major = [x.shape[1], x.shape[0], x.shape[2]]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, time_major)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "y_h")],
        initializer=[numpy_helper.from_array(a, k) for k, a in (("W", w), ("R", r), ("B", b))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, y_h = sess.run(None, {"x": x.transpose(1, 0, 2)})
    return y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2)


def keras_layout(op, w, r, b, direction, reset_after):
    """ONNX W (G·n, d), R, B (2·G·n) of one direction -> Keras kernel, recurrent kernel, bias."""
    n = r.shape[-1]
    g = GATES[op]
    w, r, b = w[direction], r[direction], b[direction]
    if op == "LSTM":
        w = w.reshape(4, n, -1)[ONNX_TO_KERAS_LSTM].reshape(4 * n, -1)
        r = r.reshape(4, n, n)[ONNX_TO_KERAS_LSTM].reshape(4 * n, n)
        b = b.reshape(2, 4, n)[:, ONNX_TO_KERAS_LSTM].reshape(-1)
    bias = np.stack([b[:g * n], b[g * n:]]) if reset_after else b[:g * n] + b[g * n:]
    return w.T, r.T, bias


def weights(op, d=4, n=5, dirs=1, seed=0):
    rng = np.random.default_rng(seed)
    g = GATES[op]
    return (rng.normal(0, 0.5, (dirs, g * n, d)).astype(np.float32),
            rng.normal(0, 0.5, (dirs, g * n, n)).astype(np.float32),
            rng.normal(0, 0.5, (dirs, 2 * g * n)).astype(np.float32))


@pytest.mark.parametrize("op, lbr", [("RNN", 0), ("LSTM", 0), ("GRU", 0), ("GRU", 1)])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_kernel_matches_onnxruntime(op, lbr, direction):
    x = sequences(3, 7, 4)
    w, r, b = weights(op)
    attrs = {"linear_before_reset": lbr} if op == "GRU" else {}
    y, y_h = ort_single_op(op, x, w, r, b, direction, **attrs)
    kernel, recurrent_kernel, bias = keras_layout(op, w, r, b, 0, lbr == 1)
    reverse = direction == "reverse"
    seq = rnn.recurrent(x, kernel, recurrent_kernel, bias, CELL[op], "tanh", reverse=reverse)
    last = rnn.recurrent(x, kernel, recurrent_kernel, bias, CELL[op], "tanh", reverse=reverse,
                         sequence=False)
    assert_close(y[:, :, 0], seq)
    assert_close(y_h[:, 0], last)


def test_reversed_output_order_option():
    x = sequences(2, 5, 4)
    w, r, b = weights("LSTM")
    y, _ = ort_single_op("LSTM", x, w, r, b, "reverse")
    k, u, bias = keras_layout("LSTM", w, r, b, 0, False)
    processing = rnn.recurrent(x, k, u, bias, CELL["LSTM"], "tanh", reverse=True,
                               processing_order=True)
    assert_close(y[:, ::-1, 0], processing)


def test_hard_sigmoid_gates_option():
    """rnn_gate_act=hard_sigmoid is Keras 2's clip(0.2·x + 0.5, 0, 1) = ONNX HardSigmoid."""
    x = sequences(2, 5, 4)
    w, r, b = weights("LSTM")
    y, _ = ort_single_op("LSTM", x, w, r, b, activations=["HardSigmoid", "Tanh", "Tanh"])
    k, u, bias = keras_layout("LSTM", w, r, b, 0, False)
    assert_close(y[:, :, 0], rnn.recurrent(x, k, u, bias, CELL["LSTM"], "tanh",
                                           gate="hard_sigmoid"))


def test_gru_reset_after_forced_on_a_one_row_bias():
    """gru_reset_after=True with a (3n,) bias: b_rec = 0, as ONNX reset-after with Rb = 0."""
    x = sequences(2, 5, 4)
    w, r, b = weights("GRU")
    b[:, 15:] = 0
    y, _ = ort_single_op("GRU", x, w, r, b, linear_before_reset=1)
    k, u, _ = keras_layout("GRU", w, r, b, 0, False)
    got = rnn.recurrent(x, k, u, b[0, :15], CELL["GRU"], "tanh", reset_after=True)
    assert_close(y[:, :, 0], got)


def test_relu_cell_activation():
    x = sequences(2, 5, 4)
    w, r, b = weights("RNN")
    y, _ = ort_single_op("RNN", x, w, r, b, activations=["Relu"])
    k, u, bias = keras_layout("RNN", w, r, b, 0, False)
    assert_close(y[:, :, 0], rnn.recurrent(x, k, u, bias, CELL["RNN"], "relu"))


# ---- reading recurrent layers from the files ---------------------------------------------------


def _write(tmp_path, layers, weights_by_layer):
    import json

    import h5py

    (tmp_path / "model.json").write_text(json.dumps({
        "format": "irc.viya.payloads/1", "model_name": "m",
        "addLayer": [{"model": "m", "name": n, "layer": {"type": t, **o}, "srcLayers": s}
                     for n, t, o, s in layers],
        "dlImportModelWeights": {"formatType": "KERAS", "weightFilePath": "w.h5"}}))
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in weights_by_layer], "S")
        for name, params in weights_by_layer.items():
            group = f.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/{p}:0".encode() for p in params],
                                                   "S")
            for p, a in params.items():
                group.create_dataset(f"{name}/{p}:0", data=a)


def _lstm_files(tmp_path, act="tanh", outputtype="samelength"):
    w, r, b = weights("LSTM")
    k, u, bias = keras_layout("LSTM", w, r, b, 0, False)
    layers = [("data", "input", {"nchannels": 1, "height": 1, "width": 28, "scale": 1.0,
                                 "offsets": [0.0]}, []),
              ("lstm", "recurrent", {"n": 5, "rnntype": "lstm", "outputtype": outputtype,
                                     "reversed": False, "act": act}, ["data"])]
    _write(tmp_path, layers, {"lstm": {"kernel": k, "recurrent_kernel": u, "bias": bias}})
    return w, r, b


def test_files_execute_with_sequence_or_flat_input(tmp_path):
    from irc.backends.viya.executor import run_folder

    w, r, b = _lstm_files(tmp_path, act="auto")
    x = sequences(2, 7, 4)
    y, _ = ort_single_op("LSTM", x, w, r, b)
    flat = run_folder(tmp_path, x.reshape(2, 1, 1, 28))["lstm"]
    assert_close(y[:, :, 0], flat)
    assert_close(y[:, :, 0], run_folder(tmp_path, x)["lstm"])
    with pytest.raises(ValueError, match="auto_act_recurrent"):
        ExecutorOptions(auto_act_recurrent="nope")


def test_peephole_option_is_refused(tmp_path):
    from irc.backends.viya.executor import run_folder

    _lstm_files(tmp_path)
    with pytest.raises(UnsupportedOp, match="lstm_peephole=on"):
        run_folder(tmp_path, sequences(1, 7, 4), options=ExecutorOptions(lstm_peephole="on"))


def test_input_width_must_be_a_multiple_of_the_kernel_rows(tmp_path):
    import json

    from irc.backends.viya.executor import run_folder

    _lstm_files(tmp_path)
    doc = json.loads((tmp_path / "model.json").read_text())
    doc["addLayer"][0]["layer"]["width"] = 30
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(InvalidModel, match="not a multiple"):
        run_folder(tmp_path, np.zeros((1, 1, 1, 30), np.float32))


def test_acoustic_table_recurrent_options_are_read():
    from irc.backends.viya.executor.reader import read_model_table

    model = read_model_table(TABLES / "sample_acoustic_model.csv")
    rec = [x for x in model.layers if x.type == "recurrent"]
    assert [(x.name, x.options["rnntype"], x.options["outputtype"], x.options["reversed"])
            for x in rec] == [("rnn12", "lstm", "samelength", True),
                              ("rnn11", "lstm", "samelength", False),
                              ("rnn22", "lstm", "samelength", True),
                              ("rnn21", "lstm", "samelength", False)]
    assert all(x.options["peephole"] and x.options["act"] == "auto" for x in rec)
    assert rec[2].src_layers == ["rnn11", "rnn12"]
