"""Benchmark rows for every weight layout of the VGG16-size ONNX model, and DLPy 1.3 beside it.

Each layout makes irc transform the weights before writing them: a transpose ((in, out)
weights), a column permutation (H,W,C flatten), a per-channel scale (batchnorm folding), a
reversed input axis (--channel-order rgb). The floors are the same two as for every ONNX row
(load the file's weights, write the same bytes with h5py); floors, irc and DLPy alternate
``repeat`` times and medians are compared. irc with verification on (the default) runs once
per layout, for its peak RSS.

DLPy 1.3 needs numpy 1.x and onnx 1.14, so it runs from its own virtualenv:
``--dlpy-venv PATH`` creates one there on first use (pip install sas-dlpy==1.3.0 "numpy<2"
"onnx==1.14.*" h5py). What is timed is DLPy's ONNX path up to its written weights file:
``onnx.load`` and ``dlpy.model_conversion.sas_onnx_parse.onnx_to_sas`` (parse, transforms,
layers, HDF5 weights); ``Network.from_onnx_model`` then only sends the layers to a CAS server,
which is not part of a local conversion and is not timed.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (onnx_models.vgg16 keyword arguments, extra `irc compile` arguments)
LAYOUTS = {
    "canonical (Gemm W (out,in), transB=1)": ({}, []),
    "transposed (Gemm W (in,out), transB=0)": ({"dense": "gemm_in_out"}, []),
    "transposed (MatMul by (in,out) + Add)": ({"dense": "matmul"}, []),
    "Keras-flattened (NHWC Transpose, Flatten, MatMul (in,out))":
        ({"dense": "matmul", "flatten": "nhwc"}, []),
    "batchnorm-folded (BN after convs and before fc1)": ({"batchnorm": True}, []),
    "--channel-order rgb (input channels reversed)": ({}, ["--channel-order", "rgb"]),
}
DLPY_LAYOUTS = ("canonical (Gemm W (out,in), transB=1)", "transposed (Gemm W (in,out), transB=0)")
# h5py: DLPy's ONNX path writes its weights with it but does not declare it.
DLPY_PACKAGES = ["sas-dlpy==1.3.0", "numpy<2", "onnx==1.14.*", "h5py"]

DLPY_CHILD = r"""
import json, os, sys, time
start = time.perf_counter()
import onnx
from dlpy.model_conversion.sas_onnx_parse import onnx_to_sas
os.chdir(sys.argv[2])  # DLPy writes <name>_weights.onnxmodel.h5 into the working folder
onnx_to_sas(onnx.load(sys.argv[1]), "vgg16")
seconds = time.perf_counter() - start
with open("/proc/self/status") as f:
    rss = next(int(l.split()[1]) / 1024.0 for l in f if l.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "rss_mb": rss}))
"""


def dlpy_python(venv: str | None) -> tuple[str | None, str]:
    """The DLPy virtualenv's python, created on first use; or None and why not."""
    if not venv:
        return None, "no --dlpy-venv given"
    python = Path(venv) / "bin" / "python"
    check = [str(python), "-c", "import dlpy.model_conversion.sas_onnx_parse"]
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
        if subprocess.run(check, capture_output=True).returncode != 0:
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *DLPY_PACKAGES],
                           check=True, capture_output=True, text=True)
        subprocess.run(check, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        return None, f"DLPy environment at {venv} unusable: " \
                     f"{(exc.stderr or '').strip().splitlines()[-1:] or exc}"
    return str(python), ""


def run_dlpy(python: str, model_path: Path, folder: Path) -> dict:
    start = time.perf_counter()
    done = subprocess.run([python, "-c", DLPY_CHILD, str(model_path), str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"DLPy failed:\n{done.stderr[-2000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    measured["wall"] = time.perf_counter() - start
    return measured


def bench_layout(name, model_path, tmp, repeat, extra, run_child, wb_mb, dlpy) -> tuple[str, str]:
    """One table row (and a DLPy row when ``dlpy`` is a python path) for one layout."""
    steps = ["floor", "floor_onnx_load", "irc"] + (["dlpy"] if dlpy else [])
    runs: dict[str, list[dict]] = {s: [] for s in steps}
    for i in range(repeat):
        for step in steps:
            out = tmp / f"{step}_{i}"
            out.mkdir()
            os.sync()
            if step == "dlpy":
                runs[step].append(run_dlpy(dlpy, model_path, out))
            elif step == "irc":
                runs[step].append(run_child("irc", str(model_path), str(out / "out"), *extra))
            else:
                runs[step].append(run_child(step, str(model_path), str(out / "weights.h5")))
            shutil.rmtree(out)
    out = tmp / "verify"
    verified = run_child("irc_verify", str(model_path), str(out), *extra)
    shutil.rmtree(out, ignore_errors=True)
    med = {s: statistics.median(r["seconds"] for r in rs) for s, rs in runs.items()}
    rss = max(r["rss_mb"] for r in runs["irc"])
    goal = 1.5 * wb_mb + 300
    row = (f"| {name} | {med['floor']:.2f} | {med['floor_onnx_load']:.2f} | {med['irc']:.2f} | "
           f"{med['irc'] / med['floor']:.2f}x | **{med['irc'] / med['floor_onnx_load']:.2f}x** | "
           f"{max(r['rss_mb'] for r in runs['floor_onnx_load']):.0f} | {rss:.0f} "
           f"({rss / goal:.2f} of goal) | {verified['seconds']:.1f} s, {verified['rss_mb']:.0f} |")
    dlpy_row = ""
    if dlpy:
        d_rss = max(r["rss_mb"] for r in runs["dlpy"])
        dlpy_row = (f"| {name} | {med['dlpy']:.2f} | {med['irc']:.2f} | "
                    f"**{med['dlpy'] / med['irc']:.1f}x** | {d_rss:.0f} / {rss:.0f} |")
    return row, dlpy_row


def bench_big_layouts(tmp: Path, repeat: int, run_child, weight_bytes,
                      only: list[str] | None = None) -> list[str]:
    """The >2 GB external-data model (one 2.2 GB fc weight) in every layout of LAYOUTS."""
    from onnx_models import big_external

    rows = []
    for name, (kwargs, extra) in LAYOUTS.items():
        if only and not any(key in name for key in only):
            continue
        path = big_external(tmp, **kwargs)
        wb = weight_bytes(path) / 1e6
        row, _ = bench_layout(name, path, tmp, repeat, extra, run_child, wb, None)
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
        for made in (path, tmp / "big.data"):
            made.unlink(missing_ok=True)
    return ["The >2 GB external-data model (2208 MB of weights in one fc weight) in every "
            "layout; irc RSS goal 1.5x weights + 300 MB:", "",
            "| layout | floor, mmap (s) | floor, onnx.load (s) | irc compile (s) "
            "| irc / mmap floor | irc / onnx.load floor (goal <= 1.5x) | floor RSS (MB) "
            "| irc RSS (MB) | irc with verification: time, peak RSS (MB) |",
            "|---|---|---|---|---|---|---|---|---|", *rows, ""]


def bench_layouts(tmp: Path, repeat: int, run_child, weight_bytes, dlpy_venv: str | None,
                  only: list[str] | None = None) -> list[str]:
    """The layout table (and the DLPy table, or the reason it was skipped), as lines."""
    import onnx

    from onnx_models import vgg16

    python, why = dlpy_python(dlpy_venv)
    rows, dlpy_rows = [], []
    for name, (kwargs, extra) in LAYOUTS.items():
        if only and not any(key in name for key in only):
            continue
        path = tmp / "vgg16_layout.onnx"
        onnx.save(vgg16(**kwargs), str(path))
        wb = weight_bytes(path) / 1e6
        row, dlpy_row = bench_layout(name, path, tmp, repeat, extra, run_child, wb,
                                     python if name in DLPY_LAYOUTS else None)
        rows.append(row)
        print(row, dlpy_row, file=sys.stderr, flush=True)  # progress: a long run's rows so far
        if dlpy_row:
            dlpy_rows.append(dlpy_row)
        path.unlink()
    lines = ["VGG16-size ONNX (553 MB of weights) in every layout; floors as above; irc RSS goal "
             "1.5x weights + 300 MB:", "",
             "| layout | floor, mmap (s) | floor, onnx.load (s) | irc compile (s) "
             "| irc / mmap floor | irc / onnx.load floor (goal <= 1.5x) | floor RSS (MB) "
             "| irc RSS (MB) | irc with verification: time, peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|", *rows, ""]
    if dlpy_rows:
        lines += ["DLPy 1.3's ONNX path (onnx.load + onnx_to_sas, weights file written) on the "
                  "same files, alternating with irc:", "",
                  "| layout | DLPy 1.3 (s) | irc compile (s) | irc speed-up (goal >= 8x) "
                  "| peak RSS DLPy / irc (MB) |", "|---|---|---|---|---|", *dlpy_rows, ""]
    else:
        lines += [f"DLPy 1.3 row skipped: {why}.", ""]
    return lines
