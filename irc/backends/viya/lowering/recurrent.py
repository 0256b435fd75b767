"""Lowering of sequence models: the IR's batch-first RNN/LSTM/GRU and what reads their outputs.

The handlers register for the recurrent ops (whatever they read), for the ops reading a
per-time-step sequence (``SEQUENCE``) and for reshapes of a final state (``STATE``); the
after-hook :func:`finish` runs before the output layers are added. The sequence input layer is in
inputs.py. The rules (viya-target.md §3.2, §5.5; viya-semantics.md §13):

- each direction of an op is one ``recurrent`` layer (bidirectional: ``forward_<name>`` and
  ``backward_<name>`` on the same sources, listed in that order by every consumer); ``Y`` read
  gives ``outputtype samelength``, ``Y_h`` read gives ``encoding``;
- weights go to the Keras layout and gate order: ONNX LSTM i,o,f,c becomes i,f,c,o, ONNX
  W (G·n, d) becomes the kernel (d, G·n), B = Wb‖Rb becomes Wb + Rb, except for a GRU with
  ``linear_before_reset=1`` whose bias stays (2, 3n) = [Wb; Rb] (reset-after);
- a MatMul (+ bias Add, + activation, + Softmax at the end) on a same-length sequence is an fc
  or output layer applied per time step (the acoustic model: 609 = 29 × (20 + 1) weights).
"""
from __future__ import annotations

import numpy as np

from irc.backends.viya import schema
from irc.backends.viya.lowering.context import LoweringContext, Seq
from irc.backends.viya.lowering.inputs import TIME_MAJOR_NOTE
from irc.backends.viya.lowering.registry import ANY, LOWERINGS, SEQUENCE, STATE
from irc.backends.viya.model import LazyWeight, LoweredLayer
from irc.ir.graph import Node
from irc.ir.activations import ACTIVATION_OPS, CELL_OPS, viya_computes
from irc.ir.ops import RECURRENT_GATES as GATES, RECURRENT_OPS
from irc.ir.tensors import BATCH

RNN_TYPE = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}
DEFAULT_CELL = {"RNN": "Tanh", "LSTM": "Tanh", "GRU": "Tanh"}
LSTM_ONNX_TO_KERAS = [0, 2, 3, 1]  # ONNX blocks i,o,f,c -> Keras i,f,c,o
RESHAPES = ("Reshape", "Squeeze", "Flatten", "Identity", "Dropout")
NOTES = {
    "gates": "recurrent layers: gates use the logistic sigmoid and start from h0 = c0 = 0 "
             "(viya-semantics §13 open points rnn_gate_act=logistic, initial state zeros)",
    "reversed": "a reversed same-length recurrent layer is taken to return its outputs in input "
                "time order (open point rnn_reversed_output=input_order)",
    "gru": "GRU variant: the bias shape tells the server reset-after (2, 3n) or reset-before "
           "(3n) (open point gru_reset_after=infer)",
}


def not_per_step(ctx: LoweringContext, node: Node) -> None:
    """The refusal of an op reading a per-time-step sequence that no handler takes."""
    ctx.problem(node, f"{node.op_type} on a per-time-step sequence: after a same-length "
                      "recurrent layer Viya has only recurrent, fc and output layers, "
                      "applied per time step")


# ---- recurrent ops -----------------------------------------------------------------------------


def _weights(ctx, node, direction: int) -> dict:
    op, n = node.op_type, node.attrs["hidden_size"]
    g = GATES[op]
    w_name, r_name, b_name = node.inputs[1], node.inputs[2], node.inputs[3]
    graph = ctx.graph

    def kernel(name):
        def compute():
            m = np.asarray(graph.const(name)[direction], np.float32)  # (G·n, in)
            if op == "LSTM":
                m = m.reshape(4, n, -1)[LSTM_ONNX_TO_KERAS].reshape(4 * n, -1)
            return np.ascontiguousarray(m.T)
        rows = graph.value(name).type.shape[2]
        return LazyWeight((rows, g * n), compute)

    reset_after = op == "GRU" and node.attrs.get("linear_before_reset", 0) == 1

    def bias():
        b = np.asarray(graph.const(b_name)[direction], np.float64)
        wb, rb = b[:g * n], b[g * n:]
        if reset_after:
            return np.stack([wb, rb])
        total = wb + rb
        if op == "LSTM":
            total = total.reshape(4, n)[LSTM_ONNX_TO_KERAS].reshape(-1)
        return total
    shape = (2, 3 * n) if reset_after else (g * n,)
    return {"kernel": kernel(w_name), "recurrent_kernel": kernel(r_name),
            "bias": LazyWeight(shape, bias)}


def _cell_act(node) -> str:
    acts = node.attrs.get("activations")
    cell = acts[-1] if acts else DEFAULT_CELL[node.op_type]
    return CELL_OPS[cell]


@LOWERINGS.register(*RECURRENT_OPS, reads=ANY, emits=("recurrent", "fc", "output"))
def lower_recurrent(ctx: LoweringContext, node: Node) -> None:
    x = node.inputs[0]
    src = ctx.seq.get(x)
    if src is None:
        ctx.problem(node, "the recurrent input is not the model's sequence input or a "
                          "same-length sequence")
        return
    graph = ctx.graph
    used = [bool(o) and graph.use_count(o) > 0 for o in node.outputs]
    if len(used) > 2 and used[2]:
        ctx.problem(node, "the LSTM cell state Y_c is read; a Viya recurrent layer outputs only "
                          "its hidden state")
        return
    if used[0] and used[1]:
        ctx.problem(node, "both the sequence Y and the final state Y_h are read; a Viya "
                          "recurrent layer has one output type (samelength or encoding)")
        return
    if not (used[0] or used[1]):
        return
    samelength = used[0]
    n, direction = node.attrs["hidden_size"], node.attrs.get("direction", "forward")
    plan = {"forward": [("", False)], "reverse": [("", True)],
            "bidirectional": [("forward_", False), ("backward_", True)]}[direction]
    layers = []
    for k, (prefix, reverse) in enumerate(plan):
        options = {"n": n, "rnntype": RNN_TYPE[node.op_type],
                   "outputtype": "samelength" if samelength else "encoding",
                   "reversed": reverse, "act": _cell_act(node)}
        name = ctx.names.claim(prefix + node.name, "recurrent")
        layer = LoweredLayer(name, "recurrent", options,
                             list(src.layers), _weights(ctx, node, k), node.provenance.sources,
                             (src.steps, n) if samelength else (n,), node.provenance.passes,
                             tensor=node.outputs[0 if samelength else 1])
        ctx.append(layer)
        layers.append(layer.name)
        if reverse and samelength:
            ctx.note(NOTES["reversed"])
    ctx.model.model_type = "RNN"
    ctx.note(NOTES["gates"])
    if node.op_type == "GRU":
        ctx.note(NOTES["gru"])
    out = node.outputs[0] if samelength else node.outputs[1]
    if not samelength:
        ctx.states.add(out)
    ctx.layer_of[out] = layers[0]
    if len(layers) > 1:
        ctx.multi[out] = layers
    if samelength:
        ctx.seq[out] = Seq(layers, src.steps, n * len(layers))


# ---- what reads a sequence ---------------------------------------------------------------------


@LOWERINGS.register(*RESHAPES, reads=SEQUENCE)
def lower_sequence_reshape(ctx: LoweringContext, node: Node) -> None:
    """(N, T, dirs, n) -> (N, T, dirs·n), or any no-op: the same layers, concatenated per step."""
    x, out = node.inputs[0], node.outputs[0]
    seq = ctx.seq[x]
    shape = ctx.graph.value(out).type.shape
    # a graph output only is compared value by value, so any (N, T, ...) shape holding each
    # step's values in order will do: Y's own (N, T, dirs, n), unit axes at T = 1
    as_output = _only_output(ctx.graph, out) and shape[:2] == (BATCH, seq.steps) \
        and int(np.prod(shape[2:])) == seq.width
    if shape != (BATCH, seq.steps, seq.width) and not as_output:
        ctx.problem(node, f"{node.op_type} of a per-time-step sequence to {shape[1:]}: Viya "
                          f"keeps it as {seq.steps} steps of {seq.width} values (fc and output "
                          "layers after a same-length recurrent layer work per time step)")
        return
    ctx.seq[out] = seq
    ctx.layer_of[out] = ctx.layer_of[x]
    if x in ctx.multi:
        ctx.multi[out] = ctx.multi[x]


@LOWERINGS.register(*RESHAPES, reads=STATE)
def lower_state_vector(ctx: LoweringContext, node: Node) -> None:
    """Y_h (N, dirs, n) -> (N, dirs·n): already what the encoding layer(s) give, a vector."""
    x, out = node.inputs[0], node.outputs[0]
    width = ctx.graph.value(x).type.numel_per_example()
    out_type = ctx.graph.value(out).type
    as_output = _only_output(ctx.graph, out) and out_type.numel_per_example() == width
    if out_type.shape != (BATCH, width) and not as_output:  # e.g. Y_h's own (N, dirs, n)
        ctx.problem(node, f"the final recurrent state is reshaped to "
                          f"{ctx.graph.value(out).type.shape[1:]}; Viya gives it as a vector")
        return
    ctx.alias(out, x)


def _only_output(graph, value) -> bool:
    return value in graph.outputs and graph.use_count(value) == graph.outputs.count(value)


def _sole(graph, value, op_types):
    if graph.use_count(value) != 1 or value in graph.outputs:
        return None
    (consumer,) = graph.consumers(value)
    return consumer if consumer.op_type in op_types else None


@LOWERINGS.register("MatMul", reads=SEQUENCE)
def lower_per_step_dense(ctx: LoweringContext, node: Node) -> None:
    graph = ctx.graph
    if node.inputs[0] not in ctx.seq:
        not_per_step(ctx, node)
        return
    x, w = node.inputs
    seq = ctx.seq[x]
    if not graph.is_const(w) or graph.value(w).type.shape[0] != seq.width:
        ctx.problem(node, f"MatMul per time step needs a constant ({seq.width}, out) weight")
        return
    m = graph.value(w).type.shape[1]
    claimed, cur, bias, act = [], node.outputs[0], None, "identity"
    add = _sole(graph, cur, ("Add",))
    if add is not None:
        other = add.inputs[1] if add.inputs[0] == cur else add.inputs[0]
        if graph.is_const(other) and graph.const(other).size in (1, m) \
                and graph.const(other).ndim <= 3:
            bias, cur = other, add.outputs[0]
            claimed.append(add)
    step_act = _sole(graph, cur, tuple(ACTIVATION_OPS))
    if step_act is not None:
        name = ACTIVATION_OPS[step_act.op_type]
        alpha = step_act.attrs.get("alpha")
        if not viya_computes(name, alpha):
            step_act = None
        else:
            act, cur = name, step_act.outputs[0]
            claimed.append(step_act)
    softmax = _sole(graph, cur, ("Softmax",)) if act == "identity" else None
    if softmax is not None and softmax.outputs[0] in graph.outputs \
            and graph.use_count(softmax.outputs[0]) == 1:
        act, cur = "softmax", softmax.outputs[0]
        claimed.append(softmax)
    as_output = cur in graph.outputs and graph.use_count(cur) == 1
    options = {"n": m, "act": act, "includebias": bias is not None}
    if as_output:
        options.update(fullconnect=True, error=schema.default("output", "error"))
    weights = {"kernel": LazyWeight((m, seq.width),
                                    lambda: np.ascontiguousarray(graph.const(w).T))}
    if bias is not None:
        weights["bias"] = LazyWeight((m,), lambda: np.broadcast_to(
            np.asarray(graph.const(bias), np.float32).reshape(-1), (m,)).copy())
    provenance = node.provenance
    for c in claimed:
        provenance = provenance.merged(c.provenance, None)
    layer = LoweredLayer(ctx.names.claim(node.name, "fc"), "output" if as_output else "fc",
                         options, list(seq.layers), weights, provenance.sources, (seq.steps, m),
                         provenance.passes, tensor=cur)
    ctx.append(layer)
    ctx.claimed.update(c.name for c in claimed)
    ctx.layer_of[cur] = layer.name
    ctx.seq[cur] = Seq([layer.name], seq.steps, m)
    if as_output:
        ctx.model.outputs[cur] = layer.name


@LOWERINGS.register("Softmax", reads=SEQUENCE)
def lower_sequence_softmax(ctx: LoweringContext, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    seq = ctx.seq[x]
    if out not in ctx.graph.outputs:
        ctx.problem(node, "Softmax in the middle of the graph; Viya applies softmax only in the "
                          "output layer")
        return
    _output_layer(ctx, out, seq, "softmax", node.provenance.sources)


def _output_layer(ctx, out: str, seq: Seq, act: str, sources=()) -> None:
    name = ctx.names.claim(f"{ctx.layer_of.get(out, seq.layers[0])}_output", "output")
    layer = LoweredLayer(name, "output",
                         {"n": seq.width, "act": act, "includebias": False,
                          "fullconnect": False, "error": schema.default("output", "error")},
                         list(seq.layers), {}, tuple(sources), (seq.steps, seq.width), tensor=out)
    ctx.append(layer)
    ctx.layer_of[out] = layer.name
    ctx.model.outputs[out] = layer.name


@LOWERINGS.hook("after", order=10)
def finish(ctx) -> None:
    """Output layers for sequence graph outputs (per time step, no weights)."""
    graph = ctx.graph
    for out in graph.outputs:
        if graph.source_batch_axes.get(out):
            ctx.model.input_info.setdefault("output_batch_axes", {})[out] = \
                graph.source_batch_axes[out]
            ctx.note(TIME_MAJOR_NOTE)
        seq = ctx.seq.get(out)
        if seq is None or out in ctx.model.outputs or out in graph.inputs:
            continue
        _output_layer(ctx, out, seq, "identity")
