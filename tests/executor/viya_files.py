"""Write Viya model files by hand, independently of the compiler.

``model.json`` follows docs/output-folder.md; the weights file follows the KERAS layout of
docs/viya-target.md §5.2: root attribute ``layer_names`` (fixed-length byte strings,
addLayer order), one group ``/<L>`` with attribute ``weight_names``, datasets at
``/<L>/<L>/<param>:0``, float32.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np

# Canonical dataset order per layer kind (viya-target.md §5.3).
PARAM_ORDER = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


def layer(name: str, type: str, srcs=None, **options) -> dict:
    """One addLayer payload: ``layer(name, 'convo', ['data'], nfilters=4, ...)``."""
    entry = {"model": "m", "name": name, "layer": {"type": type, **options}}
    if srcs is not None:
        entry["srcLayers"] = list(srcs)
    return entry


def input_layer(c: int, h: int, w: int, name: str = "data", scale=1.0, offsets=None,
                normstds=None) -> dict:
    options = dict(nchannels=c, width=w, height=h, scale=scale,
                   offsets=list(offsets) if offsets is not None else [0.0] * c,
                   randomflip="none", randomcrop="none", randommutation="none")
    if normstds is not None:
        options["normstds"] = list(normstds)
    return layer(name, "input", **options)


def write_weights_h5(path, weights: dict, order=None) -> Path:
    """``weights`` = {layer: {param: array}}; ``order`` = layer_names order (default: dict's)."""
    path = Path(path)
    names = list(order) if order is not None else list(weights)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array(names, dtype="S")
        for name in names:
            params = sorted(weights[name], key=PARAM_ORDER.index)
            group = f.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/{p}:0" for p in params], dtype="S")
            for p in params:
                group.create_dataset(f"{name}/{p}:0",
                                     data=np.asarray(weights[name][p], dtype=np.float32))
    return path


def write_folder(folder, layers: list, weights: dict, model_name: str = "m") -> Path:
    """Write ``model.json`` and ``<model>_weights.kerasmodel.h5`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weight_file = f"{model_name}_weights.kerasmodel.h5"
    doc = {
        "format": "irc.viya.payloads/1",
        "irc_version": "0.1.0",
        "model_name": model_name,
        "buildModel": {"model": {"name": model_name, "replace": True}, "type": "CNN"},
        "addLayer": [{**entry, "model": model_name} for entry in layers],
        "dlImportModelWeights": {"modelWeights": {"name": f"{model_name}_weights",
                                                  "replace": True},
                                 "formatType": "KERAS", "weightFilePath": weight_file},
        "input": {"channel_order": "source", "layout": "NCHW"},
    }
    (folder / "model.json").write_text(json.dumps(doc, indent=1))
    order = [entry["name"] for entry in layers if entry["name"] in weights]
    write_weights_h5(folder / weight_file, weights, order)
    return folder


def write_table_csv(path, rows) -> Path:
    """Write a five-column model table; ``rows`` are (key0, key1, chrval, numval, layerid)
    tuples, None for a missing value (viya-target.md §4.1)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["_DLKey0_", "_DLKey1_", "_DLChrVal_", "_DLNumVal_", "_DLLayerID_"])
        for key0, key1, chr_val, num, layer_id in rows:
            out.writerow([key0, key1, chr_val, "" if num is None else float(num),
                          "" if layer_id is None else float(layer_id)])
    return path
