"""ONNX models irc builds in memory whose large weights live in a side file.

Protobuf cannot hold a message past 2 GB, so an ONNX ModelProto irc makes itself (the direct
Keras route) for a big model keeps its large weights as standard ONNX external data in a file
of a private temporary folder, named in the model's ``metadata_props`` under :data:`DIR_KEY`.
The loader memory-maps them from there; onnxruntime gets the model saved into that folder;
``irc inspect -o`` copies the file next to the ONNX it writes. The folder is removed when the
process exits.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

DIR_KEY = "irc_external_dir"
WEIGHTS_FILE = "weights.bin"
MIN_TENSOR_BYTES = 1 << 20  # smaller tensors stay inline (shape constants among them)


def external_dir(model: onnx.ModelProto) -> Path | None:
    """The folder holding ``model``'s side file, or None for an ordinary model."""
    entry = next((p for p in model.metadata_props if p.key == DIR_KEY), None)
    return Path(entry.value) if entry is not None else None


class SideFile:
    """Writes tensors into WEIGHTS_FILE of a fresh temporary folder, one after another."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="irc-weights-"))
        atexit.register(shutil.rmtree, self.folder, True)
        self._file = open(self.folder / WEIGHTS_FILE, "wb")

    def tensor(self, name: str, array: np.ndarray) -> TensorProto:
        """An external-data TensorProto for ``array``, whose bytes go to the file now."""
        array = np.ascontiguousarray(array)
        offset = self._file.tell()
        array.tofile(self._file)
        t = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype),
                        dims=array.shape, data_location=TensorProto.EXTERNAL)
        for key, value in (("location", WEIGHTS_FILE), ("offset", str(offset)),
                           ("length", str(array.nbytes))):
            t.external_data.add(key=key, value=value)
        return t

    def finish(self, model: onnx.ModelProto) -> onnx.ModelProto:
        self._file.close()
        model.metadata_props.add(key=DIR_KEY, value=str(self.folder))
        return model


def array_of(tensor: TensorProto, folder: Path) -> np.ndarray:
    """A read-only memory map of one external tensor written by :class:`SideFile`."""
    info = {e.key: e.value for e in tensor.external_data}
    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    return np.memmap(folder / info["location"], dtype=dtype, mode="r",
                     offset=int(info.get("offset", 0)), shape=tuple(tensor.dims))


def runnable(model: onnx.ModelProto):
    """What onnxruntime can open: the model itself, or a path to it saved beside its side
    file (an in-memory session cannot read external data)."""
    folder = external_dir(model)
    if folder is None:
        return model
    path = folder / f"model_{id(model)}.onnx"
    onnx.save(model, str(path))
    return path


def save_with_weights(model: onnx.ModelProto, path: Path) -> None:
    """Save ``model`` to ``path``; a side file is copied beside it as ``<stem>.weights.bin``."""
    folder = external_dir(model)
    if folder is None:
        onnx.save(model, str(path))
        return
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    target = f"{Path(path).stem}.weights.bin"
    shutil.copyfile(folder / WEIGHTS_FILE, Path(path).parent / target)
    for t in copy.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location" and entry.value == WEIGHTS_FILE:
                entry.value = target
    for p in list(copy.metadata_props):
        if p.key == DIR_KEY:
            copy.metadata_props.remove(p)
    onnx.save(copy, str(path))
