"""Pooling, padding and cropping layers."""
from __future__ import annotations

import numpy as np

from irc.errors import UnsupportedAttribute
from irc.frontends.keras.handlers.common import Value, channels_last, pair, window
from irc.frontends.keras.handlers.registry import KERAS_LAYERS


def _pool(e, layer, cfg, x: Value, op: str, **attrs) -> Value:
    size = pair(cfg.get("pool_size", 2))
    strides = cfg.get("strides") or size
    pads, (oh, ow) = window(layer.name, x.shape, size, strides, cfg.get("padding", "valid"))
    (out,) = e.node(op, [x.name], layer.name, kernel_shape=list(size),
                    strides=list(pair(strides)), pads=pads, **attrs)
    return Value(out, (oh, ow, x.shape[2]))


@KERAS_LAYERS.register("MaxPooling2D")
class MaxPooling2D:
    """MaxPooling2D (valid/same) -> pool max; 'same' padding mapped exactly or refused."""

    @staticmethod
    def check(layer, cfg, ctx):
        channels_last(cfg, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """MaxPooling2D -> MaxPool (padded cells never win)."""
        return [_pool(e, layer, cfg, inputs[0], "MaxPool")]


@KERAS_LAYERS.register("AveragePooling2D")
class AveragePooling2D:
    """AveragePooling2D (valid/same) -> pool mean (padded cells left out of the divisor)."""

    @staticmethod
    def check(layer, cfg, ctx):
        channels_last(cfg, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """AveragePooling2D -> AveragePool, padded cells left out of the divisor as in Keras."""
        return [_pool(e, layer, cfg, inputs[0], "AveragePool", count_include_pad=0)]


@KERAS_LAYERS.register("GlobalAveragePooling2D", "GlobalMaxPooling2D")
class GlobalPooling2D:
    """Global pooling -> pool with width = height = 0."""

    @staticmethod
    def check(layer, cfg, ctx):
        channels_last(cfg, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Global pooling -> GlobalAveragePool/GlobalMaxPool, then Flatten unless keepdims."""
        is_max = type(layer).__name__.startswith("GlobalMax")
        op = "GlobalMaxPool" if is_max else "GlobalAveragePool"
        x = inputs[0]
        (out,) = e.node(op, [x.name], layer.name)
        if cfg.get("keepdims"):
            return [Value(out, (1, 1, x.shape[2]))]
        (flat,) = e.node("Flatten", [out], f"{layer.name}_flatten", axis=1)
        return [Value(flat, (x.shape[2],))]


@KERAS_LAYERS.register("ZeroPadding2D")
class ZeroPadding2D:
    """ZeroPadding2D -> folded into the padding of the conv/pool that reads it (a padded average
    pool becomes a depthwise convolution)."""

    @staticmethod
    def check(layer, cfg, ctx):
        channels_last(cfg, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """ZeroPadding2D -> Pad with zeros (folded into the next conv/pool by irc's passes)."""
        pad = cfg.get("padding", 1)
        if isinstance(pad, (int, float)):
            (t, b), (l, r) = (pad, pad), (pad, pad)
        else:
            (t, b), (l, r) = (pair(p) for p in pad)
        x = inputs[0]
        pads = e.const(f"{layer.name}/pads", np.array([0, 0, t, l, 0, 0, b, r], np.int64))
        (out,) = e.node("Pad", [x.name, pads], layer.name, mode="constant")
        h, w, c = x.shape
        return [Value(out, (h + t + b, w + l + r, c))]


@KERAS_LAYERS.register("Cropping2D")
class Cropping2D:
    """Cropping2D -> a depthwise convolution with a one-hot kernel (exact)."""

    @staticmethod
    def check(layer, cfg, ctx):
        channels_last(cfg, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Cropping2D -> Slice on H and W."""
        crop = cfg.get("cropping", ((0, 0), (0, 0)))
        if isinstance(crop, (int, float)):
            (t, b), (l, r) = (crop, crop), (crop, crop)
        else:
            (t, b), (l, r) = (pair(c) for c in crop)
        x = inputs[0]
        h, w, c = x.shape
        if t + b >= h or l + r >= w:
            raise UnsupportedAttribute(f"{layer.name}: cropping {crop} leaves nothing of a {h}x{w} "
                                       "input", hint="give a larger input shape")
        starts = e.const(f"{layer.name}/starts", np.array([t, l], np.int64))
        ends = e.const(f"{layer.name}/ends", np.array([h - b, w - r], np.int64))
        axes = e.const(f"{layer.name}/axes", np.array([2, 3], np.int64))
        (out,) = e.node("Slice", [x.name, starts, ends, axes], layer.name)
        return [Value(out, (h - t - b, w - l - r, c))]

