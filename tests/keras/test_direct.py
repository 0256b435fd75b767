"""The direct Keras route (irc writes the ONNX itself) against tf2onnx and Keras.

Every layer-test model goes through both routes; each ONNX graph runs in onnxruntime and is
compared with Keras (rtol 1e-4, atol 1e-5). The compiled Viya files of the direct route are
checked in test_layers.py (it is the default route); here: the routing decision, what only the
direct route converts, and that it never calls tf2onnx.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from irc.errors import UnsupportedAttribute, UnsupportedOp
from irc.frontends.keras import direct
from irc.frontends.keras.convert import to_onnx
from irc.frontends.keras.loading import load
from irc.frontends.keras import run_keras
from irc.verify import compare
from tests.keras.conftest import (ATOL, RTOL, compile_and_compare, nchw_input,
                                  set_random_weights)
from tests.keras.test_layers import BUILDERS


def _onnx_vs_keras(model, route: str, x=None, input_shape=None) -> str:
    """Convert with ``route``, run in onnxruntime, compare every output with Keras."""
    proto = to_onnx(load(model), input_shape=input_shape, route=route)
    x = nchw_input(model) if x is None else x
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {session.get_inputs()[0].name: x})))
    reference = run_keras(model, x)
    assert set(got) == set(reference)
    for name, ref in reference.items():
        max_abs, max_rel, ok = compare(ref, got[name], RTOL, ATOL)
        assert ok, f"{route}: output {name}: max abs {max_abs:g}, max rel {max_rel:g}"
    return proto.producer_name


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
@pytest.mark.parametrize("route", ["direct", "tf2onnx"])
def test_both_routes_match_keras(build, route, keras):
    model = build(keras, keras.layers)
    producer = _onnx_vs_keras(model, route)
    assert ("direct" in producer) == (route == "direct")


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_tf2onnx_route_compiles_to_the_same_numbers(build, keras, tmp_path):
    """The Viya files from the tf2onnx route, re-executed, match Keras too (test_layers.py
    does this for the direct route)."""
    compile_and_compare(build(keras, keras.layers), tmp_path, route="tf2onnx")


def test_plain_cnn_takes_the_direct_route_without_tf2onnx(keras, no_tf2onnx, tmp_path):
    L = keras.layers
    x = keras.Input((9, 9, 3))
    h = L.BatchNormalization()(L.Conv2D(4, 3, padding="same", name="conv one")(x))
    h = L.MaxPooling2D(2, padding="same")(L.ReLU()(h))
    model = set_random_weights(keras.Model(x, L.Dense(3)(L.Flatten()(h))))
    assert direct.why_not(model) is None
    # 'conv one' is a valid Keras name TensorFlow scopes reject (fuzz K1): fine here.
    layers = compile_and_compare(model, tmp_path)
    assert "conv_one" in {layer["name"] for layer in layers}  # made a valid Viya name


def test_lambda_and_keras_ops_go_through_tf2onnx(keras):
    L = keras.layers
    x = keras.Input((6, 6, 2))
    h = L.Conv2D(3, 3)(x)
    with_op = keras.Model(x, keras.ops.add(h, h))
    assert "not a Keras layer" in direct.why_not(with_op)
    with_lambda = keras.Model(x, L.Lambda(lambda t: t * 2.0)(h))
    assert "no direct handler for Lambda" in direct.why_not(with_lambda)
    with pytest.raises(UnsupportedOp, match="direct Keras route cannot convert"):
        to_onnx(load(with_op), route="direct")
    assert "via tf2onnx" in _onnx_vs_keras(set_random_weights(with_op), "auto")


def test_grouped_conv_converts_directly_and_is_refused_through_tf2onnx(keras, tmp_path):
    L = keras.layers
    x = keras.Input((6, 6, 4))
    model = set_random_weights(keras.Model(x, L.Conv2D(6, 3, groups=2, activation="relu")(x)))
    types = [layer["type"] for layer in compile_and_compare(model, tmp_path)]
    assert "groupconvo" in types
    with pytest.raises(UnsupportedAttribute, match="groups=2"):
        to_onnx(load(model), route="tf2onnx")


def test_shared_layer_and_nested_model_reuse_weights(keras):
    L = keras.layers
    x = keras.Input((6, 6, 3))
    shared = L.Conv2D(3, 3, padding="same", name="shared")
    block = keras.Sequential([keras.Input((6, 6, 3)), L.Conv2D(3, 1, name="inner")],
                             name="block")
    a = shared(x)
    b = shared(block(a))
    c = block(b)  # the nested model called twice, on different inputs
    model = set_random_weights(keras.Model(x, L.Add()([a, b, c])))
    _onnx_vs_keras(model, "direct")
    proto = to_onnx(load(model), route="direct")
    names = [t.name for t in proto.graph.initializer]
    assert sum(n.startswith("shared/kernel") for n in names) == 1, names
    assert sum(n.startswith("inner/kernel") for n in names) == 1, names


def test_dynamic_input_converts_at_the_given_shape(keras):
    L = keras.layers
    x = keras.Input((None, None, 3))
    h = L.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    h = L.AveragePooling2D(3, strides=2, padding="same")(h)
    model = set_random_weights(keras.Model(x, L.Dense(2)(L.GlobalAveragePooling2D()(h))))
    image = np.random.default_rng(0).standard_normal((2, 3, 11, 13)).astype(np.float32)
    _onnx_vs_keras(model, "direct", x=image, input_shape=(11, 13, 3))


def test_deep_chain_walked_without_recursion(keras):
    # 400 layers: Keras itself recurses once per layer building the model (1200 fails there);
    # a walker recursing through a handler and two helpers per layer would pass 1000 frames.
    L = keras.layers
    x = keras.Input((4,))
    h = x
    for _ in range(400):
        h = L.Activation("relu")(h)
    model = keras.Model(x, L.Dense(2)(h))
    proto = to_onnx(load(model), route="direct")
    assert sum(n.op_type == "Relu" for n in proto.graph.node) == 400


def test_the_route_taken_is_shown_as_progress(keras):
    """On a terminal the compile shows which route converts the model, and why tf2onnx."""
    from irc.progress import Progress, reporting
    from tests.unit.test_progress import Terminal, _stages

    L = keras.layers
    x = keras.Input((6, 6, 2))
    h = L.Conv2D(3, 3)(x)
    terminal = Terminal()
    with reporting(Progress(stream=terminal)):
        to_onnx(load(keras.Model(x, L.Dense(2)(L.Flatten()(h)))))
        to_onnx(load(keras.Model(x, L.Lambda(lambda t: t * 2.0)(h))), allow_lambda=True)
    stages = _stages(terminal.getvalue())
    assert "writing ONNX for 4 Keras layers" in stages, stages
    assert any(s.startswith("converting with tf2onnx (no direct handler for Lambda")
               for s in stages), stages


def test_models_past_protobufs_2_gb_keep_large_weights_in_a_side_file(keras, tmp_path,
                                                                       monkeypatch):
    """A ModelProto cannot pass 2 GB (a Keras Dense of 25088x22000 failed with EncodeError):
    past SIDE_FILE_BYTES the large weights are external data in a side file. Thresholds set
    to 0 here, so a small model takes that path end to end."""
    import onnx

    from irc.ir import side_file
    from irc.ir.onnx_export import run_onnxruntime

    monkeypatch.setattr(direct, "SIDE_FILE_BYTES", 0)
    monkeypatch.setattr(direct, "MIN_TENSOR_BYTES", 0)
    build = next(b for b in BUILDERS if b.__name__ == "flattens_concatenated")
    model = build(keras, keras.layers)
    proto = to_onnx(load(model), route="direct")
    external = [t.name for t in proto.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and side_file.external_dir(proto) is not None
    x = nchw_input(model)
    reference = run_keras(model, x)
    got = run_onnxruntime(proto, {proto.graph.input[0].name: x})
    for name, ref in reference.items():
        assert compare(ref, got[name], RTOL, ATOL)[2], name
    compile_and_compare(model, tmp_path / "compiled")  # loader memory-maps the side file
    saved = tmp_path / "inspect" / "m.onnx"  # what `irc inspect --format onnx -o` writes
    saved.parent.mkdir()
    side_file.save_with_weights(proto, saved)
    assert (saved.parent / "m.weights.bin").is_file()
    again = run_onnxruntime(saved, {proto.graph.input[0].name: x})
    for name in reference:
        np.testing.assert_array_equal(again[name], got[name])
