"""Choosing Viya padding that reproduces the source's windows exactly, or saying why not.

Viya has two padding forms per conv/pool layer (viya-semantics.md §5): explicit symmetric P
(floor rounding) or automatic (total max(K - S, 0) or max(K - I mod S, 0); conv puts the odd
pixel after, pool puts all of it after). A source window grid is fixed by its begin padding and
its output count; a Viya form is exact when it has the same begin padding and count on both
axes (cells outside the input are zeros for conv and ignored for max/valid-average pooling).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Padding:
    mode: str  # "auto" or "explicit"
    height: int = 0  # explicit only
    width: int = 0


def auto_total(size: int, kernel: int, stride: int) -> int:
    if size % stride == 0:
        return max(kernel - stride, 0)
    return max(kernel - size % stride, 0)


def auto_begin(size: int, kernel: int, stride: int, kind: str) -> int:
    """Rows/columns Viya's automatic padding puts before the data."""
    return auto_total(size, kernel, stride) // 2 if kind == "conv" else 0


def _auto_ok(size, kernel, stride, begin, out, kind) -> str | None:
    if begin != auto_begin(size, kernel, stride, kind):
        return f"begin padding {begin} != automatic {auto_begin(size, kernel, stride, kind)}"
    if out != -(-size // stride):
        return f"output {out} != automatic ceil({size}/{stride})"
    if kind == "pool" and auto_total(size, kernel, stride) > 1:
        # Where automatic pool padding goes is not public beyond a total of 1 (open point).
        return f"automatic pool padding of {auto_total(size, kernel, stride)} has unknown placement"
    return None


def _explicit_ok(size, kernel, stride, begin, out, kind) -> str | None:
    viya_out = (size + 2 * begin - kernel) // stride + 1
    if viya_out != out:
        return f"explicit padding {begin} gives {viya_out} outputs, source has {out}"
    if kind == "pool" and begin >= kernel:
        # A pool window of padding only has no defined value; a conv's is just its bias.
        return f"padding {begin} >= kernel {kernel}"
    return None


def choose(kind: str, in_hw, kernel, strides, pads, out_hw) -> Padding | str:
    """The Viya padding for a conv (``kind='conv'``) or pool, or the reason none is exact.

    ``pads`` is ONNX order [top, left, bottom, right]. Automatic is preferred where exact,
    since it is the only form the materialised model table can hold.
    """
    begins = (pads[0], pads[1])
    axes = ("height", "width")
    auto_problems = [_auto_ok(in_hw[a], kernel[a], strides[a], begins[a], out_hw[a], kind)
                     for a in range(2)]
    if not any(auto_problems):
        return Padding("auto")
    explicit_problems = [_explicit_ok(in_hw[a], kernel[a], strides[a], begins[a], out_hw[a], kind)
                         for a in range(2)]
    if not any(explicit_problems):
        return Padding("explicit", begins[0], begins[1])
    reasons = [f"automatic ({axes[a]}): {p}" for a, p in enumerate(auto_problems) if p]
    reasons += [f"explicit ({axes[a]}): {p}" for a, p in enumerate(explicit_problems) if p]
    return "; ".join(reasons)
