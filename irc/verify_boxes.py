"""Detection models: the boxes the written files decode, against the source framework's own
decoding of the same net, compared as box sets.

The grid feeding Viya's detection layer is compared numerically like every output
(irc.verify); this adds the decoding. Only darknet sources have a decoding of their own here
(OpenCV's ``[region]`` layer, YOLOv2): its boxes are darknet's decoding with per-class
non-maximum suppression at IoU 0.4, which OpenCV fixes, so the written detection layer is
re-run at that IoU and at its own score threshold for the comparison.

A box matches when a written box has its class and is as close as the grids' own measured
difference d (max |grid − source grid|, the compared output) allows: the score within 2d + 1e-4
(the logistic's slope is at most 1/4, a softmax probability moves by at most twice the
largest logit change), x and y within d + 1e-4, w and h within a factor exp(d) (they are exp
of a grid value) plus 1e-4, or IoU >= 0.99. Degenerate boxes (a width of 1e-10, or 1e8 from a
large tw) are why the coordinates, not IoU alone, are compared. A score that close to the
threshold may fall either side and is left out.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

OPENCV_NMS = 0.4   # OpenCV's darknet importer fixes the region layer's NMS overlap
FLOOR, MIN_IOU = 1e-4, 0.99


@dataclass
class BoxAgreement:
    layer: str
    reference: int        # boxes the source decodes, over all examples
    matched: int
    extra: int            # written boxes the source does not decode
    threshold: float
    ok: bool

    def line(self) -> str:
        verdict = "all match" if self.ok else "MISMATCH"
        return (f"boxes of {self.layer!r} vs OpenCV's region layer (score > "
                f"{self.threshold:g}, NMS IoU {OPENCV_NMS:g}): {self.matched} of "
                f"{self.reference} matched, {self.extra} extra: {verdict}")


def _iou(a, b) -> float:
    a, b = [float(v) for v in a], [float(v) for v in b]   # float64: huge boxes overflow float32
    if not all(map(np.isfinite, a + b)):
        return 0.0
    w = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    h = min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2)
    inter = max(w, 0.0) * max(h, 0.0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def same_box(a, b, d: float = 0.0) -> bool:
    """(x, y, w, h) boxes that are one box, given the grids' difference ``d``."""
    if _iou(a, b) >= MIN_IOU:
        return True
    a, b = [float(v) for v in a], [float(v) for v in b]
    centre = all(abs(p - q) <= d + FLOOR for p, q in zip(a[:2], b[:2]))
    size = all(p == q or abs(p - q) <= math.expm1(d) * max(abs(p), abs(q)) + FLOOR
               for p, q in zip(a[2:], b[2:]))
    return centre and size


def match_box_sets(written: list, reference: list, threshold: float,
                   d: float = 0.0) -> tuple[int, int, int]:
    """(reference boxes, matched, extra written) for rows (class, score, x, y, w, h), given the
    grids' difference ``d``."""
    score_tol = 2 * d + FLOOR

    def away(rows):
        return [r for r in rows if abs(float(r[1]) - threshold) > score_tol]
    written, reference = away(written), away(reference)
    free = list(range(len(written)))
    matched = 0
    for box in reference:
        hit = next((i for i in free if int(written[i][0]) == int(box[0])
                    and abs(float(written[i][1]) - float(box[1])) <= score_tol
                    and same_box(written[i][2:], box[2:], d)), None)
        if hit is not None:
            free.remove(hit)
            matched += 1
    return len(reference), matched, len(free)


def darknet_box_agreement(model, viya_outputs: dict, source, source_input,
                          grid_difference: dict) -> BoxAgreement | None:
    """The written detection layer's boxes vs OpenCV's [region] decoding (None when the model
    has no YOLOv2 detection layer or the source is not a darknet net). ``grid_difference``:
    {Viya layer: max |difference| measured against the source}."""
    from irc.backends.viya import schema
    from irc.backends.viya.executor import ExecutorOptions
    from irc.frontends.darknet import run_opencv_region

    layer = next((l for l in model.layers if l.type == "detection"), None)
    if layer is None or layer.options["version"] != 2 or source.kind != "darknet":
        return None
    o = layer.options
    rerun = copy.copy(layer)
    rerun.options = {**o, "iou": OPENCV_NMS,
                     "max_boxes": o["boxes"] * o["grid"] ** 2 * o["classes"]}
    grid = viya_outputs[layer.src_layers[0]]
    rows = schema.KINDS["detection"].run(rerun, [grid], ExecutorOptions())
    rows = rows.reshape(len(grid), -1, 6)
    region = run_opencv_region(source.path, source.weights, source_input, thresh=o["threshold"])
    totals = np.zeros(3, int)
    for written, decoded in zip(rows, region):
        reference = [(k, float(r[5 + k]), *map(float, r[:4])) for r in decoded
                     for k in np.nonzero(r[5:] > o["threshold"])[0]]
        totals += match_box_sets([r for r in written if r[0] >= 0], reference, o["threshold"],
                                 grid_difference.get(layer.src_layers[0], 0.0))
    reference, matched, extra = map(int, totals)
    return BoxAgreement(layer.name, reference, matched, extra, o["threshold"],
                        matched == reference and extra == 0)
