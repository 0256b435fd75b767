"""Layers that wire the graph: input, sums, concatenation, flatten, reshape, dropout, Lambda."""
from __future__ import annotations

import math

import numpy as np

from irc.errors import UnsupportedAttribute
from irc.frontends.keras.handlers.common import (TO_NCHW, TO_NHWC, Value, channels_last,
                                                 shape_of)
from irc.frontends.keras.handlers.registry import KERAS_LAYERS


def reshape_expressible(in_shape, out_shape) -> bool:
    """Whether a channels-last Keras Reshape equals a flatten or Viya's reshape (a plain C,H,W
    reinterpretation): labelled elements land where both layouts agree."""
    if len(out_shape) == 1:
        return True
    if len(out_shape) != 3 or len(in_shape) not in (1, 3):
        return False
    n = math.prod(in_shape)
    if n != math.prod(out_shape) or n > 1 << 22:
        return False
    labels = np.arange(n).reshape(in_shape)
    keras_out = labels.reshape(out_shape)

    def chw(a):
        return a.transpose(2, 0, 1) if a.ndim == 3 else a

    out_chw = (out_shape[2], out_shape[0], out_shape[1])
    return bool(np.array_equal(chw(labels).reshape(out_chw), chw(keras_out)))


@KERAS_LAYERS.register("InputLayer")
class InputLayer:
    """InputLayer -> the Viya input layer (N,H,W,C becomes C,H,W)."""

    @staticmethod
    def check(layer, cfg, ctx):
        pass

    @staticmethod
    def sequence(spec, flow):
        pass


@KERAS_LAYERS.register("Add")
class Add:
    """Add -> residual (the inputs must have identical shapes)."""

    @staticmethod
    def check(layer, cfg, ctx):
        pass

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Add -> a chain of Add in Keras's order."""
        total = inputs[0].name
        for k, other in enumerate(inputs[1:]):
            (total,) = e.node("Add", [total, other.name], layer.name if k == 0 else
                              f"{layer.name}_{k + 1}")
        return [Value(total, inputs[0].shape)]


@KERAS_LAYERS.register("Concatenate")
class Concatenate:
    """Concatenate along channels (the last axis) -> concat."""

    @staticmethod
    def check(layer, cfg, ctx):
        shape = shape_of(layer, "output")
        axis = cfg.get("axis", -1)
        if axis != -1 and (shape is None or axis != len(shape)):
            ctx.problem(f"Concatenate axis={axis}: Viya concatenates channels (the last axis) only")

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Concatenate along the channels (Keras's last axis) -> Concat on ONNX axis 1."""
        (out,) = e.node("Concat", [v.name for v in inputs], layer.name, axis=1)
        shape = inputs[0].shape[:-1] + (sum(v.shape[-1] for v in inputs),)
        return [Value(out, shape)]


@KERAS_LAYERS.register("CustomScaleLayer")
class CustomScaleLayer:
    """InceptionResNetV2's x + scale*y -> the scale folded into the layer producing y, then a
    residual."""

    @staticmethod
    def check(layer, cfg, ctx):
        if "scale" not in cfg:
            ctx.problem("CustomScaleLayer without a 'scale' in its configuration")

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """InceptionResNetV2's CustomScaleLayer: x + scale*y -> Mul by a constant, then Add."""
        x, y = inputs
        scale = e.const(f"{layer.name}/scale", np.array(float(cfg["scale"]), np.float32))
        (scaled,) = e.node("Mul", [y.name, scale], f"{layer.name}_scale")
        (out,) = e.node("Add", [x.name, scaled], layer.name)
        return [Value(out, x.shape)]


@KERAS_LAYERS.register("Flatten")
class Flatten:
    """Flatten -> absorbed: the next fc's rows are permuted from H,W,C to C,H,W."""

    @staticmethod
    def check(layer, cfg, ctx):
        channels_last(cfg, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Flatten in Keras's H,W,C order -> Transpose to N,H,W,C, then Flatten (irc moves the
        transpose into the next Dense's rows)."""
        x = inputs[0]
        if len(x.shape) == 1:
            return [x]
        (nhwc,) = e.node("Transpose", [x.name], f"{layer.name}_nhwc", perm=TO_NHWC)
        (out,) = e.node("Flatten", [nhwc], layer.name, axis=1)
        return [Value(out, (math.prod(x.shape),))]


@KERAS_LAYERS.register("Dropout")
class Dropout:
    """Dropout -> removed (inference); its rate is never copied into Viya."""

    @staticmethod
    def check(layer, cfg, ctx):
        pass

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Dropout -> nothing (inference)."""
        return [inputs[0]]

    @staticmethod
    def sequence(spec, flow):
        pass


@KERAS_LAYERS.register("Reshape")
class Reshape:
    """Reshape to a vector (a flatten) or to (H,W,C) where it equals Viya's C,H,W reshape."""

    @staticmethod
    def check(layer, cfg, ctx):
        in_shape, out_shape = shape_of(layer, "input"), shape_of(layer, "output")
        if in_shape is None or out_shape is None:
            return  # checked again on the ONNX graph once shapes are fixed
        if not reshape_expressible(in_shape, out_shape):
            ctx.problem(f"Reshape {in_shape} -> {out_shape} moves elements differently in Keras's "
                        "H,W,C layout and Viya's C,H,W layout; Viya can express reshapes to a "
                        "vector, and to (H,W,C) only where both layouts agree")

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Reshape in Keras's channels-last order -> Transpose/Reshape/Transpose (collapsed into
        a flatten or Viya's reshape by the layout clean-up, or refused there)."""
        x = inputs[0]
        target = tuple(int(d) for d in cfg["target_shape"])
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            target = tuple(math.prod(x.shape) // known if d == -1 else d for d in target)
        if math.prod(target) != math.prod(x.shape) or len(target) not in (1, 3):
            raise UnsupportedAttribute(f"{layer.name}: Reshape {x.shape} -> {target} is not a "
                                       "reshape irc converts (to a vector or an (H, W, C) image)")
        current = x.name
        if len(x.shape) == 3:
            (current,) = e.node("Transpose", [current], f"{layer.name}_nhwc", perm=TO_NHWC)
        shape = e.const(f"{layer.name}/shape", np.array((0,) + target, np.int64))
        (current,) = e.node("Reshape", [current, shape], layer.name)
        if len(target) == 3:
            (current,) = e.node("Transpose", [current], f"{layer.name}_nchw", perm=TO_NCHW)
        return [Value(current, target)]


@KERAS_LAYERS.register("Lambda")
class Lambda:
    """Lambda (only with allow_lambda=True) -> whatever tf2onnx makes of it, if irc supports
    those ONNX ops."""

    @staticmethod
    def check(layer, cfg, ctx):
        if not ctx.allow_lambda:
            ctx.problem("a Lambda layer runs arbitrary Python code; pass allow_lambda=True to "
                        "convert models you trust")

