"""NumPy reference executor of emitted Viya models.

It proves a conversion without a Viya server by re-executing THE FILES on disk (model.json or
model_table.csv plus the KERAS HDF5 weights) the way Viya computes (docs/
viya-semantics.md); it never sees the compiler's in-memory structures.

    model = load_viya_model("out/")                  # or .../model.json, .../model_table.csv
    outputs = execute(model, x)                      # {terminal layer name: array}
    outputs = run_folder("out/", x, ExecutorOptions(pool_auto_pad="split_tf"))
"""
from .shapes import expected_weight_shapes, infer_shapes
from .options import ExecutorOptions
from .reader import (ViyaLayer, ViyaModelFiles, load_viya_model, read_model_json,
                     read_model_table, read_weights)
from .run import execute, run_folder

__all__ = ["ExecutorOptions", "ViyaLayer", "ViyaModelFiles", "execute", "expected_weight_shapes",
           "infer_shapes", "load_viya_model", "read_model_json", "read_model_table",
           "read_weights", "run_folder"]
