"""The materialised model table (path b, viya-target.md §4): five columns, server vocabulary.

Each kind's rows come from its codec (irc/backends/viya/kinds/codec.py, the same fields the
executor's reader decodes with). Only items whose key strings, labels and codes have been seen in
server-written tables are written. Anything else raises :class:`TableNotExpressible` naming the
layer and the item; the payloads in model.json remain the way to build such a model.
"""
from __future__ import annotations

import math

from irc.backends.viya import schema
from irc.backends.viya.kinds.codec import TableNotExpressible, write_rows

__all__ = ["COLUMNS", "TableNotExpressible", "table_frame", "table_rows", "write_table_csv"]

COLUMNS = ["_DLKey0_", "_DLKey1_", "_DLChrVal_", "_DLNumVal_", "_DLLayerID_"]

MODEL_TYPE = {"CNN": ("Convolutional Neural Network", 2), "RNN": ("Recurrent Neural Network", 3)}


def table_rows(model) -> list[tuple]:
    """Every row of the model table, or :class:`TableNotExpressible`."""
    if model.model_type not in MODEL_TYPE:
        raise TableNotExpressible(f"model type {model.model_type!r} has no known code")
    label, code = MODEL_TYPE[model.model_type]
    rows = [(model.name, "modeltype", label, float(code), math.nan)]
    ids = {layer.name: i for i, layer in enumerate(model.layers)}
    for layer_id, layer in enumerate(model.layers):
        rows += write_rows(schema.KINDS[layer.kind], layer, float(layer_id))
        for k, src in enumerate(layer.sources):
            rows.append((layer.name, f"srclayers.{k}", src, float(ids[src]), float(layer_id)))
    return rows


def table_frame(model):
    import pandas as pd

    return pd.DataFrame(table_rows(model), columns=COLUMNS)


def write_table_csv(model, path) -> None:
    """CSV as the corpus tables are written: missing numbers as empty fields.

    Plain csv rather than pandas: importing pandas costs more than writing the table.
    """
    import csv

    def number(value: float) -> str:
        return "" if math.isnan(value) else repr(float(value))

    rows = table_rows(model)  # first: a model it cannot express leaves no file behind
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for key0, key1, chrval, numval, layer_id in rows:
            writer.writerow([key0, key1, chrval, number(numval),
                             "" if math.isnan(layer_id) else str(int(layer_id))])
