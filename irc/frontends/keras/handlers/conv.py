"""Convolution and dense layers.

Kernels move to ONNX layouts: a Conv2D kernel (kH, kW, Cin, Cout) becomes (Cout, Cin, kH, kW); a
depthwise kernel (kH, kW, C, M) becomes (C·M, 1, kH, kW) with output channel c·M + m, as Keras
orders them; a Dense kernel (in, out) is written (out, in) for Gemm with transB=1.
"""
from __future__ import annotations

from irc.frontends.keras.handlers.common import (Value, activation, channels_last,
                                                 check_activation, layer_weights, no_dilation,
                                                 pair, shape_of, window)
from irc.frontends.keras.handlers.registry import KERAS_LAYERS
from irc.frontends.keras.handlers.sequence import dense_in_sequence


def _conv(e, layer, x: Value, kernel_onnx, bias, strides, padding, group: int,
          name: str | None = None) -> Value:
    name = name or layer.name
    cout, _, kh, kw = kernel_onnx.shape
    pads, (oh, ow) = window(layer.name, x.shape, (kh, kw), strides, padding)
    inputs = [x.name, e.weight(layer, f"{name}/kernel", kernel_onnx)]
    if bias is not None:
        inputs.append(e.weight(layer, f"{name}/bias", bias))
    (out,) = e.node("Conv", inputs, name, kernel_shape=[kh, kw], strides=list(pair(strides)),
                    pads=pads, group=group)
    return Value(out, (oh, ow, cout))


def _check_window(layer, cfg, ctx) -> None:
    channels_last(cfg, ctx)
    no_dilation(cfg, ctx)
    check_activation(cfg.get("activation"), layer, ctx)


def _kernel_and_bias(cfg) -> list[str]:
    return ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"]


def _depthwise_onnx(kernel):
    """A Keras depthwise kernel (kH, kW, C, M) as ONNX's (C·M, 1, kH, kW), channel c·M + m."""
    kh, kw, c, m = kernel.shape
    return kernel.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)


@KERAS_LAYERS.register("Conv2D")
class Conv2D:
    """Conv2D -> convo; its activation joins the layer."""

    @staticmethod
    def check(layer, cfg, ctx):
        _check_window(layer, cfg, ctx)
        if int(cfg.get("groups", 1)) != 1 and ctx.flavor == "keras3" and ctx.through_tf2onnx:
            ctx.problem(f"Conv2D groups={cfg['groups']}: Keras 3 computes a grouped convolution "
                        "in a nested TensorFlow function that tf2onnx cannot convert")

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Conv2D -> Conv (kernel to Cout,Cin,kH,kW), then its activation."""
        w = layer_weights(layer, cfg, _kernel_and_bias(cfg))
        groups = int(cfg.get("groups", 1) or 1)
        y = _conv(e, layer, inputs[0], w["kernel"].transpose(3, 2, 0, 1), w.get("bias"),
                  cfg.get("strides", 1), cfg.get("padding", "valid"), groups)
        return [activation(e, layer.name, y, cfg.get("activation"))]


@KERAS_LAYERS.register("DepthwiseConv2D")
class DepthwiseConv2D:
    """DepthwiseConv2D -> groupconvo with one group per input channel."""

    @staticmethod
    def check(layer, cfg, ctx):
        _check_window(layer, cfg, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """DepthwiseConv2D -> Conv with one group per input channel."""
        w = layer_weights(layer, cfg, _kernel_and_bias(cfg))
        kernel = _depthwise_onnx(w["kernel"])
        y = _conv(e, layer, inputs[0], kernel, w.get("bias"), cfg.get("strides", 1),
                  cfg.get("padding", "valid"), w["kernel"].shape[2])
        return [activation(e, layer.name, y, cfg.get("activation"))]


@KERAS_LAYERS.register("SeparableConv2D")
class SeparableConv2D:
    """SeparableConv2D -> groupconvo (depthwise) then a 1x1 convo (pointwise)."""

    @staticmethod
    def check(layer, cfg, ctx):
        _check_window(layer, cfg, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """SeparableConv2D -> a depthwise Conv, then a 1x1 Conv with the bias and activation."""
        names = ["depthwise", "pointwise"] + (["bias"] if cfg.get("use_bias", True) else [])
        w = layer_weights(layer, cfg, names)
        mid = _conv(e, layer, inputs[0], _depthwise_onnx(w["depthwise"]), None,
                    cfg.get("strides", 1), cfg.get("padding", "valid"), w["depthwise"].shape[2],
                    name=f"{layer.name}_depthwise")
        y = _conv(e, layer, mid, w["pointwise"].transpose(3, 2, 0, 1), w.get("bias"), 1, "valid", 1)
        return [activation(e, layer.name, y, cfg.get("activation"))]


@KERAS_LAYERS.register("Dense")
class Dense:
    """Dense -> fc (or the output layer); after a Flatten its rows are permuted to C,H,W."""

    @staticmethod
    def check(layer, cfg, ctx):
        in_shape = shape_of(layer, "input")
        if in_shape is not None and len(in_shape) != 1:
            ctx.problem(f"Dense on a tensor of shape {in_shape} (not a vector): Viya's fc layer "
                        "flattens its input; put a Flatten before it")
        check_activation(cfg.get("activation"), layer, ctx)

    @staticmethod
    def emit(e, layer, cfg, inputs):
        """Dense on a vector -> Gemm with transB=1 (kernel as Out x In, the layout irc's passes
        and Viya keep, so no pass copies it again), then its activation."""
        w = layer_weights(layer, cfg, _kernel_and_bias(cfg))
        args = [inputs[0].name, e.weight(layer, f"{layer.name}/kernel", w["kernel"].T)]
        if "bias" in w:
            args.append(e.weight(layer, f"{layer.name}/bias", w["bias"]))
        (out,) = e.node("Gemm", args, layer.name, transB=1)
        y = Value(out, (w["kernel"].shape[1],))
        return [activation(e, layer.name, y, cfg.get("activation"))]

    @staticmethod
    def sequence(spec, flow):
        dense_in_sequence(spec.config, flow)

    @staticmethod
    def emit_sequence(e, spec):
        """Dense in a sequence model -> MatMul + Add per time step (Gemm on a vector)."""
        e.dense(spec.name, spec)

