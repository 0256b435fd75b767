"""irc's benchmarks: one command, one table, every figure measured in the same run.

    .venv/bin/python benchmarks/run.py            # ONNX + Keras ResNet50/VGG16, executor, start-up
    .venv/bin/python benchmarks/run.py --big      # also >2 GB models (ONNX external data, Keras)
    .venv/bin/python benchmarks/run.py --no-keras # ONNX models only (no TensorFlow needed)
    .venv/bin/python benchmarks/run.py --no-keras --dlpy-venv /tmp/dlpy  # + DLPy 1.3 beside irc
    IRC_BENCH_TMP=/some/disk/folder .venv/bin/python benchmarks/run.py   # files on a disk

Each step runs in a fresh child process so its wall time and peak RSS are its own:
- floors: load the source weights and write the same bytes with h5py (the cost of moving
          them), twice: memory-mapped as irc reads them (the strictest), and the plain way
          (onnx.load + numpy_helper.to_array);
- irc:    `irc compile MODEL -o OUT --no-verify`;
- VGG16 in every weight layout (benchmarks/layouts.py), with irc's peak RSS with verification
          on, and DLPy 1.3's ONNX path on the same files when --dlpy-venv is given;
- tf2onnx alone on the Keras models (stopped past --tf2onnx-cap-gb: VGG16 needs ~19 GB);
- the reference executor against onnxruntime on one 224x224 image (ResNet50).
Ratios are the figures to quote; absolute times depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the address space made at exec; ru_maxrss
    would also count the parent's memory copied by fork."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_floor(model_path: str, out: str) -> None:
    """Load every initializer the cheapest way irc knows (memory-mapped in the .onnx file or
    its external data) and write the bytes with h5py."""
    import h5py

    from irc.frontends.onnx.loader import load_model, store_initializer
    from irc.ir.tensors import WeightStore

    model, base_dir = load_model(model_path, model_path, map_weights=True)
    store = WeightStore()
    with h5py.File(out, "w") as f:
        for i, tensor in enumerate(model.graph.initializer):
            handle = store_initializer(store, tensor, base_dir, model_path)
            f.create_dataset(f"w{i}", data=handle.numpy())


def child_floor_onnx_load(model_path: str, out: str) -> None:
    """The plain way: onnx.load (external data included), numpy_helper.to_array, h5py."""
    import h5py
    import onnx
    from onnx import numpy_helper

    model = onnx.load(model_path)
    with h5py.File(out, "w") as f:
        for i, tensor in enumerate(model.graph.initializer):
            f.create_dataset(f"w{i}", data=numpy_helper.to_array(tensor))


def child_irc(model_path: str, out: str, *extra: str) -> None:
    from irc.cli import main

    code = main(["compile", model_path, "-o", out, "--no-verify", "--quiet", "--force", *extra])
    if code != 0:
        raise SystemExit(code)


def child_irc_verify(model_path: str, out: str, *extra: str) -> None:
    """irc compile as users run it: verification on (the default)."""
    from irc.cli import main

    code = main(["compile", model_path, "-o", out, "--quiet", "--force", *extra])
    if code != 0:
        raise SystemExit(code)


def child_tf2onnx(model_path: str, out: str) -> None:
    """tf2onnx alone on the same Keras file (the route irc's Keras frontend takes)."""
    from irc.frontends.keras.convert import OPSET
    from irc.frontends.keras.loading import load
    from irc.frontends.keras.runtime import tf_modules

    src = load(model_path)
    mods = tf_modules()
    tf, tf2onnx = mods.tf, mods.tf2onnx
    shape = (None,) + tuple(int(d) for d in src.model.inputs[0].shape[1:])
    spec = (tf.TensorSpec(shape, tf.float32, name="input"),)
    function = tf.function(lambda x: src.model(x, training=False), input_signature=spec)
    tf2onnx.convert.from_function(function, input_signature=spec, opset=OPSET,
                                  inputs_as_nchw=["input"], output_path=out)


BIG_DENSE = "Dense25088x22000"  # 2.2 GB of weights: past protobuf's 2 GB


def child_keras_model(name: str, out: str) -> None:
    """Build keras.applications.<name>(weights=None), or the 2.2 GB BIG_DENSE model, and save
    it (no downloads)."""
    from irc.frontends.keras.runtime import tf_modules

    keras = tf_modules().keras
    if name == BIG_DENSE:
        x = keras.Input((25088,), name="features")
        keras.Model(x, keras.layers.Dense(22000, name="fc")(x), name="big_dense").save(out)
        return
    getattr(keras.applications, name)(weights=None).save(out)


def run_child(step: str, *args: str, rss_cap_mb: float | None = None) -> dict:
    """Run one step in a fresh process. With ``rss_cap_mb`` the child is stopped once its RSS
    passes the cap (tf2onnx alone on VGG16 needs ~19 GB): the result then says so."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, *args]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped = None
    while rss_cap_mb is not None and child.poll() is None:
        if _rss_mb(child.pid) > rss_cap_mb:
            child.kill()
            stopped = time.perf_counter() - start
            break
        time.sleep(0.2)
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - start
    if stopped is not None:
        return {"stopped": True, "seconds": stopped, "rss_mb": rss_cap_mb, "wall": wall}
    if child.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{stderr[-2000:]}")
    measured = json.loads(stdout.strip().splitlines()[-1])
    measured["wall"] = wall
    return measured


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def weight_bytes(model_path: Path) -> int:
    import numpy as np
    import onnx
    from onnx import helper

    model = onnx.load(str(model_path), load_external_data=False)
    return sum(int(np.prod(t.dims)) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
               for t in model.graph.initializer)


def bench_compile(name: str, model_path: Path, tmp: Path, repeat: int) -> str:
    """Both floors and irc in turn, ``repeat`` times each, each run writing a new path with the
    disk synced before it (so no run pays for another's write-back); medians are compared."""
    runs: dict[str, list[dict]] = {"floor": [], "floor_onnx_load": [], "irc": []}
    for i in range(repeat):
        for step, results in runs.items():
            out = tmp / f"{step}_{i}"
            out.mkdir()
            target = out / ("out" if step == "irc" else "weights.h5")  # a new path each run:
            os.sync()  # overwriting makes the file system flush the old data first
            results.append(run_child(step, str(model_path), str(target)))
            shutil.rmtree(out)
    median = {step: statistics.median(r["seconds"] for r in rs) for step, rs in runs.items()}
    floor_rss = max(r["rss_mb"] for r in runs["floor"])
    ours_rss = max(r["rss_mb"] for r in runs["irc"])
    wb = weight_bytes(model_path) / 1e6
    rss_goal = 1.5 * wb + 300
    ours = median["irc"]
    return (f"| {name} | {wb:.0f} | {median['floor']:.2f} | {median['floor_onnx_load']:.2f} | "
            f"{ours:.2f} | {ours / median['floor']:.2f}x | {ours / median['floor_onnx_load']:.2f}x "
            f"| {floor_rss:.0f} | {ours_rss:.0f} | {ours_rss / rss_goal:.2f} of goal |")


def bench_keras(name: str, tmp: Path, rss_cap_mb: float) -> str:
    path = tmp / f"{name}.keras"
    run_child("keras_model", name, str(path))
    try:
        alone = run_child("tf2onnx", str(path), str(tmp / f"{name}_tf2onnx.onnx"),
                          rss_cap_mb=rss_cap_mb)
    except RuntimeError as exc:  # tf2onnx cannot write a model past protobuf's 2 GB
        alone = {"failed": str(exc).strip().splitlines()[-1][:60]}
    ours = run_child("irc", str(path), str(tmp / f"{name}_out"))
    path.unlink()  # tmpfs is memory: drop each model's files before the next
    shutil.rmtree(tmp / f"{name}_out", ignore_errors=True)
    (tmp / f"{name}_tf2onnx.onnx").unlink(missing_ok=True)
    if alone.get("failed"):
        alone_cell, ratio, alone_rss = f"fails: {alone['failed']}", "-", "-"
    elif alone.get("stopped"):
        alone_cell = f"stopped at {rss_cap_mb / 1024:.0f} GB after {alone['seconds']:.0f} s"
        ratio = f"< {ours['seconds'] / alone['seconds']:.2f}x"
        alone_rss = f"> {rss_cap_mb:.0f}"
    else:
        alone_cell = f"{alone['seconds']:.1f}"
        ratio = f"{ours['seconds'] / alone['seconds']:.2f}x"
        alone_rss = f"{alone['rss_mb']:.0f}"
    return (f"| {name} (Keras) | {alone_cell} | {ours['seconds']:.1f} | {ratio} (goal <= 1.1x) "
            f"| {alone_rss} | {ours['rss_mb']:.0f} ({ours['rss_mb'] / 8192:.2f} of 8 GB) |")


def bench_help() -> str:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "irc", "--help"], capture_output=True, check=True)
    return f"`irc --help`: {time.perf_counter() - start:.2f} s (goal < 0.5 s)"


def _bench_dir() -> str | None:
    """Where models and outputs go: $IRC_BENCH_TMP, else tmpfs (/dev/shm) when there is one.

    On the VM these figures come from, one 550 MB write takes 0.2 s or 1.5 s depending on
    what the disk did before; the floor and irc write the same bytes, so leaving the disk out
    measures what irc adds over moving the weights, and is the stricter comparison."""
    chosen = os.environ.get("IRC_BENCH_TMP")
    if chosen:
        return chosen
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--big", action="store_true",
                        help="add >2 GB models: ONNX with external data, a Keras Dense")
    parser.add_argument("--skip-vgg", action="store_true", help="ResNet50 only (faster)")
    parser.add_argument("--no-layouts", action="store_true",
                        help="skip the VGG16 weight-layout rows (transposed, Keras-flattened, "
                             "batchnorm-folded, --channel-order rgb)")
    parser.add_argument("--layouts", nargs="+", metavar="WORD",
                        help="only the layout rows whose name contains one of these words")
    parser.add_argument("--dlpy-venv", metavar="PATH",
                        help="run DLPy 1.3's ONNX path beside irc from this virtualenv, "
                             "created there on first use (pip install sas-dlpy==1.3.0 "
                             "'numpy<2' 'onnx==1.14.*'); without it the DLPy row is skipped")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs of floor and irc per ONNX model (medians are compared)")
    parser.add_argument("--keras", nargs="+", metavar="APP", default=["ResNet50", "VGG16"],
                        help="Keras applications to run (weights=None) against tf2onnx alone "
                             "(default ResNet50 VGG16; needs the keras extra)")
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras models")
    parser.add_argument("--tf2onnx-cap-gb", type=float, default=12.0,
                        help="stop tf2onnx alone past this RSS (it needs ~19 GB for VGG16)")
    child_args = sys.argv[2:] if sys.argv[1:2] == ["--child"] else None
    args = parser.parse_args([] if child_args else None)
    if child_args:  # taken whole: a step's own irc options (--channel-order) are not ours
        step, *rest = child_args
        start = time.perf_counter()
        {"floor": child_floor, "floor_onnx_load": child_floor_onnx_load, "irc": child_irc,
         "irc_verify": child_irc_verify, "tf2onnx": child_tf2onnx,
         "keras_model": child_keras_model}[step](*rest)
        print(json.dumps({"seconds": time.perf_counter() - start, "rss_mb": _peak_rss_mb()}))
        return

    import compileall

    import onnx

    from layouts import bench_big_layouts, bench_layouts
    from onnx_models import big_external, resnet50, vgg16

    # Bytecode for irc, as a user's second run has it (PYTHONDONTWRITEBYTECODE would otherwise
    # make every child compile irc's sources again, which the floor's few modules barely pay).
    compileall.compile_dir(str(HERE.parent / "irc"), quiet=1)

    rows = []
    with tempfile.TemporaryDirectory(dir=_bench_dir()) as tmp_name:
        tmp = Path(tmp_name)
        builders = [("ResNet50 (ONNX)", resnet50)] + ([] if args.skip_vgg else [("VGG16 (ONNX)", vgg16)])
        for name, build in builders:
            path = tmp / f"{build.__name__}.onnx"
            onnx.save(build(), str(path))
            rows.append(bench_compile(name, path, tmp, args.repeat))
        if args.big:
            path = big_external(tmp)
            rows.append(bench_compile(">2 GB external data (ONNX)", path, tmp, args.repeat))
            for made in (path, tmp / "big.data"):
                made.unlink(missing_ok=True)
        layout_lines = [] if args.no_layouts or args.skip_vgg else bench_layouts(
            tmp, args.repeat, run_child, weight_bytes, args.dlpy_venv, args.layouts)
        if args.big and not args.no_layouts:
            layout_lines += bench_big_layouts(tmp, args.repeat, run_child, weight_bytes,
                                              args.layouts)
        keras_names = [] if args.no_keras else args.keras + ([BIG_DENSE] if args.big else [])
        keras_rows = [bench_keras(name, tmp, args.tf2onnx_cap_gb * 1024)
                      for name in keras_names]
    print(f"Files under {_bench_dir() or tempfile.gettempdir()}; irc's bytecode precompiled.")
    print()
    print("| model | weights (MB) | floor, mmap (s) | floor, onnx.load (s) | irc compile (s) "
          "| irc / mmap floor | irc / onnx.load floor | floor RSS (MB) "
          "| irc RSS (MB) | RSS vs 1.5x weights + 300 MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if layout_lines:
        print()
        print("\n".join(layout_lines))
    if keras_rows:
        print()
        print("| model | tf2onnx alone (s) | irc compile (s) | time ratio | tf2onnx RSS (MB) "
              "| irc RSS (MB) |")
        print("|---|---|---|---|---|---|")
        print("\n".join(keras_rows))
    print()
    executor = subprocess.run([sys.executable, str(HERE / "executor_vs_ort.py")],
                              capture_output=True, text=True, check=True)
    print(executor.stdout.strip())
    print()
    print(bench_help())


if __name__ == "__main__":
    main()
