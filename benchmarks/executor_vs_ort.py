"""Benchmark: the reference executor vs onnxruntime on a ResNet50-size CNN, one 224x224 image.

    .venv/bin/python benchmarks/executor_vs_ort.py [--repeat 5] [--threads N]

Both run in this process, on this machine, in the same run; the ratio is the figure to quote
(goal: executor <= 5x onnxruntime). Also checks that both give the same numbers.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_models import resnet50  # noqa: E402

import irc  # noqa: E402
from irc.backends.viya.executor import execute, load_viya_model  # noqa: E402


def median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up (first-touch memory, ORT session caches)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    model = resnet50()
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "resnet50"
        irc.compile(model, name="resnet50").save(out)
        viya = load_viya_model(out)
        import onnxruntime as ort

        options = ort.SessionOptions()
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        name = session.get_outputs()[0].name
        t_ort = median_seconds(lambda: session.run([name], {"input": x}), args.repeat)
        t_exec = median_seconds(lambda: execute(viya, x), args.repeat)
        ref = session.run([name], {"input": x})[0]
        got = next(iter(execute(viya, x).values()))
        err = float(np.abs(ref - got.reshape(ref.shape)).max())
    print("| model | onnxruntime (ms) | irc executor (ms) | ratio | max abs diff |")
    print("|---|---|---|---|---|")
    print(f"| ResNet50, 1x3x224x224 | {t_ort * 1e3:.1f} | {t_exec * 1e3:.1f} | "
          f"{t_exec / t_ort:.2f}x | {err:.2e} |")
    print(f"(median of {args.repeat}; goal: ratio <= 5x)")


if __name__ == "__main__":
    main()
