"""The ONNX frontend: ``.onnx`` files (with external data) and in-memory ``ModelProto``s.

``import_onnx`` and ``ONNX_OPS`` load the importer (and networkx) on first use, so the light
modules here (``loader``, ``wire``) can be used alone.
"""
__all__ = ["ONNX_OPS", "import_onnx"]


def __getattr__(name: str):
    if name in __all__:
        from irc.frontends.onnx import importer

        return getattr(importer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
