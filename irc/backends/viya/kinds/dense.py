"""Fully connected kinds: fc and output (viya-semantics.md §7-§8). Both flatten their sources in
C,H,W order and join several end to end in srcLayers order; an output layer without fullconnect
only applies its activation. Per time step of a sequence they are rnn.py's."""
from __future__ import annotations

import math

from irc.backends.viya.executor import kernels
from irc.errors import InvalidModel

from .base import REQUIRED, Kind, Raw, TableForm
from .codec import Act, Const, NegatedFlag, Num, training_defaults
from .registry import register

_WEIGHTS = ("kernel", "bias")


@register
class FC(Kind):
    name = "fc"
    options = {"n": REQUIRED, "act": "auto", "includebias": True, "dropout": 0.0}
    aliases = ("fullconnect",)
    table = TableForm(4, "fcopts", "Full Connect Layer")
    codec = (Num("n"), NegatedFlag("no_bias", "includebias"), *training_defaults(), Act())
    weights = _WEIGHTS
    weight_doc = "kernel (n, in), bias (n)"
    act, auto_act, dropout = True, "tanh", True

    def full(self, opts) -> bool:
        return True

    def normalize(self, raw: Raw) -> dict:
        return {"n": raw.num("n"),
                "include_bias": raw.flag("includebias", raw.default("includebias"))}

    def output_shape(self, layer, src_shapes, options) -> tuple:
        if not src_shapes:
            raise InvalidModel(f"{layer.type} layer has no srcLayers", node=layer.name)
        if layer.options["n"] < 1:
            raise InvalidModel(f"{layer.type} layer has n={layer.options['n']}; the executor "
                               "needs the neuron count", node=layer.name)
        return (layer.options["n"],)

    def weight_shapes(self, layer, src_shapes, options) -> dict:
        opts = layer.options
        if not self.full(opts):
            return {}
        params = {"kernel": (opts["n"], sum(math.prod(s) for s in src_shapes))}
        if opts["include_bias"]:
            params["bias"] = (opts["n"],)
        return params

    def run(self, layer, sources, options):
        v = kernels.flatten_concat(sources)
        w = layer.weights
        return kernels.dense(v, w["kernel"], w.get("bias")) if self.full(layer.options) else v

    def export(self, ex, sources) -> str:
        v, act = ex.vector(sources), ex.layer_act()
        if not self.full(ex.layer.options):
            return ex.activation(v, act, ex.shapes[ex.layer.name])
        w = ex.layer.weights
        inputs = [v, ex.const("kernel", w["kernel"])]
        if "bias" in w:
            inputs.append(ex.const("bias", w["bias"]))
        fused = act if act != "softmax" else "identity"
        y = ex.op("Gemm", inputs, ex.shapes[ex.layer.name], transB=1, **ex.act_attrs(fused))
        return ex.activation(y, "softmax", ex.shapes[ex.layer.name]) if act == "softmax" else y


@register
class Output(FC):
    name = "output"
    options = {"n": REQUIRED, "act": "auto", "includebias": True, "fullconnect": True,
               "error": "auto"}
    aliases = ()
    table = TableForm(5, "outputopts", "Output Layer")
    codec = (Num("n"), NegatedFlag("no_bias", "includebias"),
             *training_defaults(with_dropout=False), Act(),
             NegatedFlag("noFullConnect", "fullconnect"), Const("target_std", 2),
             Const("error", ("Automatic", 0)))
    weight_doc = "as fc; none when fullconnect is false"
    auto_act, dropout = "softmax", False

    def full(self, opts) -> bool:
        return opts["fullconnect"]

    def normalize(self, raw: Raw) -> dict:
        return {**super().normalize(raw),
                "fullconnect": raw.flag("fullconnect", raw.default("fullconnect"))}

    def output_shape(self, layer, src_shapes, options) -> tuple:
        opts = layer.options
        if opts["fullconnect"]:
            return super().output_shape(layer, src_shapes, options)
        total = sum(math.prod(s) for s in src_shapes)
        if opts["n"] not in (0, total):
            raise InvalidModel(f"output layer without fullconnect has n={opts['n']} but "
                               f"receives {total} values", node=layer.name)
        return (total,)
