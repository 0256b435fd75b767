"""Keras sequence models (Keras 3 and tf-keras) compiled, written, re-executed and compared with
Keras itself; refusals name the layer."""
from __future__ import annotations

import pytest

from irc.errors import IrcError
from irc.verify import verify
from tests.recurrent.conftest import (assert_close, compile_and_run, layers_of, random_weights,
                                      sequences)

T, D = 6, 4


def _variants(L):
    return {
        "simple_rnn_td_softmax": [L.SimpleRNN(5, return_sequences=True),
                                  L.TimeDistributed(L.Dense(3, activation="softmax"))],
        "simple_rnn_relu_backwards": [L.SimpleRNN(5, activation="relu", go_backwards=True),
                                      L.Dense(2)],
        "lstm_dense_per_step": [L.LSTM(5, return_sequences=True), L.Dense(3)],
        "lstm_state_softmax": [L.LSTM(5), L.Dense(3, activation="softmax")],
        "lstm_no_bias_backwards": [L.LSTM(4, use_bias=False, go_backwards=True)],
        "gru_reset_after": [L.GRU(5, return_sequences=True),
                            L.TimeDistributed(L.Dense(2, activation="sigmoid"))],
        "gru_reset_before": [L.GRU(5, reset_after=False), L.Dense(2)],
        "bidirectional_lstm_steps": [L.Bidirectional(L.LSTM(4, return_sequences=True)),
                                     L.TimeDistributed(L.Dense(3)), L.Activation("softmax")],
        "bidirectional_gru_state": [L.Bidirectional(L.GRU(4)), L.Dense(2, activation="tanh")],
        "stacked_dropout": [L.LSTM(5, return_sequences=True), L.Dropout(0.4),
                            L.GRU(4, return_sequences=True), L.Dropout(0.2), L.SimpleRNN(3),
                            L.Dense(2)],
        "dense_between_recurrent": [L.GRU(5, return_sequences=True),
                                    L.Dense(3, activation="relu"), L.LSTM(3)],
        "one_unit_per_step": [L.LSTM(4, return_sequences=True),
                              L.Dense(1, activation="sigmoid")],
        "state_activation": [L.GRU(4), L.Activation("tanh")],
    }


VARIANTS = ["simple_rnn_td_softmax", "simple_rnn_relu_backwards", "lstm_dense_per_step",
            "lstm_state_softmax", "lstm_no_bias_backwards", "gru_reset_after",
            "gru_reset_before", "bidirectional_lstm_steps", "bidirectional_gru_state",
            "stacked_dropout", "dense_between_recurrent", "one_unit_per_step",
            "state_activation"]


def _build(K, layers, name):
    model = K.Sequential([K.Input((T, D))] + layers, name=name)
    return random_weights(model)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_variant_matches_keras(request, tmp_path, flavor, variant):
    K = request.getfixturevalue("keras" if flavor == "keras3" else "tf_keras")
    model = _build(K, _variants(K.layers)[variant], variant)
    x = sequences(3, T, D)
    viya, got, payloads = compile_and_run(model, tmp_path, x)
    (out,) = got.values()
    assert_close(model(x, training=False).numpy(), out)
    assert payloads["buildModel"]["type"] == "RNN"
    rec = [c for c in layers_of(payloads) if c["type"] == "recurrent"]
    assert rec and all(c["act"] in ("tanh", "relu") for c in rec)
    if "bidirectional" in variant:
        names = [c["name"] for c in rec]
        assert names[0].startswith("forward_") and names[1].startswith("backward_")
        reader = next(c for c in layers_of(payloads) if names[0] in c["srcLayers"]
                      and c["type"] != "recurrent")
        assert reader["srcLayers"] == names[:2]


def test_functional_chain_and_verify_from_a_keras_file(keras, tmp_path):
    import irc

    L = keras.layers
    x = keras.Input((T, D), name="frames")
    h = L.Bidirectional(L.GRU(4, return_sequences=True), name="bi")(x)
    model = random_weights(keras.Model(x, L.TimeDistributed(L.Dense(3, activation="softmax"),
                                                            name="probs")(h)))
    path = tmp_path / "seq.keras"
    model.save(path)
    irc.compile(str(path)).save(tmp_path / "out")
    result = verify(str(path), tmp_path / "out", batch=3)
    assert result.ok, result.table()
    assert result.comparisons[0].shape == (T, 3)


def test_verify_a_keras2_h5_file(tf_keras, tmp_path):
    import irc

    L = tf_keras.layers
    model = random_weights(tf_keras.Sequential([tf_keras.Input((T, D)), L.LSTM(5), L.Dense(2)]))
    path = tmp_path / "lstm.h5"
    model.save(path)
    irc.compile(str(path)).save(tmp_path / "out")
    assert verify(str(path), tmp_path / "out").ok


def test_dynamic_timesteps_need_an_input_shape(keras, tmp_path):
    import irc

    L = keras.layers
    model = random_weights(keras.Sequential([keras.Input((None, D)), L.LSTM(3), L.Dense(2)]))
    with pytest.raises(IrcError, match="fixed number of time steps"):
        irc.compile(model)
    x = sequences(2, 5, D)
    _, got, _ = compile_and_run(model, tmp_path, x, input_shape=(5, D))
    assert_close(model(x).numpy(), next(iter(got.values())))


def test_refusals_listed_once_with_layer_names(keras):
    import irc

    L = keras.layers
    model = keras.Sequential([
        keras.Input((T, D)),
        L.Dense(4, name="pre_dense"),
        L.LSTM(4, recurrent_activation="hard_sigmoid", return_sequences=True, name="hard"),
        L.GRU(4, activation="selu", return_sequences=True, name="selu_gru"),
        L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="sum", name="summed"),
        L.SimpleRNN(3, go_backwards=True, return_sequences=True, name="backwards"),
        L.Conv1D(2, 3, name="conv"),
    ])
    with pytest.raises(IrcError) as err:
        irc.compile(model)
    text = str(err.value)
    for expected in ("Conv1D x1: 'conv'", "pre_dense: a Dense on the input sequence",
                     "hard: recurrent_activation 'hard_sigmoid'", "trap 16",
                     "selu_gru: activation 'selu'", "summed: merge_mode='sum'",
                     "backwards: go_backwards=True with return_sequences=True"):
        assert expected in text, text


def test_stateful_and_masking_are_refused(keras):
    import irc

    L = keras.layers
    stateful = keras.Sequential([keras.Input(batch_shape=(2, T, D)),
                                 L.LSTM(3, stateful=True, name="memory"), L.Dense(1)])
    with pytest.raises(IrcError, match="memory: stateful=True"):
        irc.compile(stateful)
    masked = keras.Sequential([keras.Input((T, D)), L.Masking(name="mask"), L.GRU(3)])
    with pytest.raises(IrcError, match="Masking x1: 'mask'"):
        irc.compile(masked)


def test_recurrent_model_without_tf2onnx(keras, monkeypatch):
    """GRU and SimpleRNN never reach tf2onnx (it would unroll them into Loop ops)."""
    from irc.frontends.keras import keras_to_onnx
    from irc.frontends.keras.runtime import tf_modules

    def boom(*args, **kwargs):
        raise AssertionError("tf2onnx ran for a sequence model")
    monkeypatch.setattr(tf_modules().tf2onnx.convert, "from_function", boom)
    L = keras.layers
    model = keras.Sequential([keras.Input((T, D)), L.GRU(3, return_sequences=True),
                              L.SimpleRNN(2)])
    ops = [n.op_type for n in keras_to_onnx(model).graph.node]
    assert "GRU" in ops and "RNN" in ops and "Loop" not in ops
