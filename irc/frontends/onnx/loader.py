"""Reading ONNX models: files (external data memory-mapped) or in-memory protos, and shapes.

Weights are copied at most once here: inline initializers become read-only views on the bytes
protobuf hands out (one copy of the field), external ones memory-mapped views on their files. Checking and shape inference run on a
skeleton of the model whose large (and external) initializers are typed inputs, so a big model
is never serialised again.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from irc.errors import InputShapeNeeded, InvalidModel, UnsupportedAttribute
from irc.frontends.onnx import wire
from irc.ir import side_file
from irc.ir.tensors import TensorType, WeightStore

# Initializers up to this size are kept in the shape-inference skeleton (shape constants).
_SKELETON_KEEP_ELEMENTS = 4096


def load_model(source, label: str, map_weights: bool = False
               ) -> tuple[onnx.ModelProto, Path | None]:
    """The ModelProto (external data not loaded) and the folder its external data lives in.

    ``map_weights``: large inline initializers become references into the file, memory-mapped
    by :func:`store_initializer` (:mod:`wire`); only for callers that never save the proto."""
    if isinstance(source, onnx.ModelProto):
        return source, side_file.external_dir(source)  # None unless irc made it (2 GB+)
    path = Path(source)
    if not path.is_file():
        raise InvalidModel("file not found", file=label, hint="check the path")
    mapped = wire.read_mapped(path) if map_weights else None
    if mapped is not None and mapped.graph.node and mapped.opset_import:
        return mapped, path.parent
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise InvalidModel(f"not a readable ONNX file ({type(exc).__name__}: {exc})", file=label,
                           hint="the file may be truncated or not an ONNX model") from None
    if not model.graph.node or not model.opset_import:
        raise InvalidModel("not an ONNX model: no graph nodes or no opset", file=label,
                           hint="the file may be truncated or not an ONNX model")
    return model, path.parent


def check_opset(model: onnx.ModelProto, label: str) -> int:
    """The model's default-domain opset (irc.frontends.onnx.opset says which are read)."""
    from irc.frontends.onnx.opset import check_opset as check

    return check(model, label)


def _external_info(tensor: TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def np_dtype(code: int, what: str, label: str) -> np.dtype:
    """The numpy dtype of an ONNX element type code, or InvalidModel for an unknown code."""
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(code))
    except (KeyError, TypeError, ValueError):
        raise InvalidModel(f"{what} has unknown element type code {code}", file=label,
                           hint="the file is corrupt or uses a type irc cannot read") from None


def _external_int(info: dict, key: str, name: str, label: str) -> int | None:
    text = info.get(key)
    if text is None:
        return None
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidModel(f"initializer {name!r}: external data {key} {text!r} is not a "
                           "non-negative decimal integer", file=label, hint="the file is corrupt")
    return value


def store_initializer(store: WeightStore, tensor: TensorProto, base_dir: Path | None,
                      label: str):
    """A handle to the initializer's data, without copying it.

    Declared element types, dims, byte counts and external-data fields are checked before
    anything is allocated or mapped (irc.limits caps the size of one tensor).
    """
    from irc.limits import check_tensor_bytes

    name = tensor.name
    dtype = np_dtype(tensor.data_type, f"initializer {name!r}", label)
    shape = tuple(int(d) for d in tensor.dims)
    nbytes = check_tensor_bytes(shape, dtype, f"initializer {name!r}", file=label,
                                allow_empty=True)
    if tensor.data_location == TensorProto.EXTERNAL:
        info = _external_info(tensor)
        location = info.get("location", "")
        if info.get(wire.INLINE_KEY) == "1" and base_dir is not None:  # irc's own reference
            return _mapped_inline(store, base_dir / location, info, shape, dtype, nbytes,
                                  name, label)
        if base_dir is None:
            raise InvalidModel(f"initializer {name!r} has external data but the model was "
                               "given in memory", file=label,
                               hint="pass the .onnx file path so its data files can be found")
        if not location or "\0" in location:
            raise InvalidModel(f"initializer {name!r}: external data location {location!r} is "
                               "not a file name", file=label, hint="the file is corrupt")
        target = (base_dir / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(base_dir.resolve()):
            raise InvalidModel(f"initializer {name!r}: external data location {location!r} "
                               "points outside the model's folder", file=label,
                               hint="external data must sit beside the .onnx file")
        offset = _external_int(info, "offset", name, label) or 0
        length = _external_int(info, "length", name, label)
        if length is not None and length != nbytes:
            raise InvalidModel(f"initializer {name!r}: external data length {length} != "
                               f"{nbytes} bytes for shape {shape} {dtype}", file=label,
                               hint="the file is corrupt")
        if not target.is_file() or target.stat().st_size < offset + nbytes:
            raise InvalidModel(f"initializer {name!r}: external data file {location!r} is "
                               "missing or too short", file=label,
                               hint="copy the data files that came with the model beside it")
        return _mapped(store, target, offset, shape, dtype, nbytes, name)
    raw = tensor.raw_data  # protobuf (upb) copies a bytes field on every access: read it once
    if raw:
        if len(raw) != nbytes:
            raise InvalidModel(f"initializer {name!r}: {len(raw)} bytes for "
                               f"shape {shape} {dtype}", file=label, hint="the file is corrupt")
        return store.add(np.frombuffer(raw, dtype=dtype).reshape(shape), hint=name)
    try:
        return store.add(numpy_helper.to_array(tensor), hint=name)
    except (ValueError, TypeError) as exc:  # element count of *_data does not match the dims
        raise InvalidModel(f"initializer {name!r}: its values do not fit shape {shape} ({exc})",
                           file=label, hint="the file is corrupt") from None


def _mapped_inline(store: WeightStore, path: Path, info: dict, shape, dtype, nbytes: int,
                   name: str, label: str):
    """An inline initializer :mod:`wire` found at ``offset`` in the model file itself."""
    offset = _external_int(info, "offset", name, label) or 0
    length = _external_int(info, "length", name, label)
    if length != nbytes:
        raise InvalidModel(f"initializer {name!r}: {length} bytes for shape {shape} {dtype}",
                           file=label, hint="the file is corrupt")
    return _mapped(store, path, offset, shape, dtype, nbytes, name)


def _mapped(store: WeightStore, path: Path, offset: int, shape, dtype, nbytes: int, name: str):
    """A lazy, read-only memory map of ``nbytes`` at ``offset`` in ``path`` (checked)."""
    if nbytes == 0:
        return store.add(np.zeros(shape, dtype), hint=name)

    def load():
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return store.add_lazy(load, shape, dtype, hint=name)


def check_names(model: onnx.ModelProto, label: str) -> None:
    """Every name in the graph is text: protobuf hands out bytes for invalid UTF-8."""
    g = model.graph
    groups = [("node", [n.name for n in g.node]), ("op type", [n.op_type for n in g.node]),
              ("tensor", [t for n in g.node for t in list(n.input) + list(n.output)]),
              ("initializer", [t.name for t in g.initializer]),
              ("graph input/output", [v.name for v in list(g.input) + list(g.output)]),
              ("domain", [n.domain for n in g.node]), ("graph", [g.name]),
              ("value_info", [v.name for v in g.value_info]),
              ("attribute", [a.name for n in g.node for a in n.attribute]),
              ("external data", [e.value for t in g.initializer for e in t.external_data]
               + [e.key for t in g.initializer for e in t.external_data])]
    for what, names in groups:
        bad = next((n for n in names if not isinstance(n, str)), None)
        if bad is not None:
            raise InvalidModel(f"a {what} name is not valid UTF-8: {bad!r}", file=label,
                               hint="the file is corrupt")


def _parse_input_shapes(model, input_shapes, label) -> dict[str, tuple[int, ...]]:
    init_names = {t.name for t in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in init_names]
    if input_shapes is None:
        return {}
    if not isinstance(input_shapes, dict):
        if len(real_inputs) != 1:
            raise UnsupportedAttribute("--input-shape without a name needs a model with one input",
                                       file=label, hint="write --input-shape NAME:1,3,224,224")
        input_shapes = {real_inputs[0].name: input_shapes}
    names = {i.name for i in real_inputs}
    for name in input_shapes:
        if name not in names:
            raise UnsupportedAttribute(f"--input-shape names {name!r}, which is not a model input",
                                       file=label, hint=f"the inputs are {sorted(names)}")
    return {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}


def infer_types(model: onnx.ModelProto, input_shapes, label: str,
                folded: dict[str, np.ndarray] | None = None,
                skip_nodes: set[int] = frozenset(), batch: int = 1) -> dict[str, TensorType]:
    """Static types of every value, inferred with batch size ``batch`` (1 unless the shape
    folding of :mod:`shape_folding` asks for another to tell the batch apart).

    Declared input sizes are checked against irc.limits before anything is allocated.

    The importer turns axis 0 into ``BATCH`` for values that depend on a graph input.
    ``folded``: values of the nodes in ``skip_nodes``, already evaluated on constants; they
    enter inference as initializers, so shapes computed from them are known.
    """
    from irc.limits import check_tensor_bytes

    overrides = _parse_input_shapes(model, input_shapes, label)
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    folded_inits = [numpy_helper.from_array(a, name) for name, a in (folded or {}).items()]
    # Large weights enter the skeleton as typed graph inputs: their data is not needed to infer
    # shapes or to check the graph, and is never serialised again.
    small, large = [], []
    for t in list(graph.initializer) + folded_inits:
        keep = (t.data_location != TensorProto.EXTERNAL
                and np.prod(t.dims, dtype=np.int64) <= _SKELETON_KEEP_ELEMENTS)
        (small if keep else large).append(t)
    skeleton_graph = helper.make_graph(
        [n for i, n in enumerate(graph.node) if i not in skip_nodes], graph.name or "g",
        [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in large],
        list(graph.output), initializer=small)
    for inp in graph.input:
        if inp.name in init_names:
            continue
        ttype = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in ttype.shape.dim]
        if inp.name in overrides:
            dims = list(overrides[inp.name])
            if len(dims) != len(ttype.shape.dim) and ttype.HasField("shape"):
                raise UnsupportedAttribute(f"--input-shape for {inp.name!r} has rank {len(dims)}, "
                                           f"the model says {len(ttype.shape.dim)}", file=label)
        if len(dims) < 2:
            raise UnsupportedAttribute(f"input {inp.name!r} has rank {len(dims)}; irc needs a batch "
                                       "axis and at least one feature axis", file=label,
                                       hint="give --input-shape NAME:1,C,H,W")
        dims[0] = batch  # for inference only
        if any(d is None or d <= 0 for d in dims[1:]):
            raise InputShapeNeeded(f"input {inp.name!r} has a dynamic shape "
                                   f"{[d if d else '?' for d in dims]}", file=label,
                                   hint=f"give --input-shape {inp.name}:1,C,H,W (Viya layers "
                                        "have fixed sizes)")
        check_tensor_bytes(dims, np_dtype(ttype.elem_type, f"input {inp.name!r}", label),
                           f"input {inp.name!r} (one example)", file=label)
        skeleton_graph.input.append(helper.make_tensor_value_info(inp.name, ttype.elem_type, dims))
    skeleton = helper.make_model(skeleton_graph, opset_imports=list(model.opset_import))
    skeleton.ir_version = max(model.ir_version, 4)  # IR 4+: initializers need not be inputs
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises several unrelated types here
        raise InvalidModel(f"ONNX shape inference failed: {exc}", file=label,
                           hint="check the model with onnx.checker.check_model") from None
    try:  # after inference, which fills in graph output types the checker insists on
        onnx.checker.check_model(inferred)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidModel(f"not a valid ONNX model: {first[:400]}", file=label,
                           hint="onnx.checker.check_model explains it; re-export the model")
    types: dict[str, TensorType] = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape") or not tt.elem_type:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if any(d is None for d in dims):
            continue
        types[vi.name] = TensorType(tuple(dims), np_dtype(tt.elem_type, f"value {vi.name!r}",
                                                          label).name)
    return types
