"""What the user handed irc, and the two things every frontend must give: the ONNX model that
reaches the IR, and the source framework's own run of the model (the verification oracle).

    src = open_source("net.prototxt", weights="net.caffemodel")  # or "net.cfg", "net.weights"
    lowered = to_onnx(src, input_shape)       # ONNX ModelProto or .onnx path, has_weights
    reference = run_source(src, feeds)        # {ONNX graph output name: array}

An ONNX source's oracle is onnxruntime, run by irc.verify itself (``_run_onnx``: in runs of the
batch the model fixes, in the batch layout model.json records), so run_source takes the other
frameworks only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irc.errors import InvalidModel, VerificationFailed

SUFFIXES = {".onnx": "onnx", ".prototxt": "caffe", ".keras": "keras", ".h5": "keras",
            ".hdf5": "keras", ".pt2": "pytorch", ".pt": "pytorch", ".pth": "pytorch",
            ".torchscript": "pytorch", ".cfg": "darknet"}
WEIGHTS_FILES = {"caffe": ".caffemodel", "darknet": ".weights"}  # kinds taking --weights


def default_channel_order(model) -> str:
    """The input channel order a source is taken to read unless the user says: a 3-channel
    darknet net reads R, G, B (its image loader's order); every other source Viya's B, G, R."""
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".cfg":
        from irc.errors import IrcError
        from irc.frontends.darknet.cfg import read_cfg

        try:
            channels = read_cfg(model).net.options.get("channels")
        except IrcError:
            return "bgr"  # the conversion itself reports the broken file
        return "rgb" if channels == "3" else "bgr"
    return "bgr"


@dataclass
class Source:
    kind: str  # onnx | caffe | keras | pytorch | darknet
    # a path, or an in-memory model (onnx.ModelProto, keras.Model, nn.Module, ExportedProgram)
    model: object
    weights: Path | None = None  # Caffe's .caffemodel, darknet's .weights
    # frontend options: drop_lrn (Caffe), allow_lambda and keras_route (Keras),
    # allow_pickle, example_inputs and torch_exporter (PyTorch)
    options: dict = field(default_factory=dict)
    label: str = ""

    @property
    def path(self) -> Path | None:
        return Path(self.model) if isinstance(self.model, (str, Path)) else None


@dataclass
class Lowered:
    onnx: object  # onnx.ModelProto, or the path of an .onnx file
    has_weights: bool = True
    warnings: list[str] = field(default_factory=list)


def _is_keras_object(obj) -> bool:
    module = type(obj).__module__ or ""
    return module.startswith(("keras", "tf_keras", "tensorflow"))


def open_source(model, weights=None, **options) -> Source:
    """Recognise ``model`` (a path or an in-memory model) and its frontend."""
    if isinstance(model, Source):
        return model
    import onnx

    if isinstance(model, onnx.ModelProto):
        return Source("onnx", model, None, options, "<ModelProto>")
    if _is_keras_object(model):
        return Source("keras", model, None, options, f"<{type(model).__name__}>")
    from irc.frontends.pytorch import is_torch_object

    if is_torch_object(model):
        return Source("pytorch", model, None, options, f"<{type(model).__name__}>")
    if isinstance(model, (str, Path)):
        suffix = Path(model).suffix.lower()
        if suffix == ".caffemodel":
            raise InvalidModel("a .caffemodel holds only weights", file=str(model),
                               hint="give the .prototxt and pass the .caffemodel with --weights")
        if suffix == ".weights":
            raise InvalidModel("a darknet .weights file holds only weights", file=str(model),
                               hint="give the .cfg and pass the .weights with --weights")
        kind = SUFFIXES.get(suffix)
        if kind is None:
            raise InvalidModel(f"unknown model file type {suffix or '(no suffix)'!r}",
                               file=str(model), hint="irc reads .onnx, .prototxt (+ --weights "
                                                     ".caffemodel), darknet .cfg (+ --weights "
                                                     ".weights), .keras, .h5, and PyTorch "
                                                     ".pt2, .pt, .pth files")
        if weights is not None and kind not in WEIGHTS_FILES:
            raise InvalidModel("--weights is for Caffe and darknet models only",
                               file=str(model))
        return Source(kind, Path(model), Path(weights) if weights else None, options, str(model))
    raise InvalidModel(f"cannot compile an object of type {type(model).__name__}",
                       hint="pass a model file path, an onnx.ModelProto, a keras.Model, "
                            "an nn.Module or an ExportedProgram")


def to_onnx(src: Source, input_shape=None) -> Lowered:
    """The ONNX model the IR is imported from."""
    if src.kind == "onnx":
        return Lowered(src.model)
    if src.kind == "caffe":
        from irc.frontends.caffe import caffe_to_onnx

        conv = caffe_to_onnx(src.model, src.weights, input_shape=input_shape,
                             drop_lrn=bool(src.options.get("drop_lrn")))
        warnings = list(conv.warnings)
        if not conv.has_weights:
            warnings.append("no .caffemodel given: the structure is converted, the weights "
                            "file is not written and nothing is verified")
        return Lowered(conv.model, conv.has_weights, warnings)
    if src.kind == "darknet":
        from irc.frontends.darknet import darknet_to_onnx

        conv = darknet_to_onnx(src.model, src.weights, input_shape=input_shape)
        warnings = list(conv.warnings)
        if not conv.has_weights:
            warnings.append("no .weights given: the structure is converted, the weights "
                            "file is not written and nothing is verified")
        return Lowered(conv.model, conv.has_weights, warnings)
    if src.kind == "pytorch":
        from irc.frontends.pytorch import pytorch_to_onnx

        proto, notes = pytorch_to_onnx(src.model, input_shape,
                                       allow_pickle=bool(src.options.get("allow_pickle")),
                                       example_inputs=src.options.get("example_inputs"),
                                       exporter=src.options.get("torch_exporter", "auto"))
        return Lowered(proto, True, notes)
    from irc.frontends.keras import keras_to_onnx

    return Lowered(keras_to_onnx(src.model, input_shape=input_shape,
                                 allow_lambda=bool(src.options.get("allow_lambda")),
                                 route=src.options.get("keras_route", "auto")))


def _single(feeds: dict[str, np.ndarray]) -> np.ndarray:
    if len(feeds) != 1:
        raise VerificationFailed(f"the source has {len(feeds)} inputs; irc verifies one")
    return next(iter(feeds.values()))


def run_source(src: Source, feeds: dict[str, np.ndarray],
               float64: bool = False) -> dict[str, np.ndarray]:
    """The source framework's own outputs for ``feeds`` (keyed as the ONNX graph outputs).

    ``float64``: the same model computing in float64 (irc.verify_float64 measures the source's
    own float32 noise with it); Caffe's oracle, OpenCV, cannot."""
    if src.kind == "caffe":
        if float64:
            raise ValueError("OpenCV runs Caffe nets in float32 only")
        if src.weights is None:
            raise VerificationFailed("a Caffe net without weights cannot be verified",
                                     file=src.label, hint="pass --weights net.caffemodel")
        from irc.frontends.caffe import run_opencv_oracle

        return run_opencv_oracle(src.model, src.weights, _single(feeds))
    if src.kind == "darknet":
        if src.weights is None:
            raise VerificationFailed("a darknet net without weights cannot be verified",
                                     file=src.label, hint="pass --weights net.weights")
        from irc.frontends.darknet import run_opencv

        return run_opencv(src.model, src.weights, _single(feeds))
    if src.kind == "keras":
        from irc.frontends.keras import run_keras

        return run_keras(src.model, _single(feeds),
                         allow_lambda=bool(src.options.get("allow_lambda")), float64=float64)
    if src.kind == "pytorch":
        from irc.frontends.pytorch import run_pytorch

        return run_pytorch(src.model, feeds, allow_pickle=bool(src.options.get("allow_pickle")),
                           float64=float64)
    # irc.verify runs ONNX sources itself; importing it here would close an import circle.
    raise ValueError(f"run_source runs Caffe, darknet, Keras and PyTorch sources, not "
                     f"{src.kind!r}; "
                     "ONNX sources are run by irc.verify")
