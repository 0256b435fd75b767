"""Every supported Keras layer, end to end: a small Keras 3 model with seeded weights ->
import_keras -> optimize -> lower -> files -> reference executor, compared with Keras on the
same input (rtol 1e-4, atol 1e-5)."""
from __future__ import annotations

import pytest

from tests.keras.conftest import compile_and_compare, set_random_weights, types


def _model(keras, inputs, outputs, seed=0):
    return set_random_weights(keras.Model(inputs, outputs), seed)


def conv_valid_bias(keras, L):
    x = keras.Input((8, 8, 3))
    return _model(keras, x, L.Conv2D(4, 3, activation="relu")(x))


def conv_same_strided_no_bias(keras, L):
    # 9x9, 3x3/2 'same': symmetric 1/1 padding; 8x8: TF splits 0/1 (Viya's automatic split).
    x = keras.Input((9, 9, 3))
    a = L.Conv2D(4, 3, strides=2, padding="same", use_bias=False, activation="sigmoid")(x)
    b = L.Conv2D(5, 3, strides=2, padding="same")(a)
    return _model(keras, x, L.Conv2D(4, 5, padding="same", activation="tanh")(b))


def dense_stack(keras, L):
    x = keras.Input((6, 6, 2))
    f = L.Flatten()(L.Conv2D(3, 3, activation="relu")(x))
    h = L.Dense(7, activation="elu")(f)
    return _model(keras, x, L.Dense(4, activation="softmax")(h))


def flatten_dropout_dense(keras, L):
    x = keras.Input((8, 8, 3))
    c = L.Conv2D(4, 3, strides=2, padding="same")(x)
    f = L.Dropout(0.5)(L.Flatten()(c))
    return _model(keras, x, L.Dense(5)(L.Dropout(0.3)(L.Dense(6, activation="relu")(f))))


def two_flattens(keras, L):
    # Trap 6: every Flatten's Dense is permuted, not only the first in the layer list.
    x = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    b = L.MaxPooling2D(2)(L.Conv2D(3, 3, padding="same")(a))
    da = L.Dense(6)(L.Dropout(0.2)(L.Flatten()(a)))
    db = L.Dense(6)(L.Flatten()(b))
    return _model(keras, x, L.Dense(3, activation="softmax")(L.Add()([da, db])))


def batchnorm_variants(keras, L):
    x = keras.Input((8, 8, 3))
    h = L.BatchNormalization(epsilon=0.1)(x)  # on the input: a Viya batchnorm layer
    h = L.Conv2D(4, 3, padding="same", use_bias=False)(h)
    h = L.BatchNormalization(scale=False)(h)  # folded into the conv
    h = L.ReLU()(h)
    h = L.BatchNormalization(center=False, epsilon=1e-2)(h)  # pre-activation position
    h = L.Conv2D(5, 3)(h)
    h = L.BatchNormalization(scale=False, center=False)(h)
    f = L.Dense(6)(L.Flatten()(h))
    return _model(keras, x, L.BatchNormalization(epsilon=0.05)(f))  # after Dense


def activations(keras, L):
    x = keras.Input((6, 6, 3))
    h = L.Activation("tanh")(L.Conv2D(4, 3, padding="same")(x))
    h = L.ELU()(L.Conv2D(4, 3, padding="same")(h))
    h = L.LeakyReLU(negative_slope=0.1)(L.Conv2D(4, 3, padding="same")(h))
    h = L.Activation("softplus")(L.Conv2D(4, 3, padding="same")(h))
    h = L.Activation("linear")(L.Conv2D(4, 3, padding="same", activation="elu")(h))
    h = L.Activation("sigmoid")(L.MaxPooling2D(2)(h))  # after a pool: moved or carried
    h = L.Activation("relu")(L.AveragePooling2D(3)(h))  # after an average pool: carried
    f = L.Dense(5, activation="softplus")(L.Flatten()(h))
    return _model(keras, x, L.Softmax()(L.Dense(3)(f)))


def add_concat_gap(keras, L):
    x = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    b = L.Conv2D(4, 1, use_bias=False)(x)
    s = L.Activation("relu")(L.Add()([a, b]))
    c = L.Concatenate()([s, a, L.Conv2D(2, 1)(x)])
    g = L.GlobalAveragePooling2D()(c)
    m = L.GlobalMaxPooling2D()(c)
    v = L.Concatenate()([g, m])
    return _model(keras, x, L.Dense(3, activation="softmax")(v))


def pools(keras, L):
    x = keras.Input((7, 7, 3))
    a = L.MaxPooling2D(2, padding="same")(x)  # 7 -> 4: TF pads 0/1 = Viya automatic
    a = L.MaxPooling2D(3, strides=1, padding="same")(a)  # pads 1/1: explicit padding 1
    a = L.AveragePooling2D(2, strides=1, padding="same")(a)
    a = L.AveragePooling2D(2, padding="valid")(a)
    b = L.AveragePooling2D(3, strides=2)(x)
    b = L.MaxPooling2D(2, strides=1)(b)
    out = L.Concatenate()([L.GlobalAveragePooling2D()(a), L.GlobalMaxPooling2D()(b)])
    return _model(keras, x, out)


def zero_padding(keras, L):
    x = keras.Input((8, 8, 3))
    h = L.ZeroPadding2D(1)(x)  # symmetric before a conv
    h = L.Conv2D(4, 3, activation="relu")(h)
    h = L.ZeroPadding2D(((0, 1), (0, 1)))(h)  # asymmetric before a strided conv: automatic
    h = L.Conv2D(4, 3, strides=2, activation="relu")(h)
    h = L.ZeroPadding2D(1)(h)  # before a max pool, after relu
    h = L.MaxPooling2D(3, strides=1)(h)
    a = L.AveragePooling2D(2)(L.ZeroPadding2D(((0, 1), (0, 1)))(h))  # before an average pool
    b = L.AveragePooling2D(3, strides=1)(L.ZeroPadding2D(1)(h))
    return _model(keras, x, [a, b])


def depthwise_separable(keras, L):
    x = keras.Input((8, 8, 3))
    h = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu")(x)
    h = L.DepthwiseConv2D(3, strides=2, use_bias=False)(h)
    h = L.SeparableConv2D(5, 3, padding="same", activation="relu")(h)
    h = L.SeparableConv2D(4, 3, depth_multiplier=2, use_bias=False)(h)
    return _model(keras, x, L.Dense(3)(L.Flatten()(h)))


def reshapes(keras, L):
    x = keras.Input((8, 8, 3))
    c = L.Conv2D(1, 3, padding="same")(x)
    r = L.Reshape((4, 16, 1))(c)  # one channel: the same elements in both layouts
    r = L.Conv2D(2, 3, padding="same")(r)
    v = L.Reshape((-1,))(r)  # a flatten
    d = L.Dense(8, activation="relu")(v)
    d = L.Reshape((1, 1, 8))(d)  # a vector as 1x1 channels
    d = L.Conv2D(3, 1)(d)
    return _model(keras, x, L.Dense(4)(L.Flatten()(d)))


def four_d_outputs(keras, L):
    x = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    p = L.MaxPooling2D(2)(a)
    y = L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(p))
    return _model(keras, x, [y, p, L.Conv2D(2, 1)(p)])


def vector_input(keras, L):
    x = keras.Input((10,))
    h = L.Dropout(0.1)(L.Dense(8, activation="tanh")(x))
    return _model(keras, x, L.Dense(3, activation="sigmoid")(h))


def sequential(keras, L):
    model = keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(3, 3, activation="relu"),
                              L.MaxPooling2D(), L.Flatten(), L.Dense(4, activation="softmax")])
    return set_random_weights(model)


def nested_model(keras, L):
    inner = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"),
                              L.MaxPooling2D()], name="inner")
    x = keras.Input((8, 8, 3))
    return _model(keras, x, L.Dense(2)(L.Flatten()(inner(x))))


def flattens_concatenated(keras, L):
    # Two towers flattened (H,W,C order each) and a vector, concatenated, into Dense layers:
    # one multi-source fc whose column segments are permuted separately.
    x = keras.Input((8, 8, 3))
    a = L.Flatten()(L.Conv2D(2, 3, activation="relu")(x))
    b = L.Flatten()(L.MaxPooling2D()(L.Conv2D(3, 5, padding="same")(x)))
    v = L.Dense(4, activation="tanh")(L.GlobalAveragePooling2D()(x))
    h = L.Dense(6, activation="relu")(L.Concatenate()([a, b, v]))
    return _model(keras, x, L.Dense(3, activation="softmax")(h))


def batchnorm_on_vectors(keras, L):
    # A BatchNormalization after a global pool and after a Flatten (H,W,C order): no Viya
    # layer holds them there; they fold forward into the Dense layers.
    x = keras.Input((8, 8, 3))
    c = L.Conv2D(4, 3, activation="relu")(x)
    g = L.BatchNormalization()(L.GlobalAveragePooling2D()(c))
    f = L.BatchNormalization()(L.Flatten()(L.MaxPooling2D()(c)))
    return _model(keras, x, L.Dense(3)(L.Concatenate()([L.Dense(4)(g), L.Dense(5)(f)])))


BUILDERS = [conv_valid_bias, conv_same_strided_no_bias, dense_stack,
            flatten_dropout_dense, two_flattens, batchnorm_variants, activations, add_concat_gap,
            pools, zero_padding, depthwise_separable, reshapes, four_d_outputs, vector_input,
            sequential, nested_model, flattens_concatenated, batchnorm_on_vectors]


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_layer_matches_keras(build, keras, tmp_path):
    model = build(keras, keras.layers)
    compile_and_compare(model, tmp_path)


def test_flatten_rows_are_permuted_for_every_dense(keras, tmp_path):
    """Trap 6/7: both Flattens of a functional graph feed fc layers with permuted rows; a wrong
    permutation would already fail the comparison, so here also check the layer kinds."""
    layers = compile_and_compare(two_flattens(keras, keras.layers), tmp_path)
    assert types(layers).count("fc") == 2 and "output" in types(layers)


def test_batchnorm_where_it_cannot_fold_is_a_layer(keras, tmp_path):
    layers = compile_and_compare(batchnorm_variants(keras, keras.layers), tmp_path)
    assert types(layers).count("batchnorm") >= 1


def test_padded_average_pool_becomes_depthwise_conv(keras, tmp_path):
    layers = compile_and_compare(zero_padding(keras, keras.layers), tmp_path)
    group = [la for la in layers if la["type"] == "groupconvo"]
    assert len(group) == 2 and all(la["includebias"] is False for la in group)
    assert "pool" in types(layers)


def test_separable_conv_is_groupconvo_then_convo(keras, tmp_path):
    layers = compile_and_compare(depthwise_separable(keras, keras.layers), tmp_path)
    assert types(layers)[1:6] == ["groupconvo", "groupconvo", "groupconvo", "convo",
                                  "groupconvo"]


def test_output_activation_mirrors_keras(keras, tmp_path):
    """Trap 28: a logits model keeps an identity output; softmax only where Keras has it."""
    logits = compile_and_compare(flatten_dropout_dense(keras, keras.layers), tmp_path / "a")
    probs = compile_and_compare(dense_stack(keras, keras.layers), tmp_path / "b")
    assert [la["act"] for la in logits if la["type"] == "output"] == ["identity"]
    assert [la["act"] for la in probs if la["type"] == "output"] == ["softmax"]


def test_flattens_concatenated_into_dense_become_one_multi_source_fc(keras, tmp_path):
    layers = compile_and_compare(flattens_concatenated(keras, keras.layers), tmp_path)
    (fc,) = [layer for layer in layers if layer["type"] == "fc" and layer["n"] == 6]
    assert len(fc["srcLayers"]) == 3 and "concat" not in types(layers)


def preprocessing(keras, L):
    # Rescaling and Normalization at the input: per-channel constants before the first conv.
    x = keras.Input((8, 8, 3))
    h = L.Rescaling(1 / 127.5, offset=-1.0)(x)
    h = L.Normalization(mean=[0.1, -0.2, 0.3], variance=[0.5, 2.0, 1.5])(h)
    h = L.Rescaling([1.0, 0.5, 2.0])(h)
    h = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, activation="relu")(h))
    return _model(keras, x, L.Dense(2)(h))


def test_preprocessing_layers_fold_into_the_first_layers(keras, tmp_path):
    """Rescaling/Normalization (direct route only: tf2onnx makes Normalization's statistics
    extra model inputs, so that route refuses it in the layer scan)."""
    from irc.errors import UnsupportedAttribute
    from irc.frontends.keras.convert import to_onnx
    from irc.frontends.keras.loading import load

    model = preprocessing(keras, keras.layers)
    layers = compile_and_compare(model, tmp_path)
    assert types(layers)[0] == "input" and "fc" not in types(layers)[:2]
    with pytest.raises(UnsupportedAttribute, match="Normalization: tf2onnx"):
        to_onnx(load(model), route="tf2onnx")
    compile_and_compare(adapted_normalization(keras), tmp_path / "adapted")


def adapted_normalization(keras):
    """A Normalization whose statistics come from adapt() (weights, not config)."""
    import numpy as np

    L = keras.layers
    norm = L.Normalization()
    norm.adapt(np.random.default_rng(0).normal(2.0, 3.0, (16, 6, 6, 2)).astype("float32"))
    conv = L.Conv2D(3, 3)
    x = keras.Input((6, 6, 2))
    model = keras.Model(x, conv(norm(x)))
    set_random_weights(conv)  # not the statistics: those are what adapt() found
    return model
