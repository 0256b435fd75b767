"""Evaluate a model read from disk, layer by layer in _DLLayerID_ order (viya-semantics.md §1)."""
from __future__ import annotations

import numpy as np

from irc.backends.viya import schema
from irc.errors import InvalidModel, IrcError, UnsupportedOp

from . import kernels, rnn
from .shapes import expected_weight_shapes, infer_shapes
from .options import ExecutorOptions
from .reader import ViyaModelFiles, load_viya_model

F32 = np.float32
# Layers that may carry a dropout rate (viya-semantics.md §12).
DROPOUT_KINDS = tuple(k.name for k in schema.KINDS.values() if k.dropout)


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
    opts, w = layer.options, layer.weights
    kind = layer.type
    if rnn.handles(layer, sources):   # recurrent, or fc/output per time step (§13)
        y = rnn.run_layer(layer, sources, options, _activate)
        if options.dropout_scoring == "scale_keep" and kind in DROPOUT_KINDS and opts["dropout"]:
            y = y * F32(1.0 - opts["dropout"])
        return y
    if kind == "input":
        y = _input(layer, sources)
    elif kind in ("convo", "groupconvo"):
        geo = kernels.spatial_geometry(opts, *sources[0].shape[2:], False, options)
        y = kernels.conv2d(sources[0], w["kernel"], w.get("bias"),
                           (opts["stride_h"], opts["stride_w"]),
                           ((geo[0][0], geo[0][1]), (geo[1][0], geo[1][1])), opts["ngroups"])
    elif kind == "pool":
        y = _pool(opts, sources[0], options)
    elif kind in ("fc", "output"):
        v = kernels.flatten_concat(sources)
        full = kind == "fc" or opts["fullconnect"]
        y = kernels.dense(v, w["kernel"], w.get("bias")) if full else v
    elif kind == "batchnorm":
        variance = w["moving_variance"] + F32(options.bn_extra_eps)
        if np.any(variance <= 0):
            raise InvalidModel("moving_variance + bn_extra_eps must be > 0 (was the source "
                               "epsilon folded into the variance?)", node=layer.name)
        y = kernels.batchnorm(sources[0], w["gamma"], w["beta"], w["moving_mean"],
                              w["moving_variance"], options.bn_extra_eps)
    elif kind == "residual":
        y = sources[0].copy()
        for other in sources[1:]:
            y += other
    elif kind == "concat":
        axis = 1   # channels of (N, C, H, W), or end to end for (N, n) vectors
        y = np.concatenate(sources, axis=axis)
    elif kind == "reshape":
        y = _reshape(layer, sources[0], options)
    else:   # infer_shapes() has already rejected every other kind
        raise UnsupportedOp(f"layer type {kind!r} is not supported by the executor",
                            node=layer.name)
    if "act" in opts:
        y = _activate(layer, y, options)
    if options.dropout_scoring == "scale_keep" and kind in DROPOUT_KINDS and opts["dropout"]:
        y = y * F32(1.0 - opts["dropout"])
    return y


def _input(layer, x: np.ndarray) -> np.ndarray:
    opts = layer.options
    want = (opts["nchannels"], opts["height"], opts["width"])
    if x.shape[1:] != want:
        raise ValueError(f"input layer {layer.name!r} takes (N, {want[0]}, {want[1]}, "
                         f"{want[2]}) images; got {x.shape}. The executor does not resize.")
    per_channel = (1, -1, 1, 1)
    y = x * F32(opts["scale"]) - opts["offsets"].reshape(per_channel)
    y /= opts["normstds"].reshape(per_channel)
    return y


def _pool(opts: dict, x: np.ndarray, options: ExecutorOptions) -> np.ndarray:
    if opts["height"] == 0 and opts["width"] == 0:
        return kernels.global_pool(x, opts["pool"])
    geo = kernels.spatial_geometry(opts, *x.shape[2:], True, options)
    return kernels.pool2d(x, opts["pool"], (opts["height"], opts["width"]),
                          (opts["stride_h"], opts["stride_w"]), geo,
                          maxpool_pad=options.maxpool_pad,
                          avgpool_divisor=options.avgpool_divisor)


def _reshape(layer, x: np.ndarray, options: ExecutorOptions) -> np.ndarray:
    opts = layer.options
    # Only the plain C-order reinterpretation is known (SAS's exporter); the documented AUTO
    # permutations are open (viya-semantics.md §11), so explicit other orders are refused.
    if opts["order"] not in ("auto",):
        raise UnsupportedOp(f"reshape order {opts['order']!r}: only the default order is "
                            f"executed (reshape_mode={options.reshape_mode!r})",
                            node=layer.name)
    return x.reshape(x.shape[0], opts["depth"], opts["height"], opts["width"])


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
