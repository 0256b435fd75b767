"""The server-side check of ``irc deploy``: score the folder's check set with ``deepLearn.dlScore``
on the model CAS built, and judge each checked layer the way ``irc verify`` does.

The dlScore call follows SAS's own client, DLPy 1.3 (recorded offline in
tests/deploy/dlpy_dlscore.json): ``model``, ``initWeights``, ``table``, ``copyVars``, ``casout``,
``encodeName`` (true except for RNN models, as its ``predict``), ``randomFlip``/``randomCrop``/
``randomMutation`` ``'none'``, and for layer values ``layerOut`` with one layer in ``layers``
and ``layerImageType='wide'`` (one value a column; its ``get_features`` reads such a table as a
plain matrix). Each call scores ONE example (``where`` on ``_id_``, as DLPy's feature-map code
selects its image) and ONE layer, so no reading depends on the server's row order or on how it
names the wide columns. The numeric input columns are bound to the input layer by a
``dataSpecs`` entry (DLPy's DataSpec: ``NUMERICNOMINAL``, with ``numericNominalParms`` for a
sequence). This path has not met a live server.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irc.backends.viya.checkset import (CHECK_DIR, input_columns, load_check_set,
                                        table_columns, write_inputs_csv)


def check_table(model: str) -> str:
    return f"{model}_check"


def data_spec(meta: dict) -> dict:
    """Binds the check table's x_* columns to the input layer (DLPy's DataSpec keys)."""
    spec = {"type": "NUMERICNOMINAL", "layer": meta["input_layer"], "data": input_columns(meta)}
    if meta["sequence"]:
        spec["numericNominalParms"] = {"length": "_length_",
                                       "tokenSize": meta["sequence"]["token_size"]}
    return spec


def score_params(meta: dict, model: str, example: int, layer: str) -> dict:
    """One dlScore call: example ``example`` (its ``_id_``), the values of ``layer``."""
    return {
        "table": {"name": check_table(model), "where": f"_id_ = {example}"},
        "model": {"name": model},
        "initWeights": {"name": f"{model}_weights"},
        "dataSpecs": [data_spec(meta)],
        "copyVars": ["_id_"],
        "casout": {"name": f"{model}_check_scored", "replace": True},
        "layerOut": {"name": f"{model}_check_layer", "replace": True},
        "layers": [layer],
        "layerImageType": "wide",
        "encodeName": meta["sequence"] is None,
        "randomFlip": "none",
        "randomCrop": "none",
        "randomMutation": "none",
    }


def table_vars(meta: dict) -> list[dict]:
    return [{"name": c, "type": "double"} for c in table_columns(meta)]


def layer_values(frame) -> np.ndarray:
    """The one row of a wide layerOut table as a vector: its ``_LayerAct_`` columns when it
    names them so (DLPy's feature-map columns), else every numeric column but ``_id_``."""
    columns = [c for c in frame.columns if str(c).startswith("_LayerAct_")] or \
        [c for c in frame.columns if str(c) != "_id_" and np.issubdtype(frame[c].dtype,
                                                                          np.number)]
    return frame[columns].iloc[0].to_numpy(dtype=np.float64)


@dataclass
class ServerCheck:
    result: object  # irc.verify.VerifyResult (None when the check could not run)
    first_bad: str | None  # the first checked layer (addLayer order) beyond tolerance
    error: str | None = None  # why the check could not run (a failed action)

    @property
    def ok(self) -> bool:
        return self.error is None and self.result.ok

    def text(self) -> str:
        if self.error is not None:
            return ("check on the server could NOT run (the model and weights did load):\n"
                    f"    {self.error}\n    (irc deploy --no-check skips it)")
        lines = ["check on the server (dlScore of the folder's check set):", self.result.table()]
        if self.first_bad:
            lines.append(f"first diverging checked layer: {self.first_bad}")
        return "\n".join(lines)


def run_check(d, folder: Path, model: str, labels=None) -> ServerCheck | None:
    """Upload the check set, score it, compare; None when the folder has no check set."""
    from irc.verify import OutputComparison, VerifyResult, measure

    data = load_check_set(folder)
    if data is None:
        return None
    meta = data["meta"]
    n = int(meta["examples"])
    with tempfile.TemporaryDirectory(prefix="irc-check-") as tmp:
        path = Path(tmp) / "inputs.csv"  # written from the .npz: kept in check/ only if small
        write_inputs_csv(path, data["raw"], meta)
        d.upload(path, {"name": check_table(model), "replace": True}, table_vars(meta))
    comparisons, notes, predicted = [], [], []
    for entry in meta["checked"]:
        layer = entry["layer"]
        rows = []
        for example in range(1, n + 1):
            d.call("deepLearn.dlScore", **score_params(meta, model, example, layer))
            got = d.call("table.fetch", table={"name": f"{model}_check_layer"}, to=1,
                         index=False)
            rows.append(layer_values(got["Fetch"]))
            if entry["source_output"] and entry["kind"] == "output":
                scored = d.call("table.fetch", table={"name": f"{model}_check_scored"}, to=1,
                                index=False)["Fetch"]
                predicted.append(_predicted(scored))
        size = int(np.prod(entry["shape"]))
        if any(r.size != size for r in rows):
            notes.append(f"layer {layer}: the server's layer table held "
                         f"{sorted({r.size for r in rows})} values an example, the check set "
                         f"{size}")
            got_all = np.full((n, size + 1), np.nan)  # a shape mismatch: measured as such
        else:
            got_all = np.stack(rows)
        if entry["source_output"]:
            ref, label = data["outputs"][entry["source_output"]], entry["source_output"]
        else:
            ref, label = data["layers"][layer], f"[files] {layer}"
        a = measure(ref, got_all, meta["rtol"], meta["atol"])
        comparisons.append(OutputComparison(label, layer, tuple(entry["shape"]), a.max_abs,
                                            a.max_rel, a.ok, a.scaled, a.margin))
    notes += _class_note(data, meta, predicted, labels)
    notes.append("rows marked [files] compare with what the written files compute there (the "
                 "reference executor at compile time); the others with the source framework")
    result = VerifyResult(comparisons, meta["rtol"], meta["atol"], n, notes)
    first = next((c.viya_layer for c in comparisons if not c.ok), None)
    return ServerCheck(result, first)


def _predicted(frame) -> str | None:
    column = next((c for c in frame.columns if str(c).startswith("I_")), None)
    return None if column is None else str(frame[column].iloc[0]).strip()


def _class_note(data, meta, predicted, labels) -> list[str]:
    """The server's predicted class (I_<target>) against the source's argmax: said, not judged
    (ties are legitimate, and the layer values above are the criterion)."""
    outputs = [e for e in meta["checked"] if e["source_output"] and e["kind"] == "output"]
    if not predicted or len(outputs) != 1 or any(p is None for p in predicted):
        return []
    ref = data["outputs"][outputs[0]["source_output"]].reshape(int(meta["examples"]), -1)
    wanted = [str(labels[i]).strip() if labels else str(int(i)) for i in ref.argmax(axis=1)]
    agree = sum(p == w for p, w in zip(predicted, wanted))
    return [f"the server's predicted class (I_ column) is the source's top class in {agree} of "
            f"{len(wanted)} example(s)" + ("" if labels else " (read as neuron indices: no "
                                           "label table was given)")]


__all__ = ["CHECK_DIR", "ServerCheck", "check_table", "data_spec", "run_check", "score_params"]
