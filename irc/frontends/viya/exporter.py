"""``export``: a Viya model (irc's output folder, or a server-written model table) → ONNX."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import onnx
from onnx import helper
from onnx.external_data_helper import load_external_data_for_model

from irc.backends.viya.executor.reader import ViyaModelFiles
from irc.errors import IrcIOError
from irc.ir.onnx_export import to_onnx

from .loading import check_exportable, load_weights, read_structure
from .lowering import to_graph
from .options import ExportOptions

# Past this many initializer bytes a ModelProto cannot be serialised in one piece.
_PROTO_LIMIT = 1_800_000_000


def read_viya(path_or_table, weights=None, generate_weights: bool = False,
              options=None) -> ViyaModelFiles:
    """A Viya model with its weights, ready for :func:`to_graph`.

    ``path_or_table``: an irc output folder, a model.json, a model_table.csv (irc's or
    server-written), or a pandas DataFrame of the five model-table columns. ``weights``: a
    KERAS HDF5 file, a weights table (.csv or DataFrame with ``_LayerID_``, ``_WeightID_``,
    ``_Weight_``), or None for the file model.json names / the single
    ``*_weights.kerasmodel.h5`` beside a table. ``generate_weights``: seeded random weights
    of the right shapes instead (``options["seed"]``).
    """
    opts = ExportOptions.make(options)
    model, named, errors = read_structure(path_or_table)
    check_exportable(model, errors)
    model.weights_source = load_weights(model, weights, named, generate_weights, opts)
    return model


def export(path_or_table, output=None, weights=None, generate_weights: bool = False,
           options=None) -> onnx.ModelProto:
    """Export a Viya model to an onnx.checker-valid ONNX model (opset 17).

    Arguments as for :func:`read_viya`; ``options``: a dict (or :class:`ExportOptions`) of the
    reference executor's open-point options (``pool_auto_pad``, ``pool_explicit_rounding``,
    ``maxpool_pad``, ``avgpool_divisor``, ``bn_extra_eps``, ``elu_alpha``,
    ``dropout_scoring``) plus ``fc_weight_order`` ('in_major' | 'out_major', weights tables
    only) and ``seed``. The ONNX input is the Viya input layer's raw image values (N, C, H, W);
    the outputs are the terminal layers, named as the layers. With ``output``, the model is
    also written there (atomically; as external data past 2 GB).

    Raises UnsupportedOp naming every layer irc cannot export (detection, recurrent, CTC
    output, ...), InvalidModel for unreadable or inconsistent files.
    """
    opts = ExportOptions.make(options)
    model = read_viya(path_or_table, weights, generate_weights, opts)
    proto = to_onnx(to_graph(model, opts))
    proto.doc_string = f"exported by irc from the Viya model {model.name!r}"
    helper.set_model_props(proto, {   # beside what the graph states (a detection head)
        **{prop.key: prop.value for prop in proto.metadata_props},
        "irc.viya.model": str(model.model_path),
        "irc.viya.weights": model.weights_source,
        "irc.viya.options": json.dumps(opts.as_dict(), sort_keys=True, default=str)})
    large = sum(len(t.raw_data) for t in proto.graph.initializer) > _PROTO_LIMIT
    if not large:
        onnx.checker.check_model(proto)
    if output is not None:
        _save(proto, Path(output), large)
    return proto


def _save(proto: onnx.ModelProto, output: Path, large: bool) -> None:
    """Write into a temporary folder beside ``output``, check, then rename into place (the
    model and, past 2 GB, its ``<output>.data`` file)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    data = output.name + ".data"
    try:
        if large:
            onnx.save_model(proto, tmp / output.name, save_as_external_data=True,
                            all_tensors_to_one_file=True, location=data, size_threshold=0)
            onnx.checker.check_model(str(tmp / output.name))
            # saving moved the weights out of ``proto``: bring them back for the caller
            load_external_data_for_model(proto, str(tmp))
            os.replace(tmp / data, output.parent / data)
        else:
            onnx.save_model(proto, tmp / output.name)
        os.replace(tmp / output.name, output)
    except OSError as err:
        raise IrcIOError(f"cannot write the ONNX model: {err}", file=str(output)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
