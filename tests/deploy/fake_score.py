"""The stand-in's deepLearn.dlScore and table.fetch: it answers with what the files the server
received compute, run by irc's reference executor, so a weights file corrupted after compile
gives the corrupted numbers, as a server would.

What it checks (and what it writes) comes from SAS's own client, DLPy 1.3, recorded offline in
dlpy_dlscore.json (tests/deploy/dlpy_record.py): the parameter names dlScore accepts; the scored
table (``casout``) keeps ``copyVars`` and adds ``P_<target><label>`` per class and
``I_<target>`` for a softmax output (DLPy's evaluate reads ``I_`` + target, its heat-map code
``P__label_`` + class), ``_DL_Pred_`` otherwise (DLPy's forecast); the ``layerOut`` table
holds the listed layers' values, one a column in (C, H, W) order (``layerImageType='wide'``),
named ``_LayerAct_<layer id>_<k>_`` after DLPy's feature-map columns.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

RECORD = Path(__file__).with_name("dlpy_dlscore.json")


def dlpy_dlscore_params() -> set[str]:
    """Every dlScore parameter DLPy 1.3 sends, CAS-style (lower case)."""
    record = json.loads(RECORD.read_text())
    return {k.lower() for calls in record["calls"].values() for call in calls for k in call}


def _lower(d: dict) -> dict:
    return {k.lower(): v for k, v in d.items()}


def _files(cas, name: str, model: dict):
    """The model as the server holds it (its addLayer calls or its table, and the weights
    bytes it imported), loaded by irc's executor reader."""
    from irc.backends.viya.executor import load_viya_model

    with tempfile.TemporaryDirectory(prefix="fake-cas-") as tmp:
        folder = Path(tmp)
        (folder / "w.h5").write_bytes(model["h5"])
        if "calls" in model:
            doc = {"model_name": name, "addLayer": model["calls"],
                   "dlImportModelWeights": {"formatType": "KERAS", "weightFilePath": "w.h5"}}
            (folder / "model.json").write_text(json.dumps(doc))
            return load_viya_model(folder)
        model["table"].to_csv(folder / "model_table.csv", index=False)
        return load_viya_model(folder / "model_table.csv", weights_path=folder / "w.h5")


def _rows(cas, table: dict) -> pd.DataFrame:
    table = _lower(table)
    frame = cas.tables.get(table["name"].lower())
    assert frame is not None, f"dlScore: no table {table['name']}"
    where = table.get("where")
    if where:
        m = re.fullmatch(r"\s*(\w+)\s*=\s*(\d+)\s*", where)
        assert m, f"dlScore: where {where!r} not understood"
        frame = frame[frame[m.group(1)] == float(m.group(2))]
    return frame


def dlscore(cas, p: dict) -> dict:
    name = _lower(p["model"])["name"].lower() if isinstance(p["model"], dict) else \
        p["model"].lower()
    model = cas.models[name]
    assert "h5" in model, "dlScore before dlImportModelWeights"
    assert _lower(p["initweights"])["name"].lower() == model["weights"], "initWeights"
    for key in ("randomflip", "randomcrop", "randommutation"):
        assert str(p.get(key, "")).lower() == "none", f"dlScore: {key} must be 'none' to score"
    files = _files(cas, name, model)
    first = files.layers[0]
    rows = _rows(cas, p["table"])
    assert len(rows), "dlScore: the table (after where) has no rows"
    specs = [_lower(s) for s in p.get("dataspecs") or []]
    assert len(specs) == 1, "one dataSpec binds the input columns"
    spec = specs[0]
    assert spec["type"].upper() in ("NUMERICNOMINAL", "NUMNOM"), spec["type"]
    assert spec["layer"].lower() == first.name.lower(), "the dataSpec names the input layer"
    assert all(c in rows.columns for c in spec["data"]), "dataSpec columns in the table"
    if model.get("type", "CNN").upper().startswith("R"):  # an RNN reads sequences of tokens
        parms = _lower(spec.get("numericnominalparms") or {})
        assert parms.get("tokensize") and parms.get("length") in rows.columns, \
            "a sequence dataSpec needs numericNominalParms with tokenSize and length"
        assert (rows[parms["length"]] * parms["tokensize"] == len(spec["data"])).all()
    from irc.backends.viya.executor import execute

    opts = first.options
    x = rows[spec["data"]].to_numpy(np.float32)
    x = x.reshape(len(rows), opts["nchannels"], opts["height"], opts["width"])
    values = execute(files, x, all_layers=True)
    out = {}
    casout = p.get("casout")
    if casout:
        cas.tables[_lower(casout)["name"].lower()] = _scored(rows, p, files, values, model)
    if p.get("layerout"):
        wanted = p.get("layers") or [layer.name for layer in files.layers]
        assert str(p.get("layerimagetype", "")).lower() == "wide", "numeric layer values"
        ids = {layer.name.lower(): i for i, layer in enumerate(files.layers)}
        columns = {}
        for layer in wanted:
            flat = values[next(n for n in values if n.lower() == layer.lower())]
            flat = flat.reshape(len(rows), -1)
            for k in range(flat.shape[1]):
                columns[f"_LayerAct_{ids[layer.lower()]}_{k}_"] = flat[:, k].astype(np.float64)
        cas.tables[_lower(p["layerout"])["name"].lower()] = pd.DataFrame(columns)
    out["ScoreInfo"] = pd.DataFrame([{"Descr": "Number of Observations Used",
                                      "Value": str(len(rows))}])
    return out


def _scored(rows, p, files, values, model) -> pd.DataFrame:
    frame = rows[list(p.get("copyvars") or [])].reset_index(drop=True)
    last = files.layers[-1]
    y = values[last.name].reshape(len(rows), -1)
    if last.type == "output" and str(last.options.get("act", "")).lower() == "softmax":
        labels = model.get("labels") or [str(i) for i in range(y.shape[1])]
        for i, label in enumerate(labels):
            frame[f"P__label_{label}"] = y[:, i]
        frame["I__label_"] = [labels[i] for i in y.argmax(axis=1)]
    else:
        frame["_DL_Pred_"] = y[:, 0]
    return frame


def fetch(cas, p: dict) -> pd.DataFrame:
    table = _lower(p["table"])
    frame = cas.tables.get(table["name"].lower())
    assert frame is not None, f"table.fetch: no table {table['name']}"
    return frame.head(int(p.get("to", 20))).reset_index(drop=True)
