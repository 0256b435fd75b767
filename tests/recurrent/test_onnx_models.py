"""ONNX RNN/LSTM/GRU models compiled, written, re-executed and compared with onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from irc.errors import IrcError
from tests.recurrent.conftest import (assert_close, compile_and_run, layers_of, onnx_recurrent,
                                      run_ort, sequences)

CASES = [(op, direction, head, lbr)
         for op in ("RNN", "LSTM", "GRU")
         for direction in ("forward", "reverse", "bidirectional")
         for head in ("sequence", "state")
         for lbr in ((0, 1) if op == "GRU" else (None,))]


@pytest.mark.parametrize("op, direction, head, lbr", CASES)
def test_recurrent_op_matches_onnxruntime(tmp_path, op, direction, head, lbr):
    attrs = {} if lbr is None else {"linear_before_reset": lbr}
    model = onnx_recurrent(op, direction, head=head, extra_attrs=attrs)
    x = sequences(3, 6, 4)
    viya, got, payloads = compile_and_run(model, tmp_path, x)
    assert_close(run_ort(model, x), got["out"])
    assert payloads["buildModel"]["type"] == "RNN" and viya.model_type == "RNN"
    rec = [layer for layer in layers_of(payloads) if layer["type"] == "recurrent"]
    assert [r["rnntype"] for r in rec] == [op.lower()] * len(rec)
    assert {r["outputtype"] for r in rec} == {"samelength" if head == "sequence" else "encoding"}
    if direction == "bidirectional":
        assert [r["name"] for r in rec] == ["forward_rnn", "backward_rnn"]
        assert [r["reversed"] for r in rec] == [False, True]
        consumer = next(c for c in layers_of(payloads) if c["type"] in ("fc", "output"))
        assert consumer["srcLayers"] == ["forward_rnn", "backward_rnn"]
    else:
        assert [r["reversed"] for r in rec] == [direction == "reverse"]
    inp = layers_of(payloads)[0]
    assert (inp["nchannels"], inp["height"], inp["width"]) == (1, 1, 6 * 4)


def test_weights_are_written_in_keras_layout(tmp_path):
    import h5py

    model = onnx_recurrent("LSTM", head="raw", hidden=3)
    _, _, payloads = compile_and_run(model, tmp_path, sequences(2, 6, 4))
    with h5py.File(tmp_path / "out" / payloads["dlImportModelWeights"]["weightFilePath"]) as f:
        assert [n.decode() for n in f["rnn"].attrs["weight_names"]] == \
            ["rnn/kernel:0", "rnn/recurrent_kernel:0", "rnn/bias:0"]
        kernel, bias = f["rnn/rnn/kernel:0"][()], f["rnn/rnn/bias:0"][()]
    w = onnx.numpy_helper.to_array(model.graph.initializer[0])[0]  # (4n, d) in i,o,f,c
    b = onnx.numpy_helper.to_array(model.graph.initializer[2])[0]
    n = 3
    # Keras i,f,c,o: the forget block (ONNX block 2) is the second column block
    np.testing.assert_array_equal(kernel[:, n:2 * n], w[2 * n:3 * n].T)
    np.testing.assert_allclose(bias[3 * n:], b[n:2 * n] + b[4 * n + n:4 * n + 2 * n], rtol=1e-6)
    assert kernel.shape == (4, 12)


def test_gru_reset_after_bias_is_two_rows(tmp_path):
    import h5py

    model = onnx_recurrent("GRU", head="raw", extra_attrs={"linear_before_reset": 1})
    compile_and_run(model, tmp_path, sequences(2, 6, 4))
    (weights,) = (tmp_path / "out").glob("*.h5")
    with h5py.File(weights) as f:
        assert f["rnn/rnn/bias:0"].shape == (2, 15)


def test_sequence_graph_output_gets_a_per_step_output_layer(tmp_path):
    model = onnx_recurrent("GRU", "bidirectional", head="raw")
    x = sequences(2, 6, 4)
    _, got, payloads = compile_and_run(model, tmp_path, x)
    assert_close(run_ort(model, x), got["out"])
    out = layers_of(payloads)[-1]
    assert (out["type"], out["fullconnect"], out["n"], out["srcLayers"]) == \
        ("output", False, 10, ["forward_rnn", "backward_rnn"])


def test_zero_initial_states_are_accepted(tmp_path):
    zeros = np.zeros((1, 1, 5), np.float32)
    model = onnx_recurrent("LSTM", head="sequence", outputs=3,
                           extra_inputs=[("", None), ("h0", zeros), ("c0", zeros)])
    x = sequences(1, 6, 4)
    _, got, _ = compile_and_run(model, tmp_path, x)
    assert_close(run_ort(model, x), got["out"])


def _stacked() -> onnx.ModelProto:
    """Two time-major LSTMs, the first's Y squeezed straight into the second (PyTorch style)."""
    first = onnx_recurrent("LSTM", head="sequence", hidden=5)
    second = onnx_recurrent("LSTM", features=5, hidden=4, seed=1)
    g = first.graph
    nodes = list(g.node)
    head = nodes[2:]  # Transpose, Reshape, MatMul, Add, Softmax of the first model
    del g.node[2:]
    g.node.extend([helper.make_node("Squeeze", ["y", "axis1"], ["y_tm"])])
    for init in second.graph.initializer:
        if init.name in ("W", "R", "B"):
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = init.name + "2"
            g.initializer.append(copy)
    g.initializer.append(onnx.numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    g.node.extend([helper.make_node("LSTM", ["y_tm", "W2", "R2", "B2"], ["y2", "yh2"],
                                    name="rnn2", hidden_size=4)])
    for node in head:
        node.input[:] = ["y2" if i == "y" else i for i in node.input]
    g.node.extend(head)
    for init in g.initializer:
        if init.name == "Wd":
            init.CopyFrom(onnx.numpy_helper.from_array(
                np.random.default_rng(3).normal(0, 1, (4, 3)).astype(np.float32), "Wd"))
    return first


def test_stacked_time_major_lstms(tmp_path):
    model = _stacked()
    x = sequences(2, 6, 4)
    _, got, payloads = compile_and_run(model, tmp_path, x)
    assert_close(run_ort(model, x), got["out"])
    kinds = [(c["type"], c["srcLayers"]) for c in layers_of(payloads)]
    assert kinds[1:3] == [("recurrent", ["x"]), ("recurrent", ["rnn"])]


@pytest.mark.parametrize("attrs, extra, message", [
    ({"clip": 3.0}, (), "clip"),
    ({"input_forget": 1}, (), "input_forget"),
    ({"activations": ["HardSigmoid", "Tanh", "Tanh"]}, (), "gate activation HardSigmoid"),
    ({"activations": ["Sigmoid", "Tanh", "Relu"]}, (), "one `act`"),
    ({}, [("seq_lens", np.full((2,), 6, np.int32))], "sequence_lens"),
    ({}, [("", None), ("h0", np.ones((1, 1, 5), np.float32))], "initial_h"),
    ({}, [("", None), ("", None), ("", None), ("P", np.ones((1, 15), np.float32))],
     "peephole"),
])
def test_refusals_name_the_op(attrs, extra, message):
    import irc

    model = onnx_recurrent("LSTM", extra_attrs=attrs, extra_inputs=extra)
    with pytest.raises(IrcError, match=message) as err:
        irc.compile(model)
    assert "rnn" in str(err.value)


def test_cell_state_output_is_refused():
    import irc

    model = onnx_recurrent("LSTM", outputs=3)
    g = model.graph
    g.node.extend([helper.make_node("Transpose", ["y_c"], ["c_bf"], perm=[1, 0, 2]),
                   helper.make_node("Reshape", ["c_bf", "c_shape"], ["c"])])
    g.initializer.append(onnx.numpy_helper.from_array(np.array([0, -1], np.int64), "c_shape"))
    g.output.append(helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, None))
    with pytest.raises(IrcError, match="cell state Y_c"):
        irc.compile(model)


def test_time_major_graph_input_with_unknown_steps_is_refused():
    """x declared (N, 6, 4) read straight as X (T, N, d): its T axis is the dynamic one."""
    import irc

    model = onnx_recurrent("GRU")
    del model.graph.node[0]
    model.graph.node[0].input[0] = "x"
    with pytest.raises(IrcError, match="time-major as X .* steps T or features are not fixed"):
        irc.compile(model)


def test_exported_ir_runs_in_onnxruntime():
    """The IR keeps layout=1; to_onnx writes the layout-0 op between transposes."""
    from irc.api import import_model, optimize
    from irc.ir.onnx_export import run_onnxruntime, to_onnx

    model = onnx_recurrent("GRU", "bidirectional", extra_attrs={"linear_before_reset": 1})
    graph = import_model(model).graph
    assert {n.attrs.get("layout") for n in graph.nodes() if n.op_type == "GRU"} == {1}
    optimize(graph)
    x = sequences(2, 6, 4)
    got = run_onnxruntime(to_onnx(graph), {"x": x})["out"]
    assert_close(run_ort(model, x), got)


def test_verify_and_cli_on_an_onnx_file(tmp_path):
    from irc.cli import main
    from irc.verify import verify

    path = tmp_path / "lstm.onnx"
    onnx.save(onnx_recurrent("LSTM", "bidirectional"), path)
    assert main(["compile", str(path), "-o", str(tmp_path / "cli")]) == 0
    result = verify(str(path), tmp_path / "cli", batch=3)
    assert result.ok and result.comparisons[0].shape == (6, 3), result.table()


def test_sequence_input_preprocessing(tmp_path):
    """One channel: one scale, offset and std for every value of the sequence."""
    from irc.verify import verify

    import irc

    path = tmp_path / "rnn.onnx"
    onnx.save(onnx_recurrent("RNN", head="state"), path)
    model = irc.compile(str(path), input_options={"scale": 0.5, "offsets": [2.0],
                                                  "normstds": [4.0]})
    model.save(tmp_path / "out")
    inp = model.layers[0].options
    assert (inp["scale"], inp["offsets"], inp["normstds"]) == (0.5, [2.0], [4.0])
    assert verify(str(path), tmp_path / "out").ok
    with pytest.raises(IrcError, match="one offset"):
        irc.compile(str(path), input_options={"offsets": [1.0, 2.0]})


def test_flattening_a_sequence_is_refused():
    import irc

    model = onnx_recurrent("LSTM", head="raw")
    shape = next(i for i in model.graph.initializer if i.name == "steps_shape")
    shape.CopyFrom(onnx.numpy_helper.from_array(np.array([0, -1], np.int64), "steps_shape"))
    with pytest.raises(IrcError, match="per time step"):
        irc.compile(model)
