"""The KERAS-format HDF5 weights file that dlImportModelWeights reads (viya-target.md §5).

Written layer by layer and block by block: a weight described as an expression (a transpose,
permutation or per-channel scale of a source weight) is computed one bounded block at a time
(irc.ir.weight_expr.BLOCK_BYTES), written and dropped, so peak memory stays near one block
beyond the memory-mapped source.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from irc.errors import InvalidModel


def _fixed_bytes(names: list[str]) -> np.ndarray:
    """Fixed-length byte strings, as Keras itself writes name lists."""
    width = max((len(n) for n in names), default=1)
    return np.array([n.encode("ascii") for n in names], dtype=f"S{max(width, 1)}")


def _all_finite(data: np.ndarray, chunk: int = 1 << 24) -> bool:
    """np.isfinite(data).all() in slices: no temporary as large as a 2 GB weight."""
    flat = data.reshape(-1)
    return all(np.isfinite(flat[i:i + chunk]).all() for i in range(0, flat.size, chunk))


def write_weights(model, path: Path, progress=None) -> None:
    weighted = model.weighted_layers()
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = _fixed_bytes([layer.name for layer in weighted])
        for layer in weighted:
            group = f.create_group(layer.name)
            names = layer.weight_names()
            group.attrs["weight_names"] = _fixed_bytes([f"{layer.name}/{w}:0" for w in names])
            for w in names:
                weight = layer.weights[w]
                # "<L>/<w>:0" inside group "/<L>" makes the dataset /<L>/<L>/<w>:0
                dataset = group.create_dataset(f"{layer.name}/{w}:0", shape=weight.shape,
                                               dtype=np.float32)
                for index, block in weight.blocks():
                    if not _all_finite(block):
                        raise InvalidModel(f"weight {w!r} of layer {layer.name!r} (from "
                                           f"{', '.join(layer.source_nodes) or '?'}) holds NaN "
                                           "or infinite values", hint="the source model is "
                                           "damaged; Viya would compute garbage from it")
                    if block.size:
                        dataset[index] = block
            if progress is not None:
                progress(layer.name)
