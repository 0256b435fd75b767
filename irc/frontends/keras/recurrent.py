"""Keras sequence models (issue 6): the layers, their checks, and Keras 2 CuDNN ``.h5`` files.

tf2onnx turns GRU and SimpleRNN into Loop ops irc cannot map, so a model with recurrent layers
does not go through tf2onnx: its layers become :class:`Spec` entries (class name, config,
weights) and :mod:`recurrent_emit` writes clean ONNX from them. Specs come from a live Keras 3
or tf-keras model, or, for Keras 2 ``.h5`` files with ``CuDNNLSTM``/``CuDNNGRU`` layers (classes
no current Keras has), straight from the file's ``model_config`` and ``model_weights`` with
h5py. CuDNN weights are stored in the Keras gate order (LSTM i,f,c,o; GRU z,r,h) with separate
input and recurrent biases: a CuDNNLSTM is an LSTM with bias b_in + b_rec; a CuDNNGRU is a
GRU(reset_after=True) with bias [b_in; b_rec] (Keras documents the two as compatible).

The model must be one chain: InputLayer -> recurrent / Bidirectional / Dense /
TimeDistributed(Dense) / Dropout / Activation / Softmax layers. :func:`scan` reports every
layer Viya cannot follow in one error naming each layer.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from irc.errors import InvalidModel, UnsupportedAttribute, UnsupportedOp
from irc.frontends.registry import HandlerRegistry, format_unsupported

RECURRENT_LAYERS = HandlerRegistry("Keras (sequence models)")
CELLS = ("SimpleRNN", "LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU")
SEQUENCE_CLASSES = CELLS + ("Bidirectional",)
CELL_ACTS = ("tanh", "relu", "sigmoid")
DENSE_ACTS = ("linear", "relu", "sigmoid", "tanh", "elu", "softplus", "softmax")


@dataclass
class Spec:
    cls: str
    name: str
    config: dict
    weights: list = field(default_factory=list)  # numpy arrays, Keras order and layout


@dataclass
class SequenceModel:
    """A chain of specs read without Keras (a Keras 2 .h5 file with CuDNN layers)."""

    name: str
    input_name: str
    input_shape: tuple  # (T, d), T possibly None
    specs: list
    output_name: str
    breaks: list = field(default_factory=list)  # (layer, why): where it is not one chain


def has_recurrent(model) -> bool:
    if isinstance(model, SequenceModel):
        return True
    from irc.frontends.keras.model_graph import all_layers

    return any(type(layer).__name__ in SEQUENCE_CLASSES
               or type(getattr(layer, "layer", None)).__name__ in SEQUENCE_CLASSES
               for layer in all_layers(model))


# ---- specs from a live model ---------------------------------------------------------------


def specs_from_model(model, label: str) -> tuple[list, tuple, list]:
    """(specs in model order, input shape (T, d), chain breaks as (layer, why)) of a live
    Keras model."""
    from irc.frontends.keras.model_graph import model_tensors

    inputs = model_tensors(model, "inputs")
    if len(inputs) != 1:
        raise UnsupportedOp(f"the model has {len(inputs)} inputs; a Viya RNN has one input "
                            "layer", file=label)
    input_layer = inputs[0]._keras_history[0]
    specs, prev, breaks = [], input_layer, []
    for layer in model.layers:
        if layer is input_layer or type(layer).__name__ == "InputLayer":
            continue
        source = getattr(layer, "input", None)
        if isinstance(source, (list, tuple)) or source is None \
                or source._keras_history[0] is not prev:
            breaks.append((layer.name, "does not read the one layer before it (or reads a "
                                       "mask): irc converts sequence models that are one "
                                       "chain of layers"))
        specs.append(Spec(type(layer).__name__, layer.name, layer.get_config(),
                          [np.asarray(w) for w in layer.get_weights()]))
        prev = layer
    outputs = model_tensors(model, "outputs")
    if len(outputs) != 1 or outputs[0]._keras_history[0] is not prev:
        breaks.append((model.name, "the model's one output must be its last layer's output"))
    shape = tuple(None if d is None else int(d) for d in tuple(inputs[0].shape)[1:])
    return specs, shape, breaks


# ---- specs from a Keras 2 .h5 file ---------------------------------------------------------


def needs_h5_reader(config: dict) -> bool:
    """Whether a stored model_config holds CuDNN layers (no current Keras can load them)."""
    text = json.dumps(config)
    return '"CuDNNLSTM"' in text or '"CuDNNGRU"' in text


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_h5(path, label: str) -> SequenceModel:
    """A Sequential (or single-chain functional) Keras 2 model file, read with h5py."""
    import h5py

    with h5py.File(path, "r") as f:
        config = json.loads(_text(f.attrs["model_config"]))
        weights_root = f["model_weights"] if "model_weights" in f else f
        layers = config.get("config", {})
        layer_list = layers if isinstance(layers, list) else layers.get("layers", [])
        model_name = (layers.get("name") if isinstance(layers, dict) else None) or "model"
        specs, input_name, input_shape, breaks, prev = [], "input", None, [], None
        for entry in layer_list:
            cls, cfg = entry["class_name"], dict(entry.get("config", {}))
            name = cfg.get("name") or entry.get("name") or cls.lower()
            shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
            if shape is not None and input_shape is None:
                input_shape = tuple(shape[1:])
                if cls == "InputLayer":
                    input_name = name
            inbound = entry.get("inbound_nodes")  # functional models: check the chain
            if inbound is not None and prev is not None and (
                    len(inbound) != 1 or len(inbound[0]) != 1 or inbound[0][0][0] != prev):
                breaks.append((name, "does not read the one layer before it: irc converts "
                                     "sequence models that are one chain of layers"))
            prev = name
            if cls == "InputLayer":
                continue
            arrays = []
            if name in weights_root:
                group = weights_root[name]
                for wname in group.attrs.get("weight_names", []):
                    arrays.append(np.asarray(group[_text(wname)][()], np.float32))
            specs.append(Spec(cls, name, cfg, arrays))
    if input_shape is None or len(input_shape) != 2:
        raise InvalidModel(f"the .h5 model_config gives no (timesteps, features) input shape "
                           f"({input_shape})", file=label)
    if not specs:
        raise InvalidModel("the .h5 model_config lists no layers", file=label)
    return SequenceModel(model_name, input_name, input_shape, specs, specs[-1].name, breaks)


def standard_cell(spec: Spec) -> Spec:
    """A CuDNN spec as the equivalent standard LSTM/GRU spec (bias layout converted)."""
    if spec.cls not in ("CuDNNLSTM", "CuDNNGRU"):
        return spec
    kernel, recurrent_kernel, bias = spec.weights
    half = bias.shape[0] // 2
    cfg = {**spec.config, "activation": "tanh", "recurrent_activation": "sigmoid",
           "use_bias": True}
    if spec.cls == "CuDNNLSTM":  # i,f,c,o blocks; input bias then recurrent bias
        return Spec("LSTM", spec.name, cfg, [kernel, recurrent_kernel, bias[:half] + bias[half:]])
    cfg["reset_after"] = True  # cuDNN computes r * (h U_h + b_rec,h)
    return Spec("GRU", spec.name, cfg, [kernel, recurrent_kernel, np.stack([bias[:half],
                                                                            bias[half:]])])


def inner_spec(spec: Spec, part: str | None = None) -> Spec:
    """The wrapped layer of a Bidirectional/TimeDistributed spec (``part``: forward/backward
    half of a Bidirectional's weights), as a standard cell."""
    inner = spec.config["layer"]
    weights = spec.weights
    if part is not None:
        half = len(weights) // 2
        weights = weights[:half] if part == "forward" else weights[half:]
    return standard_cell(Spec(inner["class_name"], spec.name, dict(inner.get("config", {})),
                              list(weights)))


# ---- the scan ------------------------------------------------------------------------------


def _act_name(value) -> str:
    if isinstance(value, dict):
        return str(value.get("config", {}).get("name") or value.get("class_name"))
    return "linear" if value is None else str(value)


def check_cell(cfg: dict, cls: str, problem, in_bidirectional: bool) -> None:
    for key, why in (("stateful", "Viya starts every sequence from a zero state"),
                     ("return_state", "a Viya recurrent layer outputs only its hidden state"),
                     ("time_major", "irc reads batch-major sequences")):
        if cfg.get(key):
            problem(f"{key}=True: {why}")
    act = _act_name(cfg.get("activation", "tanh"))
    if act not in CELL_ACTS:
        problem(f"activation {act!r}: irc maps tanh, relu and sigmoid to Viya's recurrent `act`")
    gate = _act_name(cfg.get("recurrent_activation", "sigmoid"))
    if cls != "SimpleRNN" and gate != "sigmoid":
        problem(f"recurrent_activation {gate!r}: Viya's gates use the logistic sigmoid (trap "
                "16: hard_sigmoid was the Keras <= 2.2 default; retrain or re-save with "
                "recurrent_activation='sigmoid')")
    if cfg.get("go_backwards") and cfg.get("return_sequences") and not in_bidirectional:
        problem("go_backwards=True with return_sequences=True returns the sequence in reversed "
                "time order; whether Viya realigns a reversed same-length layer is open "
                "(viya-semantics §13 rnn_reversed_output), so irc does not emit it")


def scan(specs: list, label: str, problems=()) -> None:
    """Raise one error listing every layer of the chain Viya cannot compute (``problems``:
    (layer, why) pairs found before)."""
    problems, missing = list(problems), {}
    seen_recurrent, sequence = False, True  # what flows between layers: a sequence or a vector
    for k, spec in enumerate(specs):
        def problem(message, name=spec.name):
            problems.append((name, message))
        handler = RECURRENT_LAYERS.get(spec.cls)
        if handler is None:
            missing.setdefault(spec.cls, []).append(spec.name)
            continue
        last = k == len(specs) - 1
        sequence, seen_recurrent = handler.fn(spec, problem, sequence, seen_recurrent, last)
    lines = []
    if missing:
        lines.append(format_unsupported(
            "Keras", missing, "in sequence models irc converts: "
            + ", ".join(RECURRENT_LAYERS.op_types()) + " (one chain of layers)."))
    if problems:
        lines.append(f"{len(problems)} layer configuration(s) Viya cannot compute:")
        lines += [f"  {name}: {msg}" for name, msg in problems]
    if lines:
        raise (UnsupportedOp if missing else UnsupportedAttribute)(
            "\n".join(lines), file=label, hint="change these layers in the Keras model")


@RECURRENT_LAYERS.register(*CELLS)
def cell_layer(spec, problem, sequence, seen, last):
    """SimpleRNN/LSTM/GRU (and Keras 2 CuDNNLSTM/CuDNNGRU) -> a Viya recurrent layer."""
    if not sequence:
        problem("reads a vector (a recurrent layer with return_sequences=False came before); "
                "Viya's recurrent layers read the input or a same-length sequence")
    check_cell(spec.config, spec.cls, problem, False)
    return bool(spec.config.get("return_sequences")), True


@RECURRENT_LAYERS.register("Bidirectional")
def bidirectional(spec, problem, sequence, seen, last):
    """Bidirectional(concat) -> forward_<name> and backward_<name> recurrent layers."""
    inner = spec.config.get("layer", {})
    if inner.get("class_name") not in CELLS:
        problem(f"Bidirectional wraps {inner.get('class_name')}, not a recurrent layer")
        return sequence, True
    if spec.config.get("merge_mode", "concat") != "concat":
        problem(f"merge_mode={spec.config.get('merge_mode')!r}: Viya's consumer concatenates "
                "the two directions")
    backward = spec.config.get("backward_layer")
    if backward is not None and any(backward.get("config", {}).get(k) != inner["config"].get(k)
                                    for k in ("units", "activation", "return_sequences")):
        problem("a custom backward_layer differs from the forward layer")
    if not sequence:
        problem("reads a vector; Viya's recurrent layers read a sequence")
    check_cell(inner.get("config", {}), inner["class_name"], problem, True)
    return bool(inner.get("config", {}).get("return_sequences")), True


def _dense_checks(cfg, problem, sequence, seen, last):
    act = _act_name(cfg.get("activation"))
    if act not in DENSE_ACTS:
        problem(f"activation {act!r}: Viya has no such activation")
    if act == "softmax" and not last:
        problem("softmax before the end of the model: Viya applies softmax only in an output "
                "layer")
    if sequence and not seen:
        problem("a Dense on the input sequence: Viya's fc layers work per time step only after "
                "a same-length recurrent layer")
    return sequence, seen


@RECURRENT_LAYERS.register("Dense")
def dense(spec, problem, sequence, seen, last):
    """Dense -> fc or output (per time step after a same-length recurrent layer)."""
    return _dense_checks(spec.config, problem, sequence, seen, last)


@RECURRENT_LAYERS.register("TimeDistributed")
def time_distributed(spec, problem, sequence, seen, last):
    """TimeDistributed(Dense) -> fc or output per time step."""
    inner = spec.config.get("layer", {})
    if inner.get("class_name") != "Dense":
        problem(f"TimeDistributed wraps {inner.get('class_name')}; irc converts "
                "TimeDistributed(Dense) only")
        return sequence, seen
    return _dense_checks(inner.get("config", {}), problem, sequence, seen, last)


@RECURRENT_LAYERS.register("Dropout", "SpatialDropout1D")
def dropout(spec, problem, sequence, seen, last):
    """Dropout -> removed (inference)."""
    return sequence, seen


@RECURRENT_LAYERS.register("InputLayer")
def input_layer(spec, problem, sequence, seen, last):
    """InputLayer -> the Viya sequence input layer (T steps of d features)."""
    return sequence, seen


@RECURRENT_LAYERS.register("Activation", "Softmax")
def activation(spec, problem, sequence, seen, last):
    """Activation/Softmax after a Dense -> that layer's act (softmax only at the output)."""
    act = "softmax" if spec.cls == "Softmax" else _act_name(spec.config.get("activation"))
    if act not in DENSE_ACTS:
        problem(f"activation {act!r}: Viya has no such activation")
    if act == "softmax" and not last:
        problem("softmax before the end of the model: Viya applies softmax only in an output "
                "layer")
    if spec.cls == "Softmax" and spec.config.get("axis", -1) not in (-1, [-1]):
        problem(f"Softmax axis={spec.config.get('axis')}: only the feature axis")
    return sequence, seen


# ---- an equivalent standard Keras model (the oracle for CuDNN files) ------------------------


def keras_equivalent(model: SequenceModel):
    """A Keras 3 model computing what ``model`` computes, CuDNN layers as standard LSTM/GRU."""
    from irc.frontends.keras.runtime import tf_modules

    keras = tf_modules().keras
    L = keras.layers
    x = keras.Input(model.input_shape, name=model.input_name)
    h = x
    for spec in model.specs:
        spec, weights = standard_cell(spec), []
        if spec.cls == "Bidirectional":
            fwd = inner_spec(spec, "forward")
            layer = L.Bidirectional(_cell(L, fwd), merge_mode="concat", name=spec.name)
            weights = fwd.weights + inner_spec(spec, "backward").weights
        elif spec.cls == "TimeDistributed":
            inner = inner_spec(spec)
            layer = L.TimeDistributed(L.Dense(**_dense_kwargs(inner.config)), name=spec.name)
            weights = inner.weights
        elif spec.cls in ("LSTM", "GRU", "SimpleRNN"):
            layer, weights = _cell(L, spec, spec.name), spec.weights
        elif spec.cls == "Dense":
            layer, weights = L.Dense(**_dense_kwargs(spec.config), name=spec.name), spec.weights
        elif spec.cls == "Activation":
            layer = L.Activation(_act_name(spec.config.get("activation")), name=spec.name)
        elif spec.cls == "Softmax":
            layer = L.Softmax(name=spec.name)
        else:  # Dropout, SpatialDropout1D: identity at inference
            layer = L.Dropout(float(spec.config.get("rate", 0.0)), name=spec.name)
        h = layer(h)
        if weights:
            layer.set_weights(weights)
    return keras.Model(x, h, name=model.name)


def _dense_kwargs(cfg):
    return {"units": cfg["units"], "activation": _act_name(cfg.get("activation")),
            "use_bias": cfg.get("use_bias", True)}


def _cell(L, spec, name=None):
    cfg = spec.config
    kwargs = {"units": cfg["units"], "activation": _act_name(cfg.get("activation", "tanh")),
              "use_bias": cfg.get("use_bias", True),
              "return_sequences": bool(cfg.get("return_sequences")),
              "go_backwards": bool(cfg.get("go_backwards"))}
    if spec.cls != "SimpleRNN":
        kwargs["recurrent_activation"] = _act_name(cfg.get("recurrent_activation", "sigmoid"))
    if spec.cls == "GRU":
        kwargs["reset_after"] = bool(cfg.get("reset_after", True))
    return getattr(L, spec.cls)(**kwargs, **({"name": name} if name else {}))
