"""The detection heads ([region]: YOLOv2, [detection]: YOLOv1) and [reorg] (YOLOv2's
passthrough).

A head is not converted: the graph ends at the tensor it reads (the grid) and the head is
recorded for lowering to Viya's detection layer (``cv.head``: the section, its options as the
cfg gives them, darknet's whitespace removed, and the ONNX name of the grid).

[reorg] is darknet's ``reorg_cpu(input, w, h, c, batch, stride, forward=0, output)``. With
s = stride it is not TensorFlow's space-to-depth: it reads the (C, H, W) input's memory as a
(C/s², H·s, W·s) array X, gathers Y[k, j, i] = X[k mod C/s², j·s + (k div C/s²) div s,
i·s + (k div C/s²) mod s] of shape (C, H, W), and hands that memory on as
(C·s², H/s, W/s). The middle step is a space-to-depth of X whose output channel is
(dy·s + dx)·C/s² + c: a stride-s, s×s convolution whose constant kernel holds a single 1 per
output channel (exact in floating point: each output is one input times 1 plus zeros). Both
reinterpretations are C-order reshapes. So [reorg] becomes Reshape, Conv, Reshape.
"""
from __future__ import annotations

import numpy as np

from irc.frontends.darknet.convert import HEADS, Tensor
from irc.frontends.darknet.layers import _image, _nondefault
from irc.frontends.darknet.registry import DARKNET_SECTIONS as reg


def _head(cv, kind: str):
    later = [s for s in cv.cfg.layers[cv.index + 1:] if s.kind != "cost"]
    if later:
        cv.refuse(f"a [{kind}] head must be the last layer; [{later[0].kind}] at line "
                  f"{later[0].line} follows it")
    grid = cv.previous()
    for key in cv.section.options:  # recorded whole: the head's options are all meaningful
        cv.section.used.add(key)
    cv.head = {"section": kind, "options": dict(cv.section.options), "input": grid.name}
    cv.layer_out.append(grid)


@reg.register("region")
def region(cv):
    """YOLOv2 head -> Viya's detection layer after the grid it reads (anchors, classes, num,
    softmax and loss scales from the section; recorded as ONNX metadata irc.detection)."""
    _head(cv, "region")


@reg.register("detection")
def detection(cv):
    """YOLOv1 head -> Viya's detection layer after the vector it reads (classes, num, sqrt
    from the section; recorded as ONNX metadata irc.detection)."""
    _head(cv, "detection")


def reorg_kernel(channels: int, stride: int) -> np.ndarray:
    """The 0/1 kernel (channels·s², channels, s, s) of a stride-s space-to-depth whose output
    channel (dy·s + dx)·channels + c takes input channel c at offset (dy, dx)."""
    s = stride
    kernel = np.zeros((channels * s * s, channels, s, s), np.float32)
    for dy in range(s):
        for dx in range(s):
            for c in range(channels):
                kernel[(dy * s + dx) * channels + c, c, dy, dx] = 1.0
    return kernel


@reg.register("reorg")
def reorg(cv):
    """Reshape (C/s², H·s, W·s) + 0/1 Conv stride s + Reshape (C·s², H/s, W/s): darknet's."""
    c, h, w = _image(cv, cv.previous())
    s = cv.options().int("stride", 1)
    _nondefault(cv, reverse=0, flatten=0, extra=0)
    if s <= 0 or c % (s * s) or h % s or w % s:
        cv.refuse(f"stride={s} on a {c}x{h}x{w} input: irc needs the channels divisible by "
                  f"stride² and the height and width by the stride")
    x = cv.previous().name
    inner = c // (s * s)
    x = cv.op("Reshape", x, cv.b.const(np.array([-1, inner, h * s, w * s], np.int64),
                                       name=f"{cv.name}_shape_in"), suffix="view_in")
    x = cv.op("Conv", x, cv.const("select_kernel", reorg_kernel(inner, s)), suffix="select",
              kernel_shape=[s, s], strides=[s, s], pads=[0, 0, 0, 0])
    y = cv.op("Reshape", x, cv.b.const(np.array([-1, c * s * s, h // s, w // s], np.int64),
                                       name=f"{cv.name}_shape_out"))
    cv.layer_out.append(Tensor(y, (c * s * s, h // s, w // s)))


assert set(HEADS) <= set(reg.op_types())
