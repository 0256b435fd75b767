"""Why irc refuses what it refuses, where the reason says more than "Viya has no such thing".

One table for every stage that refuses by name: the ONNX importer (op types with no handler),
the Keras frontend (activation functions) and lowering (an op left standing between layers). A
stage looks its reason up with :func:`reason` and words the rest of its message itself (the
node, its shapes, what to do). Reasons about a Viya layer kind (not computed, not written as a
table, not exported to ONNX) sit with the kind, in its module of irc/backends/viya/kinds/
(``why``, ``table_refusal``, ``export_refusal``).

This module imports nothing from irc.
"""
from __future__ import annotations

ONNX_OP = "ONNX op"                      # an op type the ONNX frontend has no handler for
KERAS_ACTIVATION = "Keras activation"    # a Keras activation function
BETWEEN_LAYERS = "op between layers"     # an IR op no Viya layer computes, left by the passes

REASONS: dict[tuple[str, str], str] = {
    (ONNX_OP, "ConvTranspose"):
        "Viya has a transconvo layer, but its weight layout and computation are not public "
        "(viya-semantics §14, open point transconv_layout); irc emits none until a server "
        "round-trip confirms them. Replace the transposed convolution (e.g. by a resize and a "
        "convolution) in the source model",

    (KERAS_ACTIVATION, "hard_sigmoid"): "Viya has no hard sigmoid",
    (KERAS_ACTIVATION, "hard_silu"): "Viya has no hard swish",
    (KERAS_ACTIVATION, "hard_swish"): "Viya has no hard swish",
    (KERAS_ACTIVATION, "swish"): "Viya has no swish",
    (KERAS_ACTIVATION, "silu"): "Viya has no swish",
    (KERAS_ACTIVATION, "gelu"): "Viya has no gelu",
    (KERAS_ACTIVATION, "selu"): "Viya's elu has no scale",
    (KERAS_ACTIVATION, "exponential"): "Viya's exp is not offered here",

    (BETWEEN_LAYERS, "Squeeze"):
        "Viya has no layer that removes an axis (fc and output layers flatten their input; "
        "1-D layers keep their unit height)",
    (BETWEEN_LAYERS, "Unsqueeze"): "Viya has no layer that adds an axis",
    (BETWEEN_LAYERS, "Transpose"): "Viya has no transpose layer",
    (BETWEEN_LAYERS, "Pad"):
        "Viya pads only inside a convolution or pooling layer, and no such layer reads this",
    (BETWEEN_LAYERS, "Mul"):
        "Viya has no scaling layer; a constant scale is exact only folded into a convolution, "
        "fc or batchnorm layer next to it",
    (BETWEEN_LAYERS, "Add"):
        "Viya has no layer adding a constant; a constant is exact only as the bias of a "
        "convolution, fc or batchnorm layer next to it",

}


def reason(domain: str, name: str, default: str | None = None) -> str | None:
    """The reason ``name`` (an op type, activation or layer kind) is refused in ``domain``."""
    return REASONS.get((domain, name), default)
