"""The detection layer: YOLO v1/v2 boxes decoded from the grid its source computes
(docs/viya-semantics.md §17).

Payload keys and defaults are those SAS's client DLPy sends for its ``Detection`` layer (keys
without underscores, strings lower-cased); table keys and numbers are those of a server-written
YOLOv2 table (``detectionopts.*``, all numeric; layertype 11 ``Detection Layer``).

The executor's output per example is ``max_boxes`` rows of (class, score, x, y, w, h), by falling
score, then rows of class −1 and zeros: x, y the box centre and w, h its size, each a fraction of
the image (coordType YOLO). What Viya does past the published YOLO decoding is open, each point
an :class:`ExecutorOptions` field: ``detection_classes`` (a row for every class a box scores
above the threshold, as darknet, or for its best class only) and ``detection_nms`` (suppression
among boxes of one class, as darknet, or across classes).
"""
from __future__ import annotations

import numpy as np

from irc.backends.viya.executor import kernels
from irc.detection_spec import DetectionSpec as Spec   # the head's defaults: one home
from irc.errors import InvalidModel, UnsupportedOp

from .base import REQUIRED, Kind, Raw, TableForm
from .codec import Const, Field, Num, PerChannel
from .registry import register

F32 = np.float32
ROW = 6   # class, score, x, y, w, h


class _Flag(Num):
    """A boolean written 0/1 under a camel-case key."""

    def write(self, out, options):
        out.num(self.key, 1 if options.get(self.option, Detection.options[self.option]) else 0)

    def read(self, src):
        if self.key.lower() in src.raw:
            src.raw[self.option] = bool(src.raw[self.key.lower()])


class _Optional(Num):
    """A training option the payload carries only when the source states it; the table row
    is written either way (with the payload default), as servers write the full group."""

    def write(self, out, options):
        value = options.get(self.option, Detection.options[self.option])
        out.num(self.key, float(value))


class _Coded(Field):
    """A string option the table stores as a number; only codes seen in a server table."""

    def __init__(self, key: str, option: str, codes: dict):
        self.key, self.option, self.codes = key, option, codes

    def write(self, out, options):
        value = options[self.option]
        if value not in self.codes:
            raise out.fail(f"{self.option} {value!r} has no code seen in a server table")
        out.num(self.key, self.codes[value])

    def read(self, src):
        if self.key.lower() in src.raw:
            code = src.raw[self.key.lower()]
            found = [k for k, v in self.codes.items() if v == code]
            src.raw[self.option] = found[0] if found else f"code {code:g}"


# The YOLOv2 table: yoloVersion 2 for a YOLOv2 model; coordType 1 for DLPy's default YOLO.
_VERSION_CODES = {"yolov2": 2}
_COORD_CODES = {"yolo": 1}


@register
class Detection(Kind):
    name = "detection"
    options = {"act": "auto", "detectionmodeltype": REQUIRED, "anchors": (),
               "softmaxforclassprob": Spec.softmax, "coordtype": Spec.coord_type,
               "classnumber": REQUIRED, "gridnumber": REQUIRED, "predictionspergrid": REQUIRED,
               "dosqrt": Spec.do_sqrt, "coordscale": 1.0, "objectscale": 1.0,
               "predictionnotaobjectscale": 1.0, "classscale": 1.0,
               "detectionthreshold": Spec.detection_threshold,
               "iouthreshold": Spec.iou_threshold, "matchanchorsize": False,
               "maxboxes": Spec.max_boxes}
    table = TableForm(11, "detectionopts", "Detection Layer")
    codec = (Const("act", ("Automatic", 0)), PerChannel("anchors"),
             Num("classNumber", "classnumber"), _Optional("classScale", "classscale"),
             Const("coordNumber", 4), _Optional("coordScale", "coordscale"),
             _Coded("coordType", "coordtype", _COORD_CODES),
             Num("detectionThreshold", "detectionthreshold"), _Flag("doSqrt", "dosqrt"),
             Num("gridNumber", "gridnumber"), Num("iouThreshold", "iouthreshold"),
             _Optional("matchAnchorSize", "matchanchorsize"), Num("maxBoxes", "maxboxes"),
             _Optional("objectScale", "objectscale"),
             _Optional("predictionNotAObjectScale", "predictionnotaobjectscale"),
             Num("predictionsPerGrid", "predictionspergrid"),
             _Flag("softMaxForClassProb", "softmaxforclassprob"),
             _Coded("yoloVersion", "detectionmodeltype", _VERSION_CODES))
    # Viya's detection layer takes `act` (DLPy sends AUTO, the YOLOv2 table shows Automatic);
    # what it would apply to is not public, so irc sends AUTO and the executor applies none.
    act = False

    def normalize(self, raw: Raw) -> dict:
        version = raw.text("detectionmodeltype")
        if version not in ("yolov1", "yolov2"):
            raise raw.fail(f"detectionmodeltype {version!r}: the executor decodes YOLOV1 and "
                           "YOLOV2")
        opts = {"version": int(version[-1]), "classes": raw.num("classnumber"),
                "grid": raw.num("gridnumber"), "boxes": raw.num("predictionspergrid"),
                "softmax": raw.flag("softmaxforclassprob", raw.default("softmaxforclassprob")),
                "coord_type": raw.text("coordtype"),
                "do_sqrt": raw.flag("dosqrt", raw.default("dosqrt")),
                "threshold": raw.num("detectionthreshold", raw.default("detectionthreshold"),
                                     integer=False),
                "iou": raw.num("iouthreshold", raw.default("iouthreshold"), integer=False),
                "max_boxes": raw.num("maxboxes", raw.default("maxboxes"))}
        anchors = raw.get("anchors", [])
        opts["anchors"] = np.asarray([float(a) for a in anchors]).reshape(-1, 2) \
            if len(anchors) % 2 == 0 else None
        if opts["version"] == 2 and (opts["anchors"] is None
                                     or len(opts["anchors"]) != opts["boxes"]):
            raise raw.fail(f"{len(anchors)} anchor values for {opts['boxes']} predictions per "
                           "grid cell; YOLOv2 needs one (w, h) pair each")
        return opts

    def output_shape(self, layer, src_shapes, options) -> tuple:
        o = layer.options
        if len(src_shapes) != 1:
            raise InvalidModel("a detection layer reads one grid", node=layer.name)
        shape, s = tuple(src_shapes[0]), o["grid"]
        if o["version"] == 2:
            want = (o["boxes"] * (5 + o["classes"]), s, s)
        else:
            want = (s * s * (o["boxes"] * 5 + o["classes"]),)
        if shape != want and not (o["version"] == 1 and np.prod(shape) == want[0]):
            raise InvalidModel(f"the detection layer reads {shape}; its options need {want}",
                               node=layer.name)
        return (o["max_boxes"] * ROW,)

    def run(self, layer, sources, options):
        o = layer.options
        if o["coord_type"] != "yolo":
            raise UnsupportedOp(f"coordType {o['coord_type']!r}: how Viya writes such boxes "
                                "is not public; the executor decodes YOLO coordinates",
                                node=layer.name)
        x = sources[0]
        out = np.zeros((x.shape[0], o["max_boxes"], ROW), F32)
        out[:, :, 0] = -1
        for i, example in enumerate(x):
            boxes = (_decode_v2 if o["version"] == 2 else _decode_v1)(
                example, o, options.detection_classes)
            kept = _suppress(boxes, o["iou"], options.detection_nms)[:o["max_boxes"]]
            if len(kept):
                out[i, :len(kept)] = kept
        return out.reshape(x.shape[0], -1)

    def export(self, ex, sources) -> str:
        # The detection layer has no ONNX operator: the exported model ends at the grid, as
        # the source did, and states the head in its metadata for irc to read back.
        ex.note_detection(ex.layer.options)
        return ex.op("Identity", [sources[0]], ex.shape_of(sources[0]))


def _sigmoid(z):
    return kernels.activate(z, "sigmoid")


def _decode_v2(grid: np.ndarray, o: dict, classes: str) -> np.ndarray:
    """YOLOv2 region decoding (darknet's): rows (class, score, x, y, w, h) above threshold."""
    b, k, s = o["boxes"], o["classes"], o["grid"]
    cells = grid.reshape(b, 5 + k, s, s).astype(F32)
    cols = np.arange(s, dtype=F32)[None, None, :]
    rows = np.arange(s, dtype=F32)[None, :, None]
    anchors = o["anchors"].astype(F32)
    x = (cols + _sigmoid(cells[:, 0])) / F32(s)
    y = (rows + _sigmoid(cells[:, 1])) / F32(s)
    with np.errstate(over="ignore"):   # a huge tw is an infinitely wide box, as in darknet
        w = np.exp(cells[:, 2]) * anchors[:, 0, None, None] / F32(s)
        h = np.exp(cells[:, 3]) * anchors[:, 1, None, None] / F32(s)
    objectness = _sigmoid(cells[:, 4])
    logits = cells[:, 5:]
    if o["softmax"]:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
    else:
        probs = _sigmoid(logits)
    scores = (objectness[:, None] * probs).transpose(0, 2, 3, 1).reshape(-1, k)   # (B·S·S, K)
    boxes = np.stack([a.reshape(-1) for a in (x, y, w, h)], axis=1)
    return _rows(scores, boxes, o["threshold"], classes)


def _decode_v1(vector: np.ndarray, o: dict, classes: str) -> np.ndarray:
    """YOLOv1 detection decoding (darknet's layout: S·S class probabilities, then S·S·B
    confidences, then S·S·B boxes)."""
    b, k, s = o["boxes"], o["classes"], o["grid"]
    v = vector.reshape(-1).astype(F32)
    probs = v[:s * s * k].reshape(s * s, 1, k)
    conf = v[s * s * k:s * s * (k + b)].reshape(s * s, b)
    box = v[s * s * (k + b):].reshape(s * s, b, 4)
    cell = np.arange(s * s)
    cols, rows = (cell % s).astype(F32)[:, None], (cell // s).astype(F32)[:, None]
    power = 2 if o["do_sqrt"] else 1
    scores = (conf[:, :, None] * probs).reshape(-1, k)   # (S·S·B, K)
    boxes = np.stack([((box[..., 0] + cols) / F32(s)).reshape(-1),
                      ((box[..., 1] + rows) / F32(s)).reshape(-1),
                      (box[..., 2] ** power).reshape(-1), (box[..., 3] ** power).reshape(-1)],
                     axis=1)
    return _rows(scores, boxes, o["threshold"], classes)


def _rows(scores: np.ndarray, boxes: np.ndarray, threshold: float, classes: str) -> np.ndarray:
    """(class, score, x, y, w, h) by falling score: one row per box and class scoring above the
    threshold (darknet's), or one per box for its best class only (``classes='best'``)."""
    if classes == "best":
        best = scores.argmax(axis=1)
        keep = np.zeros_like(scores, dtype=bool)
        keep[np.arange(len(scores)), best] = True
        scores = np.where(keep, scores, 0)
    box_index, cls = np.nonzero(scores > F32(threshold))
    table = np.concatenate([np.stack([cls.astype(F32), scores[box_index, cls]], axis=1),
                            boxes[box_index]], axis=1).astype(F32)
    return table[np.argsort(-table[:, 1], kind="stable")]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x, y, w, h) centre box with each of ``b``."""
    left = np.maximum(a[0] - a[2] / 2, b[:, 0] - b[:, 2] / 2)
    right = np.minimum(a[0] + a[2] / 2, b[:, 0] + b[:, 2] / 2)
    top = np.maximum(a[1] - a[3] / 2, b[:, 1] - b[:, 3] / 2)
    bottom = np.minimum(a[1] + a[3] / 2, b[:, 1] + b[:, 3] / 2)
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = a[2] * a[3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def _suppress(rows: np.ndarray, threshold: float, mode: str) -> np.ndarray:
    """Greedy non-maximum suppression over rows sorted by falling score: a box is dropped when
    it overlaps a kept one by more than ``threshold`` (of the same class, or of any class)."""
    kept = []
    for row in rows:
        others = [k for k in kept if mode == "all" or k[0] == row[0]]
        if others and np.any(iou(row[2:], np.asarray(others)[:, 2:]) > threshold):
            continue
        kept.append(row)
    return np.asarray(kept, F32).reshape(-1, ROW)
