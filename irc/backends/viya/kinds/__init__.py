"""One place per Viya layer kind: everything irc knows about a kind, behind one registry entry.

A kind module (``input.py``, ``conv.py``, ...) defines one :class:`~.base.Kind` subclass per
addLayer type and registers it (``registry.register``). The class holds the facts (payload options
and their defaults, table code, label, prefix and row codec, HDF5 weight order) and the facets
every consumer calls through the registry instead of a dispatch of its own:

    normalize      payload options -> the executor's option dict      (executor/reader.py)
    output_shape   per-example output shape from the sources' shapes   (executor/shapes.py)
    weight_shapes  the HDF5 datasets the layer needs and their shapes  (executor/shapes.py)
    run            the layer's computation, written from the semantics (executor/run.py)
    export         the layer as ONNX-semantics IR ops                  (frontends/viya/lowering.py)
    codec          the model-table rows, written and read back         (table.py, executor/reader.py)

Kinds irc does not compute are registered too, with the reason (``scope`` OPEN or OUT), so every
consumer refuses them by that reason instead of falling through. ``catalog.py`` imports the kind
modules; this package's ``__init__`` imports none, so the registry has no import circle.
"""
