"""Record the deepLearn.dlScore calls SAS's own Python client (DLPy 1.3) makes, offline.

Not a test: a script run once with a Python that has DLPy (it needs numpy 1.x, so it lives in
its own virtualenv, never in the project's):

    python -m venv /tmp/dlpy && /tmp/dlpy/bin/pip install sas-dlpy==1.3.0 'numpy<2'
    PYTHONPATH=. /tmp/dlpy/bin/python tests/deploy/dlpy_record.py > tests/deploy/dlpy_dlscore.json

DLPy talks to CAS only through ``conn.retrieve(action, **params)``, ``conn.CASTable`` and a few
table helpers, so a connection that records each call and answers with empty results lets its
``Model.predict``, ``Model.evaluate``, ``Model.get_features`` and ``Model.get_feature_maps``
run as far as their dlScore call. The recorded parameters (DLPy's spelling, its values) are
what tests/deploy/test_check.py compares irc's own dlScore call with.
"""
from __future__ import annotations

import json
import sys

import pandas as pd


class _Results(dict):
    severity = 0
    status = None
    messages: list = []

    def __getattr__(self, name):
        if name in self:
            return self[name]
        return None


class _Table(dict):
    """What DLPy reads of a CASTable: its name, its parameters and its column names."""

    def __init__(self, name, columns=("_id_", "x_0", "x_1"), **params):
        super().__init__(name=name, **params)
        self.name = name
        self.columns = pd.Index(list(columns))

    def to_table_params(self):
        return dict(self)

    def columninfo(self):
        return _Results(ColumnInfo=pd.DataFrame({"Column": ["_LayerAct_1_IMG_0_",
                                                            "_LayerAct_1_IMG_1_"]}))

    def as_matrix(self):
        import numpy as np

        return np.zeros((1, 2))

    def __getitem__(self, key):
        if key in ("name",) or key in self.keys():
            return dict.__getitem__(self, key)
        return self  # a column selection: DLPy only calls .as_matrix() on it

    def ravel(self):
        return self


class RecordingConnection:
    def __init__(self):
        self.calls = []

    def loadactionset(self, **params):
        return _Results()

    def has_actionset(self, name):
        return True

    def tableexists(self, name):
        return _Results(exists=1)

    def CASTable(self, name=None, **params):  # noqa: N802 - swat's name
        return _Table(name, **params)

    def crosstab(self, **params):
        return _Results()

    def retrieve(self, _name_, **params):
        params.pop("_messagelevel", None)
        self.calls.append((_name_, params))
        return _Results(ScoreInfo=pd.DataFrame())


def _plain(value):
    """JSON form of DLPy's parameter values (tables as their parameters)."""
    if isinstance(value, _Table):  # swat sends a CASTable as its table parameters
        return dict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def record() -> dict:
    import dlpy.model
    from dlpy.model import Model

    # DLPy names its result tables randomly; a fixed name keeps the record reproducible
    dlpy.model.random_name = lambda name="", length=6: f"{name}_RANDOM"

    out = {"dlpy": None, "calls": {}}
    import dlpy

    out["dlpy"] = getattr(dlpy, "__version__", "1.3.0")
    runs = {
        "predict": lambda m: m.predict("check_in"),
        "predict_layer_out": lambda m: m.predict("check_in", layer_out="check_layers",
                                                 layers=["conv1", "fc1"]),
        "evaluate": lambda m: m.evaluate("check_in"),
        "get_features": lambda m: m.get_features("check_in", dense_layer="fc1",
                                                 target="_id_"),
    }
    for key, run in runs.items():
        for model_type in ("CNN", "RNN"):
            conn = RecordingConnection()
            model = Model(conn, model_table="m")
            model.model_type = model_type
            try:
                run(model)
            except Exception as exc:  # DLPy goes on past dlScore with server results we lack
                out.setdefault("stopped_after_dlscore", {})[f"{key}/{model_type}"] = \
                    type(exc).__name__
            scores = [p for name, p in conn.calls if name.lower() == "deeplearn.dlscore"]
            out["calls"][f"{key}/{model_type}"] = [_plain(p) for p in scores]
    return out


if __name__ == "__main__":
    json.dump(record(), sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")
