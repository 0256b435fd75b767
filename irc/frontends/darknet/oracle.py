"""OpenCV as the darknet oracle: ``cv2.dnn.readNetFromDarknet`` runs the same .cfg and .weights.

cv2 is a test/verify dependency only (imported lazily). OpenCV is given a temporary copy of
the .cfg with two changes, neither touching a weight: [net]'s channels/height/width are set
to the input's (OpenCV sizes [connected] weights from them), and the sections after the
layer irc's graph ends at are dropped — the detection head ([region]/[detection]: OpenCV
implements no [detection] at all) and training-only [cost]. OpenCV's output is then that
layer's, the tensor irc's ONNX graph outputs. :func:`run_opencv_region` runs the whole .cfg
and returns OpenCV's decoded [region] rows.

Batch norm: darknet divides by ``sqrt(variance) + 1e-6`` (blas.c ``normalize_cpu``), OpenCV's
importer by ``sqrt(variance + 1e-6)`` (measured: tests/darknet/test_batchnorm_epsilon.py).
The two differ by up to 40% for a channel whose rolling variance is ~1e-6 (a dead channel of
a trained net) and by 2e-6 relative at variance 0.1. So OpenCV gets a copy of the .weights
whose rolling variances are v' = (sqrt(v) + 1e-6)² - 1e-6: its sqrt(v' + 1e-6) is then
darknet's denominator, and OpenCV computes darknet's numbers. Only those floats change; their
offsets come from the same .cfg walk that irc's conversion does.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from irc.errors import InvalidModel
from irc.frontends.darknet.cfg import read_cfg


def _cfg_text(cfg, shape, keep_layers: int | None) -> str:
    """The .cfg text with [net] sized to ``shape`` (C, H, W) and only the first
    ``keep_layers`` layer sections (all when None)."""
    parsed = read_cfg(cfg)
    lines = Path(cfg).read_text(encoding="utf-8", errors="replace").splitlines()
    end = len(lines) if keep_layers is None or keep_layers >= len(parsed.layers) else \
        parsed.layers[keep_layers].line - 1
    first_layer = parsed.layers[0].line - 1
    net = [l for l in lines[:first_layer]
           if "".join(l.split()).partition("=")[0] not in ("channels", "height", "width")]
    c, h, w = shape
    return "\n".join(net + [f"channels={c}", f"height={h}", f"width={w}", ""]
                     + lines[first_layer:end]) + "\n"


def _darknet_variances(cfg, weights, shape, path: Path) -> Path:
    """A copy of ``weights`` at ``path`` whose rolling variances make OpenCV's batch norm
    (epsilon on the variance) compute darknet's (epsilon on the standard deviation)."""
    from irc.frontends.darknet import darknet_layout
    from irc.frontends.darknet.layers import DARKNET_BN_EPS
    from irc.frontends.darknet.weights import WeightsFile

    specs = darknet_layout(cfg, input_shape=shape).weight_specs
    raw = bytearray(Path(weights).read_bytes())
    head = WeightsFile.header_of(raw, str(weights)).size
    floats = np.frombuffer(raw, "<f4", count=(len(raw) - head) // 4, offset=head)
    offset = 0
    for _, role, size in specs:
        count = int(np.prod(size))
        if role == "rolling_variance" and offset + count <= len(floats):
            v = np.maximum(floats[offset:offset + count].astype(np.float64), 0.0)
            floats[offset:offset + count] = (np.sqrt(v) + DARKNET_BN_EPS) ** 2 - DARKNET_BN_EPS
        offset += count
    path.write_bytes(raw)
    return path


def _forward(cfg_text: str, weights, x: np.ndarray, outputs: list[str] | None, label: str):
    import cv2

    if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.cfg"
        path.write_text(cfg_text)
        weights = _darknet_variances(path, weights, x.shape[1:], Path(tmp) / "net.weights")
        try:
            net = cv2.dnn.readNetFromDarknet(str(path), str(weights))
            net.enableFusion(False)
            if hasattr(net, "enableWinograd"):
                net.enableWinograd(False)  # Winograd 3x3 convolution rounds differently
            net.setInput(np.ascontiguousarray(x, np.float32))
            names = outputs or list(net.getUnconnectedOutLayersNames())
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
    from irc.frontends.darknet import darknet_layout

    x = np.asarray(x, np.float32)
    if outputs:
        return _forward(_cfg_text(cfg, x.shape[1:], None), weights, x, list(outputs), str(cfg))
    conversion = darknet_layout(cfg, input_shape=x.shape[1:])
    (last, onnx_name), = conversion.outputs
    (result,) = _forward(_cfg_text(cfg, x.shape[1:], last + 1), weights, x, None,
                         str(cfg)).values()
    return {onnx_name: result}


def run_opencv_region(cfg, weights, x) -> np.ndarray:
    """OpenCV's [region] layer output on ``x``: one row per grid cell and anchor
    (N·H·W·num rows, for a batch in example order), each row x, y, w, h (relative to the
    image), objectness, then the class scores (objectness times the class probability,
    zeroed below the cfg's thresh). OpenCV applies no non-maximum suppression here
    (its [region] nms_threshold is 0 unless the cfg sets it)."""
    x = np.asarray(x, np.float32)
    (rows,) = _forward(_cfg_text(cfg, x.shape[1:], None), weights, x, ["detection_out"],
                       str(cfg)).values()
    return rows
