"""Darknet frontend test helpers: the fixture .cfg files shrunk to small inputs, random
.weights files written in darknet's format with batch-norm statistics calibrated so
activations keep their size, irc's compile + verify, and OpenCV (the oracle) vs the written
files re-executed by irc's executor."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "darknet"


def fixture(name: str) -> Path:
    return FIXTURES / name


def small_cfg(src: Path, dst: Path, height: int, width: int | None = None,
              logits: bool = False) -> Path:
    """A copy of ``src`` whose [net] height/width are the given ones (OpenCV sizes the
    [connected] weights from them, so the .cfg itself must say the small size). ``logits``:
    without the final [softmax] (random weights make a 1000-way softmax nearly flat, which
    would hide differences in the logits)."""
    width = width or height
    text = src.read_text()
    if logits:
        last = text.rindex("[softmax]")
        assert not re.search(r"^\[", text[last + 1:], re.M), "[softmax] is not the last section"
        text = text[:last]
    first_layer = re.search(r"^\[(?!net\]|network\])", text, re.M)
    net_part, layers_part = text[:first_layer.start()], text[first_layer.start():]
    net_part = re.sub(r"^(\s*)height\s*=.*$", rf"\g<1>height={height}", net_part, flags=re.M)
    net_part = re.sub(r"^(\s*)width\s*=.*$", rf"\g<1>width={width}", net_part, flags=re.M)
    dst.write_text(net_part + layers_part)
    return dst


def random_arrays(specs, seed: int = 0) -> list[np.ndarray]:
    """He-scaled kernels, biases ~ N(0, 0.2), BN scales in [0.5, 1.5], mean 0, variance 1."""
    rng = np.random.default_rng(seed)
    arrays = []
    for _, role, shape in specs:
        if role == "weights":
            fan_in = int(np.prod(shape[1:]))
            arrays.append(rng.standard_normal(shape) * np.sqrt(2.0 / fan_in))
        elif role == "scales":
            arrays.append(rng.uniform(0.5, 1.5, shape))
        elif role == "rolling_mean":
            arrays.append(np.zeros(shape))
        elif role == "rolling_variance":
            arrays.append(np.ones(shape))
        else:
            arrays.append(rng.standard_normal(shape) * 0.2)
    return [np.asarray(a, np.float32) for a in arrays]


def random_weights(cfg: Path, path: Path, seed: int = 0, calibrate: bool = True,
                   **header) -> Path:
    """A darknet .weights file for ``cfg`` with random, calibrated arrays."""
    from irc.frontends.darknet import darknet_to_onnx
    from irc.frontends.darknet.weights import write_weights

    specs = darknet_to_onnx(cfg).weight_specs
    arrays = random_arrays(specs, seed)
    if calibrate:
        # written first so that the converter reads the random kernels
        write_weights(path, arrays, **header)
        shape = _net_shape(cfg)
        x = np.random.default_rng(seed + 7).uniform(0, 1, (4, *shape)).astype(np.float32)
        arrays = calibrated_from_file(cfg, path, specs, arrays, x)
    return write_weights(path, arrays, **header)


def calibrated_from_file(cfg, path, specs, arrays, x):
    """``arrays`` with every rolling mean/variance set to the batch statistics of that
    layer's input on ``x`` (every earlier layer already normalised): one onnxruntime run of
    the net converted from the uncalibrated ``path``, each BatchNormalization in training
    mode with momentum 0. Variances are floored at 1e-2."""
    import onnx
    import onnxruntime as ort

    from irc.frontends.darknet import darknet_to_onnx

    model = darknet_to_onnx(cfg, path).model
    wanted = []
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            node.attribute.extend([onnx.helper.make_attribute("training_mode", 1),
                                   onnx.helper.make_attribute("momentum", 0.0)])
            layer = node.name[:-len("_bn")]
            node.output.extend([f"{layer}__mean", f"{layer}__var"])
            wanted += [f"{layer}__mean", f"{layer}__var"]
    if not wanted:
        return arrays
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in wanted)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip(wanted, session.run(wanted, {"data": x})))
    out = list(arrays)
    for i, (layer, role, _) in enumerate(specs):
        if role == "rolling_mean":
            out[i] = values[f"{layer}__mean"].astype(np.float32)
        elif role == "rolling_variance":
            out[i] = np.maximum(values[f"{layer}__var"], 1e-2).astype(np.float32)
    return out


def _net_shape(cfg: Path) -> tuple:
    from irc.frontends.darknet.cfg import read_cfg

    opts = read_cfg(cfg).net.options
    return int(opts["channels"]), int(opts["height"]), int(opts["width"])


def write_cfg(tmp_path: Path, text: str, name: str = "net") -> Path:
    path = Path(tmp_path) / f"{name}.cfg"
    path.write_text(text)
    return path


def opencv(cfg: Path, weights: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """OpenCV's run of the net (the oracle); skipped where cv2 is not installed."""
    pytest.importorskip("cv2", reason="opencv-python-headless is the darknet oracle")
    from irc.frontends.darknet import run_opencv

    return run_opencv(cfg, weights, x)


def run_written(outdir: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The written Viya files re-executed by irc's executor on the image darknet reads as
    ``x``: {source output name: array}."""
    from irc.backends.viya.executor import run_folder
    from irc.verify import viya_input

    payloads = json.loads((outdir / "model.json").read_text())
    name_map = json.loads((outdir / "name_map.json").read_text())
    results = run_folder(outdir, viya_input(payloads, x), all_layers=True)
    return {out: results[layer] for out, layer in name_map["outputs"].items()}


def compile_and_compare(tmp_path: Path, cfg: Path, seed: int = 0, batch: int = 2,
                        rtol: float = 1e-4, weights: Path | None = None) -> dict:
    """irc compile (then irc verify: OpenCV vs the written files) and, independently, the
    written files re-executed vs OpenCV on images in [0, 1]. Each output must be within
    ``rtol`` of its own scale (max |OpenCV|). Returns the figures for the report."""
    import time

    from irc.api import compile as irc_compile
    from irc.verify import verify

    pytest.importorskip("cv2", reason="opencv-python-headless is the darknet oracle")
    weights = weights or random_weights(cfg, cfg.with_suffix(".weights"), seed)
    start = time.perf_counter()
    out = tmp_path / "out"
    model = irc_compile(cfg, weights=weights)
    model.save(out)
    verified = verify(cfg, out, weights=weights)
    assert verified.ok, verified.table()
    seconds = time.perf_counter() - start
    x = np.random.default_rng(seed + 1).uniform(0, 1, (batch, *_net_shape(cfg))) \
        .astype(np.float32)
    reference = opencv(cfg, weights, x)
    got = run_written(out, x)
    assert set(got) == set(reference)
    figures = {}
    for name, ref in reference.items():
        mine = got[name].reshape(ref.shape)
        scale = float(np.abs(ref).max())
        diff = float(np.abs(mine - ref).max())
        assert scale > 1e-3, f"{name}: OpenCV's output is ~0 (scale {scale:.3g}): proves nothing"
        assert diff <= rtol * scale, f"{name}: max abs {diff:.3g} > {rtol:g} x scale {scale:.3g}"
        figures[name] = {"max_abs": diff, "scale": scale, "seconds": seconds}
    print(f"\n{cfg.name} {_net_shape(cfg)}: " + ", ".join(
        f"{k} max abs {v['max_abs']:.3g} / scale {v['scale']:.3g} = "
        f"{v['max_abs'] / v['scale']:.2g}, compile+verify {v['seconds']:.1f}s"
        for k, v in figures.items()))
    return figures
