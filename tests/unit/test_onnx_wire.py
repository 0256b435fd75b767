"""The .onnx reader that memory-maps inline weights in place (irc/frontends/onnx/wire.py)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from irc.errors import InvalidModel
from irc.frontends.onnx import import_onnx, wire
from irc.frontends.onnx.loader import load_model
from irc.utils.onnx_builder import OnnxBuilder


def _model(width: int = 64):
    """A conv (64·3·3·3 floats: small, stays inline) and an fc whose weight is 1 MiB+."""
    b = OnnxBuilder("m", (1, 3, 8, 8), seed=3)
    x = b.op("Relu", b.conv(b.input, 4, 3, pads=[1, 1, 1, 1], name="conv"), name="relu")
    return b.build([b.gemm(b.op("Flatten", x, name="flat"), 4 * 8 * 8, width * 16, name="fc")])


def _weights(model) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_large_inline_weights_become_references_into_the_file(tmp_path):
    model = _model()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    mapped = wire.read_mapped(path)
    by_name = {t.name: t for t in mapped.graph.initializer}
    sizes = {t.name: numpy_helper.to_array(t).nbytes for t in model.graph.initializer}
    for name, nbytes in sizes.items():
        external = by_name[name].data_location == onnx.TensorProto.EXTERNAL
        assert external == (nbytes >= 64 * 1024), (name, nbytes)
    # Everything but the weight bytes is unchanged.
    assert [n.SerializeToString() for n in mapped.graph.node] == \
        [n.SerializeToString() for n in model.graph.node]
    assert mapped.opset_import == model.opset_import and mapped.graph.name == model.graph.name


def test_imported_weights_are_memory_mapped_and_equal(tmp_path):
    model = _model()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    refs = _weights(model)
    g = import_onnx(path)
    fc = g.node("fc")
    w = g.const(fc.inputs[1])
    assert isinstance(w, np.memmap)
    np.testing.assert_array_equal(w, refs[fc.inputs[1]])
    conv_w = g.const(g.node("conv").inputs[1])
    np.testing.assert_array_equal(conv_w, refs[g.node("conv").inputs[1]])


def test_the_proto_others_save_keeps_its_weights_inline(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model(), str(path))
    model, _ = load_model(path, str(path))  # irc inspect saves this one: no references
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def test_truncated_or_foreign_files_fall_back_to_onnx_errors(tmp_path):
    path = tmp_path / "m.onnx"
    data = _model().SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    assert wire.read_mapped(path) is None
    with pytest.raises(InvalidModel, match="not a readable ONNX file"):
        import_onnx(path)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert wire.read_mapped(empty) is None
    groups = tmp_path / "group.onnx"
    groups.write_bytes(bytes([0x3B]) + data)  # field 7 as a start-group: not onnx.proto
    assert wire.read_mapped(groups) is None


def test_a_repeated_raw_data_field_is_left_to_protobuf(tmp_path):
    model = _model()
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    model.graph.initializer.remove(big)
    # Protobuf takes the last of two raw_data fields (9); this reader must not pick one itself.
    raw = big.raw_data
    tensor = big.SerializeToString() + bytes([9 << 3 | 2]) + wire._encode_varint(len(raw)) + raw
    graph = model.graph.SerializeToString() + wire._length_delimited(5, tensor)
    model.ClearField("graph")
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString() + wire._length_delimited(7, graph))
    mapped = wire.read_mapped(path)
    t = next(t for t in mapped.graph.initializer if t.name == big.name)
    assert t.data_location != onnx.TensorProto.EXTERNAL
    assert t.raw_data == raw


def test_symlinked_model_maps_through_the_link(tmp_path):
    model = _model()
    real = tmp_path / "store" / "m.onnx"
    real.parent.mkdir()
    onnx.save(model, str(real))
    link = tmp_path / "link.onnx"
    link.symlink_to(real)
    g = import_onnx(link)
    fc = g.node("fc")
    np.testing.assert_array_equal(g.const(fc.inputs[1]), _weights(model)[fc.inputs[1]])
