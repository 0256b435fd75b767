"""What converts: keras.applications and torchvision models (random weights), each compiled by
irc and verified against its own framework, or refused with irc's reason.

    .venv/bin/python scripts/what_converts.py [--keras] [--torch] [--only NAME ...] [--md FILE]

Weights are random, but batch-norm statistics are calibrated on 16 other random inputs (one
training-mode pass with the running averages reset), so activations stay alive and the compared
outputs depend on the input; the script also checks that they do (the two verification inputs
must give outputs more than 1e-3 of their scale apart, else the row says "input-independent"). The
table in README.md ("What converts") is this script's --md output.
"""
from __future__ import annotations

import argparse
import textwrap
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (name, input size); sizes are the smallest each model's geometry allows, for speed.
KERAS_MODELS = [("MobileNet", 64), ("MobileNetV2", 64), ("ResNet50", 64), ("ResNet50V2", 64),
                ("VGG16", 64), ("DenseNet121", 64), ("InceptionV3", 75), ("Xception", 71),
                ("NASNetMobile", 64), ("InceptionResNetV2", 75), ("EfficientNetB0", 64),
                ("MobileNetV3Small", 64), ("ConvNeXtTiny", 64)]
# torchvision: (name, input size, constructor options)
TORCH_MODELS = [("resnet18", 64, {}), ("resnext50_32x4d", 64, {}), ("densenet121", 64, {}),
                ("googlenet", 64, {"aux_logits": False, "init_weights": True}),
                ("inception_v3", 80, {"aux_logits": False, "init_weights": True}),
                ("mobilenet_v2", 64, {}), ("mnasnet1_0", 64, {}),
                ("shufflenet_v2_x1_0", 64, {}), ("squeezenet1_1", 64, {}),
                ("regnet_x_400mf", 64, {}), ("vgg11", 224, {}), ("alexnet", 224, {}),
                ("efficientnet_b0", 64, {}), ("mobilenet_v3_small", 64, {}),
                ("regnet_y_400mf", 64, {})]


@dataclass
class Row:
    framework: str
    model: str
    size: int
    route: str
    result: str  # "verified", "MISMATCH", "refused", "error"
    detail: str  # figures, or the reason
    seconds: float


def _first_lines(text: str, n: int = 2) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return " ".join(lines[:n])[:300]


def _verify_row(framework, name, size, route, source, x_nchw, seconds_start, **options) -> Row:
    import irc
    from irc.errors import IrcError
    from irc.verify import verify

    try:
        model = irc.compile(source, **options)
    except IrcError as exc:
        return Row(framework, name, size, route, "refused", _first_lines(exc.message, 3),
                   time.perf_counter() - seconds_start)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        model.save(out)
        (input_name,) = model.inputs
        result = verify(source, out, inputs={input_name: x_nchw}, **options)
    worst = max(result.comparisons, key=lambda c: c.scaled)
    detail = (f"{len(model.layers)} Viya layers; max |d| / max |ref| = {worst.scaled:.1e}")
    return Row(framework, name, size, route, "verified" if result.ok else "MISMATCH", detail,
               time.perf_counter() - seconds_start)


def keras_row(name: str, size: int) -> Row:
    import keras

    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    build = getattr(keras.applications, name)
    model = build(weights=None, input_shape=(size, size, 3), classifier_activation=None) \
        if name not in ("MobileNetV3Small",) else \
        build(weights=None, input_shape=(size, size, 3), classifier_activation=None,
              include_preprocessing=False)
    x = np.random.default_rng(1).standard_normal((2, size, size, 3)).astype(np.float32)
    calibration = np.random.default_rng(2).standard_normal((16, size, size, 3)).astype(np.float32)
    _calibrate_keras(keras, model, calibration)
    dependence = _input_dependence(model.predict(x, verbose=0))
    row = _verify_row("keras", name, size, "direct/tf2onnx (auto)", model,
                      x.transpose(0, 3, 1, 2).copy(), start)
    return _flag_dependence(row, dependence)


def _calibrate_keras(keras, model, x) -> None:
    """Every BatchNormalization's moving statistics := its input's batch statistics on ``x``."""
    from irc.frontends.keras.model_graph import all_layers

    for layer in all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)


def torch_row(name: str, size: int, kwargs: dict, exporter: str) -> Row:
    import torch
    import torchvision

    start = time.perf_counter()
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3, size, size))
                         .astype(np.float32))
    _calibrate_torch(torch, model, torch.from_numpy(
        np.random.default_rng(2).standard_normal((16, 3, size, size)).astype(np.float32)))
    with torch.no_grad():
        dependence = _input_dependence(model(x).numpy())
    row = _verify_row("torchvision", name, size, exporter, model, x.numpy(), start,
                      example_inputs=(x[:1],), torch_exporter=exporter)
    return _flag_dependence(row, dependence)


def _calibrate_torch(torch, model, x) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: one pass sets the batch statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def _input_dependence(outputs: np.ndarray) -> float:
    """How far apart the outputs of the two (different) verification inputs are, relative to
    the output's scale."""
    scale = float(np.abs(outputs).max()) or 1.0
    return float(np.abs(outputs[0] - outputs[1]).max()) / scale


def _flag_dependence(row: Row, dependence: float) -> Row:
    if row.result == "verified" and dependence < 1e-3:
        row.result = "verified (input-independent!)"
    row.detail += f"; input dependence {dependence:.1e}"
    return row


def markdown(rows: list[Row]) -> str:
    lines = ["| framework | model | input | route | result | details | s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.framework} | {r.model} | {r.size} | {r.route} | {r.result} | "
                     f"{r.detail.replace('|', '/')} | {r.seconds:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    first, rest = __doc__.split("\n\n", 1)  # the whole docstring: --help is the manual
    parser = argparse.ArgumentParser(description=textwrap.fill(" ".join(first.split()), 79),
                                     epilog=rest,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keras", action="store_true", help="keras.applications only")
    parser.add_argument("--torch", action="store_true", help="torchvision only")
    parser.add_argument("--only", nargs="*", default=None, help="model names to run")
    parser.add_argument("--exporters", default="dynamo,torchscript",
                        help="PyTorch exporters to try on each torchvision model, "
                             "comma-separated (default: dynamo,torchscript)")
    parser.add_argument("--md", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    both = not args.keras and not args.torch
    rows: list[Row] = []

    def run(make, *a):
        try:
            row = make(*a)
        except Exception as exc:  # a bug in irc or the script: shown, never hidden
            traceback.print_exc()
            row = Row("?", str(a[0]), 0, "", "error", _first_lines(f"{type(exc).__name__}: "
                                                                   f"{exc}"), 0.0)
        rows.append(row)
        print(f"{row.framework:<12} {row.model:<20} {row.route:<22} {row.result:<10} "
              f"{row.seconds:6.1f}s  {row.detail}", flush=True)

    if args.keras or both:
        for name, size in KERAS_MODELS:
            if args.only is None or name in args.only:
                run(keras_row, name, size)
    if args.torch or both:
        for name, size, kwargs in TORCH_MODELS:
            if args.only is None or name in args.only:
                for exporter in args.exporters.split(","):
                    run(torch_row, name, size, kwargs, exporter)
    if args.md:
        args.md.write_text(markdown(rows) + "\n", encoding="utf-8")
    return 0 if all(r.result != "error" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
