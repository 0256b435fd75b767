"""Activation layers. What Viya lacks (a clip, any leaky slope, PReLU) is emitted as the ONNX op
and rewritten exactly by irc's legalization passes."""
from __future__ import annotations

import math

from irc.frontends.keras.handlers.common import (Value, activation, check_activation, clip,
                                                 layer_weights, shape_of, softmax_at_output)
from irc.frontends.keras.handlers.registry import KERAS_LAYERS
from irc.frontends.keras.handlers.sequence import activation_in_sequence, emit_activation


def _per_channel_slope(layer, cfg, ctx) -> None:
    shape = shape_of(layer, "input")
    shared = sorted(int(a) for a in (cfg.get("shared_axes") or []))
    if shape is not None and len(shape) == 3 and shared != [1, 2]:
        ctx.problem(f"PReLU shared_axes={shared or None}: a slope per position; Viya's "
                    "per-channel layers can apply one slope per channel only (shared_axes=[1, 2])")


@KERAS_LAYERS.register("Activation")
class Activation:
    """Activation -> the act of the layer before it (or an identity batchnorm carrier)."""

    @staticmethod
    def check(layer, cfg, ctx):
        check_activation(cfg.get("activation"), layer, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Activation -> the ONNX activation op."""
        return [activation(e, layer.name, inputs[0], cfg.get("activation"))]

    sequence = staticmethod(activation_in_sequence)
    emit_sequence = staticmethod(emit_activation)


@KERAS_LAYERS.register("ReLU")
class ReLU:
    """ReLU -> act relu; with max_value, a clip (two batchnorm layers); with a negative slope,
    relu(x) - a*relu(-x) (exact rewrites)."""

    @staticmethod
    def check(layer, cfg, ctx):
        max_value = cfg.get("max_value")
        if max_value is not None and float(max_value) < 0:
            ctx.problem(f"ReLU max_value={max_value} is negative: Keras itself refuses it")
        if float(cfg.get("threshold", 0.0) or 0.0) != 0.0:
            ctx.problem(f"ReLU threshold={cfg['threshold']}: Viya's relu is max(0, x), and a "
                        "thresholded relu has a step at the threshold no Viya layer computes")
        if float(cfg.get("negative_slope", 0.0) or 0.0) != 0.0 and max_value is not None:
            ctx.problem(f"ReLU negative_slope={cfg['negative_slope']} together with max_value: "
                        "use a LeakyReLU or a ReLU(max_value) layer, not both in one")

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """ReLU -> Relu; with max_value, Clip(0, max_value); with a negative slope, LeakyRelu."""
        x, slope = inputs[0], float(cfg.get("negative_slope", 0.0) or 0.0)
        if cfg.get("max_value") is not None:
            return [clip(e, layer.name, x, 0.0, float(cfg["max_value"]))]
        if slope:
            (out,) = e.node("LeakyRelu", [x.name], layer.name, alpha=slope)
            return [Value(out, x.shape)]
        return [activation(e, layer.name, x, "relu")]


@KERAS_LAYERS.register("LeakyReLU")
class LeakyReLU:
    """LeakyReLU -> act leaky for slope 0.1 (Viya's fixed slope); any other slope through the
    exact rewrite relu(x) - a*relu(-x)."""

    @staticmethod
    def check(layer, cfg, ctx):
        pass

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """LeakyReLU -> LeakyRelu with Keras's slope."""
        slope = float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))
        (out,) = e.node("LeakyRelu", [inputs[0].name], layer.name, alpha=slope)
        return [Value(out, inputs[0].shape)]


@KERAS_LAYERS.register("PReLU")
class PReLU:
    """PReLU with one slope per channel (shared_axes=[1, 2]) -> relu(x) - a*relu(-x)."""

    @staticmethod
    def check(layer, cfg, ctx):
        _per_channel_slope(layer, cfg, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """PReLU with per-channel slopes -> PRelu with the slopes as (C, 1, 1)."""
        x = inputs[0]
        (alpha,) = layer_weights(layer, cfg, ["alpha"]).values()
        slope = alpha.reshape(-1, 1, 1) if len(x.shape) == 3 else alpha.reshape(-1)
        alpha_name = e.weight(layer, f"{layer.name}/alpha", slope)
        (out,) = e.node("PRelu", [x.name, alpha_name], layer.name)
        return [Value(out, x.shape)]


@KERAS_LAYERS.register("ELU")
class ELU:
    """ELU(alpha=1) -> act elu."""

    @staticmethod
    def check(layer, cfg, ctx):
        alpha = float(cfg.get("alpha", 1.0))
        if not math.isclose(alpha, 1.0, rel_tol=1e-6):
            ctx.problem(f"ELU alpha={alpha:g}: only alpha=1 is known to match Viya's elu")

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """ELU -> Elu with Keras's alpha."""
        (out,) = e.node("Elu", [inputs[0].name], layer.name, alpha=float(cfg.get("alpha", 1.0)))
        return [Value(out, inputs[0].shape)]


@KERAS_LAYERS.register("Softmax")
class Softmax:
    """Softmax over the last axis of a vector at the model output -> act softmax of the output
    layer."""

    @staticmethod
    def check(layer, cfg, ctx):
        axis = cfg.get("axis", -1)
        if axis not in (-1, 1, [-1], [1]):
            ctx.problem(f"Softmax axis={axis}: only the feature axis of a vector is supported")
        softmax_at_output(layer, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Softmax over the feature axis of a vector -> Softmax."""
        return [activation(e, layer.name, inputs[0], "softmax")]

    sequence = staticmethod(activation_in_sequence)
    emit_sequence = staticmethod(emit_activation)

