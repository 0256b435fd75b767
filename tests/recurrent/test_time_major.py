"""Time-major recurrent models (issue 16), each once refused: compiled, written, and verified in
numbers against onnxruntime (ONNX models built in code) and PyTorch (nn.Modules, both exporters).

- an ONNX input X (T, N, d) read straight by a layout-0 op (PyTorch's ``batch_first=False``):
  the Viya model reads one sequence per example; model.json records the source's batch axis
  (``input.sources.<name>.batch_axis``, ``input.output_batch_axes`` for outputs the source gives
  time-major) and ``irc.verify`` feeds and reads the source in its own layout;
- outputs with a unit axis: T = 1, Y (1, 1, N, n);
- Y unnamed while Y_h is read (ONNX's ``test_lstm_defaults`` form).

Tolerance: irc.verify's defaults (each output within 1e-5 + 1e-4 * max|ref|).
"""
from __future__ import annotations

import io
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.recurrent.conftest import GATES

RTOL, ATOL = 1e-4, 1e-5


def time_major(op: str, steps, batch, features: int = 3, hidden: int = 5,
               direction: str = "forward", outputs=("Y",), seed: int = 0) -> onnx.ModelProto:
    """One layout-0 op reading the graph input X (T, N, d); ``outputs``: the op's output slots,
    "" for an unnamed one, each named one a graph output as the op gives it."""
    rng = np.random.default_rng(seed)
    g, dirs = GATES[op], 2 if direction == "bidirectional" else 1
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, s).astype(np.float32), k) for k, s in
             (("W", (dirs, g * hidden, features)), ("R", (dirs, g * hidden, hidden)),
              ("B", (dirs, 2 * g * hidden)))]
    node = helper.make_node(op, ["X", "W", "R", "B"], list(outputs), name="rnn",
                            hidden_size=hidden, direction=direction)
    shapes = {"Y": [steps, dirs, batch, hidden], "Y_h": [dirs, batch, hidden]}
    graph = helper.make_graph(
        [node], "time_major", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                             [steps, batch, features])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outputs if o],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def compile_and_verify(source, tmp_path, batch: int = 3, **kwargs):
    """irc.compile -> save -> irc.verify against the source's own runtime; (result, model.json)."""
    import irc
    from irc.verify import verify

    out = tmp_path / "out"
    irc.compile(source, **kwargs).save(out)
    result = verify(source, out, rtol=RTOL, atol=ATOL, batch=batch)
    assert result.ok, result.table()
    return result, json.loads((out / "model.json").read_text())


# ---- ONNX models built in code, verified against onnxruntime ------------------------------------


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_time_major_input_and_sequence_output(tmp_path, op, direction):
    """X (6, N, 3) -> Y (6, dirs, N, 5) as the graph output: batch on axis 1 in, 2 out."""
    result, payloads = compile_and_verify(time_major(op, 6, "N", direction=direction), tmp_path)
    dirs = 2 if direction == "bidirectional" else 1
    assert result.comparisons[0].shape == (6, dirs, 5) and result.n_examples == 3
    info = payloads["input"]
    assert info["sources"]["X"]["batch_axis"] == 1 and info["sources"]["X"]["shape"] == [6, 3]
    assert info["output_batch_axes"] == {"Y": 2}
    inp = payloads["addLayer"][0]["layer"]
    assert (inp["nchannels"], inp["height"], inp["width"]) == (1, 1, 6 * 3)


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
def test_unnamed_y_with_final_state_read(tmp_path, op):
    """ONNX's test_lstm_defaults form: outputs ["", "Y_h"], Y_h (1, N, n) a graph output."""
    outputs = ("", "Y_h") if op != "LSTM" else ("", "Y_h", "")
    result, payloads = compile_and_verify(time_major(op, 4, "N", outputs=outputs), tmp_path)
    assert result.comparisons[0].source_output == "Y_h"
    assert payloads["input"]["output_batch_axes"] == {"Y_h": 1}
    rec = [c["layer"] for c in payloads["addLayer"] if c["layer"]["type"] == "recurrent"]
    assert [r["outputtype"] for r in rec] == ["encoding"]


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_one_step_output_with_unit_axes(tmp_path, op):
    """T = 1: Y (1, 1, N, n), the batch behind two unit axes (once refused)."""
    result, payloads = compile_and_verify(time_major(op, 1, "N"), tmp_path)
    assert result.comparisons[0].shape == (1, 1, 5)
    assert payloads["input"]["output_batch_axes"] == {"Y": 2}


def test_fixed_batch_runs_at_the_declared_batch_on_axis_one(tmp_path):
    """X (5, 2, 3): the fixed batch is axis 1's 2 (not T = 5): 3 examples round up to 4."""
    result, _ = compile_and_verify(time_major("GRU", 5, 2, outputs=("", "Y_h")), tmp_path)
    assert result.n_examples == 4
    assert any("fixed batch of 2" in n for n in result.notes)


def test_input_shape_is_given_in_the_source_layout(tmp_path):
    """X (T, N, 3) with T dynamic: --input-shape X:7,1,3 fixes T = 7 (read time-major)."""
    result, payloads = compile_and_verify(time_major("LSTM", "T", "N"), tmp_path,
                                          input_shape={"X": (7, 1, 3)})
    assert payloads["input"]["sources"]["X"]["shape"] == [7, 3]
    assert result.comparisons[0].shape == (7, 1, 5)


def test_y_read_by_another_op_time_major_is_refused():
    """A time-major Y read by a computing op in its own layout has no Viya form."""
    import irc
    from irc.errors import IrcError

    model = time_major("GRU", 4, "N")
    g = model.graph
    g.node.extend([helper.make_node("Relu", ["Y"], ["out"])])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("out", TensorProto.FLOAT, None))
    with pytest.raises(IrcError, match="Relu reads 'Y'.*not batch-first"):
        irc.compile(model)


# ---- PyTorch modules with batch_first=False, verified against PyTorch and onnxruntime -----------

torch = pytest.importorskip("torch", reason="the PyTorch cases need torch")


class Tagger(torch.nn.Module):
    """The recurrent layer's own (T, N, n) output, time-major."""

    def __init__(self, cell, features: int = 4, hidden: int = 5):
        super().__init__()
        self.rnn = cell(features, hidden)

    def forward(self, x):
        return self.rnn(x)[0]


class LastState(torch.nn.Module):
    """h_n[-1] -> Linear: the usual sequence classifier."""

    def __init__(self, cell, features: int = 4, hidden: int = 5):
        super().__init__()
        self.rnn = cell(features, hidden)
        self.head = torch.nn.Linear(hidden, 3)

    def forward(self, x):
        state = self.rnn(x)[1]
        h = state[0] if isinstance(state, tuple) else state
        return self.head(h[-1])


CELLS = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}
# the dynamo exporter writes nn.RNN as an unrolled loop of MatMuls, not an ONNX RNN op
PYTORCH_CASES = [(cell, head, exporter) for cell in CELLS for head in ("tagger", "last")
                 for exporter in ("torchscript", "dynamo")
                 if not (cell == "RNN" and exporter == "dynamo")]


def _module(cell: str, head: str):
    torch.manual_seed(0)
    return (Tagger if head == "tagger" else LastState)(CELLS[cell]).eval()


@pytest.mark.parametrize("cell, head, exporter", PYTORCH_CASES)
def test_pytorch_time_major_matches_pytorch(tmp_path, cell, head, exporter):
    module = _module(cell, head)
    example = torch.randn(6, 2, 4, generator=torch.Generator().manual_seed(1))  # (T, N, d)
    result, payloads = compile_and_verify(module, tmp_path, example_inputs=(example,),
                                          torch_exporter=exporter)
    assert payloads["input"]["sources"]["input"]["batch_axis"] == 1
    assert result.comparisons[0].shape == ((6, 5) if head == "tagger" else (3,))
    assert payloads["input"].get("output_batch_axes", {}) == \
        ({"output": 1} if head == "tagger" else {})
    assert any("batch_first=False" in n for n in payloads["notes"])  # the layout, stated


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_exported_onnx_file_matches_onnxruntime(tmp_path, cell):
    """The TorchScript exporter's ONNX file itself (X (6, 2, 4) fixed, zeros expanded to the
    batch as initial states, Y squeezed to (T, N, n)) against onnxruntime, and onnxruntime
    against PyTorch on the same inputs."""
    from irc.ir.onnx_export import run_onnxruntime

    module = _module(cell, "tagger")
    example = torch.randn(6, 2, 4, generator=torch.Generator().manual_seed(1))
    buffer = io.BytesIO()
    torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["output"])
    model = onnx.load_from_string(buffer.getvalue())
    assert [n.op_type for n in model.graph.node].count("Expand") == (2 if cell == "LSTM" else 1)
    result, _ = compile_and_verify(model, tmp_path, batch=2)
    assert result.comparisons[0].shape == (6, 5)
    with torch.no_grad():
        expected = module(example).numpy()
    got = run_onnxruntime(model, {"input": example.numpy()})["output"]
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_pytorch_batch_first_lstm_matches_pytorch(tmp_path, exporter):
    """batch_first=True exports with the example's batch written into the Reshape target
    (dynamo) and zeros expanded to the batch as initial states (TorchScript): both once
    refused; the source's batch stays on axis 0."""
    torch.manual_seed(0)
    module = Tagger(lambda d, n: torch.nn.LSTM(d, n, batch_first=True)).eval()
    example = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(1))  # (N, T, d)
    result, payloads = compile_and_verify(module, tmp_path, example_inputs=(example,),
                                          torch_exporter=exporter)
    assert "batch_axis" not in payloads["input"]["sources"]["input"]
    assert result.comparisons[0].shape == (6, 5)
