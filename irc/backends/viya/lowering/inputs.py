"""The graph input as Viya's input layer: an image (C, H, W), a feature vector, a 1-D
(C, L) map read by height-1 layers, or a recurrent model's (T, d) sequence.

The preprocessing options come from the :class:`~irc.input_spec.InputSpec`, validated when
it was built; here only their lengths are checked against the channel count.
"""
from __future__ import annotations

from irc.backends.viya import schema
from irc.backends.viya.lowering import unit_axis
from irc.backends.viya.lowering.context import LoweringContext, Seq
from irc.backends.viya.lowering.registry import LOWERINGS
from irc.backends.viya.model import LoweredLayer

LOWERINGS.emits("input")   # the driver lowers the graph input through lower_input

SEQUENCE_INPUT_NOTE = ("sequence input: nchannels 1, height 1, width T·d, values time-major "
                       "(t·d + j), as DLPy's Keras importer")
TIME_MAJOR_NOTE = ("the source model takes its sequences time-major, (T, N, d) with the batch "
                   "on axis 1 (PyTorch's batch_first=False); the Viya model reads one sequence "
                   "per example: example j is the source's x[:, j, :] as width T·d (model.json "
                   "input.sources.<name>.batch_axis; input.output_batch_axes for outputs the "
                   "source gives time-major, which Viya gives batch-first)")


def _fixed_options() -> dict:
    """The input options irc never varies: no augmentation (the schema's defaults)."""
    return {key: schema.default("input", key)
            for key in ("randomflip", "randomcrop", "randommutation")}


def lower_input(ctx: LoweringContext, value: str) -> None:
    shape = ctx.graph.value(value).type.shape[1:]
    image = unit_axis.image_of_1d_input(ctx.graph, value) if len(shape) == 2 else None
    if image is not None:
        c, h, w = image  # (C, L) read by 1-D layers: C x 1 x L
        ctx.note(unit_axis.NOTE_1D)
    elif len(shape) == 2 and not unit_axis.recurrent_model(ctx.graph):
        ctx.problems.add(None, unit_axis.not_a_sequence_message(ctx.graph, value))
        return
    elif len(shape) == 2:  # (T, d): a sequence model's input
        lower_sequence_input(ctx, value, shape)
        return
    elif len(shape) == 3:
        c, h, w = shape
    elif len(shape) == 1:
        c, h, w = shape[0], 1, 1
    else:
        ctx.problems.add(None, f"input {value!r} has shape {shape}; Viya takes C,H,W images "
                               "or feature vectors")
        return
    spec = ctx.input_spec
    constants = spec.per_channel(c)
    if constants is None:
        ctx.problems.add(None, f"input {value!r}: offsets/normstds need {c} values")
        return
    offsets, stds = constants
    options = {"nchannels": c, "width": w, "height": h, "scale": spec.scale,
               "offsets": offsets, **_fixed_options()}
    if any(s != 1.0 for s in stds):
        options["normstds"] = stds
    layer = ctx.append(LoweredLayer(ctx.names.claim(value, "data"), "input", options, [], {},
                                    (value,), (c, h, w), tensor=value))
    ctx.layer_of[value] = layer.name
    ctx.model.inputs[value] = layer.name
    ctx.model.input_info.setdefault("sources", {})[value] = {"layer": layer.name,
                                                             "shape": list(shape)}


def lower_sequence_input(ctx: LoweringContext, value: str, shape) -> None:
    """The (T, d) graph input as Viya's RNN input layer (viya-target.md §3.2)."""
    steps, features = shape
    spec = ctx.input_spec
    constants = spec.per_channel(1)
    if constants is None or spec.channel_order == "rgb":
        ctx.problems.add(None, f"input {value!r} is a sequence (one Viya channel): give one "
                               "offset and one normstd, and no channel order")
        return
    offsets, stds = constants
    options = {"nchannels": 1, "width": steps * features, "height": 1,
               "scale": spec.scale, "offsets": offsets, **_fixed_options()}
    if stds[0] != 1.0:
        options["normstds"] = stds
    layer = ctx.append(LoweredLayer(ctx.names.claim(value, "data"), "input", options, [], {},
                                    (value,), (1, 1, steps * features), tensor=value))
    ctx.layer_of[value] = layer.name
    ctx.model.inputs[value] = layer.name
    source = {"layer": layer.name, "shape": [steps, features]}
    batch_axis = ctx.graph.source_batch_axes.get(value, 0)
    if batch_axis:  # the source holds (T, N, d): verification feeds it in that layout
        source["batch_axis"] = batch_axis
        ctx.note(TIME_MAJOR_NOTE)
    ctx.model.input_info.setdefault("sources", {})[value] = source
    ctx.model.input_info["sequence"] = {"steps": steps, "features": features,
                                        "order": "time-major: value t*d + j"}
    ctx.seq[value] = Seq([layer.name], steps, features)
    ctx.note(SEQUENCE_INPUT_NOTE)
