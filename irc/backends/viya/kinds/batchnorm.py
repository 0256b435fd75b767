"""Batch normalization: γ(x − μ)/sqrt(v + eps) + β per channel, with the source's epsilon already
added to the stored variance (viya-semantics.md §9; the server's own epsilon is the
``bn_extra_eps`` executor option)."""
from __future__ import annotations

import numpy as np

from irc.backends.viya.executor import kernels
from irc.errors import InvalidModel

from .base import Kind, Raw, TableForm, one_source
from .codec import Act
from .registry import register

F32 = np.float32
PARAMS = ("gamma", "beta", "moving_mean", "moving_variance")


@register
class BatchNorm(Kind):
    name = "batchnorm"
    options = {"act": "auto"}
    table = TableForm(8, "bnopts", "Batch Normalization Layer")
    codec = (Act(),)
    weights = PARAMS
    weight_doc = "each (C); moving_variance with the source eps added"
    act, auto_act = True, "identity"

    def normalize(self, raw: Raw) -> dict:
        return {}

    def output_shape(self, layer, src_shapes, options) -> tuple:
        return one_source(layer, src_shapes, image=False)

    def weight_shapes(self, layer, src_shapes, options) -> dict:
        return {p: (src_shapes[0][0],) for p in PARAMS}

    def run(self, layer, sources, options):
        w = layer.weights
        variance = w["moving_variance"] + F32(options.bn_extra_eps)
        if np.any(variance <= 0):
            raise InvalidModel("moving_variance + bn_extra_eps must be > 0 (was the source "
                               "epsilon folded into the variance?)", node=layer.name)
        return kernels.batchnorm(sources[0], w["gamma"], w["beta"], w["moving_mean"],
                                 w["moving_variance"], options.bn_extra_eps)

    def export(self, ex, sources) -> str:
        w = ex.layer.weights
        if np.any(w["moving_variance"] + F32(ex.ex.bn_extra_eps) <= 0):
            ex.problem("moving_variance + bn_extra_eps must be > 0")
        inputs = [sources[0]] + [ex.const(p, w[p]) for p in PARAMS]
        return ex.op("BatchNormalization", inputs, ex.shapes[ex.layer.name],
                     epsilon=ex.ex.bn_extra_eps, **ex.act_attrs(ex.layer_act()))
