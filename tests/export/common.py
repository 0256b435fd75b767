"""Helpers for the Viya → ONNX export tests: compile a source ONNX model with irc, export the
output folder back to ONNX, and compare both in onnxruntime."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

import irc
from irc.frontends.viya import export
from irc.ir.onnx_export import run_onnxruntime
from irc.verify import compare, viya_input

RTOL, ATOL = 1e-4, 1e-5
TABLES = Path(__file__).resolve().parents[1] / "fixtures" / "viya-tables"   # server-written


def assert_close(reference, candidate, what: str = "", scaled: bool = False):
    """rtol 1e-4, atol 1e-5; ``scaled``: atol relative to the largest |reference| value (for
    intermediate layers of magnitude ~100, where float32 sums cancel to small values)."""
    reference = np.asarray(reference)
    atol = ATOL * max(1.0, float(np.abs(reference).max())) if scaled else ATOL
    max_abs, max_rel, ok = compare(reference, np.asarray(candidate), RTOL, atol)
    assert ok, f"{what}: max abs {max_abs:.3g}, max rel {max_rel:.3g} " \
               f"(shapes {np.shape(reference)} / {np.shape(candidate)})"


def source_batch(model: onnx.ModelProto, wanted: int = 2) -> int:
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.dim_value > 0 else wanted


def compile_folder(model: onnx.ModelProto, tmp_path: Path, **compile_kwargs) -> Path:
    compile_kwargs.setdefault("name", "m")
    out = Path(tmp_path) / "out"
    irc.compile(model, **compile_kwargs).save(out)
    return out


def roundtrip(model: onnx.ModelProto, tmp_path: Path, seed: int = 0, **compile_kwargs) -> dict:
    """source ONNX → irc.compile().save() → export() → onnxruntime equals the source.

    Checked through model.json, and through model_table.csv when irc wrote one. Returns
    {"folder", "payloads", "onnx" (from model.json), "table_checked"}.
    """
    out = compile_folder(model, tmp_path, **compile_kwargs)
    payloads = json.loads((out / "model.json").read_text())
    name_map = json.loads((out / "name_map.json").read_text())
    (src_input,) = payloads["input"]["sources"]
    shape = payloads["input"]["sources"][src_input]["shape"]
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((source_batch(model), *shape)).astype(np.float32)
    reference = run_onnxruntime(model, {src_input: y})
    x = viya_input(payloads, y)
    exported = {"model.json": export(out)}
    if (out / "model_table.csv").is_file():
        exported["model_table.csv"] = export(out / "model_table.csv")
    for via, proto in exported.items():
        (feed,) = [i.name for i in proto.graph.input]
        got = run_onnxruntime(proto, {feed: x})
        assert set(got) == set(name_map["outputs"].values()), (via, sorted(got))
        for src_out, layer in name_map["outputs"].items():
            assert_close(reference[src_out], got[layer], f"{via}: {src_out} vs {layer}")
    return {"folder": out, "payloads": payloads, "onnx": exported["model.json"],
            "table_checked": "model_table.csv" in exported}


def op_types(proto: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in proto.graph.node]


def count(proto: onnx.ModelProto, op_type: str) -> int:
    return op_types(proto).count(op_type)


def nodes(proto: onnx.ModelProto, op_type: str) -> list:
    return [node for node in proto.graph.node if node.op_type == op_type]


def attr(node, name):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None
