"""A PyTorch model as ONNX, through PyTorch's own exporters (torch.onnx.export).

Two exporters: the dynamo exporter (torch.export captures the Python code; the default) and
the TorchScript exporter (tracing; the fallback when dynamo fails, and the only one that takes
a TorchScript module). ``exporter="auto"`` tries dynamo first and, if it fails, says why in a
note and traces instead; "dynamo" or "torchscript" force one.
"""
from __future__ import annotations

import io
import logging
import re
import warnings
from contextlib import contextmanager, redirect_stderr, redirect_stdout

from irc.errors import InputShapeNeeded, InvalidModel, IrcError, UnsupportedAttribute
from irc.frontends.pytorch.loading import TorchModel, torch_module
from irc.frontends.pytorch.provenance import name_nodes_by_module, refuse_no_viya_form
from irc.frontends.pytorch.runtime import forward, inference_mode, input_names, output_names
from irc.ir.opset import OPSET
from irc.progress import report

# ONNX opsets the two exporters write: the TorchScript exporter writes irc's own OPSET (the one
# every model irc builds has; its symbolic functions are mature up to 17); the dynamo exporter's
# own minimum is 18, hence a number of its own. Both lie inside irc's ONNX importer's range.
DYNAMO_OPSET = 18
EXPORTERS = ("auto", "dynamo", "torchscript")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def to_onnx(tm: TorchModel, input_shape=None, exporter: str = "auto"):
    """(ONNX ModelProto, notes) for ``tm``, its input fixed to the example inputs' shapes."""
    if exporter not in EXPORTERS:
        raise UnsupportedAttribute(f"unknown PyTorch exporter {exporter!r}",
                                   hint="choose auto, dynamo or torchscript")
    args = example_inputs(tm, input_shape)
    notes = []
    if tm.form == "module" and tm.model.training:
        notes.append("the module was in training mode; irc compiled and verifies it in eval "
                     "mode (dropout off, batch norm on its running statistics)")
    n_outputs = len(forward(tm, args))  # also proves the model runs on these inputs
    names = (input_names(len(args)), output_names(n_outputs))
    if exporter == "torchscript" or (exporter == "auto" and tm.form == "torchscript"):
        return _torchscript(tm, args, names), notes
    try:
        return _dynamo(tm, args, names), notes
    except IrcError:  # irc's own verdict (a model with no Viya form): no fallback changes it
        raise
    except Exception as exc:  # torch.export raises many types; the reason is what matters
        reason = failure_reason(exc)
        if exporter == "dynamo":
            raise InvalidModel(f"the dynamo ONNX exporter failed: {reason}", file=tm.label,
                               hint="try --torch-exporter torchscript") from None
    report("the dynamo exporter failed; exporting with the TorchScript exporter")
    notes.append(f"the dynamo ONNX exporter failed ({reason}); the TorchScript exporter "
                 "was used instead")
    return _torchscript(tm, args, names, dynamo_reason=reason), notes


def example_inputs(tm: TorchModel, input_shape=None) -> tuple:
    """The tensors the model is exported with: its own example inputs, or random ones of
    ``input_shape`` (which must then agree with the example's)."""
    torch = torch_module()
    shape = _single_shape(input_shape, tm.label)
    if tm.example_inputs:
        have = tuple(tm.example_inputs[0].shape)
        if shape is not None and tuple(shape) != have:
            raise UnsupportedAttribute(f"--input-shape {','.join(map(str, shape))} differs from "
                                       f"the shape {','.join(map(str, have))} the model's example "
                                       "inputs have", file=tm.label,
                                       hint="drop --input-shape, or export the model again "
                                            "with inputs of the shape you want")
        return tuple(tm.example_inputs)
    if shape is None:
        what = "a TorchScript file" if tm.form == "torchscript" else "this module"
        raise InputShapeNeeded(f"{what} does not record its input shape",
                               file=tm.label, hint="give it: --input-shape N,C,H,W "
                               "(input_shape= or example_inputs=(tensor,) in Python)")
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(*shape, generator=generator),)


def _single_shape(input_shape, label):
    if isinstance(input_shape, dict):
        if len(input_shape) != 1:
            raise UnsupportedAttribute("a PyTorch model is compiled with one input shape",
                                       file=label, hint="give one --input-shape N,C,H,W")
        input_shape = next(iter(input_shape.values()))
    return tuple(int(d) for d in input_shape) if input_shape is not None else None


def _dynamo(tm: TorchModel, args: tuple, names):
    torch = torch_module()
    report("exporting to ONNX with PyTorch's dynamo exporter")
    with _quiet(), inference_mode(_module_of(tm)):
        program = tm.model if tm.form == "exported_program" else _traced(torch, tm.model, args)
        if program is not None:  # a model with no Viya form is refused before the slow part
            refuse_no_viya_form(program, tm.label)
        onnx_program = torch.onnx.export(program if program is not None else tm.model,
                                         args if program is None else (), dynamo=True,
                                         opset_version=DYNAMO_OPSET, input_names=names[0],
                                         output_names=names[1], verbose=False, optimize=True)
    proto = onnx_program.model_proto
    name_nodes_by_module(proto)
    return proto


def _traced(torch, module, args):
    """torch.export's program of ``module`` (the dynamo exporter's own first strategy), or None
    when it fails: torch.onnx.export then tries its other strategies itself."""
    try:
        return torch.export.export(module, args, strict=False)
    except Exception:  # torch.export raises many types; the ONNX exporter reports the reason
        return None


def _torchscript(tm: TorchModel, args: tuple, names, dynamo_reason: str | None = None):
    import onnx

    torch = torch_module()
    report("exporting to ONNX with PyTorch's TorchScript exporter")
    model, inner = tm.model, None
    if tm.form == "exported_program":
        inner = tm.model.module()
        model = _Traceable(inner)
    buffer = io.BytesIO()
    with _quiet(), inference_mode(_module_of(tm)), _constant_weights(inner):
        try:
            torch.onnx.export(model, args, buffer, dynamo=False,
                              opset_version=OPSET, input_names=names[0],
                              output_names=names[1], do_constant_folding=True)
        except Exception as exc:
            both = f" (the dynamo exporter failed first: {dynamo_reason})" if dynamo_reason else ""
            raise InvalidModel(f"the TorchScript ONNX exporter failed: "
                               f"{failure_reason(exc)}{both}", file=tm.label,
                               hint="PyTorch cannot write this model as ONNX; simplify the "
                                    "model's code around the failing operation") from None
    return onnx.load_from_string(buffer.getvalue())


@contextmanager
def _constant_weights(module):
    """A program's module traced with its weights as constants (see Traceable): the tracer
    refuses a constant that requires grad ("Cannot insert a Tensor that requires grad as a
    constant", on any trained model), so the flags are off for the export and restored after
    it (the program's own parameters share these tensors). ``module`` None: nothing to do."""
    params = list(module.parameters()) if module is not None else []
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


@contextmanager
def _quiet():
    """The exporters' warnings, log records and prints kept off the terminal: a failing
    torch.export logs and prints whole graphs as it tries its strategies, and irc reports one
    line (the reason) instead. logging.disable is process-wide, so it is lifted as soon as the
    export returns."""
    previous = logging.root.manager.disable
    sink = io.StringIO()
    with warnings.catch_warnings(), redirect_stdout(sink), redirect_stderr(sink):
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(previous)


def _module_of(tm: TorchModel):
    return tm.model if tm.form != "exported_program" else None


def _traceable_class():
    torch = torch_module()

    class Traceable(torch.nn.Module):
        """An exported program's module for tracing: the tracer switches modules to eval,
        which a program's module refuses, so it is held outside the module tree (its weights
        are traced as constants, which the ONNX file stores as initializers)."""

        def __init__(self, inner):
            super().__init__()
            object.__setattr__(self, "inner", inner)

        def forward(self, *args):
            return self.inner(*args)

    return Traceable


def _Traceable(inner):  # noqa: N802 - builds an instance of the class above
    return _traceable_class()(inner)


def failure_reason(exc: BaseException) -> str:
    """The innermost cause's type and first line: the exporters wrap the real error in pages
    of advice."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [ln.strip() for ln in _ANSI.sub("", str(exc)).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__
