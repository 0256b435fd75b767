"""Switches for the points of Viya's scoring semantics that are not settled publicly.

Every field is one "open" point of ``docs/viya-semantics.md`` §16 and defaults to the
value that spec names. Tests that depend on an open point must pin the field explicitly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from irc.backends.viya import schema

# Activation names an ``auto_act_*`` option may take (canonical spellings; aliases are mapped).
ACTIVATIONS = schema.COMPUTED_ACTS
ACTIVATION_ALIASES = schema.ACT_ALIASES

# Allowed values of every string-valued option, in the order "default first".
_CHOICES = {
    "multi_source_order": ("srcLayers",),
    "pool_explicit_rounding": ("floor", "ceil"),
    "pool_auto_pad": ("end", "split_tf"),
    "maxpool_pad": ("ignore", "zero"),
    "avgpool_divisor": ("valid", "window", "caffe"),
    "dropout_scoring": ("identity", "scale_keep"),
    "auto_act_recurrent": ACTIVATIONS,
    "auto_act_transconvo": ACTIVATIONS,
    "rnn_gate_act": ("logistic", "hard_sigmoid"),
    "rnn_reversed_output": ("input_order", "processing_order"),
    "reshape_mode": ("chw_reinterpret",),
    "transconv_layout": ("onnx",),
    "detection_nms": ("per_class", "all"),
    "detection_classes": ("all_above", "best"),
}

# gru_reset_after is three-valued; the strings users naturally type are mapped to it.
_GRU_RESET_AFTER = {"infer": "infer", "false": False, "true": True, False: False, True: True}
_ON_OFF = {"off": False, "on": True, False: False, True: True}


@dataclass(frozen=True)
class ExecutorOptions:
    """How the executor resolves each open point (viya-semantics.md §16)."""

    multi_source_order: str = "srcLayers"
    pool_explicit_rounding: str = "floor"
    pool_auto_pad: str = "end"
    maxpool_pad: str = "ignore"
    avgpool_divisor: str = "valid"
    bn_extra_eps: float = 0.0
    elu_alpha: float = 1.0
    dropout_scoring: str = "identity"
    auto_act_recurrent: str = "tanh"
    auto_act_transconvo: str = "relu"
    rnn_gate_act: str = "logistic"
    gru_reset_after: object = "infer"   # "infer" | False | True
    lstm_peephole: bool = False         # off | on
    rnn_reversed_output: str = "input_order"
    reshape_mode: str = "chw_reinterpret"
    transconv_layout: str = "onnx"
    # YOLO decoding: is non-maximum suppression per class (darknet's) or across classes?
    detection_nms: str = "per_class"
    # ... and does a box give a row for each class scoring above the threshold (darknet's)?
    detection_classes: str = "all_above"

    def __post_init__(self):
        for name in ("auto_act_recurrent", "auto_act_transconvo"):
            value = getattr(self, name)
            if isinstance(value, str):
                # frozen dataclass: normalising an alias needs object.__setattr__
                object.__setattr__(self, name, ACTIVATION_ALIASES.get(value.lower(), value.lower()))
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"ExecutorOptions.{name}={value!r} is not allowed; "
                                 f"choose one of {', '.join(map(repr, allowed))}")
        for name in ("bn_extra_eps", "elu_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"ExecutorOptions.{name}={value!r} is not allowed; "
                                 f"it must be a finite number")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "gru_reset_after",
                           _pick("gru_reset_after", self.gru_reset_after, _GRU_RESET_AFTER,
                                 "'infer', False, True"))
        object.__setattr__(self, "lstm_peephole",
                           _pick("lstm_peephole", self.lstm_peephole, _ON_OFF,
                                 "False/'off', True/'on'"))

    def as_dict(self) -> dict:
        """Every option and its value, e.g. for a verification report."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _pick(name: str, value, table: dict, allowed_text: str):
    key = value.lower() if isinstance(value, str) else value
    try:
        return table[key]
    except (KeyError, TypeError):
        raise ValueError(f"ExecutorOptions.{name}={value!r} is not allowed; "
                         f"choose one of {allowed_text}") from None
