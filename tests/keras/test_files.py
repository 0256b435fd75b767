"""Keras model files (.keras, Keras 3 .h5, Keras 2 .h5 from tf-keras), tf-keras models in memory,
and the Lambda opt-in: nothing stored in a file runs unless allow_lambda=True."""
from __future__ import annotations

import pytest

from irc.errors import InvalidModel, UnsupportedOp
from irc.frontends.keras import import_keras, keras_to_onnx
from tests.keras.conftest import compile_and_compare, set_random_weights, types


@pytest.fixture(scope="module")
def cnn(keras):
    L = keras.layers
    x = keras.Input((8, 8, 3), name="image")
    h = L.Conv2D(4, 3, padding="same", use_bias=False)(x)
    h = L.BatchNormalization(epsilon=0.01)(h)
    h = L.MaxPooling2D(2)(L.ReLU()(h))
    h = L.Dropout(0.25)(L.Flatten()(h))
    return set_random_weights(keras.Model(x, L.Dense(3, activation="softmax")(h), name="cnn"))


@pytest.fixture(scope="module")
def lambda_model(keras):
    L = keras.layers
    x = keras.Input((6, 6, 2))
    h = L.Lambda(lambda t: t * 2.0 + 1.0, name="scale_shift")(L.Conv2D(3, 3)(x))
    return set_random_weights(keras.Model(x, L.Dense(2)(L.Flatten()(h))))


@pytest.fixture(scope="module")
def saved(cnn, lambda_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    paths = {"keras": folder / "cnn.keras", "h5": folder / "cnn.h5",
             "lambda_keras": folder / "lambda.keras", "lambda_h5": folder / "lambda.h5"}
    cnn.save(paths["keras"])
    cnn.save(paths["h5"])
    lambda_model.save(paths["lambda_keras"])
    lambda_model.save(paths["lambda_h5"])
    return paths


@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_saved_file_matches_keras(kind, saved, tmp_path):
    layers = compile_and_compare(saved[kind], tmp_path)
    assert types(layers) == ["input", "convo", "pool", "output"]


def test_in_memory_model_matches(cnn, tmp_path):
    compile_and_compare(cnn, tmp_path)


@pytest.mark.parametrize("kind", ["lambda_keras", "lambda_h5"])
def test_lambda_in_file_refused_before_keras_loads(kind, saved, keras, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("Keras was asked to load a file holding a Lambda")

    monkeypatch.setattr(keras.saving, "load_model", no_load)
    with pytest.raises(UnsupportedOp, match="allow_lambda=True") as err:
        import_keras(saved[kind])
    assert "'scale_shift'" in str(err.value)


@pytest.mark.parametrize("kind", ["lambda_keras", "lambda_h5"])
def test_lambda_in_file_accepted_with_opt_in(kind, saved, tmp_path):
    compile_and_compare(saved[kind], tmp_path, allow_lambda=True)


def test_lambda_in_memory_needs_opt_in(lambda_model, tmp_path):
    with pytest.raises(Exception, match="allow_lambda=True") as err:
        import_keras(lambda_model)
    assert "scale_shift" in str(err.value)
    layers = compile_and_compare(lambda_model, tmp_path, allow_lambda=True)
    assert "convo" in types(layers)  # x*2+1 folded into the conv


def test_weights_only_h5_refused(cnn, tmp_path):
    path = tmp_path / "w.weights.h5"
    cnn.save_weights(path)
    renamed = path.with_name("w.h5")
    path.rename(renamed)
    with pytest.raises(InvalidModel, match="weights only"):
        import_keras(renamed)


def test_not_a_zip_refused(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InvalidModel, match="not a Keras 3 .keras archive"):
        keras_to_onnx(bad)


# ---- tf-keras (Keras 2 API) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfk_model(tf_keras):
    L = tf_keras.layers
    x = tf_keras.Input((8, 8, 3))
    h = L.Conv2D(4, 3, padding="same")(x)
    h = L.BatchNormalization(center=False)(h)
    h = L.LeakyReLU(alpha=0.1)(h)
    h = L.BatchNormalization(epsilon=0.01)(h)  # after an activation: an ONNX BatchNormalization
    h = L.ZeroPadding2D(((0, 1), (0, 1)))(h)
    h = L.AveragePooling2D(2)(h)
    h = L.DepthwiseConv2D(3, padding="same", activation="relu")(h)
    h = L.Flatten()(h)
    y = L.Dense(3, activation="softmax")(L.Dropout(0.5)(h))
    return set_random_weights(tf_keras.Model(x, y))


def test_tf_keras_model_in_memory(tfk_model, tmp_path):
    compile_and_compare(tfk_model, tmp_path)


def test_keras2_h5_file_from_tf_keras(tfk_model, tmp_path):
    path = tmp_path / "k2.h5"
    tfk_model.save(path)
    compile_and_compare(path, tmp_path, oracle=tfk_model)


def test_keras2_h5_lambda_refused_without_opt_in(tf_keras, tmp_path, monkeypatch):
    """tf-keras itself loads Python lambdas from .h5 without asking: irc's guard must stop it."""
    L = tf_keras.layers
    x = tf_keras.Input((6, 6, 2))
    h = L.Lambda(lambda t: t * 0.5, name="halve")(L.Conv2D(2, 3)(x))
    model = set_random_weights(tf_keras.Model(x, L.Dense(2)(L.Flatten()(h))))
    path = tmp_path / "k2_lambda.h5"
    model.save(path)

    def no_load(*args, **kwargs):
        raise AssertionError("tf-keras was asked to load a file holding a Lambda")

    with monkeypatch.context() as patch:
        patch.setattr(tf_keras.models, "load_model", no_load)
        with pytest.raises(UnsupportedOp, match="'halve'"):
            import_keras(path)
    compile_and_compare(path, tmp_path, allow_lambda=True, oracle=model)


def test_tf_keras_through_tf_use_legacy_keras(tmp_path):
    """With TF_USE_LEGACY_KERAS=1, tf.keras is tf-keras: such models convert too (own process,
    since the variable must be set before TensorFlow is imported)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent(f"""
        import os
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        from pathlib import Path
        import tensorflow as tf
        from tests.keras.conftest import compile_and_compare, set_random_weights, types
        L = tf.keras.layers
        x = tf.keras.Input((8, 8, 3))
        h = L.BatchNormalization()(L.Conv2D(4, 3, padding="same", use_bias=False)(x))
        h = L.MaxPooling2D()(L.Activation("relu")(h))
        model = set_random_weights(tf.keras.Model(x, L.Dense(3)(L.Flatten()(h))))
        assert type(model).__module__.startswith("tf_keras"), type(model).__module__
        print(types(compile_and_compare(model, Path({str(tmp_path)!r}))))
    """)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['input', 'convo', 'pool', 'output']"


def _fake_python(tmp_path, monkeypatch, body: str):
    """Point sys.executable at a shell script, so the .h5 guard's child does ``body``."""
    import sys

    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(script))


def test_h5_whose_metadata_never_finishes_is_refused(tmp_path, monkeypatch):
    """libhdf5 can spin forever on a damaged file; the guard's child is killed after
    IRC_H5_READ_SECONDS and the file refused (fuzz K3)."""
    import time

    from irc.frontends.keras.loading import load

    path = tmp_path / "m.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    _fake_python(tmp_path, monkeypatch, "sleep 30")
    monkeypatch.setenv("IRC_H5_READ_SECONDS", "1")
    start = time.monotonic()
    with pytest.raises(InvalidModel, match="did not finish in 1 s"):
        load(path)
    assert time.monotonic() - start < 10


def test_h5_that_crashes_h5py_is_refused(tmp_path, monkeypatch):
    from irc.frontends.keras.loading import load

    path = tmp_path / "m.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    _fake_python(tmp_path, monkeypatch, "kill -SEGV $$")
    with pytest.raises(InvalidModel, match=r"h5py crashed \(signal 11\)"):
        load(path)


def test_h5_guard_reads_the_real_attributes(tmp_path, keras):
    from irc.frontends.keras.h5_guard import read_attributes

    x = keras.Input((4,))
    path = tmp_path / "m.h5"
    keras.Model(x, keras.layers.Dense(2, name="d")(x)).save(str(path))
    config, version = read_attributes(path, str(path))
    assert '"d"' in config and version.startswith("3")
