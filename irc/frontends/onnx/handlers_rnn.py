"""ONNX RNN, LSTM and GRU -> the IR's batch-first recurrent ops (issue 6).

:mod:`rnn_layout` has already made every time-major op batch-first (``layout=1``). The handler
checks what a Viya recurrent layer can compute and emits the op with its ONNX weights
unchanged (lowering converts them to the Keras layout of viya-target.md §5.5):

- B (absent: zeros), W and R must be constants;
- ``sequence_lens``, a non-zero initial state, LSTM peepholes, ``clip``, ``input_forget`` and
  activation parameters are refused (Viya runs every sequence in full from a zero state);
- gate activations must be Sigmoid (trap 16); the cell activation may be Tanh, Relu or Sigmoid
  (Viya's ``act``), the same for both directions (and for g and h of an LSTM).
"""
from __future__ import annotations

import numpy as np

from irc.frontends.onnx.registry import ONNX_OPS as reg
from irc.ir.activations import CELL_OPS
from irc.ir.ops import RECURRENT_GATES as GATES, RECURRENT_OPS
from irc.ir.tensors import BATCH, TensorType

# per direction: the activations ONNX expects, and which of them are gates
ACT_SLOTS = {"RNN": ("cell",), "LSTM": ("gate", "cell", "cell"), "GRU": ("gate", "cell")}
_ONNX_NAMES = {op.lower(): op for op in CELL_OPS}


def reads_sequence(imp, value: str) -> bool:
    """Whether ``value`` is computed from the output of a recurrent op (a per-time-step tensor
    Viya's fc/output layers can read after a same-length recurrent layer)."""
    seen, todo = set(), [value]
    while todo:
        name = todo.pop()
        if name in seen or not imp.graph.has_value(name):
            continue
        seen.add(name)
        producer = imp.graph.producer(name)
        if producer is None:
            continue
        if producer.op_type in RECURRENT_OPS:
            return True
        todo += [i for i in producer.inputs if i and not imp.graph.is_const(i)]
    return False


def _activations(imp, op: str, attrs: dict, dirs: int) -> list[str] | None:
    slots = ACT_SLOTS[op]
    given = attrs.get("activations")
    if given is None:
        return None  # ONNX defaults: Sigmoid gates, Tanh cell
    names = [_ONNX_NAMES.get(str(a).lower(), str(a)) for a in given]
    if len(names) != len(slots) * dirs:
        imp.problem(f"activations {given} should list {len(slots)} per direction")
        return None
    cells = set()
    for i, name in enumerate(names):
        if slots[i % len(slots)] == "gate" and name != "Sigmoid":
            imp.problem(f"gate activation {name}: Viya's gates use the logistic sigmoid "
                        "(hard sigmoid gates are Keras <= 2.2's default; trap 16)")
            return None
        if slots[i % len(slots)] == "cell":
            cells.add(name)
    if len(cells) != 1 or next(iter(cells)) not in CELL_OPS:
        imp.problem(f"cell activations {sorted(cells)}: a Viya recurrent layer has one `act` "
                    "(Tanh, Relu or Sigmoid here) for both directions")
        return None
    return names


def _zero_or_absent(imp, node, slot: int, what: str) -> bool:
    if len(node.input) <= slot or not node.input[slot]:
        return True
    value = imp.const(node.input[slot])
    if value is not None and not np.any(value):
        return True
    imp.problem(f"{what} is given and not constant zeros; Viya starts every sequence from a "
                "zero state")
    return False


@reg.register(*RECURRENT_OPS)
def recurrent(imp, node, attrs):
    """RNN/LSTM/GRU -> Viya recurrent layers (bidirectional: forward_ + backward_ layers)."""
    op = node.op_type
    if int(attrs.get("layout", 0)) != 1:
        imp.problem("a time-major op remained (internal: rnn_layout should have rewritten it)")
        return
    x_type = imp.type_of(node.input[0])
    if x_type is None or x_type.rank != 3:
        imp.problem(f"{op} needs a (N, T, features) input")
        return
    w, r = imp.const(node.input[1]), imp.const(node.input[2])
    if w is None or r is None:
        imp.problem(f"{op} weights W and R are not constant initializers")
        return
    has_b = len(node.input) > 3 and bool(node.input[3])
    if has_b and not imp.is_const(node.input[3]):
        imp.problem(f"{op} bias B is not a constant initializer")
        return
    if len(node.input) > 4 and node.input[4]:
        imp.problem("sequence_lens is given; Viya runs every sequence to its full length "
                    "(pad the data instead)")
    ok = _zero_or_absent(imp, node, 5, "initial_h")
    ok = _zero_or_absent(imp, node, 6, "initial_c") and ok
    ok = _zero_or_absent(imp, node, 7, "the peephole weights P (Viya's peephole wiring is not "
                                       "public)") and ok
    for key in ("clip", "activation_alpha", "activation_beta"):
        if key in attrs:
            imp.problem(f"attribute {key}={attrs[key]} has no Viya equivalent")
            ok = False
    if int(attrs.get("input_forget", 0)):
        imp.problem("input_forget=1 (coupled input and forget gates) has no Viya equivalent")
        ok = False
    direction = attrs.get("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    hidden = int(attrs.get("hidden_size", r.shape[-1]))
    g = GATES[op]
    if w.shape[:2] != (dirs, g * hidden) or r.shape != (dirs, g * hidden, hidden):
        imp.problem(f"W {w.shape} / R {r.shape} do not fit {direction} hidden_size={hidden}")
        return
    acts = _activations(imp, op, attrs, dirs)
    if not ok:
        return
    b = node.input[3] if has_b else imp.add_const(f"{node.output[0] or node.name}_B",
                                                  np.zeros((dirs, 2 * g * hidden), w.dtype))
    steps = x_type.shape[1]
    shapes = [(BATCH, steps, dirs, hidden), (BATCH, dirs, hidden), (BATCH, dirs, hidden)]
    outputs = []
    for slot in range(3 if op == "LSTM" else 2):
        name = node.output[slot] if slot < len(node.output) else ""
        if not name:
            name = imp.graph.unique_value_name(f"{imp._current}_out{slot}")
        imp.declare_type(name, TensorType(shapes[slot], "float32"))
        outputs.append(name)
    keep = {"hidden_size": hidden, "direction": direction, "layout": 1}
    if acts is not None:
        keep["activations"] = acts
    if op == "GRU":
        keep["linear_before_reset"] = int(attrs.get("linear_before_reset", 0))
    imp.emit(op, node, inputs=[node.input[0], node.input[1], node.input[2], b], attrs=keep,
             outputs=outputs)
