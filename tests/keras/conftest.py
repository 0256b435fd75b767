"""Keras frontend tests: build small Keras models in code, compile them with irc, re-execute the
written files with the reference executor and compare with Keras itself.

Without TensorFlow, Keras or tf2onnx every test module here is reported skipped, with the
install command as the reason (not silently left out).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

RTOL, ATOL = 1e-4, 1e-5
HAVE_KERAS = all(importlib.util.find_spec(m) for m in ("tensorflow", "keras", "tf2onnx"))
MISSING_KERAS = "TensorFlow/Keras/tf2onnx not installed: pip install -e '.[keras]'"

if not HAVE_KERAS:
    class _NeedsKeras(pytest.File):
        """Stands in for a test module that cannot be imported: one skip, with the reason."""

        def collect(self):
            pytest.skip(MISSING_KERAS)

    def pytest_pycollect_makemodule(module_path, parent):
        # Not importing the module at all: its top-level imports may need TensorFlow.
        return _NeedsKeras.from_parent(parent, path=module_path)


@pytest.fixture(scope="session")
def keras():
    from irc.frontends.keras.runtime import tf_modules

    return tf_modules().keras


@pytest.fixture(scope="session")
def tf_keras():
    from irc.frontends.keras.runtime import tf_modules

    mods = tf_modules()
    if mods.tf_keras is None:
        pytest.skip("tf-keras is not installed")
    return mods.tf_keras


@pytest.fixture
def no_tf2onnx(monkeypatch):
    """Fail the test if tf2onnx is called (refusals come from the layer scan; models the direct
    route converts never reach it)."""
    from irc.frontends.keras.runtime import tf_modules

    def boom(*args, **kwargs):
        raise AssertionError("tf2onnx ran where it must not")

    convert = tf_modules().tf2onnx.convert
    monkeypatch.setattr(convert, "from_function", boom)
    monkeypatch.setattr(convert, "from_keras", boom)


def set_random_weights(model, seed: int = 0):
    """Seeded weights everywhere: normal kernels/biases, batch-norm statistics away from
    (mean 0, variance 1) so folding them is visible."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        name = w.name.split("/")[-1].split(":")[0]
        shape = tuple(w.shape)
        if name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("beta", "moving_mean", "bias"):
            value = rng.normal(0.0, 0.5, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) or 1
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        w.assign(value.astype(np.float32))
    return model


def nchw_input(model, batch: int = 2, seed: int = 1) -> np.ndarray:
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    if len(shape) == 3:
        shape = (shape[2], shape[0], shape[1])
    return np.random.default_rng(seed).standard_normal((batch,) + shape).astype(np.float32)


def compile_keras(source, out_dir: Path, allow_lambda: bool = False, input_shape=None,
                  route: str = "auto"):
    """import_keras -> optimize -> lower -> save; the ViyaModel and the written folder."""
    from irc.api import optimize
    from irc.backends.viya.lower import lower
    from irc.frontends.keras import import_keras

    graph = import_keras(source, input_shape=input_shape, allow_lambda=allow_lambda, route=route)
    optimize(graph)
    model = lower(graph, "m")
    out = Path(out_dir) / "out"
    model.save(out)
    return model, out


def compile_and_compare(source, tmp_path, x=None, allow_lambda: bool = False, oracle=None,
                        route: str = "auto"):
    """Compile ``source``, execute the files on ``x`` (N,C,H,W) and compare every output with
    Keras (``oracle``: the in-memory model when ``source`` is a path). Returns the addLayer
    payloads (``layer`` dicts with ``name`` and ``srcLayers``)."""
    from irc.backends.viya.executor import execute, load_viya_model
    from irc.frontends.keras import run_keras
    from irc.verify import compare

    _, out = compile_keras(source, tmp_path, allow_lambda=allow_lambda, route=route)
    oracle = oracle if oracle is not None else source
    if x is None:
        from irc.frontends.keras.loading import load

        x = nchw_input(load(oracle, allow_lambda).model)
    reference = run_keras(oracle, x, allow_lambda=allow_lambda)
    x_viya = x.reshape(x.shape + (1, 1)) if x.ndim == 2 else x  # vectors: C features, 1x1
    got = execute(load_viya_model(out), x_viya, all_layers=True)
    name_map = json.loads((out / "name_map.json").read_text())
    assert set(name_map["outputs"]) == set(reference), (name_map["outputs"], list(reference))
    for name, layer in name_map["outputs"].items():
        ref = reference[name]
        assert got[layer].shape[0] == ref.shape[0]
        max_abs, max_rel, ok = compare(ref, got[layer], RTOL, ATOL)
        assert ok, f"output {name} (layer {layer}): max abs {max_abs:g}, max rel {max_rel:g}"
    payloads = json.loads((out / "model.json").read_text())
    return [{**c["layer"], "name": c["name"], "srcLayers": c.get("srcLayers", [])}
            for c in payloads["addLayer"]]


def types(layers) -> list[str]:
    return [layer["type"] for layer in layers]
