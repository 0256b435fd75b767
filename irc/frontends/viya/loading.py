"""Read a Viya model back: its layers (model.json / model_table.csv, parsed by the reference
executor's reader) and its weights (KERAS HDF5, a server weights TABLE, or generated).

Every layer ends up as the executor's :class:`ViyaLayer` with ``weights`` filled in the HDF5
vocabulary (``kernel`` (O, I/g, kH, kW) or (n, in), ``bias``, ``gamma``, ``beta``,
``moving_mean``, ``moving_variance`` = variance with the eps already folded in).
"""
from __future__ import annotations

import csv
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from irc.backends.viya import schema
from irc.backends.viya.executor.shapes import expected_weight_shapes
from irc.backends.viya.executor.reader import (JSON_FILE, TABLE_FILE, ViyaModelFiles,
                                               read_model_json, read_model_table, read_weights)
from irc.errors import InvalidModel, UnsupportedOp
from irc.problems import Problems

from .options import ExportOptions

F32 = np.float32
# Layer kinds the export lowers to ONNX (every kind irc computes that declares no export
# refusal); everything else is refused by name, with the reason its kind entry gives.
EXPORTABLE = tuple(k.name for k in schema.KINDS.values()
                   if k.scope == schema.IN and not k.export_refusal)
WEIGHTS_COLUMNS = ("_LayerID_", "_WeightID_", "_Weight_")


def _is_frame(obj) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "to_csv")


def read_structure(source):
    """(model without weights, the weights file it names or None, {layer: output error}).

    ``source``: an output folder, a model.json, a model_table.csv (irc's or server-written),
    or a pandas DataFrame holding the five model-table columns.
    """
    if _is_frame(source):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / TABLE_FILE
            source.to_csv(path, index=False)
            model = read_model_table(path)
            errors = _table_errors(path)
        model.model_path = Path("<model table DataFrame>")
        return model, None, errors
    path = Path(source)
    if path.is_dir():
        found = [path / f for f in (JSON_FILE, TABLE_FILE) if (path / f).is_file()]
        if not found:
            raise InvalidModel(f"neither {JSON_FILE} nor {TABLE_FILE} is in this folder",
                               file=str(path))
        path = found[0]
    if not path.is_file():
        raise InvalidModel("no such file", file=str(path))
    if path.suffix.lower() == ".json":
        model, named = read_model_json(path)
        return model, (path.parent / named if named else None), _json_errors(path)
    model = read_model_table(path)
    beside = sorted(path.parent.glob("*_weights.kerasmodel.h5"))
    return model, (beside[0] if len(beside) == 1 else None), _table_errors(path)


def _json_errors(path: Path) -> dict:
    errors = {}
    for entry in json.loads(path.read_text()).get("addLayer") or []:
        entry = {k.lower(): v for k, v in entry.items()}
        layer = {k.lower(): v for k, v in (entry.get("layer") or {}).items()}
        errors[entry.get("name")] = str(layer.get("error", "auto")).lower()
    return errors


def _table_errors(path: Path) -> dict:
    """The output layers' `error` enum label (the reader keeps no loss options)."""
    with path.open(newline="") as handle:
        return {row["_DLKey0_"]: (row["_DLChrVal_"] or "").strip().lower()
                for row in csv.DictReader(handle)
                if row["_DLKey1_"].lower() == "outputopts.error"}


def _export_refusal(kind: str) -> str:
    """Why a layer kind has no ONNX export: its kind entry's reason (one place per kind), else
    a generic one for a type Viya's vocabulary does not know."""
    found = schema.KINDS.get(kind)
    return (found.export_refusal or found.why) if found is not None and \
        (found.export_refusal or found.why) else "no ONNX export for this layer kind"


def check_exportable(model: ViyaModelFiles, output_errors: dict) -> None:
    """One UnsupportedOp naming every layer that has no ONNX export."""
    bad = []
    for layer in model.layers:
        if layer.type not in EXPORTABLE:
            bad.append(f"{layer.name} ({layer.type}: "
                       f"{_export_refusal(layer.type)})")
        elif layer.type == "output" and "ctc" in output_errors.get(layer.name, ""):
            bad.append(f"{layer.name} (output with a CTC loss: its scores are per time step "
                       "of a sequence model)")
    inputs = [layer.name for layer in model.layers if layer.type == "input"]
    if len(inputs) != 1:
        bad.append(f"{', '.join(inputs) or 'no input layer'} (an ONNX export needs exactly "
                   "one input layer)")
    if bad:
        raise UnsupportedOp(f"{len(bad)} layer(s) cannot be exported to ONNX: "
                            + "; ".join(bad), file=str(model.model_path),
                            node=bad[0].split(" ")[0],
                            hint=f"irc exports these layer kinds: {', '.join(EXPORTABLE)}")


# ----------------------------------------------------------------------------- weights

def load_weights(model: ViyaModelFiles, weights, named, generate: bool,
                 options: ExportOptions) -> str:
    """Fill every layer's ``weights``; returns where they came from."""
    if generate:
        if weights is not None:
            raise InvalidModel("give weights= or generate_weights=True, not both",
                               file=str(model.model_path))
        generate_weights(model, options)
        return f"generated (seed {options.seed})"
    if _is_frame(weights):
        read_weights_table(model, weights, options)
        return "weights table (DataFrame)"
    path = Path(weights) if weights is not None else named
    if path is None or not path.is_file():
        raise InvalidModel(f"no weights file {'at ' + str(path) if path else 'found'}",
                           file=str(model.model_path),
                           hint="pass weights= (a KERAS .h5 or a weights table .csv), or "
                                "generate_weights=True for seeded random weights")
    if path.suffix.lower() == ".csv":
        read_weights_table(model, path, options)
    else:
        read_weights(model, path, options.executor)
    return str(path)


def generate_weights(model: ViyaModelFiles, options: ExportOptions) -> None:
    """Seeded random weights of the right shapes (scaled by 1/sqrt(fan-in))."""
    rng = np.random.default_rng(options.seed)
    for name, params in expected_weight_shapes(model, options.executor).items():
        layer = model.layer(name)
        for param, shape in params.items():
            if param == "kernel":
                scale = 1.0 / math.sqrt(max(math.prod(shape[1:]), 1))
                data = rng.standard_normal(shape, dtype=F32) * F32(scale)
            elif param == "gamma":
                data = 1 + F32(0.2) * rng.standard_normal(shape, dtype=F32)
            elif param == "moving_variance":
                data = rng.uniform(0.5, 1.5, shape).astype(F32)
            else:   # bias, beta, moving_mean
                data = F32(0.1) * rng.standard_normal(shape, dtype=F32)
            layer.weights[param] = data


def read_weights_table(model: ViyaModelFiles, table, options: ExportOptions) -> None:
    """A server weights table (viya-target.md §7.2): one row per scalar, ``_LayerID_`` =
    ``_DLLayerID_``, ``_WeightID_`` 0-based per layer. conv: kernel OIHW then bias; fc/output:
    kernel (order per ``options.fc_weight_order``) then bias; batchnorm: pairs (γ_i, β_i),
    then pairs (μ_i, σ_i) with σ a standard deviation."""
    import pandas as pd

    where = "<weights table DataFrame>" if _is_frame(table) else str(table)
    try:
        frame = table if _is_frame(table) else pd.read_csv(table)
        ids = frame["_LayerID_"].to_numpy(np.float64)
        wid = frame["_WeightID_"].to_numpy(np.float64)
        values = frame["_Weight_"].to_numpy(np.float64)
    except (OSError, KeyError, ValueError) as err:
        raise InvalidModel(f"cannot read the weights table (columns "
                           f"{', '.join(WEIGHTS_COLUMNS)}): {err!r}", file=where) from None
    order = np.lexsort((wid, ids))
    ids, wid, values = ids[order], wid[order], values[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    blocks = {int(ids[s]): (s, e) for s, e in zip(starts, np.r_[starts[1:], len(ids)])}
    expected = expected_weight_shapes(model, options.executor)
    problems = Problems()
    for layer_id in sorted(set(blocks) - {i for i, l in enumerate(model.layers)
                                          if l.name in expected}):
        what = (f"layer {model.layers[layer_id].name!r} has no weights"
                if 0 <= layer_id < len(model.layers) else "is not a layer of the model")
        problems.add(f"_LayerID_ {layer_id}", what)
    for layer_id, layer in enumerate(model.layers):
        params = expected.get(layer.name)
        if params is None:
            continue
        count = sum(math.prod(s) for s in params.values())
        start, stop = blocks.get(layer_id, (0, 0))
        if stop - start != count:
            problems.add(f"layer {layer.name!r}", f"_LayerID_ {layer_id} has {stop - start} "
                         f"values, expected {count} for {params}")
        elif not np.array_equal(wid[start:stop], np.arange(count)):
            problems.add(f"layer {layer.name!r}", f"_WeightID_ is not 0..{count - 1}")
        else:
            layer.weights.update(_unpack(layer.type, params, values[start:stop], options))
    problems.raise_if_any(InvalidModel, "the weights table does not fit the model: ",
                          file=where, name_node=False)


def _unpack(kind: str, params: dict, flat: np.ndarray, options: ExportOptions) -> dict:
    if kind == "batchnorm":
        c = params["gamma"][0]
        gamma_beta, mean_sigma = flat[:2 * c].reshape(c, 2), flat[2 * c:].reshape(c, 2)
        out = {"gamma": gamma_beta[:, 0], "beta": gamma_beta[:, 1],
               "moving_mean": mean_sigma[:, 0], "moving_variance": np.square(mean_sigma[:, 1])}
        return {k: np.ascontiguousarray(v, dtype=F32) for k, v in out.items()}
    shape = params["kernel"]
    size = math.prod(shape)
    kernel = flat[:size]
    if kind in ("fc", "output") and options.fc_weight_order == "in_major":
        kernel = kernel.reshape(shape[1], shape[0]).T
    out = {"kernel": np.ascontiguousarray(kernel.reshape(shape), dtype=F32)}
    if "bias" in params:
        out["bias"] = flat[size:].astype(F32)
    return out


def write_weights_h5(model: ViyaModelFiles, path) -> Path:
    """The layers' weights as a KERAS-format HDF5 file (viya-target.md §5.2), e.g. to run
    generated weights in the reference executor; written by the backend's writer."""
    from irc.backends.viya import hdf5
    from irc.backends.viya.model import LazyWeight

    def weight(array):
        array = np.asarray(array, dtype=F32)
        return LazyWeight(array.shape, lambda: array)

    path = Path(path)
    hdf5.write_layers(path, [
        (layer.name, [(p, weight(layer.weights[p])) for p in schema.weight_order(layer.type)
                      if p in layer.weights], ())   # canonical dataset order (§5.3)
        for layer in model.layers if layer.weights])
    return path
