"""The Python API: ``irc.compile(source, ...) -> ViyaModel``."""
from __future__ import annotations

from pathlib import Path

from irc.errors import InvalidModel
from irc.ir.graph import Graph


def frontend_for(source) -> str:
    """Which frontend reads ``source`` (a path or an in-memory model)."""
    import onnx

    if isinstance(source, onnx.ModelProto):
        return "onnx"
    if isinstance(source, (str, Path)):
        suffix = Path(source).suffix.lower()
        if suffix == ".onnx":
            return "onnx"
        if suffix in (".prototxt", ".caffemodel"):
            return "caffe"
        if suffix in (".keras", ".h5", ".hdf5"):
            return "keras"
        raise InvalidModel(f"unknown model file type {suffix or '(no suffix)'!r}", file=str(source),
                           hint="irc reads .onnx files (Keras .keras/.h5 and Caffe .prototxt "
                                "have their own frontends)")
    raise InvalidModel(f"cannot compile an object of type {type(source).__name__}",
                       hint="pass an .onnx path or an onnx.ModelProto")


def import_model(source, input_shape=None) -> Graph:
    """The source model as an IR graph (before any pass)."""
    kind = frontend_for(source)
    if kind == "onnx":
        from irc.frontends.onnx import import_onnx

        return import_onnx(source, input_shapes=input_shape)
    raise InvalidModel(f"the {kind} frontend is not available yet", file=str(source),
                       hint="convert the model to ONNX first, or see the open issues")


def optimize(graph: Graph, pipeline=None, instruments=(), ctx=None) -> Graph:
    """Run the pass pipeline (default: DEFAULT_PIPELINE) with the given and env instruments."""
    from irc.passes.instruments import instruments_from_env
    from irc.passes.manager import PassManager
    from irc.passes.pipeline import DEFAULT_PIPELINE

    instruments = list(instruments) + instruments_from_env()
    return PassManager(pipeline or DEFAULT_PIPELINE, instruments, ctx).run(graph)


def compile(source, name: str | None = None, input_shape=None, input_options: dict | None = None,
            pipeline=None, instruments=(), pass_context=None):  # noqa: A001 - public name
    """Compile ``source`` (an .onnx path or ModelProto) into a :class:`ViyaModel`.

    ``input_shape``: a shape for a single-input model, or {input name: shape}, fixing dynamic
    dimensions. ``input_options``: Viya input preprocessing ``scale``, ``offsets``, ``normstds``
    (the source model is assumed to receive ``(x*scale - offsets)/normstds``).
    """
    from irc.backends.viya.lower import lower

    from irc.passes.registry import PassContext

    graph = import_model(source, input_shape)
    ctx = pass_context if pass_context is not None else PassContext()
    optimize(graph, pipeline, instruments, ctx)
    label = "<ModelProto>" if not isinstance(source, (str, Path)) else str(source)
    model = lower(graph, name=name or _default_name(source, graph), input_options=input_options,
                  label=label, refusals=ctx.refusals)
    return model


def _default_name(source, graph: Graph) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).stem
    return graph.name or "model"
