"""Every multi-input ONNX op irc registers, with each float input in turn a constant initializer
(the other float inputs computed from the one graph input): irc must either compile a model that
verifies (rtol 1e-4, atol 1e-5) or refuse it with an IrcError that is not an internal one. Issue
16 found two tracebacks this way (Concat and Gemm with a constant/computed operand)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from irc.api import compile as compile_model
from irc.errors import GraphInvalid, IrcError
from irc.frontends.onnx.catalog import onnx_ops
from irc.verify import verify

OPSET = 17
RNG = np.random.default_rng(6)
F = (2, 4, 6, 6)


def _f(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _i(*values):
    return np.array(values, np.int64)


# op -> (example inputs, attributes). Float arrays are the operands varied; int arrays stay
# constants. Shapes are valid for the op (onnxruntime runs each model first).
EXAMPLES = {
    "Add": ([_f(*F), _f(*F)], {}), "Sub": ([_f(*F), _f(*F)], {}),
    "Mul": ([_f(*F), _f(*F)], {}), "Div": ([_f(*F), np.abs(_f(*F)) + 1], {}),
    "Sum": ([_f(*F), _f(*F), _f(*F)], {}),
    "Max": ([_f(*F), _f(*F), np.float32(-0.25)], {}), "Min": ([_f(*F), _f(1), _f(*F)], {}),
    "Concat": ([_f(*F), _f(*F)], {"axis": 1}),
    "PRelu": ([_f(*F), _f(4, 1, 1)], {}),
    "BatchNormalization": ([_f(*F), _f(4), _f(4), _f(4), np.abs(_f(4)) + 1], {}),
    "Clip": ([_f(*F), np.float32(-0.5), np.float32(0.5)], {}),
    "Conv": ([_f(*F), _f(3, 4, 3, 3), _f(3)], {}),
    "Dropout": ([_f(*F), np.float32(0.3)], {}),
    "Gather": ([_f(*F), _i(0, 2)], {"axis": 1}),
    "Gemm": ([_f(2, 8), _f(5, 8), _f(5)], {"transB": 1}),
    "MatMul": ([_f(2, 8), _f(8, 5)], {}),
    "Pad": ([_f(*F), _i(0, 0, 1, 1, 0, 0, 1, 1)], {}),
    "Reshape": ([_f(*F), _i(2, -1)], {}),
    "Slice": ([_f(*F), _i(0), _i(2), _i(1)], {}),
    "Split": ([_f(*F), _i(2, 2)], {"axis": 1}),
    "Squeeze": ([_f(2, 4, 1, 6), _i(2)], {}), "Unsqueeze": ([_f(2, 24), _i(2)], {}),
    "RNN": ([_f(5, 2, 3), _f(1, 4, 3), _f(1, 4, 4), _f(1, 8)], {"hidden_size": 4}),
    "GRU": ([_f(5, 2, 3), _f(1, 12, 3), _f(1, 12, 4), _f(1, 24)], {"hidden_size": 4}),
    "LSTM": ([_f(5, 2, 3), _f(1, 16, 3), _f(1, 16, 4), _f(1, 32)], {"hidden_size": 4}),
}


def _multi_input_ops() -> list[str]:
    ops = []
    for op in onnx_ops().op_types():
        try:
            schema = onnx.defs.get_schema(op, OPSET)
        except onnx.defs.SchemaError:
            continue
        if schema.max_input >= 2:
            ops.append(op)
    return ops


def _cases():
    cases = []
    for op, (inputs, _) in EXAMPLES.items():
        floats = [k for k, a in enumerate(inputs) if a.dtype == np.float32 and a.ndim >= 1]
        for k in floats:
            if any(j != k for j in floats):
                cases.append((op, k))
    return cases


def test_every_multi_input_op_has_an_example():
    assert sorted(_multi_input_ops()) == sorted(EXAMPLES)


def _model(op: str, const_slot: int):
    inputs, attrs = EXAMPLES[op]
    floats = [k for k, a in enumerate(inputs) if a.dtype == np.float32 and a.ndim >= 1]
    computed_shape = next(inputs[k].shape for k in floats if k != const_slot)
    computed = {k for k in floats if k != const_slot and inputs[k].shape == computed_shape}
    names, inits = [], []
    for k, array in enumerate(inputs):
        if k in computed:
            names.append("x")
        else:
            names.append(f"c{k}")
            inits.append(numpy_helper.from_array(np.asarray(array), f"c{k}"))
    outputs = ["y", "y2"] if op == "Split" else (["", "y"] if op in ("RNN", "GRU", "LSTM")
                                                  else ["y"])
    node = helper.make_node(op, names, outputs, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", 1, list(computed_shape))],
        [helper.make_tensor_value_info(o, 1, None) for o in outputs if o], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


@pytest.mark.parametrize("op,const_slot", _cases(), ids=[f"{o}-const{k}" for o, k in _cases()])
def test_constant_operand_converts_or_is_refused_cleanly(op, const_slot, tmp_path):
    import onnxruntime as ort

    model = _model(op, const_slot)
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    try:
        compiled = compile_model(model, name="m")
        compiled.save(tmp_path / "out")
        result = verify(model, tmp_path / "out", rtol=1e-4, atol=1e-5)
    except GraphInvalid as exc:
        pytest.fail(f"internal error: {exc}")
    except IrcError as exc:
        assert exc.exit_code == 2 and "internal" not in str(exc).lower(), str(exc)
        return
    assert result.comparisons and result.ok, result.table()
