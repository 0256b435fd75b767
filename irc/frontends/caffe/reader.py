"""Reading Caffe files with irc's own schema (caffe_subset.proto, Caffe's field numbers).

``.prototxt`` is protobuf text format; ``.caffemodel`` is the binary NetParameter. Both the
current ``layer`` form and the legacy V1 ``layers`` form (enum layer types) become one list of
:class:`CaffeLayer` in net order, keeping the layers Caffe keeps in an inference net (phase
TEST, level 0, no stages: :func:`caffe_keeps`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from irc.errors import InvalidModel, UnsupportedAttribute
from irc.frontends.caffe import caffe_subset_pb2 as pb

# V1LayerParameter.LayerType -> the layer type string Caffe's upgrade_proto gives it.
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


@dataclass
class CaffeLayer:
    """One layer of either form. ``msg`` is the LayerParameter / V1LayerParameter."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    msg: object
    legacy: bool = False

    def param(self, field_name: str):
        """The ``*_param`` sub-message (its defaults when absent or not in this form)."""
        if field_name in self.msg.DESCRIPTOR.fields_by_name:
            return getattr(self.msg, field_name)
        message_type = pb.LayerParameter.DESCRIPTOR.fields_by_name[field_name].message_type
        return getattr(pb, message_type.name)()

    def has_param(self, field_name: str) -> bool:
        return field_name in self.msg.DESCRIPTOR.fields_by_name and self.msg.HasField(field_name)


@dataclass
class CaffeNet:
    net: pb.NetParameter
    layers: list[CaffeLayer]
    label: str
    ignored_fields: list[str] = field(default_factory=list)


# ---- text format ----------------------------------------------------------------------------

_Parser = getattr(text_format, "_Parser", None)


if _Parser is not None:
    class _RecordingParser(_Parser):
        """text_format's parser, skipping unknown fields and recording the outermost ones."""

        def __init__(self):
            super().__init__(allow_unknown_field=True)
            self.ignored: list[tuple[str, str, int]] = []
            self._depth = 0

        def _SkipFieldContents(self, tokenizer, field_name, immediate_message_type):  # noqa: N802
            if self._depth == 0:
                line = getattr(tokenizer, "_previous_line", -1) + 1
                self.ignored.append((immediate_message_type.rsplit(".", 1)[-1], field_name, line))
            self._depth += 1
            try:
                return super()._SkipFieldContents(tokenizer, field_name, immediate_message_type)
            finally:
                self._depth -= 1


def _summarise_ignored(ignored) -> list[str]:
    counts = Counter((m, f) for m, f, _ in ignored)
    first = {}
    for m, f, line in ignored:
        first.setdefault((m, f), line)
    return [f"{m}.{f} (x{n}, first at line {first[(m, f)]})" for (m, f), n in counts.items()]


def parse_text(text: str, label: str) -> tuple[pb.NetParameter, list[str]]:
    net = pb.NetParameter()
    try:
        if _Parser is not None:
            parser = _RecordingParser()
            parser.ParseLines(text.split("\n"), net)
            return net, _summarise_ignored(parser.ignored)
        text_format.Parse(text, net, allow_unknown_field=True)
        return net, []
    except text_format.ParseError as exc:
        where = f"line {exc.GetLine()}, column {exc.GetColumn()}" if exc.GetLine() else ""
        message = str(exc).split(" : ", 1)[-1] if exc.GetLine() else str(exc)
        raise InvalidModel(f"cannot parse the prototxt ({where}): {message}" if where
                           else f"cannot parse the prototxt: {message}", file=label,
                           hint="the file must be Caffe's protobuf text format "
                                "(a deploy .prototxt)") from None


def _read_bytes(path, label: str, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise InvalidModel(f"{what} not found", file=label, hint="check the path")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InvalidModel(f"cannot read the {what}: {exc}", file=label) from None


def read_prototxt(path) -> CaffeNet:
    label = str(path)
    data = _read_bytes(path, label, "prototxt")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidModel("the prototxt is not UTF-8 text", file=label,
                           hint="pass the .prototxt as `prototxt` and the binary weights as "
                                "`caffemodel`") from None
    net, ignored = parse_text(text, label)
    if not net.layer and not net.layers:
        raise InvalidModel("the prototxt declares no layers", file=label,
                           hint="pass a Caffe network definition (deploy or train_val .prototxt)")
    return CaffeNet(net, net_layers(net, label), label, ignored)


def read_caffemodel(path) -> pb.NetParameter:
    label = str(path)
    from irc.progress import report

    report(f"reading {Path(label).name}")
    data = _read_bytes(path, label, "caffemodel")
    net = pb.NetParameter()
    try:
        net.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidModel(f"not a readable caffemodel ({type(exc).__name__}: {exc})", file=label,
                           hint="the file may be truncated, or not Caffe's binary NetParameter"
                           ) from None
    if not net.layer and not net.layers:
        raise InvalidModel("the caffemodel holds no layers", file=label,
                           hint="pass the binary .caffemodel written by Caffe's solver")
    return net


# ---- layers ---------------------------------------------------------------------------------


def _meets(rule, phase: int, level: int, stages: tuple) -> bool:
    """Caffe's StateMeetsRule: every condition the NetStateRule sets holds in the state."""
    return ((not rule.HasField("phase") or rule.phase == phase)
            and (not rule.HasField("min_level") or level >= rule.min_level)
            and (not rule.HasField("max_level") or level <= rule.max_level)
            and all(s in stages for s in rule.stage)
            and not any(s in stages for s in rule.not_stage))


def caffe_keeps(msg, phase: int = pb.TEST, level: int = 0, stages: tuple = ()) -> bool:
    """Whether Caffe's Net::FilterNet keeps a layer (LayerParameter or legacy V1) in a net
    built for the state (phase, level, stages); pycaffe's ``caffe.Net(proto, weights,
    caffe.TEST)`` and ``caffe test`` build phase TEST, level 0, no stages. With include rules
    the layer is kept when one is met; otherwise it is dropped when an exclude rule is met.
    A layer's own ``phase`` field does not drop it (Net::Init only fills it in when unset)."""
    if len(msg.include):
        return any(_meets(r, phase, level, stages) for r in msg.include)
    return not any(_meets(r, phase, level, stages) for r in msg.exclude)


def net_layers(net: pb.NetParameter, label: str) -> list[CaffeLayer]:
    """The layers Caffe keeps in an inference (TEST-phase) net, both forms, in net order."""
    if net.layer and net.layers:
        raise InvalidModel("the net mixes `layer` and legacy `layers` entries", file=label,
                           hint="Caffe accepts one form per file; upgrade it with "
                                "upgrade_net_proto_text")
    out = []
    for i, msg in enumerate(net.layer):
        if caffe_keeps(msg):
            out.append(CaffeLayer(msg.name or f"{msg.type}#{i}", msg.type, list(msg.bottom),
                                  list(msg.top), msg))
    for i, msg in enumerate(net.layers):
        if caffe_keeps(msg):
            type_ = v1_type(msg.type)
            out.append(CaffeLayer(msg.name or f"{type_}#{i}", type_, list(msg.bottom),
                                  list(msg.top), msg, legacy=True))
    training = [layer.name for layer in out if _runs_in_training_mode(layer.msg)]
    if training:
        raise UnsupportedAttribute(
            f"layer(s) {', '.join(training)} set their own phase: TRAIN, so Caffe runs them in "
            "training mode (Dropout drops at random; BatchNorm without use_global_stats uses "
            "each batch's statistics), which no Viya inference layer computes", file=label,
            hint="remove `phase: TRAIN` from those layers in the deploy prototxt")
    return out


def _runs_in_training_mode(msg) -> bool:
    """A kept layer whose own phase is TRAIN and whose output depends on the phase (Caffe keeps
    it and runs it so; phase-independent layers such as ReLU compute the same either way)."""
    if not isinstance(msg, pb.LayerParameter) or not msg.HasField("phase") \
            or msg.phase != pb.TRAIN:
        return False
    if msg.type == "Dropout":
        return True
    # BatchNorm's use_global_stats defaults to (phase == TEST)
    return msg.type == "BatchNorm" and not msg.batch_norm_param.HasField("use_global_stats")


def v1_type(value: int) -> str:
    """The layer type string of a V1LayerParameter.LayerType value."""
    enum = pb.V1LayerParameter.LayerType
    name = enum.Name(value) if value in enum.values() else f"V1 layer type {value}"
    return V1_TYPES.get(name, name)


def weight_blobs(net: pb.NetParameter) -> dict[str, list]:
    """Layer name -> its BlobProtos, from either form (every phase: weights are shared)."""
    blobs = {}
    for msg in list(net.layer) + list(net.layers):
        if len(msg.blobs):
            blobs[msg.name] = list(msg.blobs)
    return blobs


def blob_array(blob) -> np.ndarray:
    """A BlobProto as a float32 array, shaped by ``shape`` or the legacy num/channels/h/w."""
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    if len(blob.data):
        data = np.asarray(blob.data, dtype=np.float32)
    else:
        data = np.asarray(blob.double_data, dtype=np.float64).astype(np.float32)
    if data.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"{data.size} values for shape {list(shape)}")
    return data.reshape(shape)


def strip_ones(shape) -> tuple[int, ...]:
    shape = tuple(shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape
