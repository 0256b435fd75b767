"""The Caffe frontend, without Caffe: ``.prototxt`` (+ ``.caffemodel``) -> ONNX -> IR.

Files are read with irc's own schema (``caffe_subset.proto``, Caffe's field numbers; the
generated ``caffe_subset_pb2.py`` is committed, so only the ``protobuf`` runtime is needed).
The net becomes an ONNX ModelProto whose numbers equal Caffe's (opset 17, NCHW, node names =
Caffe layer names), which irc's ONNX frontend imports.

    conv = caffe_to_onnx("deploy.prototxt", "weights.caffemodel")
    graph = import_caffe("deploy.prototxt", "weights.caffemodel")
    reference = run_opencv_oracle("deploy.prototxt", "weights.caffemodel", x)  # needs cv2
"""
from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from irc.frontends.caffe.converter import Converter
from irc.frontends.caffe.registry import CAFFE_LAYERS
from irc.frontends.caffe.reader import read_caffemodel, read_prototxt, weight_blobs
from irc.frontends.caffe import inputs as _inputs, layers as _layers  # noqa: F401 - fill CAFFE_LAYERS

__all__ = ["CAFFE_LAYERS", "CaffeConversion", "caffe_to_onnx", "import_caffe",
           "run_opencv_oracle"]


@dataclass
class CaffeConversion:
    model: onnx.ModelProto
    has_weights: bool  # False: structure only, every weight is zero (write no weights file)
    warnings: list[str] = field(default_factory=list)
    input_name: str = ""
    # Layer name -> [(blob role, shape)] the prototxt implies, e.g. for writing a caffemodel.
    blob_shapes: dict[str, list[tuple[str, tuple]]] = field(default_factory=dict)


def caffe_to_onnx(prototxt, caffemodel=None, input_shape=None,
                  drop_lrn: bool = False) -> CaffeConversion:
    """The Caffe net as an ONNX model computing Caffe's numbers.

    ``input_shape``: (C, H, W) or (N, C, H, W) for the net's single input (required for a
    ``Data`` layer, else it overrides the declared shape), or {input name: shape}.
    ``drop_lrn``: replace LRN layers by identities (a warning per layer; numbers change).
    Without ``caffemodel`` the weights are zeros of the right shapes (``has_weights=False``).
    """
    net = read_prototxt(prototxt)
    blobs = weight_blobs(read_caffemodel(caffemodel)) if caffemodel is not None else None
    cv = Converter(net, blobs, str(caffemodel) if caffemodel is not None else None,
                   input_shape=input_shape, drop_lrn=drop_lrn)
    model = cv.run()
    return CaffeConversion(model, blobs is not None, cv.warnings, model.graph.input[0].name,
                           cv.blob_shapes)


def import_caffe(prototxt, caffemodel=None, input_shape=None, drop_lrn: bool = False):
    """The Caffe net as an IR graph (via :func:`caffe_to_onnx` and the ONNX frontend)."""
    from irc.frontends.onnx import import_onnx

    conversion = caffe_to_onnx(prototxt, caffemodel, input_shape, drop_lrn)
    return import_onnx(conversion.model, label=str(prototxt))


def run_opencv_oracle(prototxt, caffemodel, x):
    """OpenCV's forward of the Caffe net on ``x``: {Caffe top name: array} for each net output."""
    from irc.frontends.caffe.oracle import run_opencv_oracle as run

    return run(prototxt, caffemodel, x)
