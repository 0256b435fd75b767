"""Caffe's window geometry (kernel/pad/stride fields, pooling's rounding) and input shapes."""
from __future__ import annotations

from dataclasses import dataclass

from irc.frontends.caffe.registry import Skip


def hw(cv, p, name: str, h_name: str, w_name: str, default):
    """(h, w) of a conv/pool size field: ``name`` (1 or 2 values) or ``h_name``/``w_name``."""
    if p.HasField(h_name) or p.HasField(w_name):
        if not (p.HasField(h_name) and p.HasField(w_name)) and default is None:
            cv.problem(f"{h_name} and {w_name} must be given together")
            raise Skip
        pair = int(getattr(p, h_name)), int(getattr(p, w_name))
        if min(pair) < (0 if name.startswith("pad") else 1):
            cv.problem(f"{h_name}/{w_name} {list(pair)} out of range")
            raise Skip
        return pair
    value = getattr(p, name)
    if hasattr(value, "__len__"):
        values = [int(v) for v in value]
    else:
        values = [int(value)] if p.HasField(name) else []
    if not values:
        return default
    if len(values) not in (1, 2):
        cv.problem(f"{name} has {len(values)} values; irc handles 2-D windows only")
        raise Skip
    pair = (values[0], values[-1])
    smallest = 0 if name.startswith("pad") else 1  # kernels and strides are at least 1
    if min(pair) < smallest:
        cv.problem(f"{name} {list(pair)} must be >= {smallest}")
        raise Skip
    return pair


@dataclass(frozen=True)
class PoolGeometry:
    out: tuple[int, int]
    ceil_mode: int
    end_pads: tuple[int, int]  # ONNX end pads (equal to the Caffe pad unless ceil_mode cannot)


def _floor_size(size, k, pad, stride, end_pad=None):
    return (size + pad + (pad if end_pad is None else end_pad) - k) // stride + 1


def caffe_pool_size(in_hw, kernel, pad, stride, ceil: bool = True) -> PoolGeometry | None:
    """Caffe's pooled size (PoolingLayer::Reshape) and the ONNX attributes giving that size.

    Caffe rounds up, then, when there is padding, drops a last window that would start beyond
    input + pad. ONNX floor rounding is used when it gives the same size; otherwise
    ceil_mode=1 (whose size is Caffe's before the drop); where that differs on an axis (the
    drop fired on one axis only), the end padding is grown instead so that floor rounding
    gives Caffe's size. None when no ONNX form gives Caffe's size.
    """
    out = []
    for size, k, p, s in zip(in_hw, kernel, pad, stride):
        n = -(-(size + 2 * p - k) // s) + 1 if ceil else (size + 2 * p - k) // s + 1
        out.append(n)
    if ceil and any(pad):
        for a, (size, p, s) in enumerate(zip(in_hw, pad, stride)):
            if (out[a] - 1) * s >= size + p:
                out[a] -= 1
    out = tuple(out)
    floor = tuple(_floor_size(*args) for args in zip(in_hw, kernel, pad, stride))
    if out == floor:
        return PoolGeometry(out, 0, tuple(pad))
    onnx_ceil = tuple(-(-(size + 2 * p - k) // s) + 1
                      for size, k, p, s in zip(in_hw, kernel, pad, stride))
    if onnx_ceil == out:
        return PoolGeometry(out, 1, tuple(pad))
    end = tuple(max(0, (n - 1) * s + k - size - p)
                for n, size, k, p, s in zip(out, in_hw, kernel, pad, stride))
    if tuple(_floor_size(*args) for args in zip(in_hw, kernel, pad, stride, end)) != out:
        return None
    return PoolGeometry(out, 0, end)


def input_override(cv, top: str, declared) -> tuple | None:
    """The caller's input_shape for input ``top`` (batch axis added when left out), if any."""
    given = cv.input_shape
    if given is None:
        return None
    if isinstance(given, dict):
        if top not in given:
            return None
        given = given[top]
    elif len(cv.input_tops) > 1:
        cv.problem(f"input_shape without a name, but the net has inputs {cv.input_tops}; pass "
                   "{name: shape}")
        raise Skip
    shape = tuple(int(d) for d in given)
    rank = len(declared) if declared else (4 if len(shape) in (3, 4) else 2)
    if len(shape) == rank - 1:
        shape = ((declared[0] if declared else 1),) + shape
    if len(shape) != rank:
        cv.problem(f"input_shape {list(given)} for {top!r} does not fit its declared shape "
                   f"{list(declared) if declared else '(N, C, H, W)'}")
        raise Skip
    return shape
