"""Evaluate a model read from disk, layer by layer in _DLLayerID_ order (viya-semantics.md §1).

Each layer is its kind's ``run`` facet (irc/backends/viya/kinds/), then the layer's activation
and dropout rule, which every kind shares; fc/output layers per time step are rnn.py's.
"""
from __future__ import annotations

import numpy as np

from irc.backends.viya import schema
from irc.errors import InvalidModel, IrcError

from . import kernels, rnn
from .shapes import expected_weight_shapes, infer_shapes
from .options import ExecutorOptions
from .reader import ViyaModelFiles, load_viya_model

F32 = np.float32


def execute(model: ViyaModelFiles, x, options: ExecutorOptions | None = None,
            all_layers: bool = False) -> dict:
    """Run ``model`` on ``x`` (float32 (N, C, H, W), raw image-table values).

    Returns {layer name: output} for the terminal layers (those nobody consumes), or for every
    layer when ``all_layers``. 4-D layers give (N, C, H, W); fc/output give (N, n).
    """
    options = options or ExecutorOptions()
    x = np.asarray(x)
    if x.ndim == 3:   # (N, T, d) sequences: the RNN input layer reads them as 1 x 1 x T·d
        x = x.reshape(x.shape[0], 1, 1, -1)
    if x.ndim != 4:
        raise ValueError(f"the input must be a (N, C, H, W) batch, got shape {x.shape}")
    x = x.astype(F32, copy=False)
    inputs = [layer for layer in model.layers if layer.type == "input"]
    if len(inputs) != 1:
        raise InvalidModel(f"the executor needs exactly one input layer, found {len(inputs)}",
                           file=str(model.model_path))
    shapes = infer_shapes(model, options)   # rejects inconsistent graphs before any compute
    _check_loaded_weights(model, options)
    from irc.limits import check_activation_budget

    # Every kept activation at once (all_layers, as `irc diff` and verify use it) must fit.
    check_activation_budget(shapes, x.shape[0], file=str(model.model_path))
    terminal = set(model.terminal_layers())
    last_use = {src: i for i, layer in enumerate(model.layers) for src in layer.src_layers}
    values, kept = {}, {}
    for i, layer in enumerate(model.layers):
        sources = [values[s] for s in layer.src_layers]
        try:
            y = _run_layer(layer, x if layer.type == "input" else sources, options)
        except IrcError as err:
            err.file = err.file or str(model.model_path)
            err.node = err.node or layer.name
            raise
        expected = (y.shape[0],) + tuple(shapes[layer.name])
        if y.shape != expected:   # a kernel bug, never a model problem
            raise AssertionError(f"{layer.name}: computed {y.shape}, expected {expected}")
        values[layer.name] = y
        if all_layers or layer.name in terminal:
            kept[layer.name] = y
        for src in layer.src_layers:   # free what no later layer reads
            if last_use[src] == i and not (all_layers or src in terminal):
                values.pop(src, None)
    return kept


def run_folder(path, x, options: ExecutorOptions | None = None, all_layers: bool = False,
               weights_path=None) -> dict:
    """load_viya_model() then execute(): re-execute an output folder on ``x``."""
    model = load_viya_model(path, weights_path=weights_path, options=options)
    return execute(model, x, options=options, all_layers=all_layers)


def _check_loaded_weights(model: ViyaModelFiles, options: ExecutorOptions):
    """The weights must fit the graph under THESE options (pool rounding changes fc inputs)."""
    for name, params in expected_weight_shapes(model, options).items():
        loaded = {p: w.shape for p, w in model.layer(name).weights.items()}
        if loaded != params:
            raise InvalidModel(f"loaded weights {loaded} do not fit the shapes {params} this "
                               "graph needs under these executor options", node=name,
                               file=str(model.weights_path or model.model_path),
                               hint="load_viya_model(..., options=) with the options you "
                                    "execute with")


def _run_layer(layer, sources, options: ExecutorOptions) -> np.ndarray:
    kind = schema.KINDS[layer.type]   # infer_shapes() has refused every kind not computed
    if rnn.handles(layer, sources) and layer.type != "recurrent":   # fc/output per step (§13)
        y = rnn.run_layer(layer, sources, options, _activate)
    else:
        y = kind.run(layer, sources, options)
        if "act" in layer.options and layer.type != "recurrent":   # the cell applies its own
            y = _activate(layer, y, options)
    if options.dropout_scoring == "scale_keep" and kind.dropout and layer.options["dropout"]:
        y = y * F32(1.0 - layer.options["dropout"])
    return y


def _activate(layer, y: np.ndarray, options: ExecutorOptions) -> np.ndarray:
    act = layer.options["act"]
    if act == "auto":   # only recurrent/transconvo keep 'auto' past the reader
        act = options.auto_act_recurrent if layer.type == "recurrent" \
            else options.auto_act_transconvo
    if act == "softmax" and layer.type != "output":
        raise InvalidModel("softmax is only valid on an output layer", node=layer.name)
    if act == "softmax" and y.ndim == 3:   # per time step of a sequence (N, T, n)
        e = np.exp(y - y.max(axis=2, keepdims=True))
        return (e / e.sum(axis=2, keepdims=True)).astype(F32, copy=False)
    # every kernel result is a fresh array except reshape's view of its source
    return kernels.activate(y, act, elu_alpha=options.elu_alpha,
                            inplace=layer.type != "reshape")
