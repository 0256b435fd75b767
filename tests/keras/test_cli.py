"""`irc compile` on Keras models: identical artifacts from every form of the same model, bad
input (exit 2, one message, no output), and a Lambda's code never runs without the opt-in."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import irc
from tests.cli_helpers import assert_refused, irc_cli
from tests.keras.conftest import set_random_weights


@pytest.fixture(scope="module")
def model(keras):
    L = keras.layers
    x = keras.Input((8, 8, 3), name="image")
    h = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    h = L.BatchNormalization()(L.MaxPooling2D()(h))
    out = L.Dense(3, activation="softmax")(L.Flatten()(h))
    return set_random_weights(keras.Model(x, out, name="roundtrip"))


def _artifacts(folder: Path):
    files = {p.name: p for p in folder.iterdir()}
    weights = {}
    with h5py.File(files["roundtrip_weights.kerasmodel.h5"]) as f:
        f.visititems(lambda name, obj: weights.__setitem__(name, obj[...])
                     if isinstance(obj, h5py.Dataset) else None)
    return (files["model.json"].read_text(), files["name_map.json"].read_text(), weights)


def test_in_memory_keras_and_h5_give_identical_artifacts(model, tmp_path):
    model.save(tmp_path / "roundtrip.keras")
    model.save(tmp_path / "roundtrip.h5")
    results = []
    for i, source in enumerate([model, tmp_path / "roundtrip.keras", tmp_path / "roundtrip.h5"]):
        out = tmp_path / f"out{i}"
        irc.compile(source, name="roundtrip").save(out)
        results.append(_artifacts(out))
    first_json, first_map, first_weights = results[0]
    for payloads, name_map, weights in results[1:]:
        assert payloads.replace(str(tmp_path), "") .split('"source"')[0] == \
            first_json.split('"source"')[0]
        assert name_map == first_map
        assert weights.keys() == first_weights.keys()
        for key in weights:
            np.testing.assert_array_equal(weights[key], first_weights[key])


def test_cli_compiles_and_verifies_a_keras_file(model, tmp_path):
    model.save(tmp_path / "roundtrip.keras")
    result = irc_cli("compile", tmp_path / "roundtrip.keras", "-o", tmp_path / "o")
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout
    assert result.stderr == ""  # TensorFlow's C++ start-up lines (CUDA, oneDNN) kept out


def test_keras_route_can_be_forced(model, keras, tmp_path):
    """--keras-route tf2onnx compiles through tf2onnx (and verifies); --keras-route direct on a
    model with a Lambda is refused before anything is written."""
    model.save(tmp_path / "roundtrip.keras")
    result = irc_cli("compile", tmp_path / "roundtrip.keras", "-o", tmp_path / "o",
                     "--keras-route", "tf2onnx")
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout
    x = keras.Input((4, 4, 2))
    L = keras.layers
    lam = keras.Model(x, L.Dense(2)(L.Flatten()(L.Lambda(lambda t: t * 2.0)(x))))
    lam.save(tmp_path / "lam.keras")
    # Verification loads the file again: it needs the opt-in too (it used to be refused).
    result = irc_cli("compile", tmp_path / "lam.keras", "-o", tmp_path / "o_lam",
                     "--allow-lambda")
    assert result.returncode == 0 and "all outputs match" in result.stdout, result.stderr
    out = tmp_path / "o2"
    assert_refused(irc_cli("compile", tmp_path / "lam.keras", "-o", out, "--allow-lambda",
                           "--keras-route", "direct"), out, "direct Keras route cannot convert",
                   "Lambda")


def test_corrupt_h5(model, tmp_path):
    model.save(tmp_path / "good.h5")
    data = (tmp_path / "good.h5").read_bytes()
    bad = tmp_path / "bad.h5"
    bad.write_bytes(data[: len(data) // 3])
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", bad, "-o", out), out, str(bad))


def test_unknown_layer_class(keras, tmp_path):
    L = keras.layers
    x = keras.Input((8, 8, 3))
    h = L.UpSampling2D()(L.Conv2D(2, 3)(x))
    keras.Model(x, L.Dense(2)(L.Flatten()(h))).save(tmp_path / "up.keras")
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", tmp_path / "up.keras", "-o", out), out, "UpSampling2D")


def test_lambda_code_never_runs_without_opt_in(keras, tmp_path):
    """A Lambda whose code writes a file: loading without --allow-lambda refuses before any
    model code runs, so the file never appears."""
    marker = tmp_path / "lambda_ran.txt"
    L = keras.layers
    x = keras.Input((4, 4, 1))

    def side_effect(t, path=str(marker)):
        open(path, "w").write("ran")
        return t

    h = L.Lambda(side_effect, name="writes_a_file")(x)
    keras.Model(x, L.Dense(2)(L.Flatten()(h))).save(tmp_path / "lambda.keras")
    marker.unlink(missing_ok=True)  # building the model traced the Lambda once
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", tmp_path / "lambda.keras", "-o", out), out,
                   "writes_a_file", "--allow-lambda")
    assert not marker.exists()
