"""The input layer: Viya's image preprocessing, (x·scale − offsets) / normstds per channel
(viya-semantics.md §2)."""
from __future__ import annotations

import numpy as np

from .base import PER_CHANNEL, REQUIRED, Kind, Raw, TableForm
from .codec import Absent, Const, Num, PerChannel
from .registry import register

F32 = np.float32


@register
class Input(Kind):
    name = "input"
    options = {"nchannels": REQUIRED, "width": REQUIRED, "height": REQUIRED, "scale": 1.0,
               "offsets": PER_CHANNEL, "normstds": PER_CHANNEL, "randomflip": "none",
               "randomcrop": "none", "randommutation": "none", "dropout": 0.0}
    table = TableForm(1, "inputopts", "Input Layer")
    codec = (Num("nchannels"), Num("width"), Num("height"), Num("scale"), Const("dropout", 0),
             PerChannel("offsets"),
             Absent("normstds", "normStds rows were never observed in a server table"),
             Const("crop", ("No cropping", 1)), Const("flip", ("No flipping", 1)),
             Const("mutation", ("No mutations", 1)), Const("std", ("No Standardization", 2)))
    dropout = True

    def normalize(self, raw: Raw) -> dict:
        c = raw.num("nchannels")
        opts = {"nchannels": c, "height": raw.num("height"), "width": raw.num("width"),
                "scale": raw.num("scale", raw.default("scale"), integer=False)}
        for key in ("offsets", "normstds"):   # defaults 0 and 1 (§2; irc always sends both)
            values = raw.get(key, [0.0 if key == "offsets" else 1.0] * c)
            values = [values] * c if isinstance(values, (int, float)) else list(values)
            if len(values) != c:
                raise raw.fail(f"{key} has {len(values)} values for {c} channels")
            opts[key] = np.asarray(values, dtype=F32)
        return opts

    def output_shape(self, layer, src_shapes, options) -> tuple:
        opts = layer.options
        return (opts["nchannels"], opts["height"], opts["width"])

    def run(self, layer, x, options):
        opts = layer.options
        want = (opts["nchannels"], opts["height"], opts["width"])
        if x.shape[1:] != want:
            raise ValueError(f"input layer {layer.name!r} takes (N, {want[0]}, {want[1]}, "
                             f"{want[2]}) images; got {x.shape}. The executor does not resize.")
        per_channel = (1, -1, 1, 1)
        y = x * F32(opts["scale"]) - opts["offsets"].reshape(per_channel)
        y /= opts["normstds"].reshape(per_channel)
        return y

    def export(self, ex, sources) -> str:
        opts, name = ex.layer.options, ex.layer.name
        c = opts["nchannels"]
        shape = ex.shapes[name]
        value = ex.add_input(name, shape)
        per_channel = (1, c, 1, 1)
        if opts["scale"] != 1.0:
            value = ex.op("Mul", [value, ex.const("scale", np.asarray(opts["scale"], F32))],
                          shape)
        if np.any(opts["offsets"] != 0):
            value = ex.op("Sub", [value, ex.const("offsets",
                                                  opts["offsets"].reshape(per_channel))], shape)
        if np.any(opts["normstds"] != 1):
            value = ex.op("Div", [value, ex.const("normstds",
                                                  opts["normstds"].reshape(per_channel))], shape)
        if value != name:
            value = ex.rename(value, f"{name}__normalized")
        return value
