"""Proof without a server: run the source with its own runtime and the emitted files with the
reference executor on the same inputs, and compare every source output.

The executor reads only the output folder (model.json / model_table.csv and the HDF5 file);
the source runs in onnxruntime (Keras and the Caffe oracle join with their frontends).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irc.errors import InvalidModel, IrcIOError, VerificationFailed


@dataclass
class OutputComparison:
    source_output: str
    viya_layer: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool


@dataclass
class VerifyResult:
    comparisons: list[OutputComparison]
    rtol: float
    atol: float
    n_examples: int
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)

    def table(self) -> str:
        head = f"{'source output':<28} {'viya layer':<24} {'shape':<14} {'max abs':>10} {'max rel':>10}  ok"
        lines = [head, "-" * len(head)]
        for c in self.comparisons:
            shape = "x".join(str(d) for d in c.shape)
            lines.append(f"{c.source_output:<28} {c.viya_layer:<24} {shape:<14} {c.max_abs:>10.3g} "
                         f"{c.max_rel:>10.3g}  {'yes' if c.ok else 'NO'}")
        lines.append(f"{self.n_examples} example(s), rtol={self.rtol:g}, atol={self.atol:g}: "
                     + ("all outputs match" if self.ok else "MISMATCH"))
        return "\n".join(lines)


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
        shape = (batch, *info["shape"])
        check_tensor_bytes(shape, np.float32, f"verification input {name!r}")
        feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def viya_input(payloads: dict, source_input: np.ndarray) -> np.ndarray:
    """The raw image values x that Viya's input layer turns into ``source_input``.

    Viya computes y = (x*scale - offsets[c]) / normstds[c], so x = (y*normstds + offsets)/scale.
    """
    layer = next(c["layer"] for c in payloads["addLayer"] if c["layer"]["type"] == "input")
    c = layer["nchannels"]
    y = source_input.reshape(source_input.shape[0], c, layer["height"], layer["width"])
    if payloads["input"].get("source_channel_order") == "rgb":
        y = y[:, ::-1]  # the source reads R,G,B; Viya's image holds B,G,R
    stds = np.asarray(layer.get("normstds", [1.0] * c), np.float64).reshape(1, c, 1, 1)
    offsets = np.asarray(layer["offsets"], np.float64).reshape(1, c, 1, 1)
    return ((y * stds + offsets) / layer["scale"]).astype(np.float32)


def compare(reference: np.ndarray, candidate: np.ndarray, rtol: float, atol: float):
    ref = reference.reshape(reference.shape[0], -1).astype(np.float64)
    got = candidate.reshape(candidate.shape[0], -1).astype(np.float64)
    if ref.shape != got.shape:
        return float("inf"), float("inf"), False
    diff = np.abs(ref - got)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(ref), 1e-12)).max()) if diff.size else 0.0
    ok = bool(np.all(diff <= atol + rtol * np.abs(ref)))
    return max_abs, max_rel, ok


_RUNTIMES = {"onnx": "onnxruntime", "keras": "Keras", "caffe": "OpenCV"}


def verify(source, outdir, inputs: dict[str, np.ndarray] | None = None, rtol: float = 1e-4,
           atol: float = 1e-5, seed: int = 0, batch: int = 2, options=None, weights=None,
           **frontend_options) -> VerifyResult:
    """Compare ``source`` with the Viya files in ``outdir``; never raises on a mismatch.

    ``source`` as for :func:`irc.compile` (``weights=``: a Caffe net's .caffemodel).
    """
    from irc.backends.viya.executor import execute, infer_shapes, load_viya_model
    from irc.frontends.source import open_source, run_source
    from irc.limits import check_activation_budget
    from irc.progress import report

    outdir = Path(outdir)
    payloads = _read_json(outdir / "model.json")
    name_map = _read_json(outdir / "name_map.json")
    feeds = inputs if inputs is not None else make_inputs(payloads, seed, batch)
    missing = set(payloads["input"]["sources"]) - set(feeds)
    if not (outdir / payloads["dlImportModelWeights"]["weightFilePath"]).is_file():
        raise VerificationFailed("the output folder has no weights file (a structure-only "
                                 "conversion) so there is nothing to run", file=str(outdir))
    if missing:
        raise IrcIOError(f"inputs lack {sorted(missing)}",
                         hint="the .npz file needs one array per source model input")
    model = load_viya_model(outdir)
    # Both runtimes hold every activation: refuse before allocating what memory cannot hold.
    check_activation_budget(infer_shapes(model), next(iter(feeds.values())).shape[0],
                            file=str(outdir))
    src = open_source(source, weights, **frontend_options)
    report(f"verifying: running the source model ({_RUNTIMES.get(src.kind, src.kind)})")
    reference = run_source(src, feeds)
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
        max_abs, max_rel, ok = compare(ref, viya_outputs[layer], rtol, atol)
        comparisons.append(OutputComparison(out_name, layer, tuple(ref.shape[1:]), max_abs,
                                            max_rel, ok))
    return VerifyResult(comparisons, rtol, atol, source_input.shape[0])


def load_inputs(path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {k: np.asarray(data[k], np.float32) for k in data.files}
    except (OSError, ValueError) as exc:
        raise IrcIOError(f"cannot read inputs: {exc}", file=str(path),
                         hint="give an .npz with one array per model input, named as the input"
                         ) from None
