"""model.json: the keyword arguments of buildModel, each addLayer and dlImportModelWeights."""
from __future__ import annotations


def build_payloads(model, version: str) -> dict:
    add_layer = []
    for layer in model.layers:
        call = {"model": model.name, "name": layer.name, "layer": layer.layer_payload()}
        if layer.sources:
            call["srcLayers"] = list(layer.sources)
        add_layer.append(call)
    return {
        "format": "irc.viya.payloads/1",
        "irc_version": version,
        "model_name": model.name,
        "source": model.source,
        "buildModel": {"model": {"name": model.name, "replace": True}, "type": model.model_type},
        "addLayer": add_layer,
        "dlImportModelWeights": {
            "modelWeights": {"name": f"{model.name}_weights", "replace": True},
            "formatType": "KERAS",
            "weightFilePath": model.weights_file,
        },
        "input": {"layout": "NCHW", **model.input_info},
        "notes": list(model.notes),
    }
