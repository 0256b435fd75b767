"""The Python API: ``irc.compile(source, ...) -> ViyaModel``."""
from __future__ import annotations

from dataclasses import dataclass, field

from irc.frontends.source import Source, open_source, to_onnx
from irc.detection_spec import METADATA_KEY as DETECTION_KEY
from irc.detection_spec import check_fields as check_detection, layered
from irc.input_spec import InputSpec
from irc.ir.graph import Graph


@dataclass
class Imported:
    graph: Graph
    source: Source
    has_weights: bool = True
    warnings: list[str] = field(default_factory=list)


def import_model(source, input_shape=None, weights=None, **frontend_options) -> Imported:
    """The source model as an IR graph (before any pass), via the ONNX its frontend makes."""
    from irc.frontends.onnx import import_onnx
    from irc.progress import report

    src = open_source(source, weights, **frontend_options)
    lowered = to_onnx(src, input_shape)
    report("importing ONNX into irc's graph")
    # Keras, Caffe and PyTorch frontends already fixed the input shape in the ONNX they made.
    shapes = input_shape if src.kind == "onnx" else None
    # notes: an ONNX model older than opset 9 is upgraded, which the user is told
    graph = import_onnx(lowered.onnx, input_shapes=shapes, label=src.label,
                        notes=lowered.warnings)
    return Imported(graph, src, lowered.has_weights, lowered.warnings)


def optimize(graph: Graph, pipeline=None, instruments=(), ctx=None) -> Graph:
    """Run the pass pipeline (default: DEFAULT_PIPELINE) with the given and env instruments."""
    from irc.passes.instruments import instruments_from_env
    from irc.passes.manager import PassManager
    from irc.passes.pipeline import DEFAULT_PIPELINE

    from irc.progress import report

    instruments = list(instruments) + instruments_from_env()
    report("optimizing")
    return PassManager(pipeline or DEFAULT_PIPELINE, instruments, ctx).run(graph)


def compile(source, name: str | None = None, input_shape=None,
            input_options: "InputSpec | dict | None" = None,
            pipeline=None, instruments=(), pass_context=None, weights=None,
            detection=None, **frontend_options):  # noqa: A001 - the public name users expect
    """Compile ``source`` into a :class:`~irc.backends.viya.model.ViyaModel`.

    ``source``: an .onnx path or ModelProto, a .prototxt (with ``weights=`` its .caffemodel),
    a darknet .cfg (with ``weights=`` its .weights; read as R, G, B unless ``channel_order``),
    a .keras/.h5 path or a keras.Model, an nn.Module or ExportedProgram or a PyTorch file (.pt2,
    TorchScript .pt). ``input_shape``: a shape for a single-input model, or
    {input name: shape}, fixing dynamic dimensions. ``input_options``: Viya input
    preprocessing, an :class:`irc.input_spec.InputSpec` or a dict of its fields ``scale``,
    ``offsets``, ``normstds`` (the source model is taken to receive
    ``(x*scale - offsets)/normstds``) and ``channel_order`` ('bgr' or 'rgb': the order the
    source was trained on); it is validated before the model is read. ``instruments``: pass
    instruments (irc.passes.instruments); ``pass_context`` collects the passes' refusals.
    ``frontend_options``: ``drop_lrn`` (Caffe), ``allow_lambda`` and ``keras_route`` ("auto",
    "direct" or "tf2onnx") (Keras); ``example_inputs`` (a tuple of tensors: an nn.Module's
    input shape), ``allow_pickle`` (load PyTorch files, which runs code stored in them) and
    ``torch_exporter`` ("auto", "dynamo" or "torchscript") (PyTorch). ``detection``: a YOLO
    head (an :class:`irc.detection_spec.DetectionSpec` or a dict of its fields) for a model
    whose last tensor is the grid; Viya's detection layer is appended after it. A dict without
    ``version`` sets fields (thresholds, ``max_boxes``) of the head the source states (darknet).

    The model is not verified here (that writes every weight once more): ``model.verify()``
    re-runs the written files against the source framework, as ``irc compile`` does.
    """
    from irc.backends.viya.lower import lower
    from irc.passes.registry import PassContext
    from irc.progress import report

    from irc.frontends.source import default_channel_order

    if input_options is None or (isinstance(input_options, dict)
                                 and input_options.get("channel_order") is None):
        input_options = {**(input_options or {}),
                         "channel_order": default_channel_order(source)}
    input_spec = InputSpec.of(input_options)  # a bad option fails before the model loads
    check_detection(detection)
    imported = import_model(source, input_shape, weights, **frontend_options)
    graph = imported.graph
    if detection is not None:   # the user's head, or settings over the source's
        graph.metadata[DETECTION_KEY] = layered(graph.metadata.get(DETECTION_KEY),
                                                detection).to_json()
    ctx = pass_context if pass_context is not None else PassContext()
    optimize(graph, pipeline, instruments, ctx)
    report("lowering to Viya layers")
    model = lower(graph, name=name or _default_name(imported.source, graph),
                  input_spec=input_spec, label=imported.source.label,
                  refusals=ctx.refusals)
    model.has_weights = imported.has_weights
    model.notes.extend(imported.warnings)
    model.origin = imported.source  # model.verify() and the check set (checkset.py) run it
    return model


def _default_name(src: Source, graph: Graph) -> str:
    """The file's name; an in-memory PyTorch model's class (``ResNet``); else the graph's."""
    if src.path is not None:
        return src.path.stem
    if src.kind == "pytorch":
        from irc.frontends.pytorch.provenance import class_name

        found = class_name(src.model)
        if found:
            return found
    return graph.name or "model"
