"""Writing the output folder atomically: a temporary folder beside the target, renamed on success.

Interrupted or failed runs leave no partial folder: the temporary one is removed on any
exception (KeyboardInterrupt included), and the target is only replaced at the very end.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from irc.backends.viya.casl import write_casl
from irc.backends.viya.checkset import add_check_set, load_check_set
from irc.backends.viya.hdf5 import write_weights
from irc.backends.viya.table import TableNotExpressible, write_table_csv
from irc.errors import IrcIOError


def name_map(model) -> dict:
    return {
        "model": model.name,
        "layers": {layer.name: {"kind": layer.kind, "source": list(layer.source_nodes),
                                "passes": list(layer.passes), "tensor": layer.tensor}
                   for layer in model.layers},
        "inputs": dict(model.inputs),
        "outputs": dict(model.outputs),
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_folder(model, folder: Path, progress=None) -> list[str]:
    """Write every artifact into an existing empty ``folder``; returns notes for the user."""
    notes = []
    try:
        write_table_csv(model, folder / "model_table.csv")
    except TableNotExpressible as exc:
        notes.append(f"model_table.csv not written: {exc.message} (model.json has the payloads)")
    model.notes.extend(n for n in notes if n not in model.notes)
    payloads = model.payloads()
    _write_json(folder / "model.json", payloads)
    if model.has_weights:
        write_weights(model, folder / model.weights_file, progress=progress)
    _write_json(folder / "name_map.json", name_map(model))
    if model.has_weights:  # verification examples a CAS server can score (irc deploy --check)
        check_notes = add_check_set(folder, getattr(model, "origin", None))
        model.notes.extend(n for n in check_notes if n not in model.notes)
        notes += check_notes
    # The same model as a CASL program for SAS Studio users (deepLearn actions), with the
    # check set's scoring when there is one.
    (folder / "model.sas").write_text(write_casl(payloads, load_check_set(folder)),
                                      encoding="utf-8")
    return notes


def save_model(model, outdir: Path, force: bool = False, progress=None, check=None) -> Path:
    """Write into a temporary folder, run ``check(folder)`` on it, then move it into place.

    ``check`` (e.g. verification) raising leaves nothing behind.
    """
    outdir = Path(outdir)
    if outdir.exists() and not force:
        raise IrcIOError(f"output folder {outdir} already exists",
                         hint="choose another -o folder, or pass --force to replace it")
    parent = outdir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.irc-", dir=parent))
    except OSError as exc:
        raise IrcIOError(f"cannot create the output folder: {exc}", file=str(outdir)) from None
    try:
        write_folder(model, tmp, progress)
        if check is not None:
            model.release_source_pages()  # the check reads the files written, not the source
            check(tmp)
        if outdir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.old-", dir=parent))
            os.replace(outdir, trash / "old")
            os.replace(tmp, outdir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, outdir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise IrcIOError(f"writing the output failed: {exc}", file=str(outdir)) from None
        raise
    return outdir
