"""Proof without a server: run the source with its own runtime and the emitted files with the
reference executor on the same inputs, and compare every source output.

The executor reads only the output folder (model.json / model_table.csv and the HDF5 file);
the source runs in onnxruntime (Keras and the Caffe oracle join with their frontends).

The criterion judges each output against its own scale: |d| <= atol + rtol * max|ref| over the
whole output. An element-wise test (atol + rtol * |ref| per element) fails deep nets whose outputs
reach hundreds while a few elements sit near zero: float32 rounding through fifty layers leaves
differences of a few 1e-7 of the output's scale there (torchvision resnet50: 7.4e-5 on outputs of
140). A wrong layer (a transposed kernel, a dropped bias or epsilon) moves the output by far more
than 1e-4 of its scale; tests/unit/test_verify_criterion.py corrupts written files to show it.

Some nets amplify float32 rounding past 1e-4 of the scale in the source's own runtime: an output
that fails the criterion is then judged against the source re-run in float64
(irc.verify_float64), and passes as "within the source's own float32 noise" (exit 0, with a
note and the three distances printed) when the Viya output is no farther from the float64
answer than twice the source's float32 output is, plus atol. Otherwise it is a mismatch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irc.errors import InvalidModel, IrcIOError, VerificationFailed
from irc.verify_float64 import float64_table, judge_against_float64


@dataclass
class Agreement:
    """How far ``candidate`` is from ``reference``, and whether that is within tolerance."""
    max_abs: float  # max |d|
    max_rel: float  # max |d| / |ref| element-wise (large near zero outputs: shown, not judged)
    scale: float  # max |ref| over the whole output
    margin: float  # max |d| / (atol + rtol * scale): within tolerance while <= 1
    ok: bool

    @property
    def scaled(self) -> float:
        """max |d| / max |ref|: the difference in units of the output's scale."""
        return self.max_abs / self.scale if self.scale > 0 else (0.0 if self.max_abs == 0
                                                                 else float("inf"))


@dataclass
class OutputComparison:
    source_output: str
    viya_layer: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool  # passes: a match, or within the source's float32 noise
    scaled: float = 0.0
    margin: float = 0.0
    # Set when the scaled criterion failed and the source ran in float64 (absolute values):
    noise: float | None = None  # max |source float32 - source float64|
    off_float64: float | None = None  # max |viya - source float64|
    scale: float = 0.0  # max |source float32|

    @property
    def verdict(self) -> str:
        """"match", "noise" (within the source's own float32 noise) or "mismatch"."""
        if not self.ok:
            return "mismatch"
        return "match" if self.margin <= 1.0 else "noise"


@dataclass
class VerifyResult:
    comparisons: list[OutputComparison]
    rtol: float
    atol: float
    n_examples: int
    notes: list[str] = field(default_factory=list)
    # detection models: the decoded boxes vs the source's own decoding (irc.verify_boxes)
    boxes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons) and all(b.ok for b in self.boxes)

    @property
    def verdict(self) -> str:
        """"match", "noise" (every failing output within the source's float32 noise) or
        "mismatch"; exit code 0 for the first two."""
        verdicts = {c.verdict for c in self.comparisons}
        if not all(b.ok for b in self.boxes):
            return "mismatch"
        return "mismatch" if "mismatch" in verdicts else "noise" if "noise" in verdicts \
            else "match"

    def table(self) -> str:
        head = (f"{'source output':<28} {'viya layer':<24} {'shape':<14} {'max abs':>10} "
                f"{'max rel':>10} {'abs/scale':>10} {'margin':>8}  ok")
        lines = [head, "-" * len(head)]
        for c in self.comparisons:
            shape = "x".join(str(d) for d in c.shape)
            lines.append(f"{c.source_output:<28} {c.viya_layer:<24} {shape:<14} {c.max_abs:>10.3g} "
                         f"{c.max_rel:>10.3g} {c.scaled:>10.3g} {c.margin:>8.3g}  "
                         f"{ {'match': 'yes', 'noise': 'noise'}.get(c.verdict, 'NO')}")
        lines.extend(float64_table(self.comparisons, self.atol))
        lines.extend(b.line() for b in self.boxes)
        verdict = {"match": "all outputs match",
                   "noise": "within the source's own float32 noise (see the float64 check)",
                   "mismatch": "MISMATCH"}[self.verdict]
        lines.append(f"{self.n_examples} example(s); each output within atol + rtol * max|ref| "
                     f"(rtol={self.rtol:g}, atol={self.atol:g}; margin = max abs / that, "
                     "at most 1): " + verdict)
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter's view: the verdict first, then one row per compared output."""
        import html

        verdict = "all outputs match" if self.ok else "MISMATCH"
        rows = "".join(
            f"<tr><td>{html.escape(c.source_output)}</td><td>{html.escape(c.viya_layer)}</td>"
            f"<td>{'x'.join(str(d) for d in c.shape)}</td><td>{c.max_abs:.3g}</td>"
            f"<td>{c.max_rel:.3g}</td><td>{c.scaled:.3g}</td><td>{c.margin:.3g}</td>"
            f"<td>{'yes' if c.ok else 'NO'}</td></tr>" for c in self.comparisons)
        head = "".join(f"<th>{h}</th>" for h in ("source output", "viya layer", "shape",
                                                  "max abs", "max rel", "abs/scale", "margin",
                                                  "ok"))
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<p><b>verification: {verdict}</b> ({self.n_examples} example(s); each "
                f"output within atol + rtol * max|ref|, rtol={self.rtol:g}, "
                f"atol={self.atol:g})</p><table><tr>{head}</tr>{rows}</table>"
                + (f"<ul>{notes}</ul>" if notes else ""))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IrcIOError(f"cannot read {path.name}: {exc}", file=str(path),
                         hint="point at a folder written by `irc compile`") from None


def make_inputs(payloads: dict, seed: int, batch: int) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs for the source model, by source input name."""
    from irc.limits import check_tensor_bytes

    rng = np.random.default_rng(seed)
    feeds = {}
    for name, info in payloads["input"]["sources"].items():
        shape = list(info["shape"])
        shape.insert(info.get("batch_axis", 0), batch)  # 1: a time-major sequence (T, N, d)
        check_tensor_bytes(shape, np.float32, f"verification input {name!r}")
        feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def viya_input(payloads: dict, source_input: np.ndarray) -> np.ndarray:
    """The raw image values x that Viya's input layer turns into ``source_input``.

    Viya computes y = (x*scale - offsets[c]) / normstds[c], so x = (y*normstds + offsets)/scale.
    """
    from irc.input_spec import InputSpec

    layer = next(c["layer"] for c in payloads["addLayer"] if c["layer"]["type"] == "input")
    c = layer["nchannels"]
    spec = InputSpec.recorded(payloads)  # what model.json records, as lowering read it
    source_input = batch_first(payloads, source_input)
    y = source_input.reshape(source_input.shape[0], c, layer["height"], layer["width"])
    if spec.channel_order == "rgb":
        y = y[:, ::-1]  # the source reads R,G,B; Viya's image holds B,G,R
    offsets, stds = spec.per_channel(c)  # in Viya's B,G,R order, as y now is
    stds = np.asarray(stds, np.float64).reshape(1, c, 1, 1)
    offsets = np.asarray(offsets, np.float64).reshape(1, c, 1, 1)
    return ((y * stds + offsets) / spec.scale).astype(np.float32)


def _batch_axis(payloads: dict) -> int:
    """The axis the source's single input holds the batch on (1: time-major (T, N, d))."""
    sources = payloads["input"]["sources"]
    return next(iter(sources.values())).get("batch_axis", 0) if len(sources) == 1 else 0


def batch_first(payloads: dict, source_input: np.ndarray) -> np.ndarray:
    """The source input with its examples on axis 0, as Viya reads them."""
    return np.moveaxis(source_input, _batch_axis(payloads), 0)


def measure(reference: np.ndarray, candidate: np.ndarray, rtol: float, atol: float) -> Agreement:
    """Compare one output: within tolerance when max|d| <= atol + rtol * max|ref|."""
    ref = reference.reshape(reference.shape[0], -1).astype(np.float64)
    got = candidate.reshape(candidate.shape[0], -1).astype(np.float64)
    inf = float("inf")
    if ref.shape != got.shape or not np.isfinite(got).all():
        return Agreement(inf, inf, float(np.abs(ref).max()) if ref.size else 0.0, inf, False)
    if not ref.size:
        return Agreement(0.0, 0.0, 0.0, 0.0, True)
    diff = np.abs(ref - got)
    max_abs = float(diff.max())
    max_rel = float((diff / np.maximum(np.abs(ref), 1e-12)).max())
    scale = float(np.abs(ref).max())
    allowed = atol + rtol * scale
    margin = max_abs / allowed if allowed > 0 else (0.0 if max_abs == 0 else inf)
    return Agreement(max_abs, max_rel, scale, margin, max_abs <= allowed)


def compare(reference: np.ndarray, candidate: np.ndarray, rtol: float, atol: float):
    """``(max_abs, max_rel, ok)`` by :func:`measure`'s criterion."""
    a = measure(reference, candidate, rtol, atol)
    return a.max_abs, a.max_rel, a.ok


_RUNTIMES = {"onnx": "onnxruntime", "keras": "Keras", "caffe": "OpenCV", "darknet": "OpenCV"}


def declared_batch(src, batch_axis: int = 0) -> int | None:
    """The batch size an ONNX source fixes on its inputs (None: free, or not an ONNX source).

    Only the source holds it: model.json records the per-example input shape.
    """
    if src.kind != "onnx":
        return None
    from irc.frontends.onnx.loader import load_model

    # Weights memory-mapped where they lie, as the compile did: only the inputs are read here
    # (a plain onnx.load copies every inline weight: 0.6 s for a VGG16-size file).
    header, _ = load_model(src.model, src.label, map_weights=True)
    initializers = {t.name for t in header.graph.initializer}
    sizes = {i.type.tensor_type.shape.dim[batch_axis].dim_value for i in header.graph.input
             if i.name not in initializers and len(i.type.tensor_type.shape.dim) > batch_axis}
    fixed = sizes - {0}
    return max(fixed) if fixed else None


def _example_count(fixed: int | None, batch: int) -> int:
    """Examples to draw: ``batch``, rounded up to whole runs of a fixed batch."""
    if not fixed:
        return batch
    return fixed * max(1, -(-batch // fixed))


def _run_onnx(src, feeds: dict[str, np.ndarray], fixed: int | None,
              axes=(0, {}), notes: list[str] | None = None,
              used: list | None = None) -> dict[str, np.ndarray]:
    """onnxruntime's outputs for ``feeds``, in runs of the declared batch when it is fixed.

    ``axes``: the batch axis of the inputs, and of each output where it is not 0. A model older
    than opset 9 that onnxruntime cannot run (it dropped some opset-6 kernels) runs as
    onnx.version_converter upgrades it, the form irc compiled; ``notes`` is told. ``used``
    receives the model that ran (a ModelProto or a path)."""
    model = src.model if not isinstance(src.model, Path) else str(src.model)
    used = used if used is not None else []
    try:
        used.append(model)
        return _run_onnx_model(model, src, feeds, fixed, axes)
    except InvalidModel:
        upgraded = _upgraded_old_opset(src)
        if upgraded is None:
            raise
    used.append(upgraded)
    if notes is not None:
        notes.append("onnxruntime cannot run the source at its old opset; verified against it "
                     "as onnx.version_converter upgrades it (the form irc compiled)")
    return _run_onnx_model(upgraded, src, feeds, fixed, axes)


def _upgraded_old_opset(src):
    """The source upgraded to the opset irc compiles old models at, or None (not old)."""
    import onnx

    from irc.frontends.onnx.opset import MIN_OPSET, default_opset, upgrade_old_opset

    model = src.model if isinstance(src.model, onnx.ModelProto) else onnx.load(str(src.model))
    opset = default_opset(model)
    if opset is None or opset >= MIN_OPSET:
        return None
    return upgrade_old_opset(model, src.label, None)


def _run_onnx_model(model, src, feeds, fixed, axes) -> dict[str, np.ndarray]:
    from irc.ir.onnx_export import run_onnxruntime

    return _onnx_runs(lambda f: run_onnxruntime(model, f), src, feeds, fixed, axes)


def _onnx_runs(run, src, feeds, fixed, axes) -> dict[str, np.ndarray]:
    """``run(feeds)`` on runs of the declared batch (``fixed``), the outputs joined."""
    in_axis, out_axes = axes
    if in_axis:  # examples on axis 0 for the slicing below, the source's layout for each run
        feeds = {k: np.moveaxis(v, in_axis, 0) for k, v in feeds.items()}
    n = next(iter(feeds.values())).shape[0]
    if fixed and n % fixed:
        raise IrcIOError(f"the inputs hold {n} example(s) but the source model declares a fixed "
                         f"batch of {fixed}", file=src.label,
                         hint=f"give a multiple of {fixed} examples per input")
    step = fixed or n
    try:
        runs = [run({k: np.moveaxis(v[i:i + step], 0, in_axis) for k, v in feeds.items()})
                for i in range(0, n, step)]
    except Exception as exc:  # onnxruntime raises its own exception types
        text = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else type(exc).__name__
        shapes = ", ".join(f"{k} {list(v[:step].shape)}" for k, v in feeds.items())
        raise InvalidModel(f"onnxruntime cannot run the source model on inputs {shapes}: {text}",
                           file=src.label, hint="irc made these inputs from the model's declared "
                           "input shapes; if onnxruntime cannot run the model itself, fix or "
                           "re-export it (irc's output was not written)") from None
    return {k: np.concatenate([r[k] for r in runs], axis=out_axes.get(k, 0)) for k in runs[0]}


def verify(source, outdir, inputs: dict[str, np.ndarray] | None = None, rtol: float = 1e-4,
           atol: float = 1e-5, seed: int = 0, batch: int = 2, options=None, weights=None,
           **frontend_options) -> VerifyResult:
    """Compare ``source`` with the Viya files in ``outdir``; never raises on a mismatch.

    ``source`` as for :func:`irc.compile` (``weights=``: a Caffe .caffemodel, darknet .weights). A source
    with a fixed batch runs at that batch: ``batch`` rounds up to a multiple of it.
    """
    from irc.backends.viya.executor import execute, infer_shapes, load_viya_model
    from irc.frontends.source import open_source, run_source
    from irc.limits import check_activation_budget
    from irc.progress import report

    outdir = Path(outdir)
    payloads = _read_json(outdir / "model.json")
    name_map = _read_json(outdir / "name_map.json")
    if not (outdir / payloads["dlImportModelWeights"]["weightFilePath"]).is_file():
        raise VerificationFailed("the output folder has no weights file (a structure-only "
                                 "conversion) so there is nothing to run", file=str(outdir))
    src = open_source(source, weights, **frontend_options)
    fixed = declared_batch(src, _batch_axis(payloads))
    feeds = float32_inputs(inputs) if inputs is not None else make_inputs(
        payloads, seed, _example_count(fixed, batch))
    missing = set(payloads["input"]["sources"]) - set(feeds)
    if missing:
        raise IrcIOError(f"inputs lack {sorted(missing)}",
                         hint="the .npz file needs one array per source model input")
    model = load_viya_model(outdir)
    # Both runtimes hold every activation: refuse before allocating what memory cannot hold.
    out_axes = payloads["input"].get("output_batch_axes", {})  # outputs the source gives
    check_activation_budget(infer_shapes(model), batch_first(payloads, next(iter(
        feeds.values()))).shape[0], file=str(outdir))
    report(f"verifying: running the source model ({_RUNTIMES.get(src.kind, src.kind)})")
    run_notes: list[str] = []
    onnx_used: list = []  # the ONNX model onnxruntime ran (the float64 check copies it)
    reference = _run_onnx(src, feeds, fixed, (_batch_axis(payloads), out_axes), run_notes,
                          onnx_used) if src.kind == "onnx" else run_source(src, feeds)
    reference = {k: np.moveaxis(v, out_axes.get(k, 0), 0) for k, v in reference.items()}
    (source_input,) = feeds.values()
    report("verifying: running the written files with the reference executor")
    viya_outputs = execute(model, viya_input(payloads, source_input), options=options,
                           all_layers=True)
    comparisons = []
    for out_name, layer in name_map["outputs"].items():
        ref = reference[out_name]
        if not np.isfinite(ref).all():
            raise InvalidModel(f"the source model's own output {out_name!r} holds NaN or "
                               "infinite values on the verification inputs, so nothing can be "
                               "compared", file=str(outdir), hint="the source overflows (huge "
                               "weights?); fix it, or verify with your own --inputs")
        a = measure(ref, viya_outputs[layer], rtol, atol)
        comparisons.append(OutputComparison(out_name, layer, tuple(ref.shape[1:]), a.max_abs,
                                            a.max_rel, a.ok, a.scaled, a.margin, scale=a.scale))
    notes = [f"the source declares a fixed batch of {fixed}: run in batches of {fixed}"] \
        if fixed and fixed > 1 else []
    notes += run_notes + _weak_comparisons(comparisons, reference, atol)
    notes += _non_finite(comparisons, viya_outputs, name_map)
    notes += judge_against_float64(comparisons, reference, viya_outputs, name_map, atol, src, feeds,
                          lambda run, f: _onnx_runs(run, src, f, fixed, (
                              _batch_axis(payloads), out_axes)),
                          onnx_used[-1] if onnx_used else None, out_axes)
    from irc.verify_boxes import darknet_box_agreement

    boxes = darknet_box_agreement(model, viya_outputs, src, source_input,
                                  {c.viya_layer: c.max_abs for c in comparisons})
    return VerifyResult(comparisons, rtol, atol, batch_first(payloads, source_input).shape[0],
                        notes, [boxes] if boxes is not None else [])


def _non_finite(comparisons, viya_outputs, name_map) -> list[str]:
    """Say so when the source's output is finite and the Viya one is not: irc's legalization
    rewrites are exact for finite values only (0 * inf is NaN in a selection convolution)."""
    return [f"output {c.source_output!r}: the source's values are finite but the Viya output "
            "holds inf or NaN; irc's rewrites (pad, channel selection, clip, max/min) are exact "
            "for finite values only, so an overflow inside the model (values beyond float32's "
            "+-3.4e38, or an inf input) spreads where the source dropped it"
            for c in comparisons
            if not np.isfinite(viya_outputs[name_map["outputs"][c.source_output]]).all()]


def _weak_comparisons(comparisons, reference, atol: float) -> list[str]:
    """Outputs whose largest value is within atol of zero (a net whose random or dead weights
    make its output vanish): any layer could be wrong and they would still match. Said, so a
    passing verification is not mistaken for a proof."""
    notes = []
    for c in comparisons:
        scale = float(np.abs(reference[c.source_output]).max()) if reference[
            c.source_output].size else 0.0
        if scale <= atol:
            notes.append(f"output {c.source_output!r}: the source's values are all within atol "
                         f"of zero (largest |value| {scale:.3g} <= {atol:g}), so this comparison "
                         "cannot tell a wrong layer from a right one; verify with inputs or "
                         "weights that give the output a real scale (--inputs, trained weights)")
    return notes


def load_inputs(path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as exc:
        raise IrcIOError(f"cannot read inputs: {exc}", file=str(path),
                         hint="give an .npz with one array per model input, named as the input"
                         ) from None
    return float32_inputs(arrays, str(path))


def float32_inputs(arrays: dict, label: str | None = None) -> dict[str, np.ndarray]:
    """The inputs as float32, as Viya computes; a finite value float32 cannot hold (|v| above
    3.4e38) is refused instead of turning into inf and showing up as a mismatch."""
    out = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        as32 = array.astype(np.float32)
        if array.dtype.kind == "f" and np.any(np.isfinite(array) & ~np.isfinite(as32)):
            raise IrcIOError(f"input {name!r} holds finite values beyond float32's range "
                             f"(largest |value| {float(np.nanmax(np.abs(array))):.3g})",
                             file=label, hint="Viya computes in float32: give inputs within "
                                              "+-3.4e38")
        out[name] = as32
    return out
