"""Pooling: max, mean (average) and min windows, and global pooling when width = height = 0
(viya-semantics.md §5-§6)."""
from __future__ import annotations

import numpy as np

from irc.backends.viya.executor import kernels
from irc.errors import UnsupportedAttribute

from .base import AUTOMATIC, REQUIRED, WINDOW, Kind, Raw, TableForm, one_source
from .codec import Const, Enum
from .registry import register
from .window import PADDING_ROWS, WINDOW_ROWS, output_grid, window_options

F32 = np.float32


def _pool_from_label(label, code):
    low = (label or "").lower()
    return ("mean" if "average" in low or "mean" in low else "max" if "max" in low
            else "min" if "min" in low else "max" if code == 1 else f"code {code}")


@register
class Pool(Kind):
    name = "pool"
    options = {"width": REQUIRED, "height": REQUIRED, "stridevertical": WINDOW,
               "stridehorizontal": WINDOW, "paddingheight": AUTOMATIC,
               "paddingwidth": AUTOMATIC, "pool": "max", "dropout": 0.0}
    aliases = ("pooling",)
    table = TableForm(3, "poolingopts", "Pooling Layer")
    # only the max pool's code was seen in server tables (§4.5)
    codec = (*WINDOW_ROWS, Const("dropout", 0), *PADDING_ROWS,
             Enum("poolingtype", "pool", {"max": ("Max Pooling", 1)}, _pool_from_label,
                  "pooling type"))
    dropout = True

    def normalize(self, raw: Raw) -> dict:
        opts = window_options(raw, pool=True)
        pool = raw.text("pool")
        opts["pool"] = {"average": "mean"}.get(pool, pool)
        if opts["pool"] not in ("max", "mean", "min"):
            raise UnsupportedAttribute(f"pooling type {pool!r} is not supported",
                                       node=raw.name, file=str(raw.file))
        return opts

    def output_shape(self, layer, src_shapes, options) -> tuple:
        image = one_source(layer, src_shapes)
        if layer.options["height"] == 0 and layer.options["width"] == 0:
            return (image[0], 1, 1)
        _, oh, ow = output_grid(layer, image, True, options)
        return (image[0], oh, ow)

    def run(self, layer, sources, options):
        opts, x = layer.options, sources[0]
        if opts["height"] == 0 and opts["width"] == 0:
            return kernels.global_pool(x, opts["pool"])
        geo = kernels.spatial_geometry(opts, *x.shape[2:], True, options)
        return kernels.pool2d(x, opts["pool"], (opts["height"], opts["width"]),
                              (opts["stride_h"], opts["stride_w"]), geo,
                              maxpool_pad=options.maxpool_pad,
                              avgpool_divisor=options.avgpool_divisor)

    def export(self, ex, sources) -> str:
        opts, shape, x = ex.layer.options, ex.shapes[ex.layer.name], sources[0]
        kind = opts["pool"]
        negate = kind == "min"   # min pool = -maxpool(-x)
        if negate:
            x = ex.op("Mul", [x, ex.const("neg", np.asarray(-1, F32))], ex.shape_of(x))
        if opts["height"] == opts["width"] == 0:   # global pooling (trap 37)
            y = ex.op("GlobalAveragePool" if kind == "mean" else "GlobalMaxPool", [x], shape)
        else:
            y = _window_pool(ex, x, kind, shape)
        if negate:
            y = ex.op("Mul", [y, ex.const("neg", np.asarray(-1, F32))], shape)
        return y


def _window_pool(ex, x: str, kind: str, shape: tuple) -> str:
    opts = ex.layer.options
    (top, bottom, over_h, _), (left, right, over_w, _) = ex.geometry(x, pool=True)
    attrs = {"kernel_shape": [opts["height"], opts["width"]],
             "strides": [opts["stride_h"], opts["stride_w"]],
             "pads": [top, left, bottom, right], "ceil_mode": int(bool(over_h or over_w))}
    if kind == "mean":
        divisor = ex.ex.avgpool_divisor
        if divisor != "valid" and attrs["ceil_mode"]:
            ex.problem(f"avgpool_divisor={divisor!r} with a ceil-rounded window has no "
                       "ONNX AveragePool equivalent")
        return ex.op("AveragePool", [x], shape, count_include_pad=int(divisor != "valid"),
                     **attrs)
    if ex.ex.maxpool_pad == "zero" and any(attrs["pads"]):
        if attrs["ceil_mode"]:
            ex.problem("maxpool_pad='zero' with a ceil-rounded window has no ONNX equivalent")
        n, c, h, w = ex.shape_of(x)
        pads = np.asarray([0, 0, top, left, 0, 0, bottom, right], np.int64)
        x = ex.op("Pad", [x, ex.const("pads", pads)], (n, c, h + top + bottom, w + left + right))
        attrs["pads"] = [0, 0, 0, 0]
    return ex.op("MaxPool", [x], shape, **attrs)
