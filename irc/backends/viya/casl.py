"""model.sas: a CASL program (SAS Studio, PROC CAS) that builds the model and imports its weights.

It carries exactly the action parameters of model.json: ``buildModel``, one ``addLayer`` per
layer (same layer options, same ``srcLayers`` order) and ``dlImportModelWeights``. The weights
path and the caslib are SAS macro variables the user sets at the top; a label table is an
optional parameter left commented out.

CASL syntax used (PROC CAS): ``action set.name / key=value key=value;``, lists and
dictionaries in ``{...}``, strings quoted, booleans ``true``/``false``. Literal strings are
single-quoted (no macro resolution); only the two ``&IRC_...`` references are double-quoted.
"""
from __future__ import annotations

import math

WEIGHTS_VAR = "IRC_WEIGHTS_PATH"
CASLIB_VAR = "IRC_CASLIB"


def casl_value(value) -> str:
    """One Python value (from model.json) as a CASL constant."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"CASL has no constant for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(casl_value(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + " ".join(f"{k}={casl_value(v)}" for k, v in value.items()
                              if v is not None) + "}"
    raise TypeError(f"no CASL form for {type(value).__name__}")


def _action(name: str, params: dict, indent: str = "   ") -> str:
    """``action name / p1=v1 p2=v2 ...;`` with one parameter per line."""
    parts = [f"{k}={casl_value(v)}" for k, v in params.items() if v is not None]
    sep = "\n" + indent + "   "
    return f"{indent}action {name} /{sep}" + sep.join(parts) + ";"


def write_casl(payloads: dict) -> str:
    """The text of model.sas for a model.json dict (``ViyaModel.payloads()``)."""
    model = payloads["model_name"]
    weights = payloads["dlImportModelWeights"]
    source = str(payloads.get("source") or "its source model").replace("*/", "* /")
    lines = [
        f"/* {model}: SAS Viya deep-learning model written by irc {payloads.get('irc_version', '')}",
        f"   from {source}.",
        "",
        "   Run in SAS Studio with a CAS session (e.g. `cas mysess;`). The model table "
        f"'{model}' and",
        f"   the weights table '{weights['modelWeights']['name']}' are created in the "
        "session's active caslib.",
        f"   1. Put {weights['weightFilePath']} in a directory of a path caslib the CAS server "
        "reads.",
        f"   2. Set {CASLIB_VAR} to that caslib and {WEIGHTS_VAR} to the file's path relative "
        "to it.",
        "   3. Optional: to name the classes, load a table with columns label_id (int64, the",
        "      0-based output neuron) and label (char) and un-comment labelTable below. */",
        "",
        f"%let {CASLIB_VAR}=CASUSER;",
        f"%let {WEIGHTS_VAR}={weights['weightFilePath']};",
        "",
        "proc cas;",
        '   loadactionset "deepLearn";',
        "",
        _action("deepLearn.buildModel", payloads["buildModel"]),
        "",
    ]
    for call in payloads["addLayer"]:
        params = {"model": call["model"], "name": call["name"], "layer": call["layer"]}
        if call.get("srcLayers"):
            params["srcLayers"] = list(call["srcLayers"])
        lines.append(_action("deepLearn.addLayer", params))
    import_params = {"model": model, "modelWeights": weights["modelWeights"],
                     "formatType": weights["formatType"]}
    call = _action("deepLearn.dlImportModelWeights", import_params)[:-1]
    lines += [
        "",
        call,
        f'      weightFilePath="&{WEIGHTS_VAR}"',
        f'      caslib="&{CASLIB_VAR}"',
        "      /* labelTable={name='your_label_table'} */",
        "      ;",
        "",
        "   /* the model table and the weights table now exist */",
        f"   action table.tableExists / name={casl_value(model)};",
        f"   action table.tableExists / name={casl_value(weights['modelWeights']['name'])};",
        f"   action deepLearn.modelInfo / modelTable={{name={casl_value(model)}}};",
        "quit;",
        "",
    ]
    return "\n".join(lines)
