"""The ONNX plug-in: seeds built with OnnxBuilder (plus the bundled example) and mutators that
damage the bytes, the protobuf fields, the declared shapes, the weights, the names and the
external data of a model."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from irc.utils.onnx_builder import OnnxBuilder
from tests.fuzz.plugins import (BYTE_MUTATORS, WEIRD_NAMES, FuzzFormat, Mutation, NotApplicable,
                                Seed)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "small_cnn.onnx"

HUGE = [10 ** 12, 2 ** 31, 2 ** 40, 2 ** 62, 2 ** 63 - 1]
BAD = [0, -1, -5, -(2 ** 40)]


# ---- seeds ---------------------------------------------------------------------------------


def _mlp() -> onnx.ModelProto:
    """Exporter-style names: '/fc1/Gemm', 'onnx::Gemm_5', 'input.1'."""
    b = OnnxBuilder("mlp", (1, 3, 4, 4), seed=1, opset=13, input_name="input.1")
    x = b.op("Flatten", b.input, name="/flatten/Flatten")
    x = b.gemm(x, 48, 12, name="/fc1/Gemm")
    x = b.op("Relu", x, name="/act/Relu")
    x = b.gemm(x, 12, 5, name="/fc2/Gemm")
    x = b.op("Softmax", x, name="/softmax/Softmax", axis=1)
    return b.build([x])


def _reshape_net() -> onnx.ModelProto:
    """Constant subgraphs (Constant -> Reshape shape), Sub/Div by constants, MatMul + Add."""
    b = OnnxBuilder("reshape_net", (1, 2, 6, 6), seed=2, opset=17)
    x = b.op("Sub", b.input, b.const(np.float32(0.5)), name="norm_sub")
    x = b.op("Div", x, b.const(np.float32(2.0)), name="norm_div")
    x = b.conv(x, 4, 3, pads=[1, 1, 1, 1], name="conv")
    x = b.op("LeakyRelu", x, alpha=0.1, name="leaky")
    x = b.op("AveragePool", x, kernel_shape=[2, 2], strides=[2, 2], name="avg")
    shape = b.op("Constant", name="shape_const",
                 value=numpy_helper.from_array(np.array([-1, 36], np.int64)))
    x = b.op("Reshape", x, shape, name="to_2d")
    x = b.op("MatMul", x, b.weight((36, 7)), name="matmul")
    x = b.op("Add", x, b.const((0.1 * np.arange(7)).astype(np.float32)), name="bias")
    x = b.op("Sigmoid", x, name="sigmoid")
    return b.build([x])


def _ext_cnn() -> onnx.ModelProto:
    b = OnnxBuilder("ext_cnn", (1, 3, 10, 10), seed=3, opset=15)
    x = b.conv(b.input, 8, 3, name="conv_a")
    x = b.batchnorm(x, name="bn_a")
    x = b.op("Relu", x, name="relu_a")
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2], name="pool_a")
    x = b.conv(x, 6, 1, name="conv_b")
    x = b.op("GlobalMaxPool", x, name="gmp")
    x = b.op("Flatten", x, name="flat")
    x = b.gemm(x, 6, 3, name="head")
    return b.build([x])


def _save_external(model: onnx.ModelProto, path: Path, location: str) -> None:
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=location, size_threshold=0)


class OnnxFormat(FuzzFormat):
    def build_seed(self, name: str, folder: Path) -> Seed:
        folder.mkdir(parents=True, exist_ok=True)
        main = f"{name}.onnx"
        if name == "small_cnn":
            shutil.copy(EXAMPLE, folder / main)
        elif name == "mlp":
            onnx.save(_mlp(), str(folder / main))
        elif name == "reshape_net":
            onnx.save(_reshape_net(), str(folder / main))
        elif name == "ext_cnn":
            _save_external(_ext_cnn(), folder / main, "ext_cnn.data")
        else:
            raise KeyError(name)
        return Seed(name, folder, main)


# ---- helpers -------------------------------------------------------------------------------


def _load(folder: Path, seed: Seed) -> onnx.ModelProto:
    return onnx.load(str(folder / seed.main), load_external_data=False)


def _save(model: onnx.ModelProto, folder: Path, seed: Seed) -> None:
    (folder / seed.main).write_bytes(model.SerializeToString())


def _pick(rng: random.Random, items):
    items = list(items)
    if not items:
        raise NotApplicable
    return rng.choice(items)


def _float_inits(model):
    return [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT
            and int(np.prod(t.dims)) > 0]


def _value_names(model) -> list[str]:
    """Every value name: graph inputs, initializers, node outputs (in a stable order)."""
    g = model.graph
    names = [i.name for i in g.input] + [t.name for t in g.initializer]
    names += [o for n in g.node for o in n.output if o]
    return list(dict.fromkeys(names))


def _rename_value(model: onnx.ModelProto, old: str, new: str) -> None:
    g = model.graph
    for n in g.node:
        n.input[:] = [new if i == old else i for i in n.input]
        n.output[:] = [new if o == old else o for o in n.output]
    for coll in (g.input, g.output, g.value_info, g.initializer):
        for item in coll:
            if item.name == old:
                item.name = new


def _fresh(rng: random.Random, model, pool=WEIRD_NAMES) -> str:
    taken = set(_value_names(model)) | {o.name for o in model.graph.output}
    for _ in range(50):
        name = rng.choice(pool)
        if rng.random() < 0.3:
            name = f"{name}{rng.randrange(1000)}"
        if name and name not in taken:
            return name
    raise NotApplicable


def _internal_data(model: onnx.ModelProto) -> bool:
    return not any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer)


# ---- protobuf-field mutators ---------------------------------------------------------------


def drop_node_input(rng, folder, seed):
    model = _load(folder, seed)
    node = _pick(rng, [n for n in model.graph.node if n.input])
    i = rng.randrange(len(node.input))
    how = rng.choice(["delete", "empty", "ghost"])
    if how == "delete":
        del node.input[i]
    else:
        node.input[i] = "" if how == "empty" else "ghost_value"
    _save(model, folder, seed)
    return Mutation(f"{how} input {i} of node {node.name!r} ({node.op_type})")


def drop_attribute(rng, folder, seed):
    model = _load(folder, seed)
    node = _pick(rng, [n for n in model.graph.node if n.attribute])
    i = rng.randrange(len(node.attribute))
    name = node.attribute[i].name
    del node.attribute[i]
    _save(model, folder, seed)
    return Mutation(f"deleted attribute {name!r} of node {node.name!r} ({node.op_type})")


_INTS = [0, 1, 2, 3, -1, -5, 7, 2 ** 31, 10 ** 12, -(2 ** 63)]
_FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, -1.0, 3.4e38, 0.1, 1e-45]


def alter_attribute(rng, folder, seed):
    model = _load(folder, seed)
    node = _pick(rng, [n for n in model.graph.node if n.attribute])
    a = rng.choice(list(node.attribute))
    A = onnx.AttributeProto
    if rng.random() < 0.15:
        a.type = rng.choice([A.FLOAT, A.INT, A.STRING, A.TENSOR, A.INTS, A.FLOATS, A.UNDEFINED])
        what = f"type -> {a.type}"
    elif a.type == A.INT:
        a.i = rng.choice(_INTS)
        what = f"= {a.i}"
    elif a.type == A.FLOAT:
        a.f = rng.choice(_FLOATS)
        what = f"= {a.f}"
    elif a.type == A.INTS:
        values = list(a.ints)
        op = rng.choice(["set", "append", "clear", "pop"])
        if op == "set" and values:
            values[rng.randrange(len(values))] = rng.choice(_INTS)
        elif op == "append":
            values.append(rng.choice(_INTS))
        elif op == "clear":
            values = []
        elif values:
            values.pop()
        a.ClearField("ints")
        a.ints.extend(values)
        what = f"= {values}"
    elif a.type == A.STRING:
        a.s = rng.choice([b"", b"SAME_UPPER", b"SAME_LOWER", b"VALID", b"\xff\xfe", b"x" * 300])
        what = f"= {a.s[:20]!r}"
    elif a.type == A.TENSOR:
        t = a.t
        dims = list(t.dims) or [1]
        dims[rng.randrange(len(dims))] = rng.choice(HUGE + BAD)
        t.ClearField("dims")
        t.dims.extend(dims)
        what = f"tensor dims -> {dims}"
    else:
        raise NotApplicable
    _save(model, folder, seed)
    return Mutation(f"attribute {a.name!r} of node {node.name!r} ({node.op_type}) {what}")


def add_attribute(rng, folder, seed):
    model = _load(folder, seed)
    node = rng.choice(list(model.graph.node))
    name, value = rng.choice([
        ("bogus", 1), ("dilations", [2, 2]), ("auto_pad", "SAME_UPPER"), ("group", 0),
        ("ceil_mode", 1), ("pads", [-1, -1, 2, 2]), ("strides", [0, 0]), ("axis", 7),
        ("kernel_shape", [10 ** 6, 10 ** 6]), ("epsilon", float("nan")), ("alpha", -1.0),
        ("count_include_pad", 1), ("transA", 1), ("perm", [3, 2, 1, 0]),
    ])
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))
    _save(model, folder, seed)
    return Mutation(f"set attribute {name}={value!r} on node {node.name!r} ({node.op_type})")


def drop_initializer(rng, folder, seed):
    model = _load(folder, seed)
    inits = model.graph.initializer
    if not len(inits):
        raise NotApplicable
    i = rng.randrange(len(inits))
    name = inits[i].name
    del inits[i]
    _save(model, folder, seed)
    return Mutation(f"deleted initializer {name!r}")


def initializer_dims(rng, folder, seed):
    model = _load(folder, seed)
    t = _pick(rng, model.graph.initializer)
    dims = list(t.dims)
    count = int(np.prod(dims)) if dims else 1
    how = rng.choice(["huge", "bad", "drop", "add", "swap", "wrap", "wrap"])
    if how == "huge" and dims:
        dims[rng.randrange(len(dims))] = rng.choice(HUGE)
    elif how == "bad" and dims:
        dims[rng.randrange(len(dims))] = rng.choice(BAD)
    elif how == "drop" and dims:
        dims.pop(rng.randrange(len(dims)))
    elif how == "add":
        dims.insert(rng.randrange(len(dims) + 1), rng.choice([1, 2]))
    elif how == "swap" and len(dims) > 1:
        i, j = rng.sample(range(len(dims)), 2)
        dims[i], dims[j] = dims[j], dims[i]
    elif how == "wrap":
        # int64 products wrap: (2**62 + 1) * 4k == 4k (mod 2**64), so np.prod says 4k elements
        if count % 4:
            raise NotApplicable
        dims = [2 ** 62 + 1, count // 4] if count > 4 else [2 ** 62 + 1]
        if count == 4:
            dims = [2 ** 62 + 1, 1]
    else:
        raise NotApplicable
    t.ClearField("dims")
    t.dims.extend(dims)
    _save(model, folder, seed)
    return Mutation(f"initializer {t.name!r} dims -> {dims} ({how})")


def initializer_data(rng, folder, seed):
    model = _load(folder, seed)
    t = _pick(rng, [t for t in model.graph.initializer if t.raw_data or t.float_data
                    or t.int64_data])
    how = rng.choice(["truncate", "extend", "clear", "to_float_data", "data_type", "both"])
    if how == "truncate" and t.raw_data:
        t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data))]
    elif how == "extend" and t.raw_data:
        t.raw_data = t.raw_data + bytes(rng.choice([1, 4, 8, 1000]))
    elif how == "clear":
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.ClearField("int64_data")
    elif how == "to_float_data":
        values = numpy_helper.to_array(t).astype(np.float32).ravel().tolist()
        t.ClearField("raw_data")
        t.ClearField("int64_data")
        t.data_type = TensorProto.FLOAT
        t.ClearField("float_data")
        t.float_data.extend(values[:rng.randrange(len(values) + 1)] if values else [1.0, 2.0])
    elif how == "data_type":
        t.data_type = rng.choice([0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 14, 16, 17, 99])
    elif how == "both":
        t.float_data.extend([1.0, 2.0])  # raw_data and float_data at once
    else:
        raise NotApplicable
    _save(model, folder, seed)
    return Mutation(f"initializer {t.name!r}: {how} (data_type {t.data_type})")


def nan_inf_weights(rng, folder, seed):
    """NaN/Inf/huge weights: must never be written silently."""
    model = _load(folder, seed)
    if not _internal_data(model):
        raise NotApplicable  # the ext_* mutators handle external data
    t = _pick(rng, _float_inits(model))
    array = numpy_helper.to_array(t).copy()
    value = rng.choice([np.nan, np.inf, -np.inf, 3.4e38])
    flat = array.reshape(-1)
    k = rng.choice([1, max(1, flat.size // 10), flat.size])
    flat[rng.sample(range(flat.size), k)] = value
    t.CopyFrom(numpy_helper.from_array(array, t.name))
    _save(model, folder, seed)
    return Mutation(f"{k} element(s) of {t.name!r} set to {value}")


def opset(rng, folder, seed):
    model = _load(folder, seed)
    how = rng.choice(["delete", "version", "version", "domain", "ir_version", "duplicate"])
    if how == "delete":
        model.ClearField("opset_import")
    elif how == "version":
        model.opset_import[0].version = rng.choice([0, 1, 7, 8, 9, 10, 21, 22, 99, 2 ** 40, -1])
    elif how == "domain":
        model.opset_import[0].domain = rng.choice(["com.microsoft", "ai.onnx.ml", "x" * 300])
    elif how == "ir_version":
        model.ir_version = rng.choice([0, 1, 3, 4, 99, -1])
    else:
        model.opset_import.append(helper.make_opsetid("", rng.choice([9, 13, 21])))
    _save(model, folder, seed)
    return Mutation(f"opset {how}: {[(o.domain, o.version) for o in model.opset_import]}, "
                    f"ir_version {model.ir_version}")


def nodes(rng, folder, seed):
    model = _load(folder, seed)
    g = model.graph
    if not len(g.node):
        raise NotApplicable
    how = rng.choice(["drop", "duplicate", "shuffle", "swap", "op_type", "domain", "clear"])
    i = rng.randrange(len(g.node))
    label = f"{g.node[i].name!r} ({g.node[i].op_type})"
    if how == "drop":
        del g.node[i]
    elif how == "duplicate":
        g.node.insert(i, g.node[i])
    elif how == "shuffle":
        order = list(g.node)
        rng.shuffle(order)
        g.ClearField("node")
        g.node.extend(order)
    elif how == "swap" and len(g.node) > 1:
        j = rng.randrange(len(g.node))
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(g.node[i])
        b.CopyFrom(g.node[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
    elif how == "op_type":
        g.node[i].op_type = rng.choice(["Conv", "Relu", "Gemm", "MaxPool", "Add", "Concat",
                                        "Softmax", "Flatten", "LSTM", "If", "Loop", "", "conv",
                                        "ConstantOfShape", "Expand", "Tile", "Resize"])
    elif how == "domain":
        g.node[i].domain = rng.choice(["com.microsoft", "ai.onnx", "custom", "ai.onnx.ml"])
    elif how == "clear":
        g.ClearField("node")
    else:
        raise NotApplicable
    _save(model, folder, seed)
    return Mutation(f"nodes {how} at {label}")


def graph_io(rng, folder, seed):
    model = _load(folder, seed)
    g = model.graph
    how = rng.choice(["drop_output", "ghost_output", "inner_output", "drop_input",
                      "second_input", "elem_type", "dup_output"])
    if how == "drop_output":
        del g.output[rng.randrange(len(g.output))]
    elif how == "ghost_output":
        g.output.append(helper.make_tensor_value_info("ghost", TensorProto.FLOAT, [1, 2]))
    elif how == "inner_output":
        inner = _pick(rng, [o for n in g.node[:-1] for o in n.output if o])
        g.output.append(helper.make_empty_tensor_value_info(inner))
    elif how == "drop_input":
        del g.input[0]
    elif how == "second_input":
        g.input.append(helper.make_tensor_value_info("extra_in", TensorProto.FLOAT, [1, 3]))
    elif how == "elem_type":
        g.input[0].type.tensor_type.elem_type = rng.choice([0, 2, 6, 7, 10, 11, 16, 99])
    else:
        g.output.append(g.output[0])
    _save(model, folder, seed)
    return Mutation(f"graph io: {how}")


def _dims_mutation(rng, vi: onnx.ValueInfoProto) -> str:
    shape = vi.type.tensor_type.shape
    how = rng.choice(["huge", "huge", "bad", "bad", "param", "clear", "rank+", "rank-"])
    dims = shape.dim
    if how in ("huge", "bad", "param") and len(dims):
        i = rng.randrange(len(dims))
        d = dims[i]
        if how == "param":
            d.Clear()
            d.dim_param = rng.choice(["N", "height", "", "名前"])
        else:
            d.Clear()
            d.dim_value = rng.choice(HUGE if how == "huge" else BAD)
        return f"{vi.name!r} dim {i} -> {d.dim_value or d.dim_param!r}"
    if how == "clear":
        vi.type.tensor_type.ClearField("shape")
        return f"{vi.name!r} shape cleared"
    if how == "rank+":
        dims.add().dim_value = rng.choice([1, 2])
        return f"{vi.name!r} rank +1"
    if len(dims):
        del dims[len(dims) - 1]
        return f"{vi.name!r} rank -1"
    raise NotApplicable


def input_dims(rng, folder, seed):
    model = _load(folder, seed)
    what = _dims_mutation(rng, model.graph.input[0])
    if rng.random() < 0.3 and len(model.graph.input[0].type.tensor_type.shape.dim) > 3:
        dims = model.graph.input[0].type.tensor_type.shape.dim  # two huge spatial dims at once
        dims[2].dim_value, dims[3].dim_value = rng.choice(HUGE), rng.choice(HUGE)
        what += f"; spatial dims {dims[2].dim_value}x{dims[3].dim_value}"
    _save(model, folder, seed)
    return Mutation(f"input {what}")


def output_dims(rng, folder, seed):
    model = _load(folder, seed)
    what = _dims_mutation(rng, model.graph.output[0])
    _save(model, folder, seed)
    return Mutation(f"output {what}")


_SHAPES = ["1,3,0,32", "1,3,-5,32", "1,3,1000000000000,1000000000000", "0,3,32,32",
           "1,3,32", "1,3,32,32,1", "abc", "1,3,32,32", "2,3,32,32", "ghost:1,3,32,32",
           "1,99999999999999999999,1,1", "1,3,16,16", "", ",,,", "1x3x32x32",
           "1,3,2147483648,1"]


def cli_args(rng, folder, seed):
    """Command-line values: --input-shape, --scale, --offsets, --normstds, --name."""
    how = rng.choice(["shape", "shape", "shape", "scale", "offsets", "normstds", "name"])
    if how == "shape":
        return Mutation(f"--input-shape {_pick(rng, _SHAPES)!r}",
                        extra_args=(f"--input-shape={_pick(rng, _SHAPES)}",))
    if how == "scale":
        value = rng.choice(["0", "nan", "inf", "-1", "1e-45", "1e308"])
        return Mutation(f"--scale {value}", extra_args=(f"--scale={value}",))
    if how == "offsets":
        value = rng.choice(["1,2", "1,2,3,4", "nan,0,0", "", "a,b,c", "1e308,0,0"])
        return Mutation(f"--offsets {value!r}", extra_args=(f"--offsets={value}",))
    if how == "normstds":
        value = rng.choice(["0,0,0", "1,1", "-1,1,1", "inf,1,1", "x"])
        return Mutation(f"--normstds {value!r}", extra_args=(f"--normstds={value}",))
    value = rng.choice(["../evil", "/tmp/abs", "..", "", "名前", "a/b", "x" * 300, "CON"])
    return Mutation(f"--name {value!r}", extra_args=(f"--name={value}",), must_convert=True)


# ---- names (meaning-free: the model must still convert) ------------------------------------


def node_names(rng, folder, seed):
    model = _load(folder, seed)
    how = rng.choice(["weird", "weird", "empty", "long", "same"])
    pool = rng.sample(WEIRD_NAMES, len(WEIRD_NAMES))
    for i, n in enumerate(model.graph.node):
        if how == "weird":  # unique: onnxruntime rejects models with repeated node names
            n.name = pool[i] if i < len(pool) else f"{pool[i % len(pool)]}{i}"
        elif how == "empty":
            n.name = ""
        elif how == "long":
            n.name = "n" * 300 + str(i)
        else:
            n.name = "node"
    _save(model, folder, seed)
    # Repeated node names make an invalid model (onnxruntime refuses it); the rest must convert.
    return Mutation(f"node names: {how}", must_convert=how != "same")


def value_names(rng, folder, seed):
    model = _load(folder, seed)
    names = _value_names(model) + [o.name for o in model.graph.output]
    changed = []
    for old in rng.sample(sorted(set(names)), min(len(set(names)), rng.choice([1, 3, 100]))):
        new = _fresh(rng, model)
        _rename_value(model, old, new)
        changed.append(new)
    _save(model, folder, seed)
    return Mutation(f"renamed {len(changed)} value(s), e.g. {changed[:3]}", must_convert=True)


def colliding_names(rng, folder, seed):
    """Names that differ only in case or punctuation, or share a 300-character prefix."""
    model = _load(folder, seed)
    g = model.graph
    how = rng.choice(["nodes", "values", "input_vs_node", "long_prefix"])
    if how == "nodes" and len(g.node) > 1:
        a, b = rng.sample(range(len(g.node)), 2)
        pair = rng.choice([("Conv1", "conv1"), ("A/b", "a_b"), ("x.y", "X-Y"), ("é", "É")])
        if {pair[0], pair[1]} & {n.name for n in g.node}:
            raise NotApplicable  # would repeat an existing node name exactly
        g.node[a].name, g.node[b].name = pair
        what = f"nodes {pair}"
    elif how == "values":
        pair = rng.choice([("X", "x"), ("feat.1", "feat_1"), ("A/B", "a_b")])
        candidates = [v for v in _value_names(model) if v not in pair]
        if set(pair) & set(_value_names(model)):
            raise NotApplicable
        old = rng.sample(candidates, 2)
        for o, new in zip(old, pair):
            _rename_value(model, o, new)
        what = f"values {pair}"
    elif how == "input_vs_node":
        new = rng.choice(["Input", "DATA", "data", "conv"])
        if new in _value_names(model):
            raise NotApplicable
        _rename_value(model, g.input[0].name, new)
        other = new.lower() if new.isupper() or new[0].isupper() else new.upper()
        if other in {n.name for n in g.node}:
            raise NotApplicable
        g.node[rng.randrange(len(g.node))].name = other
        what = f"input {new!r} vs a node"
    else:
        prefix = "L" * 300
        for i, n in enumerate(g.node):
            n.name = f"{prefix}{i}"
        what = "node names share a 300-char prefix"
    _save(model, folder, seed)
    return Mutation(f"colliding names: {what}", must_convert=True)


# ---- external data -------------------------------------------------------------------------


def _externalize(folder: Path, seed: Seed) -> tuple[onnx.ModelProto, Path]:
    """The case's model with every initializer in one external file (converted if needed)."""
    model = _load(folder, seed)
    ext = [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    if not ext:
        full = onnx.load(str(folder / seed.main))
        _save_external(full, folder / seed.main, "weights.data")
        model = _load(folder, seed)
    t = next(t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL)
    location = {e.key: e.value for e in t.external_data}.get("location", "")
    data = folder / location
    # An earlier mutator may have pointed it elsewhere (/dev/zero, outside, a symlink).
    if (not location or os.path.isabs(location) or ".." in Path(location).parts
            or data.is_symlink() or not data.is_file()):
        raise NotApplicable
    return model, data


def _set_field(t: TensorProto, key: str, value: str | None) -> None:
    kept = [(e.key, e.value) for e in t.external_data if e.key != key]
    t.ClearField("external_data")
    for k, v in kept + ([(key, value)] if value is not None else []):
        t.external_data.add(key=k, value=v)


def ext_location(rng, folder, seed):
    model, data = _externalize(folder, seed)
    outside = folder.parent / "outside.data"
    shutil.copy(data, outside)
    how = rng.choice(["parent", "absolute", "dotdot", "symlink", "empty", "missing", "dir",
                      "dev"])
    location = {"parent": "../outside.data", "absolute": str(outside),
                "dotdot": "sub/../../outside.data", "symlink": "link.data", "empty": "",
                "missing": "nope.data", "dir": ".", "dev": "/dev/zero"}[how]
    if how == "symlink":
        os.symlink(outside, folder / "link.data")
    targets = model.graph.initializer if rng.random() < 0.5 else \
        [rng.choice(list(model.graph.initializer))]
    for t in targets:
        _set_field(t, "location", location)
    _save(model, folder, seed)
    return Mutation(f"external data location {location!r} ({how}) on {len(targets)} tensor(s)")


def ext_truncate(rng, folder, seed):
    model, data = _externalize(folder, seed)
    size = data.stat().st_size
    cut = rng.choice([0, size // 2, size - 1, rng.randrange(max(size, 1))])
    with open(data, "r+b") as f:
        f.truncate(cut)
    return Mutation(f"external data file {data.name} truncated to {cut} of {size} bytes")


def ext_fields(rng, folder, seed):
    model, _ = _externalize(folder, seed)
    t = rng.choice(list(model.graph.initializer))
    how = rng.choice(["offset", "offset", "length", "no_location", "dup_location",
                      "no_entries", "raw_too", "unknown_key"])
    if how == "offset":
        value = rng.choice(["-8", "abc", "1e3", "99999999999999999999", "0x10", "-1", " 4",
                            str(2 ** 63)])
        _set_field(t, "offset", value)
    elif how == "length":
        value = rng.choice(["0", "-1", "abc", "3", "99999999999"])
        _set_field(t, "length", value)
    elif how == "no_location":
        _set_field(t, "location", None)
        value = None
    elif how == "dup_location":
        t.external_data.add(key="location", value="other.data")
        value = "other.data"
    elif how == "no_entries":
        t.ClearField("external_data")
        value = None
    elif how == "raw_too":
        t.raw_data = b"\x00" * 8
        value = None
    else:
        t.external_data.add(key="checksum", value="deadbeef")
        value = "deadbeef"
    _save(model, folder, seed)
    return Mutation(f"external data of {t.name!r}: {how} {value!r}")


def ext_dims(rng, folder, seed):
    """Declared dims of an externally stored tensor: huge, negative, or wrapping in int64."""
    model, _ = _externalize(folder, seed)
    t = rng.choice(list(model.graph.initializer))
    count = int(np.prod(t.dims)) if len(t.dims) else 1
    how = rng.choice(["huge", "bad", "wrap"])
    if how == "huge":
        dims = [rng.choice(HUGE)] + list(t.dims[1:])
    elif how == "bad":
        dims = [rng.choice(BAD)] + list(t.dims[1:])
    else:
        if count % 4:
            raise NotApplicable
        dims = [2 ** 62 + 1, count // 4]
    t.ClearField("dims")
    t.dims.extend(dims)
    _save(model, folder, seed)
    return Mutation(f"external tensor {t.name!r} dims -> {dims} ({how})")


MUTATORS = {
    **BYTE_MUTATORS,
    "drop_node_input": drop_node_input, "drop_attribute": drop_attribute,
    "alter_attribute": alter_attribute, "add_attribute": add_attribute,
    "drop_initializer": drop_initializer, "initializer_dims": initializer_dims,
    "initializer_data": initializer_data, "nan_inf_weights": nan_inf_weights,
    "opset": opset, "nodes": nodes, "graph_io": graph_io, "input_dims": input_dims,
    "output_dims": output_dims, "cli_args": cli_args,
    "node_names": node_names, "value_names": value_names, "colliding_names": colliding_names,
    "ext_location": ext_location, "ext_truncate": ext_truncate, "ext_fields": ext_fields,
    "ext_dims": ext_dims,
}

FORMAT = OnnxFormat("onnx", seed_names=("small_cnn", "mlp", "reshape_net", "ext_cnn"),
                    mutators=MUTATORS, default_iterations=600)
