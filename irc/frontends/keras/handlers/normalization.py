"""Batch normalization and the preprocessing layers (Rescaling, Normalization)."""
from __future__ import annotations

import numpy as np

from irc.frontends.keras.handlers.common import Value, layer_weights, shape_of
from irc.frontends.keras.handlers.registry import KERAS_LAYERS


def _per_channel(name: str, value, layer, ctx) -> None:
    shape = shape_of(layer, "input")
    if shape is not None and value is not None and channel_constant(value, shape) is None:
        ctx.problem(f"{name} of shape {np.shape(value)} does not broadcast per channel (the "
                    f"last axis of {shape}); Viya scales inputs per channel only")


def channel_constant(value, shape: tuple[int, ...]) -> np.ndarray | None:
    """A Keras constant that broadcasts over the last (channel) axis, as an array that
    broadcasts the same way in N,C,H,W (C,1,1) or N,F (F,); None if it varies otherwise."""
    a = np.asarray(value, np.float32)
    channels = shape[-1]
    if a.size == 1:
        return a.reshape(())
    if a.size != channels or (a.ndim and a.shape[-1] != channels):
        return None
    return a.reshape((channels, 1, 1) if len(shape) == 3 else (channels,))


def _affine(e, layer, x: Value, subtract, multiply, add) -> Value:
    """((x - subtract) * multiply) + add with per-channel constants; identities skipped."""
    current = x.name
    for op, value, role in (("Sub", subtract, "mean"), ("Mul", multiply, "scale"),
                            ("Add", add, "offset")):
        identity = 1.0 if op == "Mul" else 0.0
        if value is None or np.all(value == identity):
            continue
        const = e.const(f"{layer.name}/{role}", value)
        (current,) = e.node(op, [current, const], f"{layer.name}_{role}")
    if current == x.name:
        (current,) = e.node("Identity", [current], layer.name)
    return Value(current, x.shape)


@KERAS_LAYERS.register("BatchNormalization")
class BatchNormalization:
    """BatchNormalization (any scale/center/epsilon) -> folded into the conv/fc before it, or a
    batchnorm layer."""

    @staticmethod
    def check(layer, cfg, ctx):
        axis = cfg.get("axis", -1)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        shape = shape_of(layer, "input")
        rank = len(shape) + 1 if shape is not None else None
        channel = [-1] + ([rank - 1] if rank else [])
        if len(axes) != 1 or axes[0] not in channel:
            ctx.problem(f"BatchNormalization axis={axis}: Viya normalises per channel (the last "
                        "axis) only")

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """BatchNormalization (inference) -> BatchNormalization over the channel axis."""
        names = (["gamma"] if cfg.get("scale", True) else []) + \
            (["beta"] if cfg.get("center", True) else []) + ["mean", "variance"]
        w = layer_weights(layer, cfg, names)
        channels = w["mean"].shape[0]
        args = [inputs[0].name]
        for role, default in (("gamma", 1.0), ("beta", 0.0), ("mean", None), ("variance", None)):
            array = w.get(role, np.full(channels, default, np.float32))
            args.append(e.weight(layer, f"{layer.name}/{role}", array))
        (out,) = e.node("BatchNormalization", args, layer.name,
                        epsilon=float(cfg.get("epsilon", 1e-3)))
        return [Value(out, inputs[0].shape)]


@KERAS_LAYERS.register("Rescaling")
class Rescaling:
    """Rescaling (scalar or per-channel scale and offset) -> folded into the next conv, or a
    batchnorm layer."""

    @staticmethod
    def check(layer, cfg, ctx):
        _per_channel("scale", cfg.get("scale", 1.0), layer, ctx)
        _per_channel("offset", cfg.get("offset", 0.0), layer, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Rescaling -> Mul and Add by constants (folded into the next conv or a batchnorm)."""
        x = inputs[0]
        scale = channel_constant(cfg.get("scale", 1.0), x.shape)
        offset = channel_constant(cfg.get("offset", 0.0), x.shape)
        return [_affine(e, layer, x, None, scale, offset)]


@KERAS_LAYERS.register("Normalization")
class Normalization:
    """Normalization over the channel axis (invert=False) -> as Rescaling, with Keras's
    1/max(sqrt(variance), epsilon)."""

    @staticmethod
    def check(layer, cfg, ctx):
        if cfg.get("invert"):
            ctx.problem("Normalization invert=True (a de-normalisation): not supported")
        if ctx.through_tf2onnx:
            ctx.problem("Normalization: tf2onnx turns its mean and variance into extra model "
                        "inputs; only irc's direct route converts it (remove what sends the model "
                        "through tf2onnx, e.g. a Lambda)")
        axis = cfg.get("axis", -1)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        shape = shape_of(layer, "input")
        if axes not in ([-1], [len(shape)] if shape is not None else [-1]):
            ctx.problem(f"Normalization axis={axis}: Viya normalises per channel (the last axis)")
            return
        for name in ("mean", "variance"):
            value = getattr(layer, name, None)
            if value is None:
                ctx.problem(f"Normalization has no {name} (adapt() it, or give mean and variance)")
            else:
                _per_channel(name, np.asarray(value), layer, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Normalization -> Sub mean, Mul by 1/max(sqrt(variance), epsilon), as Keras computes."""
        from irc.frontends.keras.runtime import tf_modules

        x = inputs[0]
        mean = channel_constant(np.asarray(layer.mean), x.shape)
        variance = channel_constant(np.asarray(layer.variance), x.shape)
        epsilon = 1e-7
        try:
            epsilon = float(tf_modules().keras.backend.epsilon())
        except Exception:  # a tf-keras-only install: Keras's default
            pass
        std = np.sqrt(variance.astype(np.float64))
        inverse = (1.0 / np.maximum(std, epsilon)).astype(np.float32)
        return [_affine(e, layer, x, mean, inverse, None)]

