"""The Caffe plug-in: a .prototxt (text) plus its .caffemodel (binary), compiled with
``irc compile NET.prototxt --weights NET.caffemodel``. Seeds: the fixtures' trained LeNet
(when present), CIFAR-10 quick with random weights, and a small generated net with BatchNorm
and Scale. Mutators damage the text (numbers, lines, layer blocks, names), the binary (bytes,
blob shapes and data) and the command line."""
from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

from tests.fuzz.plugins import (BYTE_MUTATORS, WEIRD_NAMES, FuzzFormat, Mutation, NotApplicable,
                                Seed)

try:  # irc's own Caffe schema; the plug-in is off where the Caffe frontend is absent
    from irc.frontends.caffe import caffe_subset_pb2 as pb
except ImportError:  # pragma: no cover
    pb = None

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "fixtures" / "caffe"

SMALL_NET = """name: "small"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1"
        scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool2" top: "fc"
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""

HUGE = [2 ** 31, 10 ** 12, 2 ** 62]
BAD = [0, -1, -5]


class CaffeFormat(FuzzFormat):
    def build_seed(self, name: str, folder: Path) -> Seed:
        from tests.caffe.conftest import random_caffemodel

        folder.mkdir(parents=True, exist_ok=True)
        proto = folder / f"{name}.prototxt"
        if name == "lenet" and (CORPUS / "lenet_iter_10000.caffemodel").is_file():
            shutil.copy(CORPUS / "lenet.prototxt", proto)
            shutil.copy(CORPUS / "lenet_iter_10000.caffemodel", proto.with_suffix(".caffemodel"))
        elif name == "cifar_quick" and (CORPUS / "cifar10_quick.prototxt").is_file():
            shutil.copy(CORPUS / "cifar10_quick.prototxt", proto)
            random_caffemodel(proto, seed=5)
        else:  # the generated net (also standing in for an absent corpus)
            proto.write_text(SMALL_NET)
            random_caffemodel(proto, seed=4)
        return Seed(name, folder, proto.name)

    def argv(self, main_file: Path, out: Path, extra_args: tuple[str, ...]) -> list[str]:
        argv = ["compile", str(main_file), "-o", str(out)]
        if "--no-weights-arg" not in extra_args:
            argv += ["--weights", str(main_file.with_suffix(".caffemodel"))]
        return argv + [a for a in extra_args if a != "--no-weights-arg"]

    def verify_argv(self, main_file: Path, out: Path) -> list[str]:
        return super().verify_argv(main_file, out) + [
            "--weights", str(main_file.with_suffix(".caffemodel"))]


# ---- helpers -------------------------------------------------------------------------------


def _proto(folder: Path, seed: Seed) -> Path:
    return folder / seed.main


def _weights(folder: Path, seed: Seed) -> Path:
    return (folder / seed.main).with_suffix(".caffemodel")


def _blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level ``layer { ... }`` block."""
    spans, depth, start = [], 0, None
    for m in re.finditer(r"\blayers?\s*\{|\{|\}", text):
        token = m.group(0)
        if token.startswith("layer") and depth == 0:
            start = m.start()
            depth = 1
        elif token.endswith("{"):
            depth += 1 if depth else 0
        elif depth:
            depth -= 1
            if depth == 0 and start is not None:
                spans.append((start, m.end()))
                start = None
    return spans


def _load_net(path: Path):
    net = pb.NetParameter()
    net.ParseFromString(path.read_bytes())
    return net


# ---- text mutators -------------------------------------------------------------------------


def numbers(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    """A number in the prototxt (num_output, kernel_size, stride, pad, dims) made huge,
    negative or zero."""
    path = _proto(folder, seed)
    text = path.read_text()
    found = list(re.finditer(r"(?<=: )\d+\b", text))
    if not found:
        raise NotApplicable
    m = rng.choice(found)
    value = rng.choice(HUGE + BAD + [99999999999999999999, 3])
    line = text[:m.start()].rsplit("\n", 1)[-1].strip()
    path.write_text(text[:m.start()] + str(value) + text[m.end():])
    return Mutation(f"'{line}{m.group(0)}' -> {value}")


def lines(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    path = _proto(folder, seed)
    text = path.read_text()
    blocks = _blocks(text)
    how = rng.choice(["drop_line", "drop_block", "dup_block", "swap_blocks", "unknown_type",
                      "unknown_field", "phase"])
    if how == "drop_line":
        rows = text.splitlines()
        i = rng.randrange(len(rows))
        what = rows[i].strip()
        del rows[i]
        text = "\n".join(rows)
    elif how in ("drop_block", "dup_block") and blocks:
        a, b = rng.choice(blocks[1:] or blocks)
        what = text[a:b].split("\n")[0][:60]
        text = text[:a] + (text[a:b] + "\n" + text[a:b] if how == "dup_block" else "") + text[b:]
    elif how == "swap_blocks" and len(blocks) > 2:
        (a1, b1), (a2, b2) = sorted(rng.sample(blocks, 2))
        text = text[:a1] + text[a2:b2] + text[b1:a2] + text[a1:b1] + text[b2:]
        what = "two layers"
    elif how == "unknown_type":
        types = list(re.finditer(r'type: "(\w+)"', text))
        if not types:
            raise NotApplicable
        m = rng.choice(types)
        new = rng.choice(["Foo", "LSTM", "Deconvolution", "Python", "", "relu", "Eltwise",
                          "Concat", "Flatten", "Dropout", "LRN", "Power"])
        text = text[:m.start(1)] + new + text[m.end(1):]
        what = f"{m.group(1)} -> {new!r}"
    elif how == "unknown_field" and blocks:
        a, b = rng.choice(blocks)
        text = text[:b - 1] + ' bogus_param { x: 1 } top: "" ' + text[b - 1:]
        what = "bogus field and empty top"
    elif how == "phase" and blocks:
        a, b = rng.choice(blocks)
        text = text[:b - 1] + " include { phase: TRAIN } " + text[b - 1:]
        what = "include phase TRAIN"
    else:
        raise NotApplicable
    path.write_text(text)
    return Mutation(f"{how}: {what}")


def names(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    """Weird or colliding layer and blob names, renamed in the prototxt and the caffemodel
    alike: the net means the same, so it must still convert."""
    path = _proto(folder, seed)
    text = path.read_text()
    layer_names = re.findall(r'\bname: "([^"]*)"', text)[1:]  # [0] is the net's name
    blob_names = sorted(set(re.findall(r'\b(?:top|bottom): "([^"]*)"', text)))
    how = rng.choice(["layers", "blobs", "collide", "long"])
    taken = set(layer_names) | set(blob_names)
    pool = [n for n in WEIRD_NAMES if n not in taken and '"' not in n and "\\" not in n
            and "\n" not in n and "\t" not in n and "\x00" not in n]
    if how == "collide":  # differ only in case/punctuation; new to the net (OpenCV, the
        # oracle, refuses a layer named like another layer's top blob)
        pair = rng.choice([("Layer_A", "layer_a"), ("A/b", "a_b"), ("x.y", "X-Y")])
        if set(pair) & taken:
            raise NotApplicable
        picks = rng.sample(layer_names, min(2, len(layer_names)))
        mapping = dict(zip(picks, pair))
    elif how == "long":
        mapping = {n: "L" * 300 + str(i) for i, n in enumerate(layer_names)}
    elif how == "layers":
        chosen = rng.sample(layer_names, min(len(layer_names), rng.choice([1, 3, 100])))
        mapping = dict(zip(chosen, rng.sample(pool, len(chosen))))
    else:
        chosen = rng.sample(blob_names, min(len(blob_names), rng.choice([1, 3, 100])))
        mapping = dict(zip(chosen, rng.sample(pool, len(chosen))))
    if not mapping:
        raise NotApplicable
    field = "(?:top|bottom)" if how == "blobs" else "name"
    first = text.index("layer")  # keep the net's own name
    body = re.sub(rf'\b({field}): "([^"]*)"',
                  lambda m: f'{m.group(1)}: "{mapping.get(m.group(2), m.group(2))}"',
                  text[first:])
    path.write_text(text[:first] + body)
    if how != "blobs":
        weights = _weights(folder, seed)
        net = _load_net(weights)
        for layer in net.layer:
            layer.name = mapping.get(layer.name, layer.name)
        weights.write_bytes(net.SerializeToString())
    return Mutation(f"{how} names: {list(mapping.items())[:3]}", must_convert=True)


# ---- caffemodel mutators -------------------------------------------------------------------


def blobs(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    weights = _weights(folder, seed)
    net = _load_net(weights)
    layers = [layer for layer in net.layer if len(layer.blobs)]
    if not layers:
        raise NotApplicable
    layer = rng.choice(layers)
    blob = rng.choice(list(layer.blobs))
    how = rng.choice(["dims_huge", "dims_bad", "dims_drop", "truncate", "nan", "clear",
                      "drop_blobs", "legacy", "double_data", "rename_layer"])
    dims = list(blob.shape.dim)
    if how in ("dims_huge", "dims_bad") and dims:
        dims[rng.randrange(len(dims))] = rng.choice(HUGE if how == "dims_huge" else BAD)
        blob.shape.ClearField("dim")
        blob.shape.dim.extend(dims)
    elif how == "dims_drop" and dims:
        dims.pop()
        blob.shape.ClearField("dim")
        blob.shape.dim.extend(dims)
    elif how == "truncate" and len(blob.data):
        keep = rng.randrange(len(blob.data))
        del blob.data[keep:]
    elif how == "nan" and len(blob.data):
        blob.data[rng.randrange(len(blob.data))] = rng.choice([float("nan"), float("inf"),
                                                              -float("inf"), 3.4e38])
    elif how == "clear":
        blob.ClearField("data")
    elif how == "drop_blobs":
        del layer.blobs[rng.randrange(len(layer.blobs)):]
    elif how == "legacy":
        blob.ClearField("shape")
        blob.num, blob.channels, blob.height, blob.width = rng.choice(
            [(1, 1, 1, len(blob.data)), (-1, 2, 3, 4), (2 ** 31 - 1, 1, 1, 1), (0, 0, 0, 0)])
    elif how == "double_data" and len(blob.data):
        values = list(blob.data)
        blob.ClearField("data")
        blob.double_data.extend(values[:rng.choice([len(values), len(values) // 2])])
    elif how == "rename_layer":
        layer.name = rng.choice(["", "ghost", layer.name.upper()])
    else:
        raise NotApplicable
    weights.write_bytes(net.SerializeToString())
    return Mutation(f"caffemodel layer {layer.name!r}: {how}")


def cli_args(rng: random.Random, folder: Path, seed: Seed) -> Mutation:
    how = rng.choice(["shape", "shape", "no_weights", "missing_weights", "weights_is_proto",
                      "weights_dir", "drop_lrn"])
    if how == "shape":
        value = rng.choice(["1,3,0,32", "1,3,-5,32", "1,3,1000000000000,1000000000000", "abc",
                            "1,1,28,28", "2,3,32,32", "1,3,16,16", "1,3,32", "ghost:1,3,8,8",
                            "1,99999999999999999999,1,1"])
        return Mutation(f"--input-shape {value!r}", extra_args=(f"--input-shape={value}",))
    if how == "no_weights":  # structure-only conversion: nothing to verify
        return Mutation("no --weights", extra_args=("--no-weights-arg",), unverified=True)
    weights = _weights(folder, seed)
    if how == "missing_weights":
        weights.unlink()
        return Mutation("--weights names a missing file")
    if how == "weights_is_proto":
        shutil.copy(_proto(folder, seed), weights)
        return Mutation("--weights is the prototxt's text")
    if how == "weights_dir":
        weights.unlink()
        weights.mkdir()
        return Mutation("--weights is a folder")
    return Mutation("--drop-lrn", extra_args=("--drop-lrn",), must_convert=True)


MUTATORS = {**BYTE_MUTATORS, "numbers": numbers, "lines": lines, "names": names,
            "blobs": blobs, "cli_args": cli_args}

FORMAT = None if pb is None else CaffeFormat(
    "caffe", seed_names=("lenet", "cifar_quick", "small_bn"), mutators=MUTATORS,
    default_iterations=200)
