"""The materialised model table (path b, viya-target.md §4): five columns, server vocabulary.

Only items whose key strings, labels and codes have been seen in server-written tables are
written. Anything else raises :class:`TableNotExpressible` naming the layer and the item; the
payloads in model.json remain the way to build such a model.
"""
from __future__ import annotations

import math

from irc.backends.viya import schema
from irc.errors import IrcError

COLUMNS = ["_DLKey0_", "_DLKey1_", "_DLChrVal_", "_DLNumVal_", "_DLLayerID_"]

MODEL_TYPE = {"CNN": ("Convolutional Neural Network", 2), "RNN": ("Recurrent Neural Network", 3)}
# Kinds and activations whose table label and code were seen in server tables (§4.3, §4.5);
# the rows written per kind are those of §4.4 (below). Groupconvo/residual/transconvo labels and
# the other activation codes are unknown (§4.6): such layers raise TableNotExpressible.
LAYER_TYPE = {k.name: (k.table.label, k.table.code, k.table.prefix) for k in schema.KINDS.values()
              if k.scope == schema.IN and k.table and k.table.label is not None}
ACT = {a.name: (a.label, a.code) for a in schema.ACTIVATIONS.values()
       if a.name != "auto" and a.label is not None}   # irc always sends act explicitly (§3.2)
XAVIER = ("Xavier", 1)


class TableNotExpressible(IrcError):
    kind = "model table"


class _Rows:
    def __init__(self, layer, layer_id):
        self.layer, self.layer_id = layer, layer_id
        self.prefix = LAYER_TYPE[layer.kind][2]
        self.rows = []

    def num(self, key, value):
        self.rows.append((self.layer.name, f"{self.prefix}.{key}", key.split(".")[-1],
                          float(value), self.layer_id))

    def enum(self, key, label_code):
        label, code = label_code
        self.rows.append((self.layer.name, f"{self.prefix}.{key}", label, float(code),
                          self.layer_id))

    def act(self):
        act = self.layer.options["act"]
        if act not in ACT:
            self.fail(f"activation {act!r} has no known table code")
        self.enum("act", ACT[act])

    def fail(self, item):
        raise TableNotExpressible(f"layer {self.layer.name!r} ({self.layer.kind}): {item}",
                                  hint="use the buildModel/addLayer payloads in model.json, "
                                       "which express every layer irc emits")

    def auto_padding(self):
        if "paddingheight" in self.layer.options:
            self.fail("explicit padding has no verified table encoding (only -1 = automatic)")
        for side in ("pad_bottom", "pad_left", "pad_right", "pad_top"):
            self.num(side, -1)

    def strides(self):
        sv, sh = self.layer.options["stridevertical"], self.layer.options["stridehorizontal"]
        if sv != sh:
            self.fail("the `stride` row for unequal strides is unknown")
        self.num("stride", sv)
        self.num("stride_height", sv)
        self.num("stride_width", sh)

    def training_defaults(self, with_dropout=True):
        # Values the server writes for options that do not matter at inference (§4.4).
        if with_dropout:
            self.num("dropout", 0)
        self.num("initbias", 0)
        self.num("mean", 0)
        self.num("std", 1)
        self.num("truncfact", 0)
        self.enum("init", XAVIER)


def _layer_rows(layer, layer_id) -> list[tuple]:
    if layer.kind not in LAYER_TYPE:
        raise TableNotExpressible(f"layer {layer.name!r}: layer type {layer.kind!r} has no "
                                  "known table label/code",
                                  hint="use the buildModel/addLayer payloads in model.json")
    label, code, _ = LAYER_TYPE[layer.kind]
    r = _Rows(layer, layer_id)
    if layer.kind == "recurrent":
        # Known: layertype 6, rnntype LSTM = 1, rnnoutputtype same-length = 1 (§4.5). Not known
        # (§4.6): rnnopts.peephole for imported weights (which have no peepholes), the codes of
        # RNN/GRU, of the encoding output type and of the tanh/sigmoid activations.
        r.fail("rnnopts.peephole has no verified value for imported recurrent weights "
               "(viya-target.md §4.6)")
    r.rows.append((layer.name, "layertype", label, float(code), layer_id))
    o = layer.options
    if layer.kind == "input":
        for key in ("nchannels", "width", "height", "scale"):
            r.num(key, o[key])
        r.num("dropout", 0)
        for i, v in enumerate(o["offsets"]):
            r.rows.append((layer.name, f"inputopts.offsets.{i}", "offsets", float(v), layer_id))
        if "normstds" in o:
            r.fail("normStds rows were never observed in a server table")
        r.enum("crop", ("No cropping", 1))
        r.enum("flip", ("No flipping", 1))
        r.enum("mutation", ("No mutations", 1))
        r.enum("std", ("No Standardization", 2))
    elif layer.kind == "convo":
        r.num("nfilters", o["nfilters"])
        r.num("width", o["width"])
        r.num("height", o["height"])
        r.strides()
        r.num("no_bias", 0 if o["includebias"] else 1)
        r.training_defaults()
        r.auto_padding()
        r.act()
    elif layer.kind == "pool":
        if o["pool"] != "max":
            r.fail(f"pooling type {o['pool']!r} has no known table code")
        r.num("width", o["width"])
        r.num("height", o["height"])
        r.strides()
        r.num("dropout", 0)
        r.auto_padding()
        r.enum("poolingtype", ("Max Pooling", 1))
    elif layer.kind in ("fc", "output"):
        r.num("n", o["n"])
        r.num("no_bias", 0 if o["includebias"] else 1)
        r.training_defaults(with_dropout=layer.kind == "fc")
        r.act()
        if layer.kind == "output":
            r.num("noFullConnect", 0 if o["fullconnect"] else 1)
            r.num("target_std", 2)
            r.enum("error", ("Automatic", 0))
    elif layer.kind == "batchnorm":
        r.act()
    elif layer.kind == "concat":
        r.act()
        r.num("concat", 0)
    elif layer.kind == "reshape":
        for key in ("width", "height", "depth"):
            r.num(key, o[key])
        r.num("reshapeorder", 0)
        r.act()
    return r.rows


def table_rows(model) -> list[tuple]:
    """Every row of the model table, or :class:`TableNotExpressible`."""
    if model.model_type not in MODEL_TYPE:
        raise TableNotExpressible(f"model type {model.model_type!r} has no known code")
    label, code = MODEL_TYPE[model.model_type]
    rows = [(model.name, "modeltype", label, float(code), math.nan)]
    ids = {layer.name: i for i, layer in enumerate(model.layers)}
    for layer_id, layer in enumerate(model.layers):
        rows += _layer_rows(layer, float(layer_id))
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
