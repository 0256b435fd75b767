"""What convolution and pooling kinds share: window options, their table rows and geometry."""
from __future__ import annotations

from irc.backends.viya.executor.kernels import spatial_geometry
from irc.errors import InvalidModel

from .base import Raw
from .codec import Num, Padding, Strides

# width, height, strides and automatic padding, in the order servers write them (§4.4)
WINDOW_ROWS = (Num("width"), Num("height"), Strides())
PADDING_ROWS = (Padding(),)


def window_options(raw: Raw, pool: bool) -> dict:
    """height/width, stride_h/stride_w and pad_h/pad_w (None = automatic) of a window kind."""
    opts = {"height": raw.num("height"), "width": raw.num("width")}
    # conv stride defaults to 1; DLPy defaults the pool stride to the window (§3.3)
    default_h = opts["height"] if pool else 1
    default_w = opts["width"] if pool else 1
    if pool and opts["height"] == opts["width"] == 0:
        default_h = default_w = 1
    opts["stride_h"] = raw.num("stridevertical", raw.get("stride", default_h))
    opts["stride_w"] = raw.num("stridehorizontal", raw.get("stride", default_w))
    pad_h = raw.get("paddingheight", raw.get("padding"))
    pad_w = raw.get("paddingwidth", raw.get("padding"))
    if (pad_h is None) != (pad_w is None) and not raw.per_axis_padding:
        raise raw.fail("explicit padding is given for one axis only; what Viya does then is "
                       "open (viya-target.md §3.3)",
                       hint="send both paddingheight and paddingwidth, or neither")
    opts["pad_h"] = None if pad_h is None else raw.num("paddingheight", pad_h)
    opts["pad_w"] = None if pad_w is None else raw.num("paddingwidth", pad_w)
    if min(p for p in (opts["pad_h"], opts["pad_w"], 0) if p is not None) < 0:
        raise raw.fail("explicit padding must be >= 0 (omit it for automatic padding)")
    return opts


def output_grid(layer, image: tuple, pool: bool, options) -> tuple:
    """(geometry, out_h, out_w) of a window sliding over a (C, H, W) source."""
    opts = layer.options
    _, h, w = image
    geo = spatial_geometry(opts, h, w, pool, options)
    if geo[0][3] < 1 or geo[1][3] < 1:
        raise InvalidModel(f"a {opts['height']}x{opts['width']} window does not fit the "
                           f"{h}x{w} input with this padding", node=layer.name)
    return geo, geo[0][3], geo[1][3]
