"""Read an emitted Viya model FROM DISK into the executor's own small structure.

Two layer descriptions are understood: ``model.json`` (the addLayer payloads, DLPy key
vocabulary; docs/output-folder.md) and ``model_table.csv`` (the materialised model table,
viya-target.md §4). The table is first translated into the payload vocabulary, so a single
normaliser produces the executor's option names. Weights come from the KERAS-format HDF5 file
(viya-target.md §5), matched to layers by name and checked against the shapes the graph implies.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irc.backends.viya import schema
from irc.backends.viya.kinds.base import Raw
from irc.backends.viya.kinds.codec import read_rows
from irc.errors import InvalidModel, UnsupportedAttribute
from irc.problems import Problems

from . import rnn
from .shapes import expected_weight_shapes
from .options import ACTIVATIONS, ExecutorOptions


@dataclass
class ViyaLayer:
    """One layer as the files describe it; ``options`` uses the executor's normalised keys."""

    name: str
    type: str
    options: dict
    src_layers: list
    weights: dict = field(default_factory=dict)   # "kernel", "bias", "gamma", ... → float32


@dataclass
class ViyaModelFiles:
    """A model read from disk: layers in addLayer (_DLLayerID_) order."""

    name: str
    layers: list
    model_path: Path
    weights_path: Path | None = None

    def layer(self, name: str) -> ViyaLayer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(f"no layer named {name!r}")

    def terminal_layers(self) -> list:
        """Names of layers no other layer consumes (the model's outputs)."""
        consumed = {src for lay in self.layers for src in lay.src_layers}
        return [lay.name for lay in self.layers if lay.name not in consumed]


# ----------------------------------------------------------------------------- vocabulary

# The kind vocabulary (types, aliases, table codes/labels, act and its AUTO meaning per kind,
# activation labels and codes) is irc.backends.viya.schema's; recurrent/transconvo AUTO
# activations depend on ExecutorOptions and are resolved when executing.
TABLE_FILE, JSON_FILE = "model_table.csv", "model.json"


def _fail(message, *, node=None, file=None, hint=None):
    return InvalidModel(message, file=str(file) if file else None, node=node, hint=hint)


def _act_name(value, node, file) -> str:
    name = schema.act_name(value)
    if name == "fcmp":
        raise UnsupportedAttribute("FCMP (user-defined) activations cannot be executed",
                                   node=node, file=str(file))
    if name not in ACTIVATIONS + ("softmax", "auto"):
        raise _fail(f"unknown activation {value!r}", node=node, file=file)
    return name


# ----------------------------------------------------------------------------- normalising

def _normalize(name: str, kind: str, raw: dict, file, *, per_axis_padding: bool) -> dict:
    """Payload-vocabulary options (lower-case keys) → the executor's option dict.

    dropout and act are read alike for every kind; the rest is the kind's own ``normalize``.
    A kind irc does not compute keeps only those, and the shape check refuses it by its reason.
    """
    known = schema.KINDS.get(kind)
    values = Raw(name, known, raw, file, per_axis_padding=per_axis_padding)
    opts = {"dropout": values.num("dropout", 0.0, integer=False)}
    if known is None:
        return opts
    if known.act:
        act = _act_name(raw.get("act", "auto"), name, file)
        opts["act"] = (known.auto_act or act) if act == "auto" else act
    if known.scope == schema.IN:
        opts.update(known.normalize(values))
    return opts


# ----------------------------------------------------------------------------- layer files

def read_model_json(path) -> tuple:
    """model.json → (ViyaModelFiles without weights, weightFilePath or None)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise _fail(f"cannot read model.json: {err}", file=path) from None
    fmt = doc.get("format", "irc.viya.payloads/1")
    if not str(fmt).startswith("irc.viya.payloads/1"):
        raise _fail(f"unknown model.json format {fmt!r}", file=path)
    layers = []
    for entry in doc.get("addLayer") or []:
        lower = {k.lower(): v for k, v in entry.items()}
        name = lower.get("name")
        layer = {k.lower(): v for k, v in (lower.get("layer") or {}).items()}
        if not name or "type" not in layer:
            raise _fail(f"addLayer entry without a name or a layer type: {entry}", file=path)
        kind = schema.canonical_type(str(layer["type"]))
        sources = lower.get("srclayers") or []
        sources = [sources] if isinstance(sources, str) else list(sources)
        layers.append(ViyaLayer(name, kind, _normalize(name, kind, layer, path,
                                                        per_axis_padding=False), sources))
    weights = doc.get("dlImportModelWeights") or {}
    fmt = str(weights.get("formatType", "KERAS")).upper()
    if fmt != "KERAS":
        raise UnsupportedAttribute(f"weights formatType {fmt!r}: only KERAS is supported",
                                   file=str(path))
    name = doc.get("model_name") or (doc.get("buildModel") or {}).get("model", {}).get("name", "")
    model = ViyaModelFiles(str(name), layers, path)
    _check_graph(model)
    return model, weights.get("weightFilePath")


def read_model_table(path) -> ViyaModelFiles:
    """model_table.csv (five columns, viya-target.md §4) → ViyaModelFiles without weights."""
    path = Path(path)
    by_id, model_name = {}, ""
    try:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                key, chr_val = row["_DLKey1_"], row["_DLChrVal_"]
                num = float(row["_DLNumVal_"]) if row["_DLNumVal_"].strip() else None
                if key == "modeltype" or not row["_DLLayerID_"].strip():
                    model_name = row["_DLKey0_"]
                    continue
                entry = by_id.setdefault(int(float(row["_DLLayerID_"])),
                                         {"name": row["_DLKey0_"], "rows": []})
                if entry["name"] != row["_DLKey0_"]:
                    raise _fail(f"layer id {row['_DLLayerID_']} has two names "
                                f"{entry['name']!r} and {row['_DLKey0_']!r}", file=path)
                entry["rows"].append((key, chr_val, num))
    except (OSError, KeyError, ValueError) as err:
        raise _fail(f"cannot read the model table: {err!r}", file=path) from None
    ids = sorted(by_id)
    if ids != list(range(len(ids))):
        raise _fail(f"_DLLayerID_ values are not 0..{len(ids) - 1}: {ids}", file=path)
    layers = [_table_layer(by_id[i]["name"], by_id[i]["rows"], by_id, path) for i in ids]
    model = ViyaModelFiles(model_name, layers, path)
    _check_graph(model)
    return model


def _table_layer(name, rows, by_id, file) -> ViyaLayer:
    kind, sources, options, lists = None, {}, {}, {}
    for key, chr_val, num in rows:
        if key == "layertype":
            kind = (schema.by_code(int(num)) or f"code {int(num)}" if num is not None
                    else _layertype_from_label(chr_val))
        elif key.startswith("srclayers."):
            sources[int(key.split(".")[1])] = chr_val
            if num is not None and by_id.get(int(num), {}).get("name") != chr_val:
                raise _fail(f"{key} names {chr_val!r} but its id {num:g} is another layer",
                            node=name, file=file)
        else:
            rest = key.partition(".")[2].lower()
            item = re.fullmatch(r"(.+)\.(\d+)", rest)
            if item:   # list option, one row per element: offsets.0, offsets.1, ...
                lists.setdefault(item[1], {})[int(item[2])] = num
            else:
                options[rest] = (chr_val, num)
    if kind is None:
        raise _fail("layer has no layertype row", node=name, file=file)
    raw = read_rows(schema.KINDS.get(kind), options, lists,
                    lambda message: _fail(message, node=name, file=file))
    opts = _normalize(name, kind, raw, file, per_axis_padding=True)
    return ViyaLayer(name, kind, opts, [sources[i] for i in sorted(sources)])


def _layertype_from_label(label: str) -> str:
    return schema.by_label(label) or f"label {label!r}"


def _check_graph(model: ViyaModelFiles):
    seen = set()
    for layer in model.layers:
        if layer.name in seen:
            raise _fail("two layers have this name", node=layer.name, file=model.model_path)
        for src in layer.src_layers:
            if src not in seen:
                raise _fail(f"source {src!r} is not a layer added before this one",
                            node=layer.name, file=model.model_path)
        seen.add(layer.name)


# ----------------------------------------------------------------------------- weights



def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_weights(model: ViyaModelFiles, weights_path, options: ExecutorOptions | None = None):
    """Fill every layer's ``weights`` from the KERAS HDF5 file, checking names and shapes.

    Every problem found is reported in one InvalidModel that names each layer.
    """
    import h5py   # only needed here; keeps the kernels importable without it

    path = Path(weights_path)
    problems = Problems()   # (layer, message)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise _fail(f"cannot open the weights file: {err}", file=path) from None
    with handle:
        rnn.peek_input_dims(model, handle)   # recurrent d and GRU bias form come from the file
        expected = expected_weight_shapes(model, options)
        if "layer_names" not in handle.attrs:
            raise _fail("the root attribute 'layer_names' is missing", file=path)
        listed = [_text(n) for n in handle.attrs["layer_names"]]
        for name in listed:
            if name not in expected:
                what = ("has no weights" if any(l.name == name for l in model.layers)
                        else "is not a layer of the model")
                problems.add(name, f"listed in layer_names but {what}")
        in_order = [n for n in listed if n in expected]
        if in_order != [n for n in expected if n in listed]:
            problems.add(in_order[0] if in_order else None,
                         f"layer_names is not in addLayer order: {listed}")
        for name, params in expected.items():
            if name not in listed:
                problems.add(name, "has weights but is missing from layer_names")
            for message in _read_group(handle, name, params, model):
                problems.add(name, message)
    problems.raise_if_any(InvalidModel, "the weights file does not fit the model: ",
                          place=lambda n: f"layer {n!r}", file=str(path))
    model.weights_path = path


def _read_group(handle, name: str, params: dict, model) -> list:
    group = handle.get(name)
    inner = handle.get(f"{name}/{name}") if group is not None else None
    if inner is None:
        return [f"no group /{name}/{name} with its datasets"]
    problems = []
    wanted = [f"{name}/{p}:0" for p in params]
    names = [_text(n) for n in group.attrs.get("weight_names", [])]
    if names != wanted:
        problems.append(f"weight_names is {names}, expected {wanted}")
    extra = sorted(set(inner.keys()) - {f"{p}:0" for p in params})
    if extra:
        problems.append(f"unexpected datasets {extra} (does includebias match the file?)")
    layer = model.layer(name)
    for param, shape in params.items():
        data = inner.get(f"{param}:0")
        if data is None:
            problems.append(f"dataset {name}/{name}/{param}:0 is missing")
        elif tuple(data.shape) != tuple(shape):
            problems.append(f"{param}:0 has shape {tuple(data.shape)}, expected {tuple(shape)}")
        elif data.dtype.kind != "f":
            problems.append(f"{param}:0 has dtype {data.dtype}, expected float32")
        else:
            layer.weights[param] = np.asarray(data[()], dtype=np.float32)
    return problems


def load_viya_model(path, weights_path=None, options: ExecutorOptions | None = None):
    """Read an output folder (or its model.json / model_table.csv) and its HDF5 weights.

    ``model.json`` is preferred over ``model_table.csv`` in a folder. The weights file is the
    one model.json names; for a table, the single ``*_weights.kerasmodel.h5`` beside it;
    ``weights_path`` overrides both. ``options`` matter for the shape checks (pool rounding).
    """
    path = Path(path)
    if path.is_dir():
        found = [path / f for f in (JSON_FILE, TABLE_FILE) if (path / f).is_file()]
        if not found:
            raise _fail(f"neither {JSON_FILE} nor {TABLE_FILE} is in this folder", file=path)
        path = found[0]
    if not path.is_file():
        raise _fail("no such file", file=path)
    if path.suffix.lower() == ".json":
        model, named = read_model_json(path)
    else:
        model, named = read_model_table(path), None
    if weights_path is None:
        if named:
            weights_path = path.parent / named
        else:
            found = sorted(path.parent.glob("*_weights.kerasmodel.h5"))
            if len(found) != 1:
                raise _fail(f"expected exactly one *_weights.kerasmodel.h5 beside the model, "
                            f"found {[f.name for f in found]}", file=path.parent,
                            hint="pass weights_path=")
            weights_path = found[0]
    read_weights(model, weights_path, options)
    return model
