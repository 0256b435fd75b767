"""A stand-in for a swat connection (``swat.CAS``) that never touches a network.

It answers ``retrieve(action, **params)`` and ``upload(path, importoptions=, casout=)`` the way
swat does (real ``swat.cas.results.CASResults`` with ``severity``, ``status``, ``messages``),
records every call, and CHECKS what irc sends against viya-target.md: action and parameter
names (§3.1, §7.1, the table.* actions), each layer's option keys against §3.2 (emit + also
accepted) and the "emit" keys being present, buildModel's type against the layers (§3.1: RNN
when a recurrent layer is present), and the HDF5 file against §5.2/§5.3 (layer_names = the
weighted layers in addLayer order, each kind's datasets in order, kernel shapes). A violation
raises StandInViolation, a BaseException that no ``except Exception`` in irc can swallow, and
is also kept in ``violations``. It keeps a small server state: caslibs (a caslib whose path is a local directory acts as a
file system shared with the client), files, tables and models; dlImportModelWeights reads the
HDF5 and matches its layer names to the model's layers, as the server does.
"""
from __future__ import annotations

import contextlib
import csv
import math
import re
from pathlib import Path

import h5py
import pandas as pd
import swat
from swat.cas.results import CASResults

from tests.deploy.fake_score import dlpy_dlscore_params, dlscore, fetch

DLPY_DLSCORE_PARAMS = dlpy_dlscore_params()
SIGNATURES = {  # action -> (accepted parameters, required ones); CAS names are case-insensitive
    "builtins.loadactionset": ({"actionset"}, {"actionset"}),
    "deeplearn.buildmodel": ({"model", "type"}, {"model"}),
    "deeplearn.addlayer": ({"model", "name", "layer", "srclayers", "replace"},
                           {"model", "name", "layer"}),
    "deeplearn.dlimportmodelweights": ({"model", "modelweights", "formattype", "weightfilepath",
                                        "caslib", "labeltable", "gpumodel"},
                                       {"model", "modelweights", "formattype", "weightfilepath"}),
    "table.caslibinfo": ({"active", "caslib", "showhidden", "srctype", "verbose"}, set()),
    "table.fileinfo": ({"caslib", "path", "allfiles", "includedirectories", "kbytes",
                        "wildignore", "wildstart"}, set()),
    "table.tableexists": ({"caslib", "checkexternal", "name"}, {"name"}),
    "simple.numrows": ({"table"}, {"table"}),
    "table.save": ({"table", "name", "caslib", "replace"}, {"table", "name"}),
    "table.attribute": ({"task", "name", "caslib", "attrtable"}, {"task", "name"}),
    "table.upload": ({"casout", "importoptions"}, {"importoptions"}),
    # every parameter DLPy 1.3 sends to dlScore (dlpy_dlscore.json), plus dataSpecs (DLPy's
    # DataSpec, which binds table columns to the input layer)
    "deeplearn.dlscore": (DLPY_DLSCORE_PARAMS | {"dataspecs"}, {"model", "initweights", "table"}),
    "table.fetch": ({"table", "to", "from", "index", "maxrows", "fetchvars", "sortby"},
                    {"table"}),
}
ALIASES = {"convolution": "convo", "pooling": "pool", "fullconnect": "fc"}
_CONVO = {"nfilters", "width", "height", "stridevertical", "stridehorizontal", "act", "includebias"}
_CONVO_ALSO = {"paddingheight", "paddingwidth", "stride", "padding", "init", "std", "mean",
               "truncationfactor", "initbias", "dropout", "fcmpact", "nobias", "pad", "padheight",
               "padwidth"}
EMIT = {  # viya-target.md §3.2 "emit" (normstds and explicit padding are conditional)
    "input": {"nchannels", "width", "height", "scale", "offsets", "randomflip", "randomcrop",
              "randommutation"},
    "convo": _CONVO, "groupconvo": _CONVO | {"ngroups"},
    "transconvo": _CONVO | {"outputpaddingheight", "outputpaddingwidth"},
    "pool": {"width", "height", "stridevertical", "stridehorizontal", "pool"},
    "fc": {"n", "act", "includebias"},
    "output": {"n", "act", "includebias", "fullconnect", "error"},
    "batchnorm": {"act"}, "residual": {"act"}, "concat": {"act"},
    "reshape": {"width", "height", "depth", "act"},
    "recurrent": {"n", "rnntype", "outputtype", "reversed", "act"},
    # DLPy's Detection layer (the parameters its to_model_params sends; no §3.2 row)
    "detection": {"act", "detectionmodeltype", "softmaxforclassprob", "coordtype",
                  "classnumber", "gridnumber", "predictionspergrid", "detectionthreshold",
                  "iouthreshold", "maxboxes"},
}
ALSO = {  # §3.2 "also accepted"
    "input": {"normstds", "std", "nominals", "dropout", "offsetstd"},
    "convo": _CONVO_ALSO, "groupconvo": _CONVO_ALSO, "transconvo": _CONVO_ALSO | {"outputpadding"},
    "pool": {"paddingheight", "paddingwidth", "stride", "padding", "dropout"},
    "fc": {"init", "std", "mean", "truncationfactor", "initbias", "dropout", "fcmpact", "nobias"},
    "output": {"targetstd", "nsoftmaxsamples", "fcmperr", "init", "std", "mean",
               "truncationfactor", "initbias"},
    "batchnorm": {"fcmpact"}, "residual": {"fcmpact"}, "concat": {"fcmpact"},
    "reshape": {"order", "fcmpact"},
    "recurrent": {"maxoutputlength", "init", "std", "mean", "truncationfactor", "dropout",
                  "initbias"},
    "detection": {"anchors", "dosqrt", "coordscale", "objectscale", "predictionnotaobjectscale",
                  "classscale", "randomboxes", "matchanchorsize", "numtoforcecoord",
                  "forcecoordscale", "maxlabelperimage"},
}
ACTS = {"identity", "relu", "rectifier", "tanh", "sigmoid", "logistic", "softplus", "elu", "leaky",
        "auto", "fcmp", "exp", "sin", "cos"}
WEIGHTED = {"convo", "groupconvo", "fc", "batchnorm", "recurrent"}  # §5.2 (and output+fc)
DATASETS = {  # §5.3, in canonical order; bias only with includebias
    "convo": ("kernel", "bias"), "groupconvo": ("kernel", "bias"), "fc": ("kernel", "bias"),
    "output": ("kernel", "bias"), "batchnorm": ("gamma", "beta", "moving_mean", "moving_variance"),
    "recurrent": ("kernel", "recurrent_kernel", "bias"),
}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # §5.5


class StandInViolation(BaseException):
    """irc sent what viya-target.md does not allow; not an Exception, so nothing swallows it."""
LAYER_CODES = {1: "input", 2: "convo", 3: "pool", 4: "fc", 5: "output", 6: "recurrent",
               8: "batchnorm", 9: "residual", 10: "concat", 11: "detection", 14: "reshape"}
COLUMN_TYPES = {"varchar", "char", "double", "int64", "int32"}


def results(severity=0, messages=(), status=None, **values) -> CASResults:
    out = CASResults(values)
    out.severity, out.status = severity, status
    out.status_code = 0 if severity < 2 else 2720406
    out.messages = list(messages)
    return out


def _lower(params: dict) -> dict:
    return {k.lower(): v for k, v in params.items()}


class FakeCAS:
    def __init__(self, *, caslibs=None, active="CASUSER", fail=None, missing_actionset=False,
                 weights_missing=False, raise_on_error=False, sees_local=True):
        self.caslibs = {name.upper(): str(path) for name, path in
                        (caslibs or {"CASUSER": "/cas/data/casuser/"}).items()}
        self.active = active.upper()
        self.fail = {a.lower() for a in ([fail] if isinstance(fail, str) else fail or [])}
        self.missing_actionset, self.weights_missing = missing_actionset, weights_missing
        self.raise_on_error, self.sees_local = raise_on_error, sees_local
        self.calls: list[tuple[str, dict]] = []
        self.files: dict[tuple[str, str], bytes] = {}  # server-only files: (caslib, rel)
        self.tables: dict[str, pd.DataFrame] = {}
        self.models: dict[str, dict] = {}
        self.loaded: set[str] = set()
        self.closed = False
        self.violations: list[str] = []

    # ---- the test's side -------------------------------------------------------------------
    def put_file(self, caslib: str, rel: str, data: bytes) -> None:
        self.files[(caslib.upper(), rel)] = data

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def params(self, action: str) -> list[dict]:
        return [p for name, p in self.calls if name.lower() == action.lower()]

    def close(self):
        self.closed = True

    # ---- swat's side -----------------------------------------------------------------------
    def retrieve(self, _name_, **params):
        with self._loud():
            return self._retrieve(_name_, **params)

    def upload(self, data, importoptions=None, casout=None, **kwargs):
        with self._loud():
            return self._upload_call(data, importoptions, casout, **kwargs)

    @contextlib.contextmanager
    def _loud(self):
        try:
            yield
        except AssertionError as exc:
            self.violations.append(str(exc))
            raise StandInViolation(str(exc)) from exc

    def _retrieve(self, _name_, **params):
        self.calls.append((_name_, params))
        action = _name_.lower()
        assert action in SIGNATURES, f"irc called {_name_}, which the stand-in does not know"
        self._check_params(action, params)
        if action.startswith("deeplearn.") and "deeplearn" not in self.loaded:
            return self._error(_name_, [f"ERROR: Action '{_name_}' was not found."])
        if action in self.fail:
            return self._error(_name_, [f"ERROR: injected failure of {_name_}.",
                                        "ERROR: The action stopped due to errors."])
        return getattr(self, "_" + action.replace(".", "_"))(_lower(params))

    def _upload_call(self, data, importoptions=None, casout=None, **kwargs):
        assert not kwargs, f"unexpected upload arguments {kwargs}"
        params = {"importoptions": importoptions, "casout": casout}
        self.calls.append(("table.upload", params))
        assert isinstance(data, str) and Path(data).is_file(), "upload needs a client file path"
        return self._upload(Path(data), _lower(importoptions or {}), _lower(casout or {}))

    def _error(self, action, messages):
        if self.raise_on_error:  # swat with cas.exception_on_severity=2 raises this
            raise swat.SWATCASActionError(f"{action}: {messages[0]}", None, self,
                                          results(2, messages))
        return results(2, messages, status="The action stopped due to errors.")

    def _check_params(self, action, params):
        accepted, required = SIGNATURES[action]
        given = _lower(params)
        unknown = set(given) - accepted
        assert not unknown, f"{action}: parameters {sorted(unknown)} are not in its signature"
        assert required <= set(given), f"{action}: missing {sorted(required - set(given))}"
        if action == "deeplearn.addlayer":
            self._check_layer(given)

    def _check_layer(self, p):
        layer = _lower(p["layer"])
        kind = ALIASES.get(str(layer.get("type")).lower(), str(layer.get("type")).lower())
        assert kind in EMIT, f"layer {p['name']}: type {layer.get('type')!r} is not in §3.2"
        keys = set(layer) - {"type"}
        unknown = keys - EMIT[kind] - ALSO[kind]
        assert not unknown, f"layer {p['name']} ({kind}): keys {sorted(unknown)} not in §3.2"
        missing = EMIT[kind] - keys
        assert not missing, f"layer {p['name']} ({kind}): irc must send {sorted(missing)}"
        assert ("paddingheight" in keys) == ("paddingwidth" in keys), "padding: send both axes"
        if "act" in layer:
            allowed = ACTS | ({"softmax"} if kind == "output" else set())
            assert layer["act"] in allowed, f"layer {p['name']}: act {layer['act']!r}"
        src = p.get("srclayers")
        if kind == "input":
            assert not src, "the input layer has no srcLayers"
        else:
            assert src and isinstance(src, list), f"layer {p['name']}: srcLayers must be a list"
        if kind in ("residual", "concat"):
            assert len(src) >= 2, f"{kind} layer {p['name']} needs at least 2 srcLayers"

    # ---- actions ---------------------------------------------------------------------------
    def _builtins_loadactionset(self, p):
        if self.missing_actionset:
            return self._error("builtins.loadActionSet", [
                f"ERROR: Action set '{p['actionset']}' was not loaded due to errors."])
        self.loaded.add(p["actionset"].lower())
        return results(actionset=p["actionset"])

    def _table_caslibinfo(self, p):
        name = (p.get("caslib") or self.active).upper()
        if name not in self.caslibs:
            return self._error("table.caslibInfo", [f"ERROR: Caslib '{name}' does not exist."])
        frame = pd.DataFrame([{"Name": name, "Type": "PATH", "Description": "",
                               "Path": self.caslibs[name], "Definition": "", "Subdirs": 1.0,
                               "Local": 0.0, "Active": float(name == self.active),
                               "Personal": 0.0, "Hidden": 0.0, "Transient": 0.0}])
        return results(CASLibInfo=frame)

    def _server_file(self, caslib, rel):
        """The bytes the server reads for caslib/rel, or None."""
        root = Path(self.caslibs[caslib])
        if self.sees_local and root.is_dir():
            target = root / rel
            return target.read_bytes() if target.is_file() else None
        return self.files.get((caslib, rel))

    def _table_fileinfo(self, p):
        caslib = (p.get("caslib") or self.active).upper()
        assert p.get("allfiles") is True, "an .h5 file is only listed with allFiles=True"
        folder = (p.get("path") or "").strip("/")
        root = Path(self.caslibs[caslib])
        if self.sees_local and root.is_dir():
            base = root / folder if folder else root
            found = {f.name: f.stat().st_size for f in base.iterdir() if f.is_file()} \
                if base.is_dir() else {}
        else:
            found = {rel.rpartition("/")[2]: len(data) for (lib, rel), data in self.files.items()
                     if lib == caslib and rel.rpartition("/")[0] == folder}
        frame = pd.DataFrame([{"Permission": "-rw-r--r--", "Owner": "cas", "Group": "sas",
                               "Name": name, "Size": size, "Encryption": "NONE",
                               "Time": "", "ModTime": 0.0} for name, size in found.items()])
        return results(FileInfo=frame)

    def _deeplearn_buildmodel(self, p):
        spec = p["model"] if isinstance(p["model"], dict) else {"name": p["model"]}
        name = spec["name"].lower()
        if name in self.models and not spec.get("replace"):
            return self._error("deepLearn.buildModel", [f"ERROR: The table {name} exists."])
        self.models[name] = {"type": p.get("type", "CNN"), "layers": []}
        return results(OutputCasTables=pd.DataFrame([{"Name": name, "Rows": 1}]))

    def _deeplearn_addlayer(self, p):
        model = self.models.get(str(p["model"]).lower())
        if model is None:
            return self._error("deepLearn.addLayer", [f"ERROR: Model {p['model']} not found."])
        layers = model["layers"]
        names = [layer["name"] for layer in layers]
        if p["name"].lower() in names:
            return self._error("deepLearn.addLayer", [f"ERROR: Layer {p['name']} exists."])
        for src in p.get("srclayers") or []:
            if src.lower() not in names:
                return self._error("deepLearn.addLayer", [f"ERROR: Layer {src} not found."])
        layer = _lower(p["layer"])
        kind = ALIASES.get(layer["type"].lower(), layer["type"].lower())
        if not layers and kind != "input":
            return self._error("deepLearn.addLayer", ["ERROR: The first layer must be input."])
        model.setdefault("calls", []).append({"name": p["name"], "layer": dict(p["layer"]),
                                              "srcLayers": list(p.get("srclayers") or [])})
        layers.append({"name": p["name"].lower(), "kind": kind, "n": layer.get("n"),
                       "options": layer,
                       "src": [s.lower() for s in p.get("srclayers") or []],
                       "weighted": kind in WEIGHTED or (kind == "output"
                                                        and layer.get("fullconnect", True))})
        return results()

    def _deeplearn_dlimportmodelweights(self, p):
        model = self.models.get(str(p["model"]).lower())
        if model is None:
            return self._error("dlImportModelWeights", [f"ERROR: Model {p['model']} not found."])
        assert p["formattype"] == "KERAS", "irc always writes formatType='KERAS'"
        caslib = (p.get("caslib") or self.active).upper()
        data = None if self.weights_missing else self._server_file(caslib, p["weightfilepath"])
        if data is None:
            return self._error("dlImportModelWeights", [
                "ERROR: The specified Keras model file was not found.",
                "ERROR: The action stopped due to errors."])
        if "labeltable" in p:
            labels = self.tables.get(p["labeltable"]["name"].lower())
            assert labels is not None, "the label table was not uploaded"
            assert list(labels.columns) == ["label_id", "label"]
            assert labels["label_id"].tolist() == list(range(len(labels)))
            n = [layer for layer in model["layers"] if layer["kind"] == "output"]
            assert not n or n[-1].get("n") in (None, len(labels)), "one label per neuron"
        import io

        recurrent = any(layer["kind"] == "recurrent" for layer in model["layers"])
        kinds = {"RNN", "RECURRENT NEURAL NETWORK"} if recurrent else \
            {"CNN", "CONVOLUTIONAL NEURAL NETWORK"}  # buildModel's word, or the table's row
        assert str(model["type"]).upper() in kinds, \
            f"§3.1: buildModel type {model['type']!r} for a model " \
            f"{'with' if recurrent else 'without'} recurrent layers"
        with h5py.File(io.BytesIO(data), "r") as f:
            listed = [n.decode() for n in f.attrs["layer_names"]]
            wanted = [layer["name"] for layer in model["layers"] if layer["weighted"]]
            if listed != wanted:
                return self._error("dlImportModelWeights", [
                    "ERROR: Model layer name not found in Keras definition."])
            for layer in model["layers"]:
                if layer["weighted"] and "options" in layer:
                    _check_datasets(f, layer)
            sizes = []
            f.visititems(lambda _, o: sizes.append(o.size) if isinstance(o, h5py.Dataset)
                         else None)
        name = p["modelweights"]["name"].lower()
        self.tables[name] = pd.DataFrame({"_LayerID_": [0.0] * int(sum(sizes))})
        # what dlScore computes with (tests/deploy/fake_score.py): the bytes the server read
        model.update(h5=data, weights=name, labels=None if "labeltable" not in p else
                     self.tables[p["labeltable"]["name"].lower()]["label"].tolist())
        return results(OutputCasTables=pd.DataFrame([{"Name": name, "Rows": int(sum(sizes))}]))

    def _table_tableexists(self, p):
        name = p["name"].lower()
        return results(exists=int(name in self.tables or name in self.models))

    def _simple_numrows(self, p):
        table = p["table"] if isinstance(p["table"], dict) else {"name": p["table"]}
        name = table["name"].lower()
        where = re.fullmatch(r"\s*(\w+)\s*=\s*'([^']*)'\s*", table.get("where", "") or "x='x'")
        assert where, f"simple.numRows: where {table.get('where')!r} not understood"
        if name in self.models and "where" in table:
            assert where.groups() == ("_DLKey1_", "layertype")
            return results(numrows=len(self.models[name]["layers"]))
        frame = self.tables.get(name)
        if frame is None:
            return self._error("simple.numRows", [f"ERROR: Table {name} not found."])
        if "where" in table:
            frame = frame[frame[where.group(1)] == where.group(2)]
        return results(numrows=len(frame))

    def _deeplearn_dlscore(self, p):
        return results(**dlscore(self, p))

    def _table_fetch(self, p):
        return results(Fetch=fetch(self, p))

    def _table_attribute(self, p):
        assert p["task"] == "convert" and p["name"].lower() in self.tables
        self.tables[p["attrtable"].lower()] = pd.DataFrame({"_Key_": ["labels"]})
        return results()

    def _table_save(self, p):
        table = p["table"]["name"].lower()
        if table not in self.tables and table not in self.models:
            return self._error("table.save", [f"ERROR: Table {table} not found."])
        key = ((p.get("caslib") or self.active).upper(), p["name"])
        if key in self.files and not p.get("replace"):
            return self._error("table.save", [f"ERROR: The file {p['name']} exists."])
        self.files[key] = b"SASHDAT"
        return results(caslib=key[0], name=p["name"])

    def _upload(self, path: Path, options: dict, casout: dict):
        assert set(options) <= {"filetype", "vars", "getnames", "delimiter", "encoding"}
        assert set(casout) <= {"name", "replace", "caslib", "promote", "label"}
        assert options.get("filetype") == "csv" and casout.get("name")
        vars_ = options["vars"]
        for var in vars_:
            assert var["type"] in COLUMN_TYPES, f"column type {var['type']!r}"
            assert var["type"] != "char" or int(var["length"]) >= 1, "char needs a length"
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows[0] == [v["name"] for v in vars_], "importoptions vars must name every column"
        columns = {v["name"]: [] for v in vars_}
        for row in rows[1:]:
            for var, cell in zip(vars_, row):
                columns[var["name"]].append(_cast(var, cell))
        frame = pd.DataFrame(columns)
        name = casout["name"].lower()
        if (name in self.tables or name in self.models) and not casout.get("replace"):
            return self._error("table.upload", [f"ERROR: The table {name} already exists."])
        self.tables[name] = frame
        if list(frame.columns)[:2] == ["_DLKey0_", "_DLKey1_"]:
            self.models[name] = {**_model_from_rows(frame), "table": frame}
        return results(caslib=self.active, tableName=name.upper(), casTable=name)


def _check_datasets(f: h5py.File, layer: dict) -> None:
    """§5.2/§5.3: /<L> lists <L>/<param>:0 in canonical order; kernel shapes fit the layer."""
    name, kind, opts = layer["name"], layer["kind"], layer["options"]
    params = DATASETS[kind]
    if kind in ("convo", "groupconvo", "fc", "output") and opts.get("includebias") is False:
        params = params[:1]
    names = [n.decode() for n in f[name].attrs["weight_names"]]
    assert names == [f"{name}/{p}:0" for p in params], f"§5.3 {kind} {name}: {names}"
    data = {p: f[name][name][f"{p}:0"] for p in params}
    assert all(d.dtype.kind == "f" for d in data.values()), f"§5.2 {name}: float datasets"
    kernel = data.get("kernel")
    if kind in ("convo", "groupconvo"):
        o, _, kh, kw = kernel.shape
        assert (o, kh, kw) == (opts["nfilters"], opts["height"], opts["width"]), \
            f"§5.3 {name}: kernel (O, I, kH, kW) {kernel.shape} for {opts}"
    elif kind in ("fc", "output"):
        assert kernel.ndim == 2 and kernel.shape[0] == opts["n"], f"§5.3 {name}: (n, in)"
    elif kind == "batchnorm":
        assert len({d.shape for d in data.values()}) == 1, f"§5.3 {name}: four (C) datasets"
    elif kind == "recurrent":
        gn = GATES[str(opts["rnntype"]).lower()] * opts["n"]
        assert kernel.shape[1] == gn, f"§5.5 {name}: kernel (d, G*n) {kernel.shape}"
        assert data["recurrent_kernel"].shape == (opts["n"], gn), f"§5.5 {name}: (n, G*n)"
        two_rows = ((2, gn),) if str(opts["rnntype"]).lower() == "gru" else ()  # reset-after
        assert data["bias"].shape in ((gn,), *two_rows), f"§5.5 {name}: bias {data['bias'].shape}"


def _cast(var, cell):
    kind = var["type"]
    if kind == "double":
        return math.nan if cell == "" else float(cell)
    if kind in ("int64", "int32"):
        assert re.fullmatch(r"-?\d+", cell), f"{var['name']}: {cell!r} is not an integer"
        return int(cell)
    if kind == "char":
        assert len(cell.encode()) <= int(var["length"]), f"{cell!r} is longer than the column"
    return cell


def _model_from_rows(frame) -> dict:
    """A model read back from an uploaded five-column model table."""
    types = frame[frame["_DLKey1_"] == "layertype"].sort_values("_DLLayerID_")
    layers = []
    for _, row in types.iterrows():
        kind = LAYER_CODES[int(row["_DLNumVal_"])]
        opts = frame[frame["_DLKey0_"] == row["_DLKey0_"]]
        nofc = opts[opts["_DLKey1_"] == "outputopts.noFullConnect"]["_DLNumVal_"].tolist()
        n = opts[opts["_DLKey1_"].isin(["outputopts.n"])]["_DLNumVal_"].tolist()
        layer = {"name": row["_DLKey0_"], "kind": kind,
                 "weighted": kind in WEIGHTED or (kind == "output" and nofc != [1.0])}
        if n:
            layer["n"] = int(n[0])
        layers.append(layer)
    model_type = frame[frame["_DLKey1_"] == "modeltype"]["_DLChrVal_"].tolist()
    assert len(model_type) == 1, "the model table needs exactly one modeltype row"
    return {"type": model_type[0], "layers": layers}


def factory(outcome="ok", conn=None, seen=None):
    """A stand-in for ``swat.CAS``: returns ``conn`` or raises what swat raises."""
    texts = {
        "unreachable": "Could not connect to 'viya.example.com' on port 5570.",
        "no_credentials": "Either username and password, or OAuth token in the password "
                          "parameter must be specified.",
        "refused": "HTTP 401 Unauthorized: login of alice with password secretpw failed",
    }

    def cas(hostname, port, **kwargs):
        if seen is not None:
            seen.append((hostname, port, kwargs, swat.get_option("cas.connection_retries")))
        if outcome != "ok":
            raise swat.SWATError(texts[outcome])
        return conn if conn is not None else FakeCAS()

    return cas
