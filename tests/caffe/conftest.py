"""Caffe frontend test helpers: nets written as prototxt text with random caffemodels written by
irc's schema, compiled by irc to Viya files and re-executed by the reference executor, compared
with OpenCV's forward of the same files (the Caffe oracle)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from irc.frontends.caffe import caffe_subset_pb2 as pb

RTOL, ATOL = 1e-4, 1e-5
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "caffe"   # origins: SOURCES.md there



def opencv(prototxt, caffemodel, x) -> dict[str, np.ndarray]:
    """OpenCV's forward (the Caffe oracle); the test is skipped where cv2 is not installed."""
    pytest.importorskip("cv2", reason="opencv-python-headless (4.x) is the Caffe oracle")
    from irc.frontends.caffe import run_opencv_oracle

    return run_opencv_oracle(prototxt, caffemodel, x)


def corpus(name: str) -> Path:
    """A real Caffe file kept in tests/fixtures/caffe (a missing one fails the test)."""
    path = CORPUS / name
    assert path.is_file(), f"the Caffe fixture {path} is missing from the checkout"
    return path


def write_net(tmp_path: Path, text: str, name: str = "net") -> Path:
    path = Path(tmp_path) / f"{name}.prototxt"
    path.write_text(text)
    return path


def add_blob(layer, data: np.ndarray, legacy: bool = False) -> None:
    """Append ``data`` to ``layer.blobs``: with ``shape`` or, legacy, as num/channels/h/w."""
    blob = layer.blobs.add()
    data = np.asarray(data, np.float32)
    if legacy:
        dims = (1,) * (4 - data.ndim) + data.shape
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.dim.extend(data.shape)
    blob.data.extend(data.reshape(-1).tolist())


def random_caffemodel(prototxt: Path, path: Path | None = None, seed: int = 0,
                      legacy_blobs: bool = False, input_shape=None,
                      override: dict | None = None, drop_lrn: bool = False) -> Path:
    """A caffemodel for ``prototxt`` with random blobs of the shapes the prototxt implies
    (irc's structure-only conversion reports them; OpenCV's run checks them independently).

    Weights are He-scaled (std sqrt(2/fan_in)) and BatchNorm statistics near (0, 1), so
    activations keep their size through deep nets; the BatchNorm moving-average factor is
    random in [0.5, 2] (trap 5). ``override``:
    {layer: [arrays]} replaces a layer's blobs.
    """
    from irc.frontends.caffe import caffe_to_onnx

    rng = np.random.default_rng(seed)
    shapes = caffe_to_onnx(prototxt, None, input_shape=input_shape, drop_lrn=drop_lrn).blob_shapes
    out = pb.NetParameter(name="random")
    for layer_name, specs in shapes.items():
        layer = out.layer.add(name=layer_name)
        if override and layer_name in override:
            for data in override[layer_name]:
                add_blob(layer, data, legacy_blobs)
            continue
        if [what for what, _ in specs] == ["mean", "variance", "moving-average factor"]:
            # Caffe stores the sums mean*f and var*f with the moving-average factor f.
            (c,) = specs[0][1]
            f = rng.uniform(0.5, 2.0)
            for data in (rng.standard_normal(c) * 0.2 * f, rng.uniform(0.5, 1.5, c) * f, [f]):
                add_blob(layer, np.asarray(data), legacy_blobs)
            continue
        for what, shape in specs:
            if what == "scale":
                data = rng.uniform(0.5, 1.5, shape)
            elif what == "weights":
                fan_in = int(np.prod(shape[1:]))
                data = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            else:
                data = rng.standard_normal(shape) * 0.2
            add_blob(layer, data, legacy_blobs)
    path = path or prototxt.with_suffix(".caffemodel")
    path.write_bytes(out.SerializeToString())
    return path


def compile_caffe(prototxt: Path, caffemodel: Path | None, outdir: Path, input_shape=None,
                  drop_lrn: bool = False, input_options: dict | None = None):
    """irc compile: import_caffe -> optimize -> lower -> save(outdir)."""
    from irc.api import optimize
    from irc.backends.viya.lower import lower
    from irc.frontends.caffe import import_caffe

    graph = import_caffe(prototxt, caffemodel, input_shape=input_shape, drop_lrn=drop_lrn)
    optimize(graph)
    model = lower(graph, name="m", input_options=input_options, label=str(prototxt))
    model.save(outdir)
    return model


def run_viya_files(outdir: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The written Viya files executed by the reference executor: {source output: array}."""
    from irc.backends.viya.executor import execute, load_viya_model
    from irc.verify import viya_input

    payloads = json.loads((outdir / "model.json").read_text())
    name_map = json.loads((outdir / "name_map.json").read_text())
    results = execute(load_viya_model(outdir), viya_input(payloads, x), all_layers=True)
    return {out: results[layer] for out, layer in name_map["outputs"].items()}


def assert_close(reference: dict, got: dict, rtol: float = RTOL, atol: float = ATOL) -> float:
    """Every reference output matches (compared flattened per example); the max abs error."""
    from irc.verify import compare

    assert set(got) == set(reference), (sorted(got), sorted(reference))
    worst = 0.0
    for name, ref in reference.items():
        max_abs, max_rel, ok = compare(ref, got[name], rtol, atol)
        assert ok, f"{name}: max abs {max_abs:.3g}, max rel {max_rel:.3g}"
        worst = max(worst, max_abs)
    return worst


def check_against_opencv(tmp_path: Path, text: str, x_shape, seed: int = 0,
                         input_shape=None, **model_kw) -> dict:
    """prototxt text + random caffemodel -> irc compile -> executor vs OpenCV on random x.

    The ONNX model caffe_to_onnx makes is also checked: onnx.checker (full), its declared
    output shapes are OpenCV's (a Softmax over (N, C, 1, 1) is declared flattened) and
    onnxruntime computes OpenCV's numbers. Returns OpenCV's outputs."""
    import onnx
    import onnxruntime as ort

    from irc.frontends.caffe import caffe_to_onnx

    proto = write_net(tmp_path, text)
    weights = random_caffemodel(proto, seed=seed, input_shape=input_shape, **model_kw)
    x = np.random.default_rng(seed + 1).standard_normal(x_shape).astype(np.float32)
    reference = opencv(proto, weights, x)
    conversion = caffe_to_onnx(proto, weights, input_shape)
    onnx.checker.check_model(conversion.model, full_check=True)
    declared = {o.name: tuple(d.dim_value for d in o.type.tensor_type.shape.dim[1:])
                for o in conversion.model.graph.output}
    for name, ref in reference.items():
        assert _strip_trailing_ones(declared[name]) == _strip_trailing_ones(ref.shape[1:]), \
            (name, declared[name], ref.shape)
    session = ort.InferenceSession(conversion.model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    assert_close(reference, dict(zip(declared, session.run(list(declared),
                                                           {conversion.input_name: x}))))
    compile_caffe(proto, weights, tmp_path / "out", input_shape=input_shape)
    got = run_viya_files(tmp_path / "out", x)
    assert_close(reference, got)
    return reference


def _strip_trailing_ones(shape) -> tuple:
    shape = tuple(shape)
    while shape and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def without_final_softmax(src: Path, dst: Path) -> Path:
    """A copy of ``src`` without its final Softmax layer, so outputs are the logits (random
    weights saturate a softmax, which would hide differences). Re-serialised with irc's schema,
    which holds every field the corpus nets use (their parse reports no ignored field)."""
    from google.protobuf import text_format

    from irc.frontends.caffe.reader import parse_text

    net, ignored = parse_text(src.read_text(), str(src))
    assert not ignored, ignored
    assert net.layer[-1].type == "Softmax", net.layer[-1].type
    del net.layer[-1]
    dst.write_text(text_format.MessageToString(net))
    return dst


def calibrate_batchnorm(prototxt: Path, caffemodel: Path, x: np.ndarray,
                        input_shape=None) -> Path:
    """Rewrite the BatchNorm statistics of ``caffemodel`` to those of their inputs on ``x``
    (keeping each moving-average factor), so a deep random net stays well conditioned:
    uncalibrated, activations grow layer after layer and float32 rounding alone (OpenCV vs
    onnxruntime too) exceeds rtol 1e-4 on the small logits. One onnxruntime run with every
    BatchNormalization in training mode (momentum 0) yields each layer's batch statistics,
    with every earlier layer already normalised."""
    import onnx
    import onnxruntime as ort

    from irc.frontends.caffe import caffe_to_onnx

    conversion = caffe_to_onnx(prototxt, caffemodel, input_shape=input_shape)
    model = conversion.model
    wanted = []
    for node in model.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        node.attribute.extend([onnx.helper.make_attribute("training_mode", 1),
                               onnx.helper.make_attribute("momentum", 0.0)])
        node.output.extend([f"{node.name}__mean", f"{node.name}__var"])
        wanted += [(node.name, f"{node.name}__mean"), (node.name, f"{node.name}__var")]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for _, n in wanted)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run([n for _, n in wanted], {conversion.input_name: x})
    stats: dict[str, list] = {}
    for (layer, _), value in zip(wanted, values):
        stats.setdefault(layer, []).append(value)
    net = pb.NetParameter()
    net.ParseFromString(caffemodel.read_bytes())
    for layer in net.layer:
        if layer.name in stats:
            mean, var = stats[layer.name]
            f = layer.blobs[2].data[0]
            for blob, data in zip(layer.blobs, (mean * f, np.maximum(var, 0.5) * f)):
                del blob.data[:]
                blob.data.extend(np.asarray(data, np.float32).tolist())
    caffemodel.write_bytes(net.SerializeToString())
    return caffemodel


def onnx_vs_opencv(tmp_path: Path, text: str, x_shape, seed: int = 0, input_shape=None):
    """The ONNX model caffe_to_onnx writes, run by onnxruntime, vs OpenCV (for cases whose
    Viya lowering is refused: the ONNX itself must still compute Caffe's numbers)."""
    import onnx
    import onnxruntime as ort

    from irc.frontends.caffe import caffe_to_onnx

    proto = write_net(tmp_path, text)
    weights = random_caffemodel(proto, seed=seed, input_shape=input_shape)
    x = np.random.default_rng(seed + 1).standard_normal(x_shape).astype(np.float32)
    conversion = caffe_to_onnx(proto, weights, input_shape=input_shape)
    onnx.checker.check_model(conversion.model)
    session = ort.InferenceSession(conversion.model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in conversion.model.graph.output]
    got = dict(zip(names, session.run(names, {conversion.input_name: x})))
    reference = opencv(proto, weights, x)
    for name, ref in reference.items():
        assert got[name].shape[1:] == ref.shape[1:] or got[name].size == ref.size, \
            (name, got[name].shape, ref.shape)
    assert_close(reference, got)
    return proto, weights
