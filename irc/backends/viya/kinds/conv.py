"""Convolutions: convo and groupconvo (grouped cross-correlation, viya-semantics.md §4); the
transposed convolution is registered as an open point."""
from __future__ import annotations

from irc.backends.viya.executor import kernels
from irc.errors import InvalidModel

from .base import AUTOMATIC, OPEN, REQUIRED, Kind, Raw, TableForm, one_source
from .codec import Act, NegatedFlag, Num, training_defaults
from .registry import register
from .window import PADDING_ROWS, WINDOW_ROWS, output_grid, window_options

CONV_OPTIONS = {"nfilters": REQUIRED, "width": REQUIRED, "height": REQUIRED,
                "stridevertical": 1, "stridehorizontal": 1, "paddingheight": AUTOMATIC,
                "paddingwidth": AUTOMATIC, "act": "auto", "includebias": True, "dropout": 0.0}
CONV_WEIGHTS = ("kernel", "bias")   # no bias dataset when includebias is false


@register
class Convo(Kind):
    name = "convo"
    options = CONV_OPTIONS
    aliases = ("convolution",)
    table = TableForm(2, "convopts", "Convolution Layer")
    codec = (Num("nfilters"), *WINDOW_ROWS, NegatedFlag("no_bias", "includebias"),
             *training_defaults(), *PADDING_ROWS, Act())
    weights = CONV_WEIGHTS
    weight_doc = "kernel (O, I, kH, kW), bias (O)"
    act, auto_act, dropout = True, "relu", True

    def normalize(self, raw: Raw) -> dict:
        return {**window_options(raw, pool=False), "nfilters": raw.num("nfilters"),
                "include_bias": raw.flag("includebias", raw.default("includebias")),
                "ngroups": raw.num("ngroups", raw.default("ngroups"))
                if "ngroups" in self.options else 1}

    def output_shape(self, layer, src_shapes, options) -> tuple:
        image = one_source(layer, src_shapes)
        _, oh, ow = output_grid(layer, image, False, options)
        opts, c = layer.options, image[0]
        groups = opts["ngroups"]
        if c % groups or opts["nfilters"] % groups:
            raise InvalidModel(f"ngroups={groups} must divide the input channels ({c}) and "
                               f"nfilters ({opts['nfilters']})", node=layer.name)
        return (opts["nfilters"], oh, ow)

    def weight_shapes(self, layer, src_shapes, options) -> dict:
        opts = layer.options
        params = {"kernel": (opts["nfilters"], src_shapes[0][0] // opts["ngroups"],
                             opts["height"], opts["width"])}
        if opts["include_bias"]:
            params["bias"] = (opts["nfilters"],)
        return params

    def run(self, layer, sources, options):
        opts, w, x = layer.options, layer.weights, sources[0]
        geo = kernels.spatial_geometry(opts, *x.shape[2:], False, options)
        return kernels.conv2d(x, w["kernel"], w.get("bias"), (opts["stride_h"], opts["stride_w"]),
                              ((geo[0][0], geo[0][1]), (geo[1][0], geo[1][1])), opts["ngroups"])

    def export(self, ex, sources) -> str:
        opts, w = ex.layer.options, ex.layer.weights
        (top, bottom, _, _), (left, right, _, _) = ex.geometry(sources[0], pool=False)
        inputs = [sources[0], ex.const("kernel", w["kernel"])]
        if "bias" in w:
            inputs.append(ex.const("bias", w["bias"]))
        return ex.op("Conv", inputs, ex.shapes[ex.layer.name],
                     kernel_shape=[opts["height"], opts["width"]],
                     strides=[opts["stride_h"], opts["stride_w"]],
                     pads=[top, left, bottom, right], group=opts["ngroups"],
                     **ex.act_attrs(ex.layer_act()))


@register
class GroupConvo(Convo):
    name = "groupconvo"
    options = {**CONV_OPTIONS, "ngroups": 1}
    aliases = ()
    table = TableForm(17, "groupconvopts")   # code from DLPy; no server-written label seen
    codec = Convo.codec + (Num("ngroups"),)
    weight_doc = "kernel (O, I/g, kH, kW), bias (O)"


@register
class TransConvo(Kind):
    name = "transconvo"
    options = {**CONV_OPTIONS, "outputpaddingheight": 0, "outputpaddingwidth": 0}
    table = TableForm(16, "transposeconvopts")
    act, dropout = True, True
    scope = OPEN
    why = "its weight layout is an open point, viya-semantics.md §14"
