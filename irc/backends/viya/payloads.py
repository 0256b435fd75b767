"""model.json: the keyword arguments of buildModel, each addLayer and dlImportModelWeights."""
from __future__ import annotations

from irc.backends.viya import schema


def check_options(layer) -> None:
    """Every option of ``layer`` is one its kind takes (schema.KINDS); else a compiler bug."""
    kind = schema.KINDS.get(layer.kind)
    if kind is None or kind.scope != schema.IN:
        raise AssertionError(f"layer {layer.name!r}: irc does not emit {layer.kind!r} layers")
    unknown = sorted(set(layer.options) - set(kind.options))
    if unknown:
        raise AssertionError(f"layer {layer.name!r} ({layer.kind}): options {unknown} are not "
                             "in the Viya layer schema")


def build_payloads(model, version: str) -> dict:
    add_layer = []
    for layer in model.layers:
        check_options(layer)
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
