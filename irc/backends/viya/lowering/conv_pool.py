"""Conv and the pooling ops as Viya convo/groupconvo and pool layers.

Padding is expressed explicitly or left to Viya's automatic rule, whichever gives the
source's output (irc/backends/viya/padding.py); what neither gives is refused.
"""
from __future__ import annotations

from irc.backends.viya import padding as pad_rules
from irc.backends.viya.lowering.context import LoweringContext
from irc.backends.viya.lowering.registry import LOWERINGS
from irc.ir.graph import Node
from irc.passes.defs.legalize_avgpool import touches_padding


def check_dilations(ctx: LoweringContext, node: Node) -> bool:
    """Viya has no dilated window (viya-target); the frontends refuse one, this guards."""
    dilations = [int(d) for d in node.attrs.get("dilations", [1, 1])]
    if any(d != 1 for d in dilations):
        ctx.problem(node, f"dilations {dilations}: Viya has no dilated convolution or "
                          "pooling; export the model without dilation")
        return False
    return True


@LOWERINGS.register("Conv", emits=("convo", "groupconvo"))
def lower_conv(ctx: LoweringContext, node: Node) -> None:
    x, w = node.inputs[0], node.inputs[1]
    x_shape = ctx.graph.value(x).type.shape
    out_shape = ctx.graph.value(node.outputs[0]).type.shape
    if not check_dilations(ctx, node):
        return
    kernel, strides, pads = node.attrs["kernel_shape"], node.attrs["strides"], node.attrs["pads"]
    choice = pad_rules.choose("conv", x_shape[2:], kernel, strides, pads, out_shape[2:])
    if isinstance(choice, str):
        ctx.problem(node, f"padding {pads} on a {x_shape[2]}x{x_shape[3]} input cannot be "
                          f"expressed in Viya ({choice})")
        return
    group = int(node.attrs.get("group", 1))
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    options = {"nfilters": out_shape[1], "width": kernel[1], "height": kernel[0],
               "stridevertical": strides[0], "stridehorizontal": strides[1],
               "act": ctx.act(node), "includebias": has_bias}
    if group > 1:
        options["ngroups"] = group
    if choice.mode == "explicit":
        options.update(paddingheight=choice.height, paddingwidth=choice.width)
    weights = {"kernel": ctx.const_weight(w)}
    if has_bias:
        weights["bias"] = ctx.const_weight(node.inputs[2])
    ctx.add(node, "groupconvo" if group > 1 else "convo", options, [x], node.outputs[0],
            weights)


@LOWERINGS.register("MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool",
                    emits=("pool",))
def lower_pool(ctx: LoweringContext, node: Node) -> None:
    x = node.inputs[0]
    x_shape = ctx.graph.value(x).type.shape
    out_shape = ctx.graph.value(node.outputs[0]).type.shape
    pool = "max" if "Max" in node.op_type else "mean"
    if node.op_type.startswith("Global"):  # Viya's global pooling: a 0 x 0 window
        options = {"width": 0, "height": 0, "stridevertical": 1, "stridehorizontal": 1,
                   "pool": pool}
        ctx.add(node, "pool", options, [x], node.outputs[0])
        return
    if not check_dilations(ctx, node):
        return
    kernel, strides, pads = node.attrs["kernel_shape"], node.attrs["strides"], node.attrs["pads"]
    choice = pad_rules.choose("pool", x_shape[2:], kernel, strides, pads, out_shape[2:])
    if isinstance(choice, str):
        ctx.problem(node, f"pooling with pads {pads}, ceil_mode={node.attrs.get('ceil_mode', 0)}"
                          f" on {x_shape[2]}x{x_shape[3]} cannot be expressed in Viya ({choice})")
        return
    if pool == "mean" and node.attrs.get("count_include_pad", 0) and touches_padding(
            x_shape[2:], kernel, strides, pads, out_shape[2:]):
        ctx.problem(node, "average pooling with count_include_pad=1 over padded cells: "
                          "Viya's divisor for padded cells is not public; export the model "
                          "with count_include_pad=0 or without padding")
        return
    options = {"width": kernel[1], "height": kernel[0], "stridevertical": strides[0],
               "stridehorizontal": strides[1], "pool": pool}
    if choice.mode == "explicit":
        options.update(paddingheight=choice.height, paddingwidth=choice.width)
    ctx.add(node, "pool", options, [x], node.outputs[0])
