"""The PyTorch frontend: nn.Modules and ExportedPrograms in memory, ``torch.export.save`` .pt2
files, TorchScript (``torch.jit.save``) and whole-module ``torch.save`` files.

    proto, notes = pytorch_to_onnx(module, example_inputs=(x,))   # ONNX via torch.onnx.export
    outputs = run_pytorch(module, {"input": x})                   # the oracle, keyed as the ONNX

The model becomes ONNX through PyTorch's own exporters (:mod:`export`: dynamo first, the
TorchScript exporter as the fallback), and irc's ONNX frontend takes it from there. Files are
read only with ``allow_pickle=True``: loading any of them can run code (:mod:`loading`). torch
is imported only when a PyTorch model is compiled.
"""
from __future__ import annotations

from irc.frontends.pytorch.loading import PYTORCH_SUFFIXES, is_torch_object

__all__ = ["PYTORCH_SUFFIXES", "is_torch_object", "pytorch_to_onnx", "run_pytorch"]


def pytorch_to_onnx(source, input_shape=None, allow_pickle: bool = False, example_inputs=None,
                    exporter: str = "auto"):
    """``source`` (nn.Module, ExportedProgram or a file path) as (ONNX ModelProto, notes).

    ``example_inputs``: the tensors to export with (a module's input shape comes from them, or
    from ``input_shape`` N,C,H,W); an ExportedProgram carries its own. ``exporter``: "auto",
    "dynamo" or "torchscript".
    """
    from irc.frontends.pytorch.export import to_onnx
    from irc.frontends.pytorch.loading import load

    return to_onnx(load(source, allow_pickle, example_inputs), input_shape, exporter)


def run_pytorch(source, feeds, allow_pickle: bool = False, float64: bool = False):
    """PyTorch's outputs for ``feeds`` ({ONNX input name: array}): {ONNX output name: array}.
    ``float64``: a copy of the model in float64 (``.double()``) runs them."""
    from irc.frontends.pytorch.loading import load
    from irc.frontends.pytorch.runtime import run

    return run(load(source, allow_pickle), feeds, float64)
