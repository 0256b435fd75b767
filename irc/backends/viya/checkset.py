"""The check set: a few verification examples stored in the output folder, so that a CAS server
can score them and the user can see that the model it built computes what the source computes.

Written at compile time into ``check/`` (docs/output-folder.md):

- ``inputs.csv`` (kept up to CSV_MAX bytes): one row per example, ``_id_`` (1, 2, ...) then
  ``x_0 .. x_{K-1}``, the raw values Viya's input layer reads, flattened as (C, H, W) (a sequence model's input layer is
  1 x 1 x T*d). Every value lies on a grid of 2^-k (integers where the input layer scales by
  1/255 or so), so the decimal text, float32 and float64 all hold it exactly: the server reads
  the very values the source was run on.
- ``checkset.npz``: the same inputs, the source framework's outputs for them (``output:<name>``)
  and the tensors the written files compute at a few Viya layers (``layer:<name>``, from the
  reference executor), for locating the first layer where a server parts.
- ``checkset.json``: what is where, which layer each array is compared at, and the tolerances.

The source runs on ``(x*scale - offsets)/normstds`` of those raw values, channel order undone,
exactly the map :func:`irc.verify.viya_input` inverts.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np

CHECK_DIR = "check"
FORMAT = "irc.checkset/1"
MAX_EXAMPLES = 3
CSV_BUDGET = 256 * 1024  # bytes of inputs.csv the examples may take (at least one example)
CSV_MAX = 384 * 1024  # a larger inputs.csv is not kept (irc deploy writes it when uploading)
TENSOR_BUDGET = 128 * 1024  # bytes (float32) of intermediate layer tensors
MAX_LAYERS = 3  # intermediate layers checked besides the outputs
RTOL, ATOL = 1e-4, 1e-5  # irc verify's defaults


class CheckSetUnavailable(Exception):
    """No check set can be made for this model (said in a note, the compile goes on)."""


def _input_layer(payloads: dict) -> dict:
    return next(c for c in payloads["addLayer"] if c["layer"]["type"] == "input")


def _grid_step(payloads: dict) -> float:
    """A power of two fine enough for the source's inputs (at most 1/32 of a unit of the
    source's input, in raw units), never coarser than 1: raw values on it are exact in text and
    in float32. An input layer scaling by 1/255 (normstds down to 1/8) reads integers."""
    from irc.input_spec import InputSpec

    layer = _input_layer(payloads)["layer"]
    spec = InputSpec.recorded(payloads)
    _, stds = spec.per_channel(layer["nchannels"]) or ([], [1.0])
    unit = min(abs(float(s)) for s in stds) / abs(spec.scale)
    return min(1.0, 2.0 ** math.floor(math.log2(unit / 32)))


def source_input(payloads: dict, raw: np.ndarray) -> np.ndarray:
    """What the source receives for Viya's raw input values ``raw`` (N, C, H, W), in the
    source's own layout (its batch axis where it has it)."""
    from irc.input_spec import InputSpec
    from irc.verify import _batch_axis

    layer = _input_layer(payloads)["layer"]
    c = layer["nchannels"]
    spec = InputSpec.recorded(payloads)
    offsets, stds = spec.per_channel(c)
    x = raw.astype(np.float64).reshape(raw.shape[0], c, layer["height"], layer["width"])
    y = (x * spec.scale - np.reshape(offsets, (1, c, 1, 1))) / np.reshape(stds, (1, c, 1, 1))
    if spec.channel_order == "rgb":
        y = y[:, ::-1]
    (info,) = payloads["input"]["sources"].values()
    y = y.reshape([raw.shape[0], *info["shape"]]).astype(np.float32)
    return np.moveaxis(y, 0, _batch_axis(payloads))


def make_raw_inputs(payloads: dict, n: int, seed: int = 0) -> np.ndarray:
    """``n`` raw examples (N, K) on the grid: standard-normal source inputs mapped back to raw
    units by :func:`irc.verify.viya_input`, then rounded onto the grid."""
    from irc.verify import make_inputs, viya_input

    (y,) = make_inputs(payloads, seed, n).values()
    step = _grid_step(payloads)
    raw = np.round(viya_input(payloads, y).astype(np.float64) / step) * step
    return raw.reshape(n, -1)


def _example_count(payloads: dict) -> int:
    layer = _input_layer(payloads)["layer"]
    values = layer["nchannels"] * layer["height"] * layer["width"]
    return max(1, min(MAX_EXAMPLES, CSV_BUDGET // (values * 6)))  # ~6 bytes a value


def _run_source(src, payloads: dict, feeds: dict) -> dict[str, np.ndarray]:
    """The source framework's outputs, examples on axis 0 (as irc verify runs it)."""
    from irc.frontends.source import run_source
    from irc.verify import _batch_axis, _run_onnx

    out_axes = payloads["input"].get("output_batch_axes", {})
    if src.kind == "onnx":
        ref = _run_onnx(src, feeds, _fixed_batch(src, payloads),
                        (_batch_axis(payloads), out_axes))
    else:
        ref = run_source(src, feeds)
    return {k: np.moveaxis(v, out_axes.get(k, 0), 0) for k, v in ref.items()}


def _fixed_batch(src, payloads: dict) -> int | None:
    """The batch size an ONNX source fixes on its input (None: free)."""
    from irc.verify import _batch_axis, declared_batch

    return declared_batch(src, _batch_axis(payloads))


def _pick_layers(model_files, outputs: set[str], shapes: dict, n: int) -> list[str]:
    """Up to MAX_LAYERS intermediate layers spread over the model, within TENSOR_BUDGET."""
    candidates = [layer.name for layer in model_files.layers
                  if layer.type != "input" and layer.name not in outputs]
    if not candidates:
        return []
    step = len(candidates) / (MAX_LAYERS + 1)
    picked, spent = [], 0
    for i in range(1, MAX_LAYERS + 1):
        name = candidates[min(len(candidates) - 1, int(i * step))]
        size = 4 * n * int(np.prod(shapes[name]))
        if name not in picked and spent + size <= TENSOR_BUDGET:
            picked.append(name)
            spent += size
    return picked


def build_check_set(folder: Path, src) -> dict:
    """Compute the check set of the written folder ``folder`` for source ``src`` (an
    :class:`irc.frontends.source.Source`); returns {'meta', 'raw', 'outputs', 'layers'}."""
    from irc.backends.viya.executor import execute, infer_shapes, load_viya_model

    payloads = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    name_map = json.loads((folder / "name_map.json").read_text(encoding="utf-8"))
    if len(payloads["input"]["sources"]) != 1:
        raise CheckSetUnavailable("the source has several inputs")
    n = _example_count(payloads)
    fixed = _fixed_batch(src, payloads)
    if fixed:  # whole runs of the batch the source declares
        n = max(fixed, n // fixed * fixed)
    raw = make_raw_inputs(payloads, n)
    (in_name,) = payloads["input"]["sources"]
    reference = _run_source(src, payloads, {in_name: source_input(payloads, raw)})
    files = load_viya_model(folder)
    computed = execute(files, raw.astype(np.float32).reshape(n, *_raw_shape(payloads)),
                       all_layers=True)
    shapes = infer_shapes(files)
    outputs = dict(name_map["outputs"])  # source output -> viya layer
    intermediate = set(_pick_layers(files, set(outputs.values()), shapes, n))
    ids = {c["name"]: i for i, c in enumerate(payloads["addLayer"])}
    checked, layers = [], {}
    by_layer = {layer: out for out, layer in outputs.items()}
    for layer in files.layers:  # addLayer order: the first diverging one is reported
        if layer.name in by_layer:
            checked.append({"layer": layer.name, "id": ids[layer.name], "kind": layer.type,
                            "source_output": by_layer[layer.name],
                            "shape": list(shapes[layer.name])})
        elif layer.name in intermediate:
            checked.append({"layer": layer.name, "id": ids[layer.name], "kind": layer.type,
                            "source_output": None, "shape": list(shapes[layer.name])})
            layers[layer.name] = computed[layer.name].astype(np.float32)
    input_layer = _input_layer(payloads)
    meta = {"format": FORMAT, "model": payloads["model_name"], "examples": n,
            "input_layer": input_layer["name"], "values": int(raw.shape[1]),
            "sequence": _sequence(payloads), "grid_step": _grid_step(payloads),
            "checked": checked, "rtol": RTOL, "atol": ATOL,
            "reference": "outputs: the source framework's own runtime; other layers: the "
                         "reference executor on the written files"}
    outs = {by_layer[c["layer"]]: reference[by_layer[c["layer"]]].astype(np.float32)
            for c in checked if c["source_output"]}
    bad = sorted(name for name, v in {**outs, **layers}.items() if not np.isfinite(v).all())
    if bad:   # a server comparison of NaN or inf proves nothing (and CASL has no such constant)
        raise CheckSetUnavailable(f"the check examples give non-finite values at {bad}")
    return {"meta": meta, "raw": raw, "outputs": outs, "layers": layers}


def _raw_shape(payloads: dict) -> tuple[int, int, int]:
    layer = _input_layer(payloads)["layer"]
    return layer["nchannels"], layer["height"], layer["width"]


def _sequence(payloads: dict):
    """{'steps': T, 'token_size': d} for a sequence model (its input layer reads T*d values)."""
    if payloads["buildModel"].get("type") != "RNN":
        return None
    (info,) = payloads["input"]["sources"].values()
    steps, token = info["shape"][-2], info["shape"][-1]
    return {"steps": int(steps), "token_size": int(token)}


def write_check_set(folder: Path, src) -> Path:
    """Build the check set and write it into ``folder/check``; returns that folder."""
    data = build_check_set(folder, src)
    target = folder / CHECK_DIR
    target.mkdir()
    csv_path = target / "inputs.csv"
    write_inputs_csv(csv_path, data["raw"], data["meta"])
    data["meta"]["inputs_csv"] = csv_path.stat().st_size <= CSV_MAX
    if not data["meta"]["inputs_csv"]:  # a large image: the .npz holds it compactly
        csv_path.unlink()
    raw = data["raw"]
    small = np.array_equal(raw, np.round(raw)) and np.abs(raw).max() < 2 ** 15
    arrays = {"inputs": raw.astype(np.int16 if small else np.float32)}  # exact either way
    arrays.update({f"output:{k}": v for k, v in data["outputs"].items()})
    arrays.update({f"layer:{k}": v for k, v in data["layers"].items()})
    np.savez_compressed(target / "checkset.npz", **arrays)
    (target / "checkset.json").write_text(json.dumps(data["meta"], indent=1) + "\n",
                                          encoding="utf-8")
    return target


def write_inputs_csv(path: Path, raw: np.ndarray, meta: dict) -> None:
    """``_id_,x_0,...`` (+ ``_length_`` for sequences), every value in its exact shortest form."""
    seq = meta["sequence"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table_columns(meta))
        for i, row in enumerate(raw, 1):
            cells = [str(i)] + [_exact(v) for v in row]
            writer.writerow(cells + ([str(seq["steps"])] if seq else []))


def table_columns(meta: dict) -> list[str]:
    return ["_id_", *input_columns(meta), *(["_length_"] if meta["sequence"] else [])]


def input_columns(meta: dict) -> list[str]:
    """The input value columns, x_0 .. x_{K-1} (Viya's C, H, W order)."""
    return [f"x_{i}" for i in range(meta["values"])]


def _exact(value: float) -> str:
    """Integers without a point; other grid values by repr (shortest exact decimal)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def load_check_set(folder: Path) -> dict | None:
    """{'meta', 'raw', 'outputs', 'layers'} of a folder's check set, or None when it has none."""
    target = Path(folder) / CHECK_DIR
    if not (target / "checkset.json").is_file():
        return None
    meta = json.loads((target / "checkset.json").read_text(encoding="utf-8"))
    with np.load(target / "checkset.npz") as data:
        arrays = {k: np.asarray(data[k]) for k in data.files}
    return {"meta": meta, "raw": arrays["inputs"].astype(np.float64),
            "outputs": {k[7:]: v for k, v in arrays.items() if k.startswith("output:")},
            "layers": {k[6:]: v for k, v in arrays.items() if k.startswith("layer:")}}


def add_check_set(folder: Path, src) -> list[str]:
    """Write the check set if the source can be run here; otherwise a note saying why not."""
    from irc.errors import IrcError

    if src is None:
        return ["no check set written (check/): the source was not run (--no-verify, or a "
                "model not compiled from a source in this run)"]
    try:
        write_check_set(folder, src)
    except (IrcError, CheckSetUnavailable, ImportError) as exc:
        shutil.rmtree(folder / CHECK_DIR, ignore_errors=True)
        return [f"no check set written (check/): {getattr(exc, 'message', None) or exc}"]
    except Exception as exc:  # noqa: BLE001 - a source runtime's own error, or a bug of ours:
        # the model's files are complete without a check set, so say it instead of failing
        shutil.rmtree(folder / CHECK_DIR, ignore_errors=True)
        return [f"no check set written (check/): {type(exc).__name__}: {exc}"]
    return []
