"""The Keras layer scan: every layer's check runs before any conversion work.

:func:`scan` runs each layer's handler check (:mod:`irc.frontends.keras.handlers`, one handler
per layer class) over the whole model, nested models included, and raises ONE error listing each
unsupported layer class (count and names) and each refused configuration.
"""
from __future__ import annotations

from irc.errors import UnsupportedAttribute, UnsupportedOp
from irc.frontends.keras.handlers import KERAS_LAYERS
from irc.frontends.keras.handlers.common import RECURRENT, ScanContext
from irc.frontends.keras.model_graph import all_layers, model_tensors, output_layer_names
from irc.frontends.registry import format_unsupported

__all__ = ["KERAS_LAYERS", "scan"]


def _float32_compute(layer, ctx) -> None:
    """Viya computes in float32: a layer Keras runs in float16/bfloat16/float64 (a dtype
    policy) gives numbers irc cannot match, so it is refused up front, not at verification."""
    compute = str(getattr(layer, "compute_dtype", None) or "float32")
    if compute != "float32":
        policy = getattr(getattr(layer, "dtype_policy", None), "name", compute)
        ctx.problem(f"computes in {compute} (dtype policy {policy!r}); Viya computes in float32, "
                    "so Keras's numbers cannot be reproduced: rebuild the model with float32 "
                    "layers (keras.mixed_precision.set_global_policy('float32'), then "
                    "clone_model and set_weights)")


def scan(model, allow_lambda: bool, label: str, flavor: str = "keras3",
         through_tf2onnx: bool = True) -> None:
    """Check every layer of ``model``; raise one error listing every problem found."""
    ctx = ScanContext(output_layer_names(model), allow_lambda, flavor, through_tf2onnx)
    n_inputs = len(model_tensors(model, "inputs"))
    if n_inputs != 1:
        ctx.layer_name = model.name
        ctx.problem(f"the model has {n_inputs} inputs; a Viya CNN has one input layer")
    items = []
    for layer in all_layers(model):
        cls = type(layer).__name__
        items.append((cls, layer.name))
        handler = KERAS_LAYERS.get(cls)
        if handler is None:
            continue
        ctx.layer_name = layer.name
        _float32_compute(layer, ctx)
        handler.fn.check(layer, layer.get_config(), ctx)
    missing = KERAS_LAYERS.unsupported(items)
    lines = []
    if missing:
        recurrent = sorted(c for c in missing if c in RECURRENT)
        hint = "irc converts these Keras layers: " + ", ".join(KERAS_LAYERS.op_types()) + "."
        if recurrent:
            hint += (f"\nrecurrent layers ({', '.join(recurrent)}): irc converts SimpleRNN, LSTM, "
                     "GRU (and Bidirectional of them) in sequence models, not these.")
        lines.append(format_unsupported("Keras", missing, hint))
    if ctx.problems:
        lines.append(f"{len(ctx.problems)} layer configuration(s) Viya cannot compute:")
        lines += [f"  {name}: {msg}" for name, msg in ctx.problems]
    if not lines:
        return
    error = UnsupportedOp if missing else UnsupportedAttribute
    raise error("\n".join(lines), file=label,
                hint="change these layers in the Keras model (see `irc ops` for the support list)")
