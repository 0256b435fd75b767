"""Input channel order. Viya feeds colour images as B, G, R (viya-semantics.md §2).

A source trained on R, G, B images is made to read Viya's B, G, R by reversing the input-channel
axis of every convolution that reads the input (trap 2). Per-channel preprocessing constants
given in the source's order are reversed with it (irc/input_spec.py, ``per_channel``).
"""
from __future__ import annotations

import numpy as np

from irc.backends.viya.model import LazyWeight, ViyaModel


def _reversed_input_axis(weight: LazyWeight) -> LazyWeight:
    if weight.expr is not None:  # described: reversed block by block when written
        return LazyWeight.of(weight.expr.flip(1))
    # Copies only this kernel, once, when the writer asks for it.
    return LazyWeight(weight.shape, lambda w=weight: np.ascontiguousarray(w.array()[:, ::-1]))


def read_rgb_as_bgr(model: ViyaModel) -> list[str]:
    """Rewrite the layers reading the input so that B,G,R data gives the source's numbers.

    Returns problems (empty when done): every reader must be a dense (group 1) convolution.
    """
    (input_layer,) = [layer for layer in model.layers if layer.kind == "input"]
    if input_layer.options["nchannels"] != 3:
        return [f"--channel-order rgb needs a 3-channel input; {input_layer.name!r} has "
                f"{input_layer.options['nchannels']}"]
    readers = [layer for layer in model.layers if input_layer.name in layer.sources]
    bad = [f"{layer.name} ({layer.kind})" for layer in readers if layer.kind != "convo"]
    if bad:
        return ["--channel-order rgb reverses the input channels of the layers reading the "
                f"input, which must all be convolutions; these are not: {', '.join(bad)}"]
    for layer in readers:
        layer.weights["kernel"] = _reversed_input_axis(layer.weights["kernel"])
    model.input_info["source_channel_order"] = "rgb"
    return []
