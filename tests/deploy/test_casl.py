"""model.sas read back: one addLayer per layer with exactly model.json's options."""
from __future__ import annotations

import json

import pytest

import irc
from irc.backends.viya.casl import CASLIB_VAR, WEIGHTS_VAR, casl_value, write_casl
from tests.deploy.casl_parser import parse_casl, same
from tests.deploy.conftest import resnet_like


@pytest.fixture(scope="module")
def resnet_payloads():
    return irc.compile(resnet_like(), name="resnet_like").payloads()


def _check_program(payloads: dict) -> dict:
    program = parse_casl(write_casl(payloads))
    names = [name for name, _ in program["actions"]]
    n = len(payloads["addLayer"])
    assert names == (["loadactionset", "deepLearn.buildModel"] + ["deepLearn.addLayer"] * n
                     + ["deepLearn.dlImportModelWeights", "table.tableExists",
                        "table.tableExists", "deepLearn.modelInfo"])
    actions = program["actions"]
    assert actions[0][1] == {"actionSet": "deepLearn"}
    assert same(actions[1][1], payloads["buildModel"])
    for (_, params), call in zip(actions[2:2 + n], payloads["addLayer"]):
        assert same(params, call), (params, call)
    weights = payloads["dlImportModelWeights"]
    imp = actions[2 + n][1]
    assert same(imp, {"model": payloads["model_name"], "modelWeights": weights["modelWeights"],
                      "formatType": "KERAS", "weightFilePath": f"&{WEIGHTS_VAR}",
                      "caslib": f"&{CASLIB_VAR}"})
    assert program["lets"] == {CASLIB_VAR: "CASUSER", WEIGHTS_VAR: weights["weightFilePath"]}
    return program


def test_resnet_program_matches_the_payloads(resnet_payloads):
    kinds = {c["layer"]["type"] for c in resnet_payloads["addLayer"]}
    assert {"input", "convo", "batchnorm", "residual", "pool", "output"} <= kinds
    _check_program(resnet_payloads)
    by_name = {c["name"]: c for c in resnet_payloads["addLayer"]}
    assert by_name["b2_add"]["srcLayers"] == ["b2_proj", "b2_conv2"]  # order kept, and checked
    assert by_name["b2_conv1"]["layer"]["paddingheight"] == 1  # explicit padding carried


def test_example_program_matches_model_json(small_cnn):
    payloads = json.loads((small_cnn / "model.json").read_text())
    _check_program(payloads)


def test_program_text_is_plain_casl(resnet_payloads):
    text = write_casl(resnet_payloads)
    assert text.count("action deepLearn.addLayer /") == len(resnet_payloads["addLayer"])
    assert 'loadactionset "deepLearn";' in text and text.rstrip().endswith("quit;")
    assert 'weightFilePath="&IRC_WEIGHTS_PATH"' in text and 'caslib="&IRC_CASLIB"' in text
    # literal strings are single-quoted: no accidental macro resolution of & or %
    assert "name='b1_bn'" in text and "srcLayers={'b2_proj', 'b2_conv2'}" in text


def test_casl_values_round_trip():
    value = {"s": "it's 50% & more", "t": True, "f": False, "i": -3, "x": 1e-05, "y": 2.0,
             "l": [1, 2.5, "a"], "d": {"name": "m", "replace": True}}
    text = f"proc cas; action a.b / v={casl_value(value)}; quit;"
    [(name, params)] = parse_casl(text)["actions"]
    assert name == "a.b" and same(params["v"], value)
    assert casl_value("it's") == "'it''s'"
    with pytest.raises(ValueError):
        casl_value(float("nan"))


def test_check_section_matches_the_check_and_its_payloads(small_cnn):
    """model.sas's check scores each example at each listed layer with exactly the dlScore
    parameters `irc deploy --check` sends, and carries the check set's reference values."""
    from irc.backends.viya.casl import CASL_CHECK_VALUES, CHECK_VAR
    from irc.backends.viya.checkset import load_check_set
    from irc.backends.viya.servercheck import check_table, score_params

    program = parse_casl((small_cnn / "model.sas").read_text())
    payloads = json.loads((small_cnn / "model.json").read_text())
    check = load_check_set(small_cnn)
    meta, n = check["meta"], check["meta"]["examples"]
    assert program["lets"][CHECK_VAR] == "check/inputs.csv"
    names = [name for name, _ in program["actions"]]
    start = names.index("deepLearn.modelInfo") + 1
    load = program["actions"][start]
    assert load[0] == "table.loadTable" and same(load[1], {
        "caslib": f"&{CASLIB_VAR}", "path": f"&{CHECK_VAR}",
        "casOut": {"name": check_table("small_cnn"), "replace": True},
        "importOptions": {"fileType": "csv", "getNames": True}})
    listed = [e for e in meta["checked"] if n * __import__("math").prod(e["shape"])
              <= CASL_CHECK_VALUES]
    assert [e["layer"] for e in listed] == ["classifier"]  # the conv layers are too large
    rest = program["actions"][start + 1:]
    assert [name for name, _ in rest] == ["deepLearn.dlScore", "table.fetch"] * n
    for k, (params, fetch) in enumerate(zip(rest[::2], rest[1::2]), 1):
        assert same(params[1], score_params(meta, "small_cnn", k, "classifier")), params
        assert same(fetch[1], {"table": {"name": "small_cnn_check_layer"}, "to": 1,
                               "index": False})
    ref = program["variables"]["irc_ref"]
    assert ref == [float(v) for v in check["outputs"]["prob"].ravel()]
    assert f"irc_ok = ( irc_maxabs <= {meta['atol']!r} + {meta['rtol']!r} * irc_scale )" \
        in program["code"]
    assert any(c.startswith("do irc_j = 1 to 10") for c in program["code"])
    assert len(payloads["addLayer"]) == names.count("deepLearn.addLayer")
