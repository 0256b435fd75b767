"""The Keras layer scans: every layer's check runs before any conversion work.

:func:`scan` runs each layer's handler check (:mod:`irc.frontends.keras.handlers`, one handler
per layer class) over the whole image model, nested models included, and :func:`scan_sequence`
each handler's ``sequence`` hook along the chain of a sequence model. Each raises ONE error
listing each unsupported layer class (count and names) and each refused configuration.
"""
from __future__ import annotations

from irc.errors import UnsupportedAttribute, UnsupportedOp
from irc.frontends.keras.handlers import KERAS_LAYERS
from irc.frontends.keras.handlers.common import RECURRENT, ScanContext
from irc.frontends.keras.model_graph import all_layers, model_tensors, output_layer_names
from irc.frontends.keras.recurrent import SequenceFlow
from irc.frontends.registry import format_unsupported

__all__ = ["KERAS_LAYERS", "scan", "scan_sequence"]


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
        check = KERAS_LAYERS.check(cls)
        if check is None:
            continue
        ctx.layer_name = layer.name
        _float32_compute(layer, ctx)
        check(layer, layer.get_config(), ctx)
    missing = KERAS_LAYERS.missing(items, "check")
    lines = []
    if missing:
        recurrent = sorted(c for c in missing if c in RECURRENT)
        hint = "irc converts these Keras layers: " + ", ".join(KERAS_LAYERS.with_hook("check")) \
            + "."
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


def scan_sequence(specs: list, label: str, problems=()) -> None:
    """Check a sequence model's chain of layer specs (irc.frontends.keras.recurrent.Spec)
    through each handler's ``sequence`` hook; raise one error listing every layer Viya cannot
    compute (``problems``: (layer, why) pairs found before)."""
    problems = list(problems)
    missing = KERAS_LAYERS.missing([(s.cls, s.name) for s in specs], "sequence")
    flow = SequenceFlow(problem=None)
    for k, spec in enumerate(specs):
        hook = KERAS_LAYERS.hook(spec.cls, "sequence")
        if hook is None:
            continue
        flow.problem = lambda message, name=spec.name: problems.append((name, message))
        flow.last = k == len(specs) - 1
        hook(spec, flow)
    lines = []
    if missing:
        lines.append(format_unsupported(
            "Keras", missing, "in sequence models irc converts: "
            + ", ".join(KERAS_LAYERS.with_hook("sequence")) + " (one chain of layers)."))
    if problems:
        lines.append(f"{len(problems)} layer configuration(s) Viya cannot compute:")
        lines += [f"  {name}: {msg}" for name, msg in problems]
    if lines:
        raise (UnsupportedOp if missing else UnsupportedAttribute)(
            "\n".join(lines), file=label, hint="change these layers in the Keras model")
