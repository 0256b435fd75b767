"""Out of Viya: read a Viya model back (irc's output folder, or a server-written model table
with a KERAS HDF5 file, a weights table, or generated weights) and export it to ONNX.

    proto = export("out/")                                          # irc compile output
    proto = export("Simple_CNN.csv", "simple.onnx", generate_weights=True)
    proto = export("model_table.csv", weights="weights.csv", options={"fc_weight_order": ...})

The ONNX model computes what Viya computes under the reference executor's semantics
(docs/viya-semantics.md; the open points are ``options``).
"""
from .exporter import export, read_viya
from .loading import (EXPORTABLE, generate_weights, read_structure, read_weights_table,
                      write_weights_h5)
from .lowering import to_graph
from .options import FC_WEIGHT_ORDERS, ExportOptions

__all__ = ["EXPORTABLE", "ExportOptions", "FC_WEIGHT_ORDERS", "export", "generate_weights",
           "read_structure", "read_viya", "read_weights_table", "to_graph", "write_weights_h5"]
