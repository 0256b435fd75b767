"""The ONNX frontend: ``.onnx`` files (with external data) and in-memory ``ModelProto``s."""
from irc.frontends.onnx.importer import ONNX_OPS, import_onnx

__all__ = ["ONNX_OPS", "import_onnx"]
