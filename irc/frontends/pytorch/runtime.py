"""Running a PyTorch model in PyTorch: the verification oracle, and the names that tie its
outputs to the ONNX graph irc compiles.

Both exporters are given the same input and output names (:func:`input_names`,
:func:`output_names`), so the oracle's outputs are keyed as the ONNX graph's outputs without
the ONNX model at hand: ``irc verify model.pt2 out/`` reloads the file and runs it alone.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from irc.errors import InvalidModel, VerificationFailed
from irc.frontends.pytorch.loading import TorchModel, torch_module


def input_names(count: int) -> list[str]:
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


def output_names(count: int) -> list[str]:
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def flat_outputs(result) -> list:
    """The output tensors in the order both exporters flatten them (tuples, lists, dict
    values in insertion order)."""
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in flat_outputs(item)]
    if isinstance(result, dict):
        return [t for item in result.values() for t in flat_outputs(item)]
    return [result]


@contextmanager
def inference_mode(model):
    """The module in eval mode (dropout off, batch norm on its running statistics) inside the
    block, every submodule's own training flag restored after it: irc compiles for inference
    and leaves the caller's module as it was."""
    torch = torch_module()
    if not isinstance(model, torch.nn.Module):
        with torch.no_grad():
            yield model
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for module, training in flags:
            module.training = training


def callable_of(tm: TorchModel):
    """What to call: the module itself, or the program's module (which checks input shapes)."""
    if tm.form == "exported_program":
        return tm.model.module()
    return tm.model


def forward(tm: TorchModel, args: tuple, fn=None) -> list:
    """The model's flat output tensors for the tensors ``args`` (``fn``: callable_of(tm))."""
    torch = torch_module()
    fn = fn if fn is not None else callable_of(tm)
    # A program's module refuses train()/eval(): its graph already fixed the mode.
    with inference_mode(tm.model if tm.form != "exported_program" else None):
        try:
            result = fn(*args)
        except Exception as exc:  # whatever the model's own code raises
            text = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else ""
            raise InvalidModel(f"PyTorch cannot run the model on inputs of shape "
                               f"{[tuple(a.shape) for a in args]}: {type(exc).__name__}: "
                               f"{text}", file=tm.label,
                               hint="give the input shape the model takes (--input-shape "
                                    "N,C,H,W; example_inputs= in Python)") from None
    outputs = flat_outputs(result)
    if not all(isinstance(t, torch.Tensor) for t in outputs):
        raise InvalidModel("the model returns something other than tensors", file=tm.label,
                           hint="return a tensor, or a tuple/list/dict of tensors")
    return outputs


def float64_callable(tm: TorchModel):
    """A copy of the model computing in float64 (``.double()`` on a deep copy: the caller's
    module keeps its float32 weights)."""
    import copy
    import warnings

    with warnings.catch_warnings():  # copying a program's module reads .grad: a UserWarning
        warnings.simplefilter("ignore")
        module = copy.deepcopy(callable_of(tm)).double()
    if tm.form != "exported_program":  # a program's module refuses eval(): its graph fixed it
        module.eval()  # our copy: inference mode for good (dropout off, running statistics)
    return module


def run(tm: TorchModel, feeds: dict[str, np.ndarray],
        float64: bool = False) -> dict[str, np.ndarray]:
    """PyTorch's outputs for ``feeds`` (keyed by :func:`input_names`), keyed by
    :func:`output_names`. An exported program fixes its batch size, so it runs in chunks of
    the batch it was exported with. ``float64``: a float64 copy of the model runs them."""
    torch = torch_module()
    names = input_names(len(feeds))
    if set(names) != set(feeds):
        raise VerificationFailed(f"inputs {sorted(feeds)} are not the model's {names}",
                                 file=tm.label)
    arrays = [np.asarray(feeds[n], np.float64 if float64 else np.float32) for n in names]
    n = arrays[0].shape[0]
    chunk = n
    if tm.form == "exported_program" and tm.example_inputs:
        chunk = int(tm.example_inputs[0].shape[0]) or n
        if n % chunk:
            raise VerificationFailed(f"the program was exported for batches of {chunk}; "
                                     f"{n} examples do not split into them", file=tm.label,
                                     hint=f"verify with --batch {chunk}")
    fn = float64_callable(tm) if float64 else callable_of(tm)
    runs = []
    for start in range(0, n, chunk):
        args = tuple(torch.from_numpy(a[start:start + chunk].copy()) for a in arrays)
        runs.append([t.detach().cpu().numpy() for t in forward(tm, args, fn)])
    return {name: np.concatenate([r[i] for r in runs])
            for i, name in enumerate(output_names(len(runs[0])))}
