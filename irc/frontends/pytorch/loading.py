"""Reading PyTorch sources: in-memory modules and programs, and the files PyTorch writes.

What a file is, is decided from its contents, never run: every PyTorch file is a zip archive
(or, for old ``torch.save`` files, a bare pickle), and the archive's entry names tell the forms
apart: ``archive_format``/``models/*.json`` (``torch.export.save``), ``code/`` (TorchScript,
``torch.jit.save``), only ``data.pkl`` (``torch.save`` of a state_dict or a whole module).

Loading any of them can run code stored in the file, so nothing is loaded without
``allow_pickle=True`` (``--allow-pickle``), except a state_dict, which is recognised with
PyTorch's restricted ``weights_only`` unpickler (made for untrusted files) and refused because
it holds no model. The reasons, per form:

- ``torch.export.load`` (.pt2) unpickles: in torch 2.14 the sample inputs are read with
  ``torch.load(weights_only=True)`` and, on ANY failure of that, again with
  ``weights_only=False`` (full pickle); tensor-subclass weights and constants use
  ``torch.load(weights_only=False)``, opaque constants ``pickle.loads``, and an AOTInductor
  entry loads a compiled shared library. A crafted .pt2 runs code, so it is as trusted as a
  pickle (torch's own docstring: "Never load data from an untrusted source").
- ``torch.jit.load`` runs the TorchScript code stored in the archive.
- ``torch.load(weights_only=False)`` of a whole pickled module runs arbitrary pickle code.
"""
from __future__ import annotations

import logging
import sys
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from irc.errors import InvalidModel, IrcIOError
from irc.progress import report

PYTORCH_SUFFIXES = (".pt2", ".pt", ".pth", ".torchscript")
OPT_IN_HINT = ("only for files you trust: `irc compile --allow-pickle` (allow_pickle=True in "
               "Python) loads it; or load the model yourself and pass the nn.Module to "
               "irc.compile(module, example_inputs=...)")
STATE_DICT_HINT = ("give the model itself: torch.export.save(torch.export.export(model, "
                   "(x,)), 'model.pt2'), or torch.jit.save(torch.jit.trace(model, x), "
                   "'model.pt'), or in Python irc.compile(model, example_inputs=(x,))")


@dataclass
class TorchModel:
    model: object  # a torch.nn.Module (ScriptModule included) or a torch.export.ExportedProgram
    example_inputs: tuple | None  # tensors the model was exported with, when known
    label: str
    form: str  # "exported_program" | "torchscript" | "module"


def torch_module():
    """``torch``, imported only when a PyTorch model is compiled (it takes seconds)."""
    _keep_triton_out_after_tensorflow()
    try:
        import torch
    except ImportError as exc:
        raise InvalidModel(f"the PyTorch frontend needs torch ({exc})",
                           hint="pip install 'irc[torch]'") from None
    return torch


def _keep_triton_out_after_tensorflow() -> None:
    """Importing triton (torch's GPU kernel compiler, which the dynamo exporter probes for) in a
    process that has already loaded TensorFlow crashes the interpreter with a segmentation fault
    (measured with torch 2.14.1's triton and TensorFlow 2.21: `import tensorflow; import triton`;
    the other order works). irc compiles nothing with triton, so when TensorFlow is loaded and
    triton is not, triton is made unimportable for this process: torch then reports it absent
    (its probes catch the ImportError) and exports on the CPU as usual."""
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None  # `import triton` now raises ImportError


def is_torch_object(obj) -> bool:
    """An nn.Module or ExportedProgram (without importing torch: one can only exist if it is)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return False
    return isinstance(obj, (torch.nn.Module, torch.export.ExportedProgram))


def load(source, allow_pickle: bool = False, example_inputs=None) -> TorchModel:
    """The model behind ``source`` (an in-memory model or a path), loaded only when safe."""
    if isinstance(source, (str, Path)):
        return _load_path(Path(source), allow_pickle, example_inputs)
    torch = torch_module()
    examples = _as_tuple(example_inputs)
    if isinstance(source, torch.export.ExportedProgram):
        return TorchModel(source, examples or _program_examples(source),
                          "<ExportedProgram>", "exported_program")
    if isinstance(source, torch.jit.ScriptModule):
        return TorchModel(source, examples, f"<{type(source).__name__}>", "torchscript")
    if isinstance(source, torch.nn.Module):
        return TorchModel(source, examples, f"<nn.Module {type(source).__name__}>", "module")
    raise InvalidModel(f"cannot read a PyTorch model from a {type(source).__name__}",
                       hint="pass an nn.Module, an ExportedProgram, or a .pt2/.pt path")


def _load_path(path: Path, allow_pickle: bool, example_inputs) -> TorchModel:
    label = str(path)
    if not path.is_file():
        raise IrcIOError("file not found", file=label, hint="check the path")
    form = sniff(path, label)
    # Refused before torch is even imported (seconds), except a pickle, which torch's
    # restricted unpickler must read to tell a state_dict from a whole module.
    torch = torch_module() if form == "pickle" or allow_pickle else None
    if form == "pickle":
        with _quiet_torch():
            weights_only = _is_state_dict(torch, path)
        if weights_only:
            raise InvalidModel("the file holds only weights (a state_dict), not a model",
                               file=label, hint=STATE_DICT_HINT)
    if not allow_pickle:
        what = {"exported_program": "torch.export.load", "torchscript": "torch.jit.load",
                "pickle": "torch.load"}[form]
        raise InvalidModel(f"loading this PyTorch file ({what}) runs code stored in it; irc "
                           "does not load it without --allow-pickle", file=label,
                           hint=OPT_IN_HINT)
    examples = _as_tuple(example_inputs)
    report(f"loading {path.name} with PyTorch")
    with _quiet_torch():
        return _load_file(torch, path, label, form, examples)


def _load_file(torch, path: Path, label: str, form: str, examples) -> TorchModel:
    try:
        if form == "exported_program":
            program = torch.export.load(str(path))
            return TorchModel(program, examples or _program_examples(program), label, form)
        if form == "torchscript":
            return TorchModel(torch.jit.load(str(path), map_location="cpu"), examples, label,
                              form)
        model = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises RuntimeError, ValueError, pickle errors, ...
        raise InvalidModel(f"PyTorch could not load the file: {_first_line(exc)}",
                           file=label) from None
    if not isinstance(model, torch.nn.Module):
        raise InvalidModel(f"the pickle holds a {type(model).__name__}, not an nn.Module",
                           file=label, hint=STATE_DICT_HINT)
    return TorchModel(model, examples, label, "module")


@contextmanager
def _quiet_torch():
    """torch's deprecation warnings, and the log records (with tracebacks) torch.export.load
    writes before raising, kept off stderr: irc reports one message."""
    loggers = [logging.getLogger(name) for name in ("torch.export", "torch._export")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def sniff(path: Path, label: str) -> str:
    """"exported_program", "torchscript" or "pickle", from the archive's entry names."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return "pickle"  # torch.save's pre-1.6 format: a bare pickle stream
    except OSError as exc:
        raise IrcIOError(f"cannot read the file: {exc}", file=label) from None
    # Entries sit under one root folder named after the archive ("model/code/...").
    inner = {name.split("/", 1)[1] for name in names if "/" in name}
    if "archive_format" in inner or any(n.startswith("models/") for n in inner):
        return "exported_program"
    if "constants.pkl" in inner or any(n.startswith("code/") for n in inner):
        return "torchscript"
    if "data.pkl" in inner:
        return "pickle"
    raise InvalidModel("a zip archive that PyTorch did not write (no data.pkl, code/ or "
                       "models/ entries)", file=label,
                       hint="give a torch.export.save .pt2 or a torch.jit.save .pt file")


def _is_state_dict(torch, path: Path) -> bool:
    """Whether the pickle holds only tensors (in dicts/lists), read with torch's restricted
    unpickler, which builds tensors and containers and nothing else (safe on any file)."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # a class the restricted unpickler refuses: a whole pickled module
        return False
    if isinstance(obj, dict) and "state_dict" in obj:  # a training checkpoint
        return True
    return isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _as_tuple(example_inputs) -> tuple | None:
    """``example_inputs`` as a tuple: one tensor alone is taken as the single input."""
    if example_inputs is None:
        return None
    if hasattr(example_inputs, "shape"):
        return (example_inputs,)
    return tuple(example_inputs)


def _program_examples(program) -> tuple | None:
    examples = getattr(program, "example_inputs", None)
    if not examples:
        return None
    args, kwargs = examples
    return tuple(args) if not kwargs else None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__
