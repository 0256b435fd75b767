"""Reshape: the plain C,H,W reinterpretation of the source's values (viya-semantics.md §11; the
documented AUTO permutations are open, so other orders are refused)."""
from __future__ import annotations

import math

import numpy as np

from irc.errors import InvalidModel, UnsupportedOp

from .base import REQUIRED, Kind, Raw, TableForm
from .codec import Act, Num
from .registry import register


class _Order(Num):
    """reshapeorder 0 = the default order (DLPy); other codes are kept, and refused."""

    def __init__(self):
        super().__init__("reshapeorder", "order")

    def write(self, out, options):
        out.num("reshapeorder", 0)   # irc sends only the default order

    def read(self, src):
        if "reshapeorder" in src.raw:
            code = src.raw["reshapeorder"]
            src.raw["order"] = "auto" if code == 0 else f"code {code:g}"


@register
class Reshape(Kind):
    name = "reshape"
    options = {"width": REQUIRED, "height": REQUIRED, "depth": REQUIRED, "act": "auto",
               "order": "auto"}
    table = TableForm(14, "reshapeopts", "")
    codec = (Num("width"), Num("height"), Num("depth"), _Order(), Act())
    act, auto_act = True, "identity"

    def normalize(self, raw: Raw) -> dict:
        return {"depth": raw.num("depth"), "height": raw.num("height"),
                "width": raw.num("width"), "order": raw.text("order")}

    def output_shape(self, layer, src_shapes, options) -> tuple:
        opts = layer.options
        target = (opts["depth"], opts["height"], opts["width"])
        if math.prod(target) != sum(math.prod(s) for s in src_shapes) or len(src_shapes) != 1:
            raise InvalidModel(f"reshape to {target} does not match its source "
                               f"{list(src_shapes)}", node=layer.name)
        return target

    def run(self, layer, sources, options):
        opts, x = layer.options, sources[0]
        if opts["order"] not in ("auto",):
            raise UnsupportedOp(f"reshape order {opts['order']!r}: only the default order is "
                                f"executed (reshape_mode={options.reshape_mode!r})",
                                node=layer.name)
        return x.reshape(x.shape[0], opts["depth"], opts["height"], opts["width"])

    def export(self, ex, sources) -> str:
        opts, shape = ex.layer.options, ex.shapes[ex.layer.name]
        if opts["order"] != "auto":
            ex.problem(f"reshape order {opts['order']!r}: only the plain C,H,W "
                       "reinterpretation is known (viya-semantics.md §11)")
        target = np.asarray([-1, opts["depth"], opts["height"], opts["width"]], np.int64)
        y = ex.op("Reshape", [sources[0], ex.const("shape", target)], shape)
        return ex.activation(y, ex.layer_act(), shape)
