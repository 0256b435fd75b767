"""The op set of the IR: ONNX semantics, plus a fused activation on the ops Viya lets carry one.

The IR keeps ONNX's op names and attribute meanings so that any stage exports to ONNX and runs
in onnxruntime. One extension: ``activation`` (+ ``activation_alpha``) on the ops that map to
Viya layers with an ``act`` option. The exporter expands it into a separate activation node.

Each schema declares input arity, the attributes with their types and defaults, and which
inputs must be constants (weights). ``validate_attrs`` refuses unknown attributes and bad types.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from irc.ir.activations import ACTIVATION_OPS, ACTIVATIONS, FUSED_NAMES as ACTIVATION_NAMES

_FUSED_ACT = {"activation": (str, "identity"), "activation_alpha": (float, 0.0)}


@dataclass(frozen=True)
class OpSchema:
    op_type: str
    min_inputs: int
    max_inputs: int  # -1 = variadic
    attrs: dict = field(default_factory=dict)  # name -> (python type, default)
    const_inputs: tuple[int, ...] = ()  # input positions that must be constants
    n_outputs: int = 1
    carries_activation: bool = False


def _schema(op_type, min_in, max_in, attrs=None, const=(), n_out=1, act=False):
    attrs = dict(attrs or {})
    if act:
        attrs.update(_FUSED_ACT)
    return OpSchema(op_type, min_in, max_in, attrs, tuple(const), n_out, act)


_POOL = {"kernel_shape": (list, None), "strides": (list, None), "pads": (list, None),
         "ceil_mode": (int, 0), "dilations": (list, None)}

_RECURRENT = {"hidden_size": (int, None), "direction": (str, "forward"), "layout": (int, 0),
              "activations": (list, None)}

SCHEMAS: dict[str, OpSchema] = {s.op_type: s for s in [
    _schema("Conv", 2, 3, {"kernel_shape": (list, None), "strides": (list, None),
                           "pads": (list, None), "dilations": (list, None), "group": (int, 1)},
            const=(1, 2), act=True),
    _schema("MaxPool", 1, 1, _POOL),
    _schema("AveragePool", 1, 1, {**_POOL, "count_include_pad": (int, 0)}),
    _schema("GlobalAveragePool", 1, 1),
    _schema("GlobalMaxPool", 1, 1),
    _schema("Gemm", 2, 3, {"alpha": (float, 1.0), "beta": (float, 1.0), "transA": (int, 0),
                           "transB": (int, 0)}, const=(1, 2), act=True),
    _schema("MatMul", 2, 2),
    _schema("BatchNormalization", 5, 5, {"epsilon": (float, 1e-5)}, const=(1, 2, 3, 4), act=True),
    _schema("Sum", 1, -1, act=True),
    _schema("Concat", 1, -1, {"axis": (int, None)}, act=True),
    _schema("Add", 2, 2), _schema("Sub", 2, 2), _schema("Mul", 2, 2), _schema("Div", 2, 2),
    # the activation ops, from the activation table (alpha where the ONNX op takes one)
    *(_schema(a.onnx_op, 1, 1, None if a.alpha is None else {"alpha": (float, a.alpha)})
      for a in ACTIVATIONS.values() if a.onnx_op in ACTIVATION_OPS),
    _schema("Softmax", 1, 1, {"axis": (int, -1)}),
    _schema("Identity", 1, 1),
    _schema("Dropout", 1, 3, n_out=1),
    _schema("Flatten", 1, 1, {"axis": (int, 1)}),
    _schema("Reshape", 2, 2, {"allowzero": (int, 0)}, const=(1,)),
    _schema("Transpose", 1, 1, {"perm": (list, None)}),
    _schema("Pad", 2, 4, {"mode": (str, "constant")}, const=(1, 2, 3)),
    _schema("Squeeze", 1, 2, const=(1,)),
    # Ops Viya has no single layer for. The ONNX frontend emits them with ONNX semantics
    # (opset 13+ input forms; constant operands only) and the legalization passes
    # (passes/defs/legalize_*.py) rewrite them into Conv/BatchNormalization/Sum exactly, or
    # lowering refuses them quoting the legalization pass's reason.
    _schema("Clip", 1, 3, const=(1, 2)),  # x, min, max (scalars; "" = unbounded)
    _schema("PRelu", 2, 2, const=(1,)),  # x, slope (per channel or scalar)
    _schema("Slice", 3, 5, const=(1, 2, 3, 4)),  # data, starts, ends, axes, steps
    _schema("Gather", 2, 2, {"axis": (int, 0)}, const=(1,)),  # data, indices
    _schema("Neg", 1, 1),
    _schema("Max", 2, 2), _schema("Min", 2, 2),  # element-wise, two tensors of one shape
    _schema("Unsqueeze", 1, 2, const=(1,)),
    # Recurrent ops (issue 6): ONNX semantics, always with layout=1 in the IR (batch first, so
    # axis 0 stays the batch axis; onnx_export turns them back into layout 0 for onnxruntime):
    # X (N, T, d) -> Y (N, T, dirs, n), Y_h (N, dirs, n) [, Y_c (N, dirs, n)].
    # The IR form is narrower than ONNX: W, R and B are constants, B is always given, and there
    # is no sequence_lens, initial state, peephole, clip or input_forget (the ONNX frontend
    # drops what equals the default and refuses the rest). ``activations`` holds only the
    # per-direction list ONNX allows; gates are always Sigmoid in the IR.
    _schema("RNN", 4, 4, _RECURRENT, const=(1, 2, 3), n_out=2),
    _schema("LSTM", 4, 4, _RECURRENT, const=(1, 2, 3), n_out=3),
    _schema("GRU", 4, 4, {**_RECURRENT, "linear_before_reset": (int, 0)}, const=(1, 2, 3),
            n_out=2),
]}
RECURRENT_OPS = ("RNN", "LSTM", "GRU")
# gate blocks per op (G in W's G·n rows): RNN one, LSTM i,o,f,c, GRU z,r,h
RECURRENT_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def schema(op_type: str) -> OpSchema | None:
    return SCHEMAS.get(op_type)


def validate_attrs(op_type: str, attrs: dict) -> list[str]:
    """Problems with ``attrs`` for ``op_type`` (empty list when valid)."""
    sch = SCHEMAS.get(op_type)
    if sch is None:
        return [f"unknown IR op {op_type!r}"]
    problems = []
    for name, value in attrs.items():
        if name not in sch.attrs:
            problems.append(f"{op_type} has no attribute {name!r}")
            continue
        typ = sch.attrs[name][0]
        ok = isinstance(value, typ) or (typ is float and isinstance(value, int)) or (
            typ is list and isinstance(value, tuple))
        if not ok or isinstance(value, bool):
            problems.append(f"{op_type}.{name} must be {typ.__name__}, got {value!r}")
    act = attrs.get("activation")
    if act is not None and act not in ACTIVATION_NAMES:
        problems.append(f"{op_type}.activation {act!r} is not one of {sorted(ACTIVATION_NAMES)}")
    return problems


def attr(node, name):
    """Attribute value of ``node`` or the schema default."""
    if name in node.attrs:
        return node.attrs[name]
    return SCHEMAS[node.op_type].attrs[name][1]
