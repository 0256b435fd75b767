"""Recurrent models (issue 6): compile, write, re-execute the written files with the reference
executor and compare with the source framework (Keras predict, onnxruntime).

Keras tests are skipped when TensorFlow/Keras is not installed; the ONNX and executor tests run
everywhere.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

RTOL, ATOL = 1e-4, 1e-5
HAVE_KERAS = all(importlib.util.find_spec(m) for m in ("tensorflow", "keras"))
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


@pytest.fixture(scope="session")
def keras():
    if not HAVE_KERAS:
        pytest.skip("Keras is not installed")
    from irc.frontends.keras.runtime import tf_modules

    return tf_modules().keras


@pytest.fixture(scope="session")
def tf_keras(keras):
    from irc.frontends.keras.runtime import tf_modules

    if tf_modules().tf_keras is None:
        pytest.skip("tf-keras is not installed")
    return tf_modules().tf_keras


def random_weights(model, seed: int = 0, scale: float = 0.5):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, scale, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def sequences(batch: int, steps: int, features: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, steps, features)).astype(np.float32)


def compile_and_run(source, tmp_path: Path, x: np.ndarray, options=None, **compile_kwargs):
    """irc.compile(...).save(folder); the executor on the WRITTEN files.

    Returns (ViyaModel, {source output name: executor output}, model.json payloads)."""
    import irc
    from irc.backends.viya.executor import execute, load_viya_model

    model = irc.compile(source, name="m", **compile_kwargs)
    out = tmp_path / "out"
    model.save(out)
    got = execute(load_viya_model(out, options=options), x, options=options, all_layers=True)
    name_map = json.loads((out / "name_map.json").read_text())
    payloads = json.loads((out / "model.json").read_text())
    return model, {k: got[v] for k, v in name_map["outputs"].items()}, payloads


def assert_close(reference: np.ndarray, got: np.ndarray):
    from irc.verify import compare

    assert got.shape[0] == reference.shape[0]
    assert got.size == reference.size, (got.shape, reference.shape)
    max_abs, max_rel, ok = compare(reference, got, RTOL, ATOL)
    assert ok, f"max abs {max_abs:g}, max rel {max_rel:g}"


def layers_of(payloads) -> list[dict]:
    return [{**c["layer"], "name": c["name"], "srcLayers": c.get("srcLayers", [])}
            for c in payloads["addLayer"]]


# ---- ONNX models in the form exporters write (time-major ops between transposes) --------------


def onnx_recurrent(op: str, direction: str = "forward", steps: int = 6, features: int = 4,
                   hidden: int = 5, head: str = "sequence", seed: int = 0, extra_attrs=None,
                   extra_inputs=(), outputs=2) -> onnx.ModelProto:
    """x (N, T, d) -> Transpose -> op (layout 0) -> batch-first head.

    head: "sequence" (Y -> (N, T, dirs·n) -> MatMul + Add -> Softmax per step),
    "state" (Y_h -> (N, dirs·n) -> Gemm) or "raw" (Y -> (N, T, dirs·n), the graph output)."""
    rng = np.random.default_rng(seed)
    g, dirs = GATES[op], 2 if direction == "bidirectional" else 1
    w = rng.normal(0, 0.5, (dirs, g * hidden, features)).astype(np.float32)
    r = rng.normal(0, 0.5, (dirs, g * hidden, hidden)).astype(np.float32)
    b = rng.normal(0, 0.5, (dirs, 2 * g * hidden)).astype(np.float32)
    attrs = {"hidden_size": hidden, "direction": direction, **(extra_attrs or {})}
    inits = [numpy_helper.from_array(a, k) for k, a in (("W", w), ("R", r), ("B", b))]
    rnn_inputs = ["x_tm", "W", "R", "B"]
    for name, array in extra_inputs:
        rnn_inputs.append(name)
        if array is not None:
            inits.append(numpy_helper.from_array(array, name))
    outs = ["y", "y_h", "y_c"][:outputs]
    nodes = [helper.make_node("Transpose", ["x"], ["x_tm"], perm=[1, 0, 2]),
             helper.make_node(op, rnn_inputs, outs, name="rnn", **attrs)]
    width, m = dirs * hidden, 3
    if head in ("sequence", "raw"):
        nodes += [helper.make_node("Transpose", ["y"], ["y_bf"], perm=[2, 0, 1, 3]),
                  helper.make_node("Reshape", ["y_bf", "steps_shape"],
                                   ["out" if head == "raw" else "y_steps"])]
        inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "steps_shape"))
        if head == "sequence":
            nodes += [helper.make_node("MatMul", ["y_steps", "Wd"], ["mm"], name="dense"),
                      helper.make_node("Add", ["mm", "bd"], ["logits"]),
                      helper.make_node("Softmax", ["logits"], ["out"], axis=-1)]
    else:
        nodes += [helper.make_node("Transpose", ["y_h"], ["h_bf"], perm=[1, 0, 2]),
                  helper.make_node("Reshape", ["h_bf", "state_shape"], ["h"]),
                  helper.make_node("Gemm", ["h", "Wd", "bd"], ["out"], name="dense")]
        inits.append(numpy_helper.from_array(np.array([0, -1], np.int64), "state_shape"))
    if head != "raw":
        inits += [numpy_helper.from_array(rng.normal(0, 1, (width, m)).astype(np.float32), "Wd"),
                  numpy_helper.from_array(rng.normal(0, 1, m).astype(np.float32), "bd")]
    graph = helper.make_graph(
        nodes, "seq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", steps,
                                                                           features])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def run_ort(model, x) -> np.ndarray:
    from irc.ir.onnx_export import run_onnxruntime

    return run_onnxruntime(model, {"x": x})["out"]
