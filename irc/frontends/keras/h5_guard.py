"""Reading a Keras .h5 file's metadata in a child process that can be stopped.

A byte-damaged HDF5 file can make libhdf5 loop forever inside one call (seen while reading
attributes of fuzzed Keras files); no Python code runs meanwhile, so neither a timeout nor
Ctrl-C can end it. Before irc (or Keras) touches a .h5 file in-process, a child walks every
group and dataset, reads every attribute and returns the two irc needs (``model_config``,
``keras_version``). A child that does not finish in ``irc.limits.h5_read_seconds()`` is killed
and the file refused; one that dies of a signal means h5py itself crashed on the file.

    python -m irc.frontends.keras.h5_guard FILE      # the child: prints one JSON line
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from irc.errors import InvalidModel


def read_attributes(path: Path, label: str) -> tuple[str | None, str]:
    """(model_config JSON text or None, keras_version) of the .h5 at ``path``, read safely."""
    from irc.limits import h5_read_seconds

    seconds = h5_read_seconds()
    try:
        done = subprocess.run([sys.executable, "-m", "irc.frontends.keras.h5_guard", str(path)],
                              capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        raise InvalidModel(f"reading the HDF5 file's metadata did not finish in {seconds} s; "
                           "libhdf5 loops on some damaged files", file=label,
                           hint="the file is likely damaged: save the model again (a slow disk "
                                "may need IRC_H5_READ_SECONDS raised)") from None
    if done.returncode < 0:
        raise InvalidModel(f"h5py crashed (signal {-done.returncode}) reading the file",
                           file=label, hint="the file is damaged: save the model again")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InvalidModel(f"not a readable HDF5 file ({reason})", file=label)
    result = json.loads(lines[-1])
    return result["model_config"], result["keras_version"]


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _child(path: str) -> None:
    import h5py

    with h5py.File(path, "r") as f:
        def touch(_name, obj):
            for key in obj.attrs:
                obj.attrs.get(key)
            if isinstance(obj, h5py.Dataset):
                (obj.shape, obj.dtype)

        touch("/", f)
        f.visititems(touch)
        result = {"model_config": _text(f.attrs.get("model_config")),
                  "keras_version": _text(f.attrs.get("keras_version", "")) or ""}
    print(json.dumps(result))


if __name__ == "__main__":
    _child(sys.argv[1])
