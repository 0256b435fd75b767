"""The Keras plug-in: Keras 3 ``.keras`` archives (config.json + model.weights.h5 in a zip) and
legacy ``.h5`` files, built in code with seeded weights. Mutators damage the bytes, the model
config (numbers, layer classes, activations, structure), the layer names, the weights and the
archive's members. Off where TensorFlow/Keras/tf2onnx are not installed.

Declared-huge layer sizes are left out of the default mutations: TensorFlow takes ~10 s to
refuse each (an OOM it raises as an error, which irc reports); IRC_FUZZ_KERAS_HUGE=1 adds them.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import zipfile
from pathlib import Path

import numpy as np

from tests.fuzz.plugins import (BYTE_MUTATORS, WEIRD_NAMES, FuzzFormat, Mutation, NotApplicable,
                                Seed)

HAVE_KERAS = all(importlib.util.find_spec(m) for m in ("tensorflow", "keras", "tf2onnx"))
NUMBERS = [0, -1, -5, 3, 1.5, None, "7", True] + (
    [2 ** 31, 10 ** 12] if os.environ.get("IRC_FUZZ_KERAS_HUGE") == "1" else [])
NUMERIC_KEYS = ("filters", "units", "kernel_size", "strides", "pool_size", "batch_shape",
                "axis", "epsilon", "momentum", "rate", "groups", "dilation_rate", "alpha",
                "negative_slope", "max_value", "threshold", "target_shape", "size")


def _keras():
    from irc.frontends.keras.runtime import tf_modules

    return tf_modules().keras


def _seq_cnn(keras):
    return keras.Sequential([
        keras.Input((10, 10, 3), name="k_img"),
        keras.layers.Conv2D(6, 3, padding="same", name="k_conv1"),
        keras.layers.BatchNormalization(name="k_bn1"),
        keras.layers.ReLU(name="k_relu1"),
        keras.layers.MaxPooling2D(name="k_pool1"),
        keras.layers.Conv2D(4, 3, activation="relu", name="k_conv2"),
        keras.layers.Flatten(name="k_flat"),
        keras.layers.Dense(5, activation="softmax", name="k_fc"),
    ], name="seq_cnn")


def _func_res(keras):
    x = keras.Input((8, 8, 3), name="k_in")
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="k_c1")(x)
    z = keras.layers.Conv2D(4, 1, name="k_c2")(y)
    y = keras.layers.Add(name="k_add")([y, z])
    y = keras.layers.AveragePooling2D(2, name="k_avg")(y)
    y = keras.layers.GlobalAveragePooling2D(name="k_gap")(y)
    y = keras.layers.Dense(3, name="k_out")(y)
    return keras.Model(x, y, name="func_res")


def _seeded(model, seed: int):
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.standard_normal(w.shape) * 0.3).astype(np.float32)
                       if "variance" not in getattr(v, "path", "") else
                       rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                       for w, v in zip(model.get_weights(), model.weights)])
    return model


class KerasFormat(FuzzFormat):
    def build_seed(self, name: str, folder: Path) -> Seed:
        keras = _keras()  # TensorFlow's start-up messages are written here, not in a case
        folder.mkdir(parents=True, exist_ok=True)
        build, suffix = {"seq_cnn": (_seq_cnn, ".keras"), "func_res": (_func_res, ".keras"),
                         "seq_cnn_h5": (_seq_cnn, ".h5")}[name]
        path = folder / f"{name}{suffix}"
        _seeded(build(keras), 11).save(str(path))
        return Seed(name, folder, path.name)


# ---- the config, wherever the file keeps it ------------------------------------------------


def _read_config(path: Path) -> dict:
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("config.json"))
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs["model_config"]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _rewrite_zip(path: Path, replace: dict[str, bytes | None], add: dict[str, bytes] = {}):
    members = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            members[name] = z.read(name)
    for name, data in replace.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    members.update(add)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _write_config(path: Path, config: dict | str) -> None:
    text = config if isinstance(config, str) else json.dumps(config)
    if path.suffix == ".keras":
        _rewrite_zip(path, {"config.json": text.encode()})
        return
    import h5py

    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = text


def _layers(config: dict) -> list[dict]:
    return config["config"]["layers"]


def _main(folder: Path, seed: Seed) -> Path:
    return folder / seed.main


# ---- mutators ------------------------------------------------------------------------------


def config_numbers(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    path = _main(folder, seed)
    config = _read_config(path)
    spots = [(layer, key) for layer in _layers(config) for key in NUMERIC_KEYS
             if key in layer.get("config", {})]
    if not spots:
        raise NotApplicable
    layer, key = rng.choice(spots)
    old = layer["config"][key]
    value = rng.choice(NUMBERS)
    if isinstance(old, list) and old:
        new = list(old)
        new[rng.randrange(len(new))] = value
    else:
        new = value
    layer["config"][key] = new
    _write_config(path, config)
    return Mutation(f"layer {layer['config'].get('name')!r} {key}: {old!r} -> {new!r}")


def config_structure(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    path = _main(folder, seed)
    config = _read_config(path)
    layers = _layers(config)
    how = rng.choice(["class", "activation", "padding", "data_format", "dtype", "drop",
                      "invalid_json", "empty_layers", "lambda"])
    layer = rng.choice(layers[1:] or layers)
    cfg = layer.setdefault("config", {})
    if how == "class":
        layer["class_name"] = rng.choice(["Foo", "LSTM", "Conv3D", "Dense", "Lambda",
                                          "Conv2DTranspose", "DepthwiseConv2D"])
        what = layer["class_name"]
    elif how == "activation":
        cfg["activation"] = rng.choice(["foo", "swish", "elu", "selu", "gelu", "linear",
                                        "hard_sigmoid", "leaky_relu"])
        what = cfg["activation"]
    elif how == "padding":
        cfg["padding"] = rng.choice(["causal", "full", "SAME", "valid"])
        what = cfg["padding"]
    elif how == "data_format":
        cfg["data_format"] = rng.choice(["channels_first", "nchw", None])
        what = cfg["data_format"]
    elif how == "dtype":
        cfg["dtype"] = rng.choice(["float16", "int8", "float64", "bogus"])
        what = cfg["dtype"]
    elif how == "drop":
        layers.remove(layer)
        what = cfg.get("name")
    elif how == "invalid_json":
        _write_config(path, json.dumps(config)[: rng.randrange(10, 200)])
        return Mutation("config: truncated JSON")
    elif how == "empty_layers":
        config["config"]["layers"] = []
        what = "no layers"
    else:
        layer["class_name"] = "Lambda"
        cfg["function"] = {"class_name": "__lambda__", "config": {"code": "bogus"}}
        what = "Lambda with bogus code"
    _write_config(path, config)
    return Mutation(f"config {how}: {what!r} on {cfg.get('name')!r}")


def _rename_everywhere(node, mapping: dict[str, str]):
    """Every string in the config equal to an old layer name (names, keras_history, the model's
    input/output layer lists). Seed layer names are unique strings ('k_...')."""
    if isinstance(node, dict):
        return {k: _rename_everywhere(v, mapping) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_everywhere(v, mapping) for v in node]
    if isinstance(node, str):
        return mapping.get(node, node)
    return node


def names(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    """Weird, long or colliding layer names. In a .keras archive the weights are keyed by
    layer class, not name, so this changes no meaning: the model must still convert."""
    path = _main(folder, seed)
    if path.suffix != ".keras":
        raise NotApplicable
    config = _read_config(path)
    old = [layer["config"]["name"] for layer in _layers(config)]
    # New names only: a name repeated exactly would make an invalid model, not a renamed one.
    pool = [n for n in WEIRD_NAMES if "/" not in n and "\x00" not in n and n not in old]
    how = rng.choice(["weird", "collide", "long"])
    if how == "weird":
        mapping = dict(zip(old, rng.sample(pool, len(old))))
    elif how == "collide":
        pair = rng.choice([("Conv1", "conv1"), ("a.b", "A-B"), ("x y", "X_Y")])
        if set(pair) & set(old):
            raise NotApplicable
        mapping = dict(zip(rng.sample(old, 2), pair))
    else:
        mapping = {n: "n" * 300 + str(i) for i, n in enumerate(old)}
    config = _rename_everywhere(config, mapping)
    config["config"]["name"] = rng.choice(["", "model name", "名前", config["config"]["name"]])
    _write_config(path, config)
    return Mutation(f"layer names {how}: {list(mapping.values())[:3]}", must_convert=True)


def weights(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    import h5py

    path = _main(folder, seed)
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            data = z.read("model.weights.h5")
        buffer = io.BytesIO(data)
        f = h5py.File(buffer, "r+")
    else:
        buffer, f = None, h5py.File(path, "r+")
    with f:
        datasets = []
        f.visititems(lambda name, obj: datasets.append(name)
                     if isinstance(obj, h5py.Dataset) and obj.size else None)
        if not datasets:
            raise NotApplicable
        name = rng.choice(datasets)
        ds = f[name]
        how = rng.choice(["nan", "shape", "delete", "dtype"])
        array = ds[()]
        if how == "nan":
            flat = np.array(array, np.float32).reshape(-1)
            flat[rng.randrange(flat.size)] = rng.choice([np.nan, np.inf, -np.inf])
            ds[...] = flat.reshape(array.shape)
        else:
            del f[name]
            if how == "shape":
                f.create_dataset(name, data=np.zeros(tuple(d + 1 for d in array.shape) or (2,),
                                                     np.float32))
            elif how == "dtype":
                f.create_dataset(name, data=np.asarray(array).astype(
                    rng.choice([np.float64, np.int32, np.float16])))
    if buffer is not None:
        _rewrite_zip(path, {"model.weights.h5": buffer.getvalue()})
    return Mutation(f"weights {how}: {name}")


def archive(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    path = _main(folder, seed)
    if path.suffix != ".keras":
        raise NotApplicable
    how = rng.choice(["drop_config", "drop_weights", "drop_metadata", "junk", "slip",
                      "weights_garbage"])
    if how.startswith("drop_"):
        member = {"drop_config": "config.json", "drop_weights": "model.weights.h5",
                  "drop_metadata": "metadata.json"}[how]
        _rewrite_zip(path, {member: None})
    elif how == "junk":
        _rewrite_zip(path, {}, {"assets/junk.bin": os.urandom(64)})
    elif how == "slip":
        _rewrite_zip(path, {}, {"../../escaped.txt": b"zip slip"})
    else:
        _rewrite_zip(path, {"model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\x00" * 64})
    return Mutation(f"archive: {how}")


def cli_args(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    value = rng.choice(["1,3,0,10", "1,-5,10,3", "abc", "1,10,10,3", "2,10,10,3", "1,3,10,10",
                        "1,20,20,3", "ghost:1,10,10,3", "1,99999999999999999999,1,1"])
    extra = [f"--input-shape={value}"]
    if rng.random() < 0.3:
        extra.append("--allow-lambda")
    return Mutation(f"{' '.join(extra)}", extra_args=tuple(extra))


MUTATORS = {**BYTE_MUTATORS, "config_numbers": config_numbers,
            "config_structure": config_structure, "names": names, "weights": weights,
            "archive": archive, "cli_args": cli_args}

FORMAT = KerasFormat("keras", seed_names=("seq_cnn", "func_res", "seq_cnn_h5"),
                     mutators=MUTATORS, default_iterations=100) if HAVE_KERAS else None
