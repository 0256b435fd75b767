"""Layers that merge several sources: residual (element-wise sum) and concat (channels of
images, or vectors end to end), viya-semantics.md §10."""
from __future__ import annotations

import numpy as np

from irc.errors import InvalidModel

from .base import Kind, Raw, TableForm
from .codec import Act, Const
from .registry import register


@register
class Residual(Kind):
    name = "residual"
    options = {"act": "auto"}
    table = TableForm(9, "residualopts")   # code from DLPy; no server-written label seen
    codec = (Act(),)
    act, auto_act = True, "identity"

    def normalize(self, raw: Raw) -> dict:
        return {}

    def output_shape(self, layer, src_shapes, options) -> tuple:
        if any(tuple(s) != tuple(src_shapes[0]) for s in src_shapes):
            raise InvalidModel(f"residual sources must have identical shapes, got "
                               f"{list(src_shapes)}", node=layer.name)
        return tuple(src_shapes[0])

    def run(self, layer, sources, options):
        y = sources[0].copy()
        for other in sources[1:]:
            y += other
        return y

    def export(self, ex, sources) -> str:
        return ex.op("Sum", sources, ex.shapes[ex.layer.name], **ex.act_attrs(ex.layer_act()))


@register
class Concat(Kind):
    name = "concat"
    options = {"act": "auto"}
    table = TableForm(10, "concatopts", "Concat (i.e., concatenation) Layer")
    codec = (Act(), Const("concat", 0))
    act, auto_act = True, "identity"

    def normalize(self, raw: Raw) -> dict:
        return {}

    def output_shape(self, layer, src_shapes, options) -> tuple:
        images = [s for s in src_shapes if len(s) == 3]
        if len(images) == len(src_shapes):
            if len({s[1:] for s in images}) != 1:
                raise InvalidModel(f"concat sources must have equal H x W, got {images}",
                                   node=layer.name)
            return (sum(s[0] for s in images), images[0][1], images[0][2])
        if images:
            raise InvalidModel(f"concat cannot join images and vectors, got {list(src_shapes)}",
                               node=layer.name)
        return (sum(s[0] for s in src_shapes),)

    def run(self, layer, sources, options):
        return np.concatenate(sources, axis=1)   # channels of (N, C, H, W), or vectors

    def export(self, ex, sources) -> str:
        return ex.op("Concat", sources, ex.shapes[ex.layer.name], axis=1,
                     **ex.act_attrs(ex.layer_act()))
