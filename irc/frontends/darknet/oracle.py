"""OpenCV as the darknet oracle: ``cv2.dnn.readNetFromDarknet`` runs the same .cfg and .weights.

cv2 is a test/verify dependency only (imported lazily). OpenCV is given a temporary copy of
the .cfg with two changes, neither touching a weight: [net]'s channels/height/width are set
to the input's (OpenCV sizes [connected] weights from them), and the sections after the
layer irc's graph ends at are dropped — the detection head ([region]/[detection]: OpenCV
implements no [detection] at all) and training-only [cost]. OpenCV's output is then that
layer's, the tensor irc's ONNX graph outputs. A third change: where a [convolutional] or
[connected] section gives no activation, the copy says ``activation=logistic``, darknet's
default (OpenCV's importer would take linear). :func:`run_opencv_region` runs the whole .cfg
and returns OpenCV's decoded [region] rows.

Batch norm: darknet divides by ``sqrt(variance) + 1e-6`` (blas.c ``normalize_cpu``), OpenCV's
importer by ``sqrt(variance + 1e-6)`` (measured: tests/darknet/test_batchnorm_epsilon.py).
The two differ by up to 40% for a channel whose rolling variance is ~1e-6 (a dead channel of
a trained net) and by 2e-6 relative at variance 0.1. So OpenCV gets a copy of the .weights
whose rolling variances are v' = (sqrt(v) + 1e-6)² - 1e-6: its sqrt(v' + 1e-6) is then
darknet's denominator, and OpenCV computes darknet's numbers.

[connected] with batch_normalize: darknet stores biases, weights, scales, mean, variance;
OpenCV 4.14 reads biases, scales, mean, variance, weights (as for a convolution) and computes
NaN from the misplaced floats. The copy moves those arrays to where OpenCV reads them.

A header with major or minor above 1000 marks a file whose [connected] matrices are stored
(inputs, outputs); darknet transposes them as it loads (parser.c ``transpose_matrix``) and so
does irc, but OpenCV refuses such files. The copy stores them (outputs, inputs) under a
plain header. OpenCV then checks everything but that transposition, which rests on darknet's
source alone (and on tests/darknet: a transposed file gives what the plain one gives).
All rewrites take the arrays' offsets from the same .cfg walk irc's conversion does.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from irc.errors import InvalidModel
from irc.frontends.darknet.cfg import read_cfg

DEFAULT_LOGISTIC = ("convolutional", "conv", "connected")  # darknet's default activation


def _cfg_text(cfg, shape, keep_layers: int | None) -> str:
    """The .cfg text with [net] sized to ``shape`` (C, H, W), only the first ``keep_layers``
    layer sections (all when None), and darknet's default activation written out where a
    [convolutional]/[connected] section leaves it unsaid: darknet's parser defaults to
    logistic, OpenCV's importer to linear."""
    parsed = read_cfg(cfg)
    lines = Path(cfg).read_text(encoding="utf-8", errors="replace").splitlines()
    end = len(lines) if keep_layers is None or keep_layers >= len(parsed.layers) else \
        parsed.layers[keep_layers].line - 1
    first_layer = parsed.layers[0].line - 1
    net = [l for l in lines[:first_layer]
           if "".join(l.split()).partition("=")[0] not in ("channels", "height", "width")]
    c, h, w = shape
    unsaid = {s.line - 1 for s in parsed.layers if s.kind in DEFAULT_LOGISTIC
              and "activation" not in s.options}
    body = []
    for number in range(first_layer, end):
        body.append(lines[number])
        if number in unsaid:
            body.append("activation=logistic")
    return "\n".join(net + [f"channels={c}", f"height={h}", f"width={w}", ""] + body) + "\n"


def _opencv_weights(cfg, weights, shape, path: Path) -> Path:
    """A copy of ``weights`` at ``path`` that OpenCV reads as darknet reads the original:
    rolling variances re-expressed for OpenCV's epsilon, [connected] batch-norm arrays moved
    to where OpenCV looks for them."""
    from irc.frontends.darknet.frontend import darknet_layout
    from irc.frontends.darknet.layers import DARKNET_BN_EPS
    from irc.frontends.darknet.weights import WeightsFile, write_header

    specs = darknet_layout(cfg, input_shape=shape).weight_specs
    raw = Path(weights).read_bytes()
    header = WeightsFile.header_of(raw, str(weights))
    head = header.size
    floats = np.frombuffer(raw, "<f4", count=(len(raw) - head) // 4, offset=head)
    layers: dict[str, dict[str, np.ndarray]] = {}
    offset = 0
    for layer, role, size in specs:
        count = int(np.prod(size))
        chunk = floats[offset:offset + count]
        if role == "rolling_variance":
            v = np.maximum(chunk.astype(np.float64), 0.0)
            chunk = ((np.sqrt(v) + DARKNET_BN_EPS) ** 2 - DARKNET_BN_EPS).astype("<f4")
        if header.transposed and role == "weights" and len(size) == 2 and \
                len(chunk) == count:  # stored (inputs, outputs): as darknet loads it
            chunk = chunk.reshape(size[::-1]).T
        layers.setdefault(layer, {})[role] = chunk
        offset += count
    # a transposed file gets a plain header (OpenCV refuses the marker)
    parts = [write_header(0, 2, header.revision, header.seen) if header.transposed
             else raw[:head]]
    for arrays in layers.values():
        # OpenCV 4.14 reads every layer's arrays in the [convolutional] order (biases, the
        # batch-norm arrays, then the weights), also a [connected] one, which darknet stores
        # as biases, weights, then the batch-norm arrays (measured: test_connected_*).
        order = [r for r in arrays if r != "weights"] + (["weights"] if "weights" in arrays
                                                         else [])
        parts += [np.ascontiguousarray(arrays[r], "<f4").tobytes() for r in order]
    parts.append(raw[head + 4 * offset:])
    path.write_bytes(b"".join(parts))
    return path


def _forward(cfg_text: str, weights, x: np.ndarray, outputs: list[str] | None, label: str):
    import cv2

    if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.cfg"
        path.write_text(cfg_text)
        weights = _opencv_weights(path, weights, x.shape[1:], Path(tmp) / "net.weights")
        try:
            net = cv2.dnn.readNetFromDarknet(str(path), str(weights))
            net.enableFusion(False)
            if hasattr(net, "enableWinograd"):
                net.enableWinograd(False)  # Winograd 3x3 convolution rounds differently
            net.setInput(np.ascontiguousarray(x, np.float32))
            # the last layer OpenCV made is the last section's (an unread earlier layer is
            # also an unconnected output, so those names do not say which)
            names = outputs or [net.getLayerNames()[-1]]
            results = net.forward(names)
        except cv2.error as exc:
            first = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else "cv2.error"
            raise InvalidModel(f"OpenCV, irc's darknet oracle, cannot run the net: {first}",
                               file=label, hint="the .cfg or .weights are broken for darknet "
                                                "too, or use a section OpenCV lacks (nothing "
                                                "was written)") from None
    return dict(zip(names, (np.asarray(r) for r in results)))


def run_opencv(cfg, weights, x, outputs: list[str] | None = None):
    """OpenCV's forward on ``x`` (N, C, H, W).

    Without ``outputs``: {ONNX graph output name: the tensor irc's graph computes} (the
    grid before a detection head, a classifier's last layer). With ``outputs`` (OpenCV layer
    names, e.g. ``conv_0``, ``leaky_1``; OpenCV names a convolution's activation after the
    next layer's number): {that name: its output}, over the whole net.
    """
    from irc.frontends.darknet.frontend import darknet_layout

    x = np.asarray(x, np.float32)
    if outputs:
        return _forward(_cfg_text(cfg, x.shape[1:], None), weights, x, list(outputs), str(cfg))
    conversion = darknet_layout(cfg, input_shape=x.shape[1:])
    (last, onnx_name), = conversion.outputs
    (result,) = _forward(_cfg_text(cfg, x.shape[1:], last + 1), weights, x, None,
                         str(cfg)).values()
    return {onnx_name: result}


def run_opencv_region(cfg, weights, x, thresh: float | None = None) -> np.ndarray:
    """OpenCV's [region] layer output on ``x``: one row per grid cell and anchor
    (N·H·W·num rows, for a batch in example order), each row x, y, w, h (relative to the
    image), objectness, then the class scores (objectness times the class probability,
    zeroed below the cfg's thresh), then per-class non-maximum suppression within each image
    at IoU 0.4 (darknet's do_nms_sort; OpenCV's importer fixes 0.4, whatever the cfg says).
    Shape (N, H·W·num, 5 + classes). Measured in tests/darknet/test_heads.py. ``thresh``:
    the score threshold to decode at instead of the cfg's."""
    x = np.asarray(x, np.float32)
    text = _cfg_text(cfg, x.shape[1:], None)
    if thresh is not None:
        head = text.rindex("[region]")
        kept = [line for line in text[head:].splitlines()
                if "".join(line.split()).partition("=")[0] != "thresh"]
        text = text[:head] + "\n".join(kept + [f"thresh={thresh!r}"]) + "\n"
    (rows,) = _forward(text, weights, x, ["detection_out"], str(cfg)).values()
    return rows
