"""The recurrent layer (RNN, LSTM, GRU; viya-semantics.md §13). Its computation, and that of fc
and output layers per time step, is executor/rnn.py's: the sequence path of run.py and shapes.py.
"""
from __future__ import annotations

from irc.backends.viya.executor import rnn

from .base import REQUIRED, Kind, Raw, TableForm
from .codec import Act, Field
from .registry import register


class _RnnEnums(Field):
    """rnnopts.rnntype and rnnopts.rnnoutputtype, read only (irc writes no recurrent rows)."""

    def read(self, src):
        rnn.table_options(src.rows, src.raw)


@register
class Recurrent(Kind):
    name = "recurrent"
    options = {"n": REQUIRED, "rnntype": REQUIRED, "outputtype": REQUIRED, "reversed": False,
               "act": "auto", "dropout": 0.0}
    table = TableForm(6, "rnnopts", "Recurrent Layer")
    # Known: layertype 6, rnntype LSTM = 1, rnnoutputtype same-length = 1 (§4.5). Not known
    # (§4.6): rnnopts.peephole for imported weights (which have no peepholes), the codes of
    # RNN/GRU, of the encoding output type and of the tanh/sigmoid activations.
    codec = (Act(), _RnnEnums())
    table_refusal = ("rnnopts.peephole has no verified value for imported recurrent weights "
                     "(viya-target.md §4.6)")
    weights = ("kernel", "recurrent_kernel", "bias")
    weight_doc = ("Keras layout (§5.5): kernel (d, G·n), recurrent_kernel (n, G·n), bias (G·n) "
                  "or (2, 3n) for GRU reset_after")
    act, dropout = True, True   # auto act: an executor option (viya-semantics §16)
    export_refusal = "recurrent layers are not exported to ONNX yet"

    def normalize(self, raw: Raw) -> dict:
        return rnn.normalize_options(raw.options, raw.num, raw.flag, raw.name, raw.file)

    def output_shape(self, layer, src_shapes, options) -> tuple:
        return rnn.output_shape(layer, src_shapes)

    def weight_shapes(self, layer, src_shapes, options) -> dict:
        return rnn.weight_shapes(layer, src_shapes, options)

    def run(self, layer, sources, options):
        # the activation is the cell's own (rnn.py); fc/output per step go through run.py
        return rnn.run_layer(layer, sources, options, None)
