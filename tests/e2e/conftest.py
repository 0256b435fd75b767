"""End-to-end helpers: ONNX model -> irc.api.compile -> output folder -> reference executor
vs onnxruntime (irc.verify)."""
from __future__ import annotations

import json
from pathlib import Path

import onnx

from irc.api import compile as compile_model
from irc.verify import VerifyResult, verify

RTOL, ATOL = 1e-4, 1e-5


def compile_and_verify(model_proto: onnx.ModelProto, tmp_path: Path,
                       **compile_kwargs) -> VerifyResult:
    """Compile ``model_proto``, save it to ``tmp_path/"out"``, re-execute the written files and
    assert every source output matches onnxruntime (rtol 1e-4, atol 1e-5)."""
    compile_kwargs.setdefault("name", "m")
    model = compile_model(model_proto, **compile_kwargs)
    out = Path(tmp_path) / "out"
    model.save(out)
    files = {p.name for p in out.iterdir()}
    assert "model.json" in files, sorted(files)
    assert "name_map.json" in files, sorted(files)
    assert any(f.endswith(".kerasmodel.h5") for f in files), sorted(files)
    assert f"{model.name}_weights.kerasmodel.h5" in files, sorted(files)
    result = verify(model_proto, out, rtol=RTOL, atol=ATOL)
    assert result.comparisons, "verify compared no outputs\n" + result.table()
    assert result.ok, "executor and onnxruntime differ:\n" + result.table()
    return result


def viya_layers(tmp_path: Path) -> list[dict]:
    """The addLayer payloads written by :func:`compile_and_verify` (``layer`` dicts, with
    ``name`` and ``srcLayers`` merged in)."""
    payloads = json.loads((Path(tmp_path) / "out" / "model.json").read_text())
    return [{**c["layer"], "name": c["name"], "srcLayers": c.get("srcLayers", [])}
            for c in payloads["addLayer"]]


def layer_types(tmp_path: Path) -> list[str]:
    return [layer["type"] for layer in viya_layers(tmp_path)]
