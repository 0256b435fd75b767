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
CHECK_VAR = "IRC_CHECK_PATH"
SPEC_VAR = "irc_spec"  # the CASL variable holding dlScore's dataSpecs
CASL_CHECK_VALUES = 2048  # reference values a layer may write into the program to be checked


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


def write_casl(payloads: dict, check: dict | None = None) -> str:
    """The text of model.sas for a model.json dict (``ViyaModel.payloads()``); with the
    folder's check set (checkset.load_check_set), also the check that scores it."""
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
        *([f"%let {CHECK_VAR}=check/inputs.csv;"] if check is not None
          and check["meta"].get("inputs_csv") else []),
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
    ]
    if check is not None and check["meta"].get("inputs_csv"):
        lines += check_section(model, check)
    elif check is not None:
        lines += ["", "   /* The check set's inputs are too large for a CSV here: run "
                      "`irc deploy --check`, which uploads them. */"]
    lines += ["quit;", ""]
    return "\n".join(lines)


def check_section(model: str, check: dict) -> list[str]:
    """The check in CASL: load check/inputs.csv, score each example at each checked layer with
    the same dlScore parameters as `irc deploy --check`, and print max |d|, the output's scale
    and the verdict by the same criterion (|d| <= atol + rtol * max|ref|). Layers whose
    reference would put more than CASL_CHECK_VALUES numbers into the program are left to
    `irc deploy --check`."""
    from irc.backends.viya.servercheck import check_table, score_params

    meta = check["meta"]
    n, rtol, atol = int(meta["examples"]), meta["rtol"], meta["atol"]
    lines = [
        "",
        "   /* The check (what `irc deploy --check` does): score the verification examples",
        f"      irc stored in check/ and compare. Put check/inputs.csv in caslib {CASLIB_VAR}",
        f"      and set {CHECK_VAR} to its path relative to it. */",
        _action("table.loadTable", {"caslib": f"&{CASLIB_VAR}", "path": f"&{CHECK_VAR}",
                                    "casOut": {"name": check_table(model), "replace": True},
                                    "importOptions": {"fileType": "csv", "getNames": True}}
                ).replace(f"'&{CASLIB_VAR}'", f'"&{CASLIB_VAR}"')
        .replace(f"'&{CHECK_VAR}'", f'"&{CHECK_VAR}"'),
        "   irc_fail = '';",
        # the input binding, written once: it names every input column
        f"   {SPEC_VAR} = {casl_value(score_params(meta, model, 1, '')['dataSpecs'])};",
    ]
    checked = 0
    for entry in meta["checked"]:
        layer = entry["layer"]
        ref = (check["outputs"][entry["source_output"]] if entry["source_output"]
               else check["layers"][layer]).reshape(n, -1)
        size = ref.shape[1]
        what = f"source output {entry['source_output']}" if entry["source_output"] else \
            "what the written files compute"
        if ref.size > CASL_CHECK_VALUES:
            lines += ["", f"   /* layer {layer}: {ref.size} reference values, left to "
                          "`irc deploy --check` */"]
            continue
        checked += 1
        lines += ["", f"   /* layer {layer} against {what} */",
                  f"   irc_ref = {casl_value([float(v) for v in ref.ravel()])};",
                  "   irc_maxabs = 0; irc_scale = 0;"]
        for k in range(1, n + 1):
            params = score_params(meta, model, k, layer)
            lines += [_action("deepLearn.dlScore", params).replace(
                          "dataSpecs=" + casl_value(params["dataSpecs"]), "dataSpecs=" + SPEC_VAR),
                      f"   action table.fetch result=irc_got / table={{name="
                      f"{casl_value(model + '_check_layer')}}} to=1 index=false;",
                      "   irc_row = irc_got.Fetch;",
                      f"   do irc_j = 1 to {size};",
                      f"      irc_r = irc_ref[{(k - 1) * size} + irc_j];",
                      "      irc_maxabs = max(irc_maxabs, abs(irc_row[1, irc_j] - irc_r));",
                      "      irc_scale = max(irc_scale, abs(irc_r));",
                      "   end;"]
        lines += [f"   irc_ok = (irc_maxabs <= {atol!r} + {rtol!r} * irc_scale);",
                  f"   print '{layer}: max abs ' || (string)irc_maxabs || ', scale ' || "
                  "(string)irc_scale || ', ok ' || (string)irc_ok;",
                  f"   if irc_ok = 0 and irc_fail = '' then irc_fail = '{layer}';"]
    if not checked:
        return ["", "   /* the check set's layers are too large to list here: run "
                    "`irc deploy --check` */"]
    lines += ["",
              f"   if irc_fail = '' then print 'check: every checked layer matches "
              f"(rtol={rtol:g}, atol={atol:g} of max|ref|)';",
              "   else print 'check: MISMATCH; first diverging checked layer: ' || irc_fail;"]
    return lines
