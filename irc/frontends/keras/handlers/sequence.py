"""Layers of sequence models (issue 6): recurrent cells, Bidirectional, TimeDistributed, and the
sequence hooks the other families' handlers (Dense, Dropout, Activation, Softmax, InputLayer)
share.

A model with a recurrent layer goes through irc's sequence emitter (recurrent_emit.py), never
tf2onnx. Each handler then has two hooks besides or instead of the image-model ``check``/``emit``:

- ``sequence(spec, flow)``: what Viya cannot follow in this layer of the chain, reported
  through ``flow.problem``; updates ``flow`` (a sequence or a vector flows on);
- ``emit_sequence(e, spec)``: the layer's ONNX, written with the emitter's ``recurrent``,
  ``dense`` and ``activation`` methods (a layer without it writes nothing: Dropout).

The handlers here have no image-model hooks: outside a sequence model these layers are refused.
"""
from __future__ import annotations

from irc.frontends.keras.handlers.registry import KERAS_LAYERS
from irc.frontends.keras.recurrent import CELLS, DENSE_ACTS, _act_name, check_cell, inner_spec


def dense_in_sequence(cfg: dict, flow) -> None:
    """The checks of a Dense (alone or in TimeDistributed) in a sequence model."""
    act = _act_name(cfg.get("activation"))
    if act not in DENSE_ACTS:
        flow.problem(f"activation {act!r}: Viya has no such activation")
    if act == "softmax" and not flow.last:
        flow.problem("softmax before the end of the model: Viya applies softmax only in an "
                     "output layer")
    if flow.sequence and not flow.seen_recurrent:
        flow.problem("a Dense on the input sequence: Viya's fc layers work per time step only "
                     "after a same-length recurrent layer")


def activation_in_sequence(spec, flow) -> None:
    """An Activation/Softmax layer after a Dense: that layer's act (softmax at the end only)."""
    act = "softmax" if spec.cls == "Softmax" else _act_name(spec.config.get("activation"))
    if act not in DENSE_ACTS:
        flow.problem(f"activation {act!r}: Viya has no such activation")
    if act == "softmax" and not flow.last:
        flow.problem("softmax before the end of the model: Viya applies softmax only in an "
                     "output layer")
    if spec.cls == "Softmax" and spec.config.get("axis", -1) not in (-1, [-1]):
        flow.problem(f"Softmax axis={spec.config.get('axis')}: only the feature axis")


def emit_activation(e, spec) -> None:
    act = "softmax" if spec.cls == "Softmax" else _act_name(spec.config.get("activation"))
    e.activation(spec.name, act)


@KERAS_LAYERS.register(*CELLS)
class RecurrentCell:
    """SimpleRNN/LSTM/GRU, Keras 2 CuDNNLSTM/CuDNNGRU -> a Viya recurrent layer.

    Only in sequence models (one chain of layers)."""

    @staticmethod
    def sequence(spec, flow):
        if not flow.sequence:
            flow.problem("reads a vector (a recurrent layer with return_sequences=False came "
                         "before); Viya's recurrent layers read the input or a same-length "
                         "sequence")
        check_cell(spec.config, spec.cls, flow.problem, False)
        flow.sequence, flow.seen_recurrent = bool(spec.config.get("return_sequences")), True

    @staticmethod
    def emit_sequence(e, spec):
        """One ONNX RNN/LSTM/GRU op (direction reverse with go_backwards)."""
        back = bool(spec.config.get("go_backwards"))
        e.recurrent(spec.name, [spec], "reverse" if back else "forward")


@KERAS_LAYERS.register("Bidirectional")
class Bidirectional:
    """Bidirectional(concat) of a recurrent layer -> forward_ and backward_ recurrent layers."""

    @staticmethod
    def sequence(spec, flow):
        inner = spec.config.get("layer", {})
        flow.seen_recurrent = True
        if inner.get("class_name") not in CELLS:
            flow.problem(f"Bidirectional wraps {inner.get('class_name')}, not a recurrent layer")
            return
        if spec.config.get("merge_mode", "concat") != "concat":
            flow.problem(f"merge_mode={spec.config.get('merge_mode')!r}: Viya's consumer "
                         "concatenates the two directions")
        backward = spec.config.get("backward_layer")
        if backward is not None and any(
                backward.get("config", {}).get(k) != inner["config"].get(k)
                for k in ("units", "activation", "return_sequences")):
            flow.problem("a custom backward_layer differs from the forward layer")
        if not flow.sequence:
            flow.problem("reads a vector; Viya's recurrent layers read a sequence")
        check_cell(inner.get("config", {}), inner["class_name"], flow.problem, True)
        flow.sequence = bool(inner.get("config", {}).get("return_sequences"))

    @staticmethod
    def emit_sequence(e, spec):
        """One ONNX op with direction=bidirectional."""
        e.recurrent(spec.name, [inner_spec(spec, "forward"), inner_spec(spec, "backward")],
                    "bidirectional")


@KERAS_LAYERS.register("TimeDistributed")
class TimeDistributed:
    """TimeDistributed(Dense) -> fc or output per time step."""

    @staticmethod
    def sequence(spec, flow):
        inner = spec.config.get("layer", {})
        if inner.get("class_name") != "Dense":
            flow.problem(f"TimeDistributed wraps {inner.get('class_name')}; irc converts "
                         "TimeDistributed(Dense) only")
            return
        dense_in_sequence(inner.get("config", {}), flow)

    @staticmethod
    def emit_sequence(e, spec):
        """MatMul + Add per time step (Gemm on a vector), then the activation."""
        e.dense(spec.name, inner_spec(spec))


@KERAS_LAYERS.register("SpatialDropout1D")
class SpatialDropout1D:
    """SpatialDropout1D -> removed (inference)."""

    @staticmethod
    def sequence(spec, flow):
        pass
