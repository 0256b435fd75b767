"""The ONNX frontend: loading (external data without copies), shapes, the unsupported-op scan."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto

from irc.errors import InvalidModel, UnsupportedAttribute, UnsupportedOp, ViyaCannotExpress
from irc.frontends.onnx import import_onnx
from irc.ir.tensors import BATCH
from irc.utils.onnx_builder import OnnxBuilder


def _cnn(batch=1):
    b = OnnxBuilder("cnn", (batch, 3, 8, 8))
    x = b.op("Relu", b.conv(b.input, 4, 3, pads=[1, 1, 1, 1], name="conv"), name="relu")
    return b.build([b.gemm(b.op("Flatten", x, name="flat"), 4 * 8 * 8, 5, name="fc")])


def test_import_types_and_batch_axis():
    g = import_onnx(_cnn())
    assert g.value("input").type.shape == (BATCH, 3, 8, 8)
    assert g.value("flat").type.shape == (BATCH, 256)
    assert g.op_counts() == {"Conv": 1, "Relu": 1, "Flatten": 1, "Gemm": 1}
    assert g.node("conv").provenance.sources == ("conv",)


def test_external_data_is_memory_mapped(tmp_path):
    model = _cnn()
    refs = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.data", size_threshold=0)
    g = import_onnx(path)
    conv = g.node("conv")
    w = g.const(conv.inputs[1])
    assert isinstance(w, np.memmap)
    np.testing.assert_array_equal(w, refs[conv.inputs[1]])


def test_external_data_outside_folder_is_refused(tmp_path):
    model = _cnn()
    for t in model.graph.initializer:
        t.data_location = TensorProto.EXTERNAL
        t.ClearField("raw_data")
        t.external_data.add(key="location", value="../../etc/passwd")
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InvalidModel, match="outside the model's folder"):
        import_onnx(path)


def test_unsupported_ops_reported_once_with_counts():
    b = OnnxBuilder("u", (1, 3, 8, 8))
    x = b.op("LRN", b.input, size=3, name="lrn1")
    x = b.op("LRN", x, size=3, name="lrn2")
    x = b.op("HardSwish", x, name="hs")
    with pytest.raises(UnsupportedOp) as err:
        import_onnx(b.build([x]))
    text = str(err.value)
    assert "LRN x2" in text and "'lrn1'" in text and "HardSwish x1" in text


def test_dynamic_spatial_shape_needs_input_shape():
    b = OnnxBuilder("d", (1, 3, "H", "W"))
    x = b.op("Relu", b.conv(b.input, 4, 3, in_channels=3, name="conv"))
    model = b.build([x])
    with pytest.raises(UnsupportedAttribute, match="--input-shape"):
        import_onnx(model)
    g = import_onnx(model, input_shapes=(1, 3, 10, 12))
    assert g.value(x).type.shape == (BATCH, 4, 8, 10)


def test_opset_out_of_range_is_refused():
    """Old opsets are upgraded (to 13); one past what onnx knows is refused."""
    model = _cnn()
    beyond = onnx.defs.onnx_opset_version() + 1
    model.opset_import[0].version = beyond
    with pytest.raises(InvalidModel, match=f"opset {beyond}"):
        import_onnx(model)


def test_all_attribute_problems_listed_together():
    b = OnnxBuilder("p", (1, 3, 8, 8))
    x = b.conv(b.input, 4, 3, dilations=[2, 2], name="dil")
    x = b.op("Elu", x, alpha=0.3, name="elu")
    with pytest.raises(UnsupportedAttribute) as err:
        import_onnx(b.build([x]))
    assert "dil: dilations" in str(err.value) and "elu: Elu alpha=0.3" in str(err.value)


def test_non_onnx_and_truncated_files(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 20)
    with pytest.raises(InvalidModel):
        import_onnx(text)
    data = _cnn().SerializeToString()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModel):
        import_onnx(cut)


def test_constant_subgraphs_fold_at_import_even_without_handlers():
    """Shape arithmetic on constants (Cast, Range, Concat...) needs no handler: it is evaluated."""
    b = OnnxBuilder("shape_math", (1, 3, 4, 4))
    batch = b.const(np.array([1], np.int64))
    rest = b.op("Cast", b.const(np.array([48.0], np.float32)), to=TensorProto.INT64)
    shape = b.op("Concat", batch, rest, axis=0)
    x = b.op("Reshape", b.input, shape, name="flat")
    g = import_onnx(b.build([b.gemm(x, 48, 2, name="fc")]))
    assert g.op_counts() == {"Reshape": 1, "Gemm": 1}
    assert g.is_const(g.node("flat").inputs[1])
    np.testing.assert_array_equal(g.const(g.node("flat").inputs[1]), [1, 48])


def test_huge_constant_results_are_refused_before_evaluation(monkeypatch):
    """A few bytes of ONNX can ask for gigabytes: ConstantOfShape and Tile are sized first."""
    from irc.limits import ResourceLimitExceeded

    monkeypatch.setenv("IRC_MAX_TENSOR_BYTES", "1M")
    for make in ("ConstantOfShape", "Tile"):
        b = OnnxBuilder("huge", (1, 3, 4, 4))
        if make == "ConstantOfShape":
            big = b.op("ConstantOfShape", b.const(np.array([4000, 4000], np.int64)))
        else:
            big = b.op("Tile", b.const(np.ones((2, 2), np.float32)),
                       b.const(np.array([2000, 2000], np.int64)))
        x = b.op("Add", b.input, b.op("ReduceSum", big, keepdims=0))
        with pytest.raises(ResourceLimitExceeded, match=make):
            import_onnx(b.build([x]))


def _constant_model(tensor: TensorProto) -> onnx.ModelProto:
    from onnx import helper

    const = helper.make_node("Constant", [], ["k"], value=tensor)
    add = helper.make_node("Add", ["x", "k"], ["y"])
    info = helper.make_tensor_value_info
    graph = helper.make_graph([const, add], "g", [info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_constant_attribute_tensors_are_sized_before_evaluation():
    """A Constant node's tensor declares (10^5, 10^5, 100) floats: refused by size, nothing
    allocated; one whose data does not fill its dims is one clear problem, not a checker echo."""
    from irc.limits import ResourceLimitExceeded

    huge = TensorProto(name="v", data_type=TensorProto.FLOAT, dims=[100000, 100000, 100])
    with pytest.raises(ResourceLimitExceeded, match=r"Constant 'value' of shape 100000x100000x100"):
        import_onnx(_constant_model(huge))
    short = TensorProto(name="v", data_type=TensorProto.FLOAT, dims=[300, 300], raw_data=bytes(16))
    with pytest.raises(UnsupportedAttribute, match="evaluating this constant Constant failed"):
        import_onnx(_constant_model(short))


def test_every_refused_node_is_named_not_only_the_first():
    """EfficientNet's SiLUs (x * sigmoid(x)): the nodes after a refused one are still checked,
    so the one error lists each element-wise product, not only the first."""
    b = OnnxBuilder("silu", ("N", 3, 8, 8))
    h = b.input
    for k in range(3):
        h = b.op("Conv", h, b.const(np.full((3, 3, 1, 1), 0.1, np.float32)), kernel_shape=[1, 1])
        h = b.op("Mul", h, b.op("Sigmoid", h), name=f"silu_{k}")
    with pytest.raises(ViyaCannotExpress) as err:  # not an attribute: Viya has no such layer
        import_onnx(b.build([h]))
    text = str(err.value)
    assert "3 problem(s)" in text
    # one line for the three (grouped by message), naming each node
    assert ("Mul of two tensors is an element-wise product, which Viya lacks (x3): "
            "silu_0, silu_1, silu_2") in text, text
