"""`irc diff`: find the first Viya layer whose output parts from the source.

The source's ONNX (the file, or what the Keras/Caffe frontend lowered it to) runs in onnxruntime
with every tensor named in name_map.json exposed as an output;
the reference executor runs the emitted files and returns every layer's output. Layers are
compared in addLayer order; the first beyond tolerance is reported with the source nodes it
came from and the passes that touched it, and a standalone repro can be written: the ONNX
sub-graph that computes it plus its inputs as .npz.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from irc.frontends.source import Source
from irc.verify import (_batch_axis, _example_count, _run_onnx, compare, declared_batch,
                        make_inputs, viya_input)


@dataclass
class LayerDiff:
    layer: str
    kind: str
    tensor: str
    max_abs: float
    max_rel: float
    ok: bool


@dataclass
class DiffReport:
    layers: list[LayerDiff]
    name_map: dict
    first_bad: LayerDiff | None = None
    repro: list[Path] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{'viya layer':<28} {'kind':<10} {'source tensor':<28} {'max abs':>10}  ok"]
        for d in self.layers:
            lines.append(f"{d.layer:<28} {d.kind:<10} {d.tensor:<28} {d.max_abs:>10.3g}  "
                         f"{'yes' if d.ok else 'NO'}")
        if self.first_bad is None:
            lines.append("every compared layer matches")
        else:
            info = self.name_map["layers"][self.first_bad.layer]
            lines.append(f"first divergence: layer {self.first_bad.layer!r} ({self.first_bad.kind})"
                         f", from source node(s) {', '.join(info['source']) or '?'}; passes that "
                         f"touched it: {', '.join(info.get('passes', [])) or 'none'}")
        lines += [f"repro: {p}" for p in self.repro]
        return "\n".join(lines)


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs each named tensor it computes."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)
             + list(inferred.graph.input)}
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    for name in names:
        if name in infos and name not in present:
            exposed.graph.output.append(infos[name])
            present.add(name)
    return exposed


def _source_onnx(source, weights, frontend_options, input_shape=None,
                 payloads=None) -> Source:
    """The ONNX the IR was imported from, as an ONNX source: the file itself, or what the
    Keras/Caffe/PyTorch frontend lowered the source to (its numbers are checked against
    Keras/OpenCV/PyTorch by `irc verify`). A source that needs an input shape and was given
    none is exported at the shape the output folder was compiled for (one example)."""
    from irc.errors import InputShapeNeeded
    from irc.frontends.source import open_source, to_onnx

    src = open_source(source, weights, **frontend_options)
    try:
        lowered = to_onnx(src, input_shape).onnx
    except InputShapeNeeded:
        recorded = _recorded_shape(payloads)
        if input_shape is not None or recorded is None:
            raise
        lowered = to_onnx(src, recorded).onnx
    if not isinstance(lowered, onnx.ModelProto):
        lowered = onnx.load(str(lowered))
    return Source("onnx", lowered, label=src.label)


def _recorded_shape(payloads):
    """(1, *shape) of a single-input model as model.json records it, else None."""
    sources = (payloads or {}).get("input", {}).get("sources", {})
    if len(sources) != 1:
        return None
    info = next(iter(sources.values()))
    return None if info.get("batch_axis", 0) else (1, *info["shape"])


def diff(source, outdir, inputs=None, rtol: float = 1e-4, atol: float = 1e-5, seed: int = 0,
         batch: int = 1, repro_dir=None, options=None, weights=None, input_shape=None,
         **frontend_options) -> DiffReport:
    """Layer-by-layer comparison of the output folder with the source's lowered ONNX, run by
    onnxruntime with every intermediate tensor exposed."""
    from irc.backends.viya.executor import execute, load_viya_model

    outdir = Path(outdir)
    payloads = json.loads((outdir / "model.json").read_text(encoding="utf-8"))
    name_map = json.loads((outdir / "name_map.json").read_text(encoding="utf-8"))
    src = _source_onnx(source, weights, frontend_options, input_shape, payloads)
    model = src.model
    # As verify does: a source that fixes its batch (an input [3, C, H, W]) gets whole runs of
    # that batch, and runs in batches of it; a free batch runs all examples at once.
    in_axis = _batch_axis(payloads)
    fixed = declared_batch(src, in_axis)
    feeds = inputs if inputs is not None else make_inputs(payloads, seed,
                                                          _example_count(fixed, batch))
    tensors = [info["tensor"] for info in name_map["layers"].values() if info.get("tensor")]
    exposed = Source("onnx", _with_outputs(model, tensors), label=src.label)
    reference = _run_onnx(exposed, feeds, fixed, (in_axis, {}))
    reference.update(feeds)
    (source_input,) = feeds.values()
    got = execute(load_viya_model(outdir), viya_input(payloads, source_input), options=options,
                  all_layers=True)
    report = DiffReport([], name_map)
    rgb = payloads.get("input", {}).get("source_channel_order", "bgr") == "rgb"
    for call in payloads["addLayer"]:
        name = call["name"]
        tensor = name_map["layers"][name].get("tensor", "")
        if tensor not in reference or name not in got:
            continue
        mine = got[name]
        if rgb and call["layer"]["type"] == "input":
            # Viya's input layer holds B,G,R; the source reads R,G,B (its first convolutions
            # read the channels reversed), so the two agree channel for reversed channel
            mine = mine[:, ::-1]
        max_abs, max_rel, ok = compare(reference[tensor], mine, rtol, atol)
        entry = LayerDiff(name, call["layer"]["type"], tensor, max_abs, max_rel, ok)
        report.layers.append(entry)
        if not ok and report.first_bad is None:
            report.first_bad = entry
    if report.first_bad is not None and repro_dir is not None:
        report.repro = write_repro(model, payloads, name_map, report.first_bad, reference,
                                   Path(repro_dir))
    return report


def write_repro(model, payloads, name_map, bad: LayerDiff, reference, folder: Path) -> list[Path]:
    """The ONNX sub-graph from the bad layer's source tensors to its tensor, and its inputs."""
    from onnx.utils import Extractor

    call = next(c for c in payloads["addLayer"] if c["name"] == bad.layer)
    inputs = [name_map["layers"][s]["tensor"] for s in call.get("srcLayers", [])]
    folder.mkdir(parents=True, exist_ok=True)
    sub = Extractor(onnx.shape_inference.infer_shapes(model)).extract_model(inputs, [bad.tensor])
    onnx_path, npz_path = folder / f"{bad.layer}.onnx", folder / f"{bad.layer}_inputs.npz"
    onnx.save(sub, str(onnx_path))
    np.savez(npz_path, **{name: reference[name] for name in inputs})
    return [onnx_path, npz_path]
