"""Clean ONNX for Keras sequence models, written layer by layer (no tf2onnx; issue 6).

Each recurrent layer becomes one ONNX RNN/LSTM/GRU op in the usual time-major form that
onnxruntime runs (``Transpose -> op -> Transpose -> Reshape``; the ONNX frontend makes it
batch-first again). Keras weights are converted to ONNX's layout: W = kernel.T (G·n, d), R =
recurrent_kernel.T, B = [input bias; recurrent bias]; LSTM gate blocks go from Keras i,f,c,o to
ONNX i,o,f,c; a GRU with ``reset_after`` keeps its two biases and sets
``linear_before_reset=1``. A Bidirectional layer is one ``direction=bidirectional`` op; a
layer with ``go_backwards`` (and a final state only) is ``direction=reverse``. Dense on a
sequence (or TimeDistributed(Dense)) is MatMul + Add per time step; on a vector, Gemm.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from irc.errors import UnsupportedAttribute
from irc.frontends.keras.model_io import input_name, output_names
from irc.frontends.keras.onnx_writer import OnnxWriter
from irc.frontends.keras.layers import KERAS_LAYERS, scan_sequence
from irc.frontends.keras.recurrent import (SequenceModel, Spec, _act_name, specs_from_model,
                                           standard_cell)
from irc.ir.activations import KERAS
from irc.ir.ops import RECURRENT_GATES
from irc.ir.opset import IR_VERSION, OPSET

OP_TYPE = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}
GATE_COUNT = {cls: RECURRENT_GATES[op] for cls, op in OP_TYPE.items()}
KERAS_TO_ONNX_LSTM = [0, 3, 1, 2]  # Keras blocks i,f,c,o -> ONNX i,o,f,c


def _blocks(m: np.ndarray, cls: str, n: int) -> np.ndarray:
    """Reorder the gate blocks along axis 0 (rows of G·n) from Keras to ONNX order."""
    if cls != "LSTM":
        return m
    return m.reshape(4, n, *m.shape[1:])[KERAS_TO_ONNX_LSTM].reshape(m.shape)


def onnx_weights(spec: Spec) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One direction's (W (G·n, d), R (G·n, n), B (2·G·n), linear_before_reset)."""
    cls, cfg = spec.cls, spec.config
    n, g = int(cfg["units"]), GATE_COUNT[spec.cls]
    kernel, recurrent_kernel = np.asarray(spec.weights[0]), np.asarray(spec.weights[1])
    bias = np.asarray(spec.weights[2]) if cfg.get("use_bias", True) and len(spec.weights) > 2 \
        else np.zeros(g * n, np.float32)  # Viya needs a bias: zeros (viya-target §5.5)
    reset_after = cls == "GRU" and bias.ndim == 2
    wb, rb = (bias[0], bias[1]) if reset_after else (bias, np.zeros_like(bias))
    w = _blocks(kernel.T, cls, n)
    r = _blocks(recurrent_kernel.T, cls, n)
    b = np.concatenate([_blocks(wb, cls, n), _blocks(rb, cls, n)])
    return w.astype(np.float32), r.astype(np.float32), b.astype(np.float32), int(reset_after)


class _Emitter(OnnxWriter):
    def __init__(self, input_name: str, steps: int, features: int):
        super().__init__(reserved=(input_name,))
        self.cur, self.steps, self.width, self.sequence = input_name, steps, features, True

    # ---- layers ---------------------------------------------------------------------------
    def recurrent(self, name: str, directions: list[Spec], direction: str) -> None:
        cls = directions[0].cls
        cfg = directions[0].config
        n = int(cfg["units"])
        parts = [onnx_weights(s) for s in directions]
        w, r, b = (np.stack([p[k] for p in parts]) for k in range(3))
        act = KERAS[_act_name(cfg.get("activation", "tanh"))].onnx_op
        per_dir = {"RNN": [act], "LSTM": ["Sigmoid", act, act], "GRU": ["Sigmoid", act]}
        attrs = {"hidden_size": n, "direction": direction,
                 "activations": per_dir[OP_TYPE[cls]] * len(directions)}
        if cls == "GRU":
            attrs["linear_before_reset"] = parts[0][3]
        (x_tm,) = self.node("Transpose", [self.cur], f"{name}_time_major", perm=[1, 0, 2])
        inputs = [x_tm, self.const(f"{name}_W", w), self.const(f"{name}_R", r),
                  self.const(f"{name}_B", b)]
        y, y_h = self.node(OP_TYPE[cls], inputs, name, n_out=2, **attrs)
        dirs = len(directions)
        if cfg.get("return_sequences"):
            (y_bf,) = self.node("Transpose", [y], f"{name}_batch_first", perm=[2, 0, 1, 3])
            shape = self.const(f"{name}_shape", np.array([0, self.steps, dirs * n], np.int64))
            (self.cur,) = self.node("Reshape", [y_bf, shape], f"{name}_steps")
        else:
            (h_bf,) = self.node("Transpose", [y_h], f"{name}_batch_first", perm=[1, 0, 2])
            shape = self.const(f"{name}_shape", np.array([0, dirs * n], np.int64))
            (self.cur,) = self.node("Reshape", [h_bf, shape], f"{name}_state")
            self.sequence = False
        self.width = dirs * n

    def dense(self, name: str, spec: Spec) -> None:
        cfg = spec.config
        kernel = np.asarray(spec.weights[0], np.float32)
        bias = np.asarray(spec.weights[1], np.float32) if cfg.get("use_bias", True) else None
        if self.sequence:  # per time step
            (self.cur,) = self.node("MatMul", [self.cur, self.const(f"{name}_kernel", kernel)],
                                    name)
            if bias is not None:
                (self.cur,) = self.node("Add", [self.cur, self.const(f"{name}_bias", bias)],
                                        f"{name}_bias_add")
        else:
            inputs = [self.cur, self.const(f"{name}_kernel", kernel)]
            if bias is not None:
                inputs.append(self.const(f"{name}_bias", bias))
            (self.cur,) = self.node("Gemm", inputs, name)
        self.width = kernel.shape[1]
        self.activation(name, _act_name(cfg.get("activation")))

    def activation(self, name: str, act: str) -> None:
        if act == "linear":
            return
        attrs = {"axis": -1} if act == "softmax" else {}
        (self.cur,) = self.node(KERAS[act].onnx_op, [self.cur], f"{name}_{act}", **attrs)

    def layer(self, spec: Spec) -> None:
        """The layer's handler writes it (its ``emit_sequence`` hook; none: nothing to write,
        as for Dropout at inference)."""
        spec = standard_cell(spec)
        emit = KERAS_LAYERS.hook(spec.cls, "emit_sequence")
        if emit is not None:
            emit(self, spec)


def _dims(shape, input_shape, label) -> tuple[int, int]:
    shape = tuple(shape)
    if input_shape is not None:
        given = tuple(int(d) for d in input_shape)
        given = given[1:] if len(given) == 3 else given
        if len(given) != 2 or any(m is not None and m != g for m, g in zip(shape, given)):
            raise UnsupportedAttribute(f"input_shape {tuple(input_shape)} does not fit the "
                                       f"sequence input (None, {shape[0]}, {shape[1]})",
                                       file=label, hint="give (timesteps, features)")
        shape = given
    if len(shape) != 2 or any(d is None for d in shape):
        raise UnsupportedAttribute(f"the sequence input has shape {shape}; Viya's RNN input "
                                   "has a fixed number of time steps", file=label,
                                   hint="give input_shape=(timesteps, features)")
    return int(shape[0]), int(shape[1])


def to_onnx(src, input_shape=None) -> onnx.ModelProto:
    """ONNX for the sequence model ``src.model`` (a Keras model or a :class:`SequenceModel`)."""
    model = src.model
    if isinstance(model, SequenceModel):
        specs, shape, breaks = model.specs, model.input_shape, model.breaks
        in_name, out_name, graph_name = model.input_name, model.output_name, model.name
    else:
        specs, shape, breaks = specs_from_model(model, src.label)
        in_name, (out_name,), graph_name = input_name(model), output_names(model), model.name
    scan_sequence(specs, src.label, breaks)
    steps, features = _dims(shape, input_shape, src.label)
    e = _Emitter(in_name, steps, features)
    for spec in specs:
        e.layer(spec)
    if e.cur == in_name:
        e.node("Identity", [e.cur], out_name)
    e.nodes[-1].output[0] = out_name
    graph = helper.make_graph(
        e.nodes, graph_name,
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["N", steps, features])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)], initializer=e.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=f"irc keras frontend ({src.flavor}), sequence "
                                            "emitter")
    proto.ir_version = IR_VERSION
    return proto
