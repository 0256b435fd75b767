"""Recurrent layers and what Viya computes per time step after them (viya-semantics.md §13).

Shapes: a per-time-step sequence is (T, n) per example ((N, T, n) arrays); the RNN input layer
is (1, 1, T·d) (viya-target.md §3.2: width = timesteps × features), read time-major, so the
first recurrent layer recovers (T, d) with d = the rows of its kernel, taken from the weights
file when it is read (:func:`peek_input_dims`). Several sources are concatenated per step.

Open points, each an :class:`ExecutorOptions` field: ``rnn_gate_act`` (logistic; hard_sigmoid
is Keras 2's 0.2·x + 0.5 clipped to [0, 1]), ``gru_reset_after`` (infer from the bias shape),
``lstm_peephole`` (off; on is refused: no public wiring or weights), ``rnn_reversed_output``
(input_order), ``auto_act_recurrent`` (tanh). Initial states are zero. Kernels are vectorised
over the batch and loop over time only.
"""
from __future__ import annotations

import math

import numpy as np

from irc.errors import InvalidModel, UnsupportedOp
from irc.ir.ops import RECURRENT_GATES

from .kernels import activate

F32 = np.float32
GATES = {op.lower(): g for op, g in RECURRENT_GATES.items()}  # by Viya rnntype
OUTPUT_TYPES = ("samelength", "encoding")


# ----------------------------------------------------------------------------- reading

def normalize_options(raw: dict, num, flag, name, file) -> dict:
    """Payload-vocabulary recurrent options -> the executor's (``act`` is handled by the caller)."""
    rnn_type = str(raw.get("rnntype", "rnn")).lower()
    out_type = str(raw.get("outputtype", "encoding")).lower()
    if rnn_type not in GATES:
        raise InvalidModel(f"unknown rnntype {rnn_type!r}", node=name, file=str(file))
    if out_type not in OUTPUT_TYPES:
        raise UnsupportedOp(f"recurrent outputtype {out_type!r} is not executed (only "
                            "samelength and encoding)", node=name, file=str(file))
    return {"n": num("n"), "rnntype": rnn_type, "outputtype": out_type,
            "reversed": flag("reversed", False), "peephole": flag("peephole", False)}


def table_options(rows: dict, raw: dict) -> None:
    """Model-table enum rows (rnnopts.rnntype, rnnopts.rnnoutputtype) -> payload vocabulary.

    Confirmed: LSTM = 1 and same-length = 1 (viya-target.md §4.5); the other labels by DLPy's
    substrings ('Gated' for GRU, 'fixed-length' for encoding, 'arbitrary')."""
    if "rnntype" in rows:
        label, code = rows["rnntype"]
        low = (label or "").lower()
        raw["rnntype"] = ("lstm" if "long short" in low or (not low and code == 1) else
                          "gru" if "gated" in low else "rnn" if low else f"code {code}")
    if "rnnoutputtype" in rows:
        label, code = rows["rnnoutputtype"]
        low = (label or "").lower()
        raw["outputtype"] = ("samelength" if "same length" in low or (not low and code == 1)
                             else "encoding" if "fixed-length" in low or "encoding" in low
                             else "arbitrarylength" if "arbitrary" in low else f"code {code}")


def peek_input_dims(model, handle) -> None:
    """What the layer options cannot say, from the weights file: d of every recurrent layer
    (its kernel's row count; needed for one reading the flat input layer) and whether a GRU
    bias is (2, 3n) (reset-after) or (3n,)."""
    for layer in model.layers:
        if layer.type != "recurrent":
            continue
        kernel = handle.get(f"{layer.name}/{layer.name}/kernel:0")
        if kernel is not None and len(kernel.shape) == 2:
            layer.options["input_dim"] = int(kernel.shape[0])
        bias = handle.get(f"{layer.name}/{layer.name}/bias:0")
        layer.options["bias_2d"] = bias is not None and len(bias.shape) == 2 \
            and layer.options["rnntype"] == "gru"


# ----------------------------------------------------------------------------- shapes

def is_sequence(shape) -> bool:
    return len(shape) == 2


def _steps_and_width(layer, src_shapes) -> tuple[int, int]:
    """(T, d) of what the layer reads: sequences joined per step, or the flat input layer."""
    seqs = [s for s in src_shapes if is_sequence(s)]
    if seqs:
        if len(seqs) != len(src_shapes) or len({s[0] for s in seqs}) != 1:
            raise InvalidModel(f"sources {list(src_shapes)} are not sequences of one length",
                               node=layer.name)
        return seqs[0][0], sum(s[1] for s in seqs)
    if layer.type != "recurrent" or len(src_shapes) != 1:
        raise InvalidModel("only a recurrent layer reads the sequence input", node=layer.name)
    total = math.prod(src_shapes[0])
    if total == 0:
        raise UnsupportedOp("the input layer has width 0 (variable-length sequences); the "
                            "executor needs width = timesteps x features", node=layer.name)
    d = layer.options.get("input_dim")
    if d is None:
        raise InvalidModel("the recurrent layer reads the input layer; its feature count d "
                           "comes from the rows of its kernel, which no weights file gave",
                           node=layer.name)
    if d < 1 or total % d:
        raise InvalidModel(f"the input holds {total} values per example, not a multiple of "
                           f"the kernel's {d} features", node=layer.name)
    return total // d, d


def output_shape(layer, src_shapes) -> tuple:
    opts = layer.options
    if not src_shapes:
        raise InvalidModel(f"{layer.type} layer has no srcLayers", node=layer.name)
    if layer.type in ("fc", "output"):
        steps, width = _steps_and_width(layer, src_shapes)
        if layer.type == "output" and not opts["fullconnect"]:
            if opts["n"] not in (0, width):
                raise InvalidModel(f"output layer without fullconnect has n={opts['n']} but "
                                   f"receives {width} values per time step", node=layer.name)
            return (steps, width)
        return (steps, opts["n"])
    if layer.type != "recurrent":
        raise UnsupportedOp(f"a {layer.type} layer reading a per-time-step sequence is not "
                            "executed (only recurrent, fc and output layers are)", node=layer.name)
    steps, _ = _steps_and_width(layer, src_shapes)
    return (steps, opts["n"]) if opts["outputtype"] == "samelength" else (opts["n"],)


def weight_shapes(layer, src_shapes, options) -> dict:
    opts = layer.options
    _, d = _steps_and_width(layer, src_shapes)
    if layer.type in ("fc", "output"):
        params = {"kernel": (opts["n"], d)}
        if opts["include_bias"]:
            params["bias"] = (opts["n"],)
        return params
    n, g = opts["n"], GATES[opts["rnntype"]]
    bias = (2, g * n) if opts.get("bias_2d") else (g * n,)  # GRU reset-after: (2, 3n), §5.5
    return {"kernel": (d, g * n), "recurrent_kernel": (n, g * n), "bias": bias}


# ----------------------------------------------------------------------------- compute

def handles(layer, sources) -> bool:
    return layer.type == "recurrent" or (layer.type in ("fc", "output")
                                         and any(s.ndim == 3 for s in sources))


def _joined(layer, sources) -> np.ndarray:
    """(N, T, d): sequences joined per step, or the flat input read time-major."""
    if all(s.ndim == 3 for s in sources):
        return sources[0] if len(sources) == 1 else np.concatenate(sources, axis=2)
    n = sources[0].shape[0]
    flat = sources[0].reshape(n, -1)
    return flat.reshape(n, -1, layer.options["input_dim"])


def run_layer(layer, sources, options, activate_fn) -> np.ndarray:
    """The layer's output (activation applied) for a recurrent layer or a per-step fc/output."""
    x = _joined(layer, sources)
    opts, w = layer.options, layer.weights
    if layer.type in ("fc", "output"):
        full = layer.type == "fc" or opts["fullconnect"]
        y = x @ w["kernel"].T if full else x.copy()
        if full and w.get("bias") is not None:
            y += w["bias"]
        return activate_fn(layer, np.ascontiguousarray(y, dtype=F32), options)
    act = opts["act"]
    if act == "auto":
        act = options.auto_act_recurrent
    if act == "softmax":
        raise InvalidModel("softmax is only valid on an output layer", node=layer.name)
    if opts["rnntype"] == "lstm" and options.lstm_peephole:
        raise UnsupportedOp("lstm_peephole=on: the peephole wiring and weights of a Viya LSTM "
                            "are not public, and a KERAS-format file holds none",
                            node=layer.name)
    cell = {"rnn": _rnn_step, "lstm": _lstm_step, "gru": _gru_step}[opts["rnntype"]]
    return recurrent(x, w["kernel"], w["recurrent_kernel"], w["bias"], cell, act,
                     reverse=opts["reversed"], sequence=opts["outputtype"] == "samelength",
                     gate=options.rnn_gate_act, elu_alpha=options.elu_alpha,
                     reset_after=options.gru_reset_after,
                     processing_order=options.rnn_reversed_output == "processing_order")


def gate_fn(kind: str):
    if kind == "hard_sigmoid":
        return lambda z: np.clip(F32(0.2) * z + F32(0.5), F32(0), F32(1))
    return lambda z: activate(z, "sigmoid")


def recurrent(x, kernel, recurrent_kernel, bias, cell, act: str, *, reverse=False,
              sequence=True, gate="logistic", elu_alpha=1.0, reset_after="infer",
              processing_order=False) -> np.ndarray:
    """Run one recurrent layer over x (N, T, d) from a zero state.

    Returns (N, T, n) (``sequence``) or the final hidden state (N, n). Reversed layers visit
    t = T..1; their sequence is stored at each step's input position unless
    ``processing_order``.
    """
    x = np.asarray(x, F32)
    batch, steps, _ = x.shape
    n = recurrent_kernel.shape[0]
    sigma = gate_fn(gate)

    def a(z):
        return activate(z, act, elu_alpha=elu_alpha)
    bias = np.asarray(bias, F32)
    if cell is _gru_step:
        two_d = bias.ndim == 2 if reset_after == "infer" else bool(reset_after)
        if two_d and bias.ndim == 1:
            bias = np.stack([bias, np.zeros_like(bias)])
        elif not two_d and bias.ndim == 2:
            bias = bias.sum(axis=0)
    b_in = bias[0] if bias.ndim == 2 else bias
    b_rec = bias[1] if bias.ndim == 2 else None
    xw = x @ kernel + b_in  # (N, T, G·n): the input part of every step at once
    state = {"h": np.zeros((batch, n), F32), "c": np.zeros((batch, n), F32)}
    out = np.empty((batch, steps, n), F32) if sequence else None
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for k, t in enumerate(order):
        cell(xw[:, t], recurrent_kernel, b_rec, state, sigma, a, n)
        if sequence:
            out[:, k if processing_order else t] = state["h"]
    return out if sequence else state["h"].copy()


def _rnn_step(xw, u, b_rec, state, sigma, a, n):
    state["h"] = a(xw + state["h"] @ u)


def _lstm_step(xw, u, b_rec, state, sigma, a, n):
    z = xw + state["h"] @ u
    i, f = sigma(z[:, :n]), sigma(z[:, n:2 * n])
    g, o = a(z[:, 2 * n:3 * n]), sigma(z[:, 3 * n:])
    state["c"] = f * state["c"] + i * g
    state["h"] = o * a(state["c"])


def _gru_step(xw, u, b_rec, state, sigma, a, n):
    h = state["h"]
    if b_rec is not None:  # reset-after: r multiplies the recurrent candidate term
        hu = h @ u + b_rec
        z = sigma(xw[:, :n] + hu[:, :n])
        r = sigma(xw[:, n:2 * n] + hu[:, n:2 * n])
        cand = a(xw[:, 2 * n:] + r * hu[:, 2 * n:])
    else:  # reset-before: r multiplies h before the recurrent kernel
        hu = h @ u[:, :2 * n]
        z = sigma(xw[:, :n] + hu[:, :n])
        r = sigma(xw[:, n:2 * n] + hu[:, n:])
        cand = a(xw[:, 2 * n:] + (r * h) @ u[:, 2 * n:])
    state["h"] = z * h + (F32(1) - z) * cand
