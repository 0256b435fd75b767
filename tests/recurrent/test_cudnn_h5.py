"""Keras 2 ``.h5`` files with CuDNNLSTM/CuDNNGRU layers, written here exactly as Keras 2.2
saved them (keras/engine/saving.py: root attrs keras_version, backend, model_config; weights
under model_weights/<layer>/<layer>/<param>:0 with layer_names/weight_names attrs), convert
and match a standard LSTM / GRU(reset_after=True) holding the same weights.

CuDNN layout (Keras 2 cudnn_recurrent.py): kernel (d, G·n) and recurrent_kernel (n, G·n) in
the Keras gate order (LSTM i,f,c,o; GRU z,r,h); bias (2·G·n) = input bias then recurrent bias.
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from irc.verify import verify
from tests.recurrent.conftest import assert_close, compile_and_run, layers_of, sequences

T, D = 6, 4
INIT = {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg",
                                                    "distribution": "uniform", "seed": None}}


def _cudnn_config(cls, name, units, return_sequences, first):
    cfg = {"name": name, "trainable": True, "return_sequences": return_sequences,
           "return_state": False, "go_backwards": False, "stateful": False, "units": units,
           "kernel_initializer": INIT, "recurrent_initializer": {"class_name": "Orthogonal",
                                                                 "config": {"gain": 1.0}},
           "bias_initializer": {"class_name": "Zeros", "config": {}},
           "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
           "activity_regularizer": None, "kernel_constraint": None,
           "recurrent_constraint": None, "bias_constraint": None}
    if cls == "CuDNNLSTM":
        cfg["unit_forget_bias"] = True
    if first:
        cfg.update(batch_input_shape=[None, T, D], dtype="float32")
    return cfg


def _dense_config(name, units, activation):
    return {"name": name, "trainable": True, "units": units, "activation": activation,
            "use_bias": True, "kernel_initializer": INIT,
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}


def write_keras2_h5(path, layers):
    """``layers``: (class_name, config, [(weight name, array)]) as a Keras 2.2.4 Sequential."""
    config = {"class_name": "Sequential",
              "config": {"name": "sequential_1",
                         "layers": [{"class_name": c, "config": cfg} for c, cfg, _ in layers]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [cfg["name"].encode("utf8") for _, cfg, _ in layers]
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.2.4"
        for _, cfg, weights in layers:
            g = group.create_group(cfg["name"])
            names = [n.encode("utf8") for n, _ in weights]
            g.attrs["weight_names"] = names
            for name, value in zip(names, [v for _, v in weights]):
                g.create_dataset(name, value.shape, dtype=value.dtype)[:] = value


def cudnn_weights(rng, gates, units, d, prefix):
    return [(f"{prefix}/kernel:0", rng.normal(0, .5, (d, gates * units)).astype(np.float32)),
            (f"{prefix}/recurrent_kernel:0",
             rng.normal(0, .5, (units, gates * units)).astype(np.float32)),
            (f"{prefix}/bias:0", rng.normal(0, .5, 2 * gates * units).astype(np.float32))]


def standard(keras, cls, units, weights, **kwargs):
    """The standard Keras layer and its weights for cuDNN weights (the documented equivalence)."""
    L = keras.layers
    kernel, recurrent_kernel, bias = (w for _, w in weights)
    half = bias.shape[0] // 2
    if cls == "CuDNNLSTM":
        return (L.LSTM(units, **kwargs), [kernel, recurrent_kernel, bias[:half] + bias[half:]])
    return (L.GRU(units, reset_after=True, **kwargs),
            [kernel, recurrent_kernel, np.stack([bias[:half], bias[half:]])])


@pytest.mark.parametrize("cls, gates", [("CuDNNLSTM", 4), ("CuDNNGRU", 3)])
def test_cudnn_file_matches_the_standard_layer(keras, tmp_path, cls, gates):
    rng = np.random.default_rng(7)
    name = "cu_dnnlstm_1" if cls == "CuDNNLSTM" else "cu_dnngru_1"
    rec = cudnn_weights(rng, gates, 5, D, name)
    dense = [("time_distributed_1/kernel:0", rng.normal(0, 1, (5, 3)).astype(np.float32)),
             ("time_distributed_1/bias:0", rng.normal(0, 1, 3).astype(np.float32))]
    td = {"name": "time_distributed_1", "trainable": True,
          "layer": {"class_name": "Dense", "config": _dense_config("dense_1", 3, "softmax")}}
    path = tmp_path / "cudnn.h5"
    write_keras2_h5(path, [(cls, _cudnn_config(cls, name, 5, True, True), rec),
                           ("TimeDistributed", td, dense)])
    x = sequences(3, T, D)
    _, got, payloads = compile_and_run(str(path), tmp_path, x)
    layer, weights = standard(keras, cls, 5, rec, return_sequences=True)
    inp = keras.Input((T, D))
    head = keras.layers.TimeDistributed(keras.layers.Dense(3, activation="softmax"))
    reference = keras.Model(inp, head(layer(inp)))
    layer.set_weights(weights)
    head.set_weights([w for _, w in dense])
    assert_close(reference(x).numpy(), next(iter(got.values())))
    rec_layer = next(c for c in layers_of(payloads) if c["type"] == "recurrent")
    assert (rec_layer["name"], rec_layer["rnntype"]) == (name, cls[5:].lower())
    assert verify(str(path), tmp_path / "out").ok  # the oracle: the equivalent standard model


def test_bidirectional_cudnn_lstm_state(keras, tmp_path):
    rng = np.random.default_rng(3)
    fwd = cudnn_weights(rng, 4, 4, D, "bidirectional_1/forward_cu_dnnlstm_1")
    bwd = cudnn_weights(rng, 4, 4, D, "bidirectional_1/backward_cu_dnnlstm_1")
    bi = {"name": "bidirectional_1", "trainable": True, "batch_input_shape": [None, T, D],
          "dtype": "float32", "merge_mode": "concat",
          "layer": {"class_name": "CuDNNLSTM",
                    "config": _cudnn_config("CuDNNLSTM", "cu_dnnlstm_1", 4, False, False)}}
    dense = [("dense_1/kernel:0", rng.normal(0, 1, (8, 2)).astype(np.float32)),
             ("dense_1/bias:0", rng.normal(0, 1, 2).astype(np.float32))]
    path = tmp_path / "bi.h5"
    write_keras2_h5(path, [("Bidirectional", bi, fwd + bwd),
                           ("Dropout", {"name": "dropout_1", "rate": 0.5}, []),
                           ("Dense", _dense_config("dense_1", 2, "linear"), dense)])
    x = sequences(2, T, D)
    _, got, payloads = compile_and_run(str(path), tmp_path, x)
    f_layer, f_w = standard(keras, "CuDNNLSTM", 4, fwd)
    _, b_w = standard(keras, "CuDNNLSTM", 4, bwd)
    inp = keras.Input((T, D))
    bi_layer = keras.layers.Bidirectional(f_layer)
    head = keras.layers.Dense(2)
    reference = keras.Model(inp, head(bi_layer(inp)))
    bi_layer.set_weights(f_w + b_w)
    head.set_weights([w for _, w in dense])
    assert_close(reference(x).numpy(), next(iter(got.values())))
    names = [c["name"] for c in layers_of(payloads) if c["type"] == "recurrent"]
    assert names == ["forward_bidirectional_1", "backward_bidirectional_1"]


def test_functional_keras2_file_and_refusals(keras, tmp_path):
    import irc
    from irc.errors import IrcError

    rng = np.random.default_rng(5)
    rec = cudnn_weights(rng, 3, 4, D, "gru/gru")
    dense = [("out/kernel:0", rng.normal(0, 1, (4, 2)).astype(np.float32)),
             ("out/bias:0", rng.normal(0, 1, 2).astype(np.float32))]
    layers = [{"name": "frames", "class_name": "InputLayer", "inbound_nodes": [],
               "config": {"name": "frames", "batch_input_shape": [None, T, D],
                          "dtype": "float32", "sparse": False}},
              {"name": "gru", "class_name": "CuDNNGRU", "inbound_nodes": [[["frames", 0, 0, {}]]],
               "config": _cudnn_config("CuDNNGRU", "gru", 4, False, False)},
              {"name": "out", "class_name": "Dense", "inbound_nodes": [[["gru", 0, 0, {}]]],
               "config": _dense_config("out", 2, "linear")}]
    config = {"class_name": "Model", "config": {"name": "model_1", "layers": layers,
                                                "input_layers": [["frames", 0, 0]],
                                                "output_layers": [["out", 0, 0]]}}
    path = tmp_path / "functional.h5"
    write_keras2_h5(path, [("InputLayer", layers[0]["config"], []),
                           ("CuDNNGRU", layers[1]["config"], rec),
                           ("Dense", layers[2]["config"], dense)])
    with h5py.File(path, "a") as f:  # the functional model's own config
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
    x = sequences(2, T, D)
    _, got, payloads = compile_and_run(str(path), tmp_path, x)
    layer, weights = standard(keras, "CuDNNGRU", 4, rec)
    inp = keras.Input((T, D))
    head = keras.layers.Dense(2)
    reference = keras.Model(inp, head(layer(inp)))
    layer.set_weights(weights)
    head.set_weights([w for _, w in dense])
    assert_close(reference(x).numpy(), got["out"])
    assert layers_of(payloads)[0]["name"] == "frames"

    layers[1]["config"]["stateful"] = True
    layers[2]["inbound_nodes"] = [[["frames", 0, 0, {}]]]
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
    with pytest.raises(IrcError) as err:
        irc.compile(str(path))
    assert "gru: stateful=True" in str(err.value)
    assert "out: does not read the one layer before it" in str(err.value)
