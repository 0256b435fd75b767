"""The ONNX forms modern exporters write import as IR ops with ONNX semantics: the imported IR,
run in onnxruntime, computes what the source model computes (rtol 1e-5, atol 1e-6)."""
from __future__ import annotations

import numpy as np
import pytest

from irc.errors import UnsupportedAttribute
from irc.frontends.onnx import import_onnx
from irc.ir.onnx_export import run_onnxruntime, to_onnx
from irc.utils.onnx_builder import OnnxBuilder

SHAPE = ("N", 4, 6, 6)


def assert_same(model, batch=3):
    graph = import_onnx(model)
    x = np.random.default_rng(1).standard_normal((batch, 4, 6, 6)).astype(np.float32)
    ref = run_onnxruntime(model, {"input": x})
    got = run_onnxruntime(to_onnx(graph), {"input": x})
    for name in graph.outputs:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-6, err_msg=name)
    return [n.op_type for n in graph.nodes()]


def flat(b, x):
    return b.op("Flatten", x, axis=1)


@pytest.mark.parametrize("opset", [9, 13, 18])
@pytest.mark.parametrize("op,keep", [("ReduceMean", 0), ("ReduceMean", 1), ("ReduceMax", 0)])
def test_spatial_reduction_is_global_pooling(op, keep, opset):
    b = OnnxBuilder("r", SHAPE, opset=opset)
    if opset >= 18:
        y = b.op(op, b.input, b.const(np.array([-1, 2], np.int64)), keepdims=keep)
    else:
        y = b.op(op, b.input, axes=[-1, 2], keepdims=keep)
    ops = assert_same(b.build([y]))
    assert ops[0].startswith("Global") and (ops[1:] == ["Flatten"]) == (not keep), ops


def test_other_reduction_is_refused_naming_the_axes():
    b = OnnxBuilder("r", SHAPE, opset=13)
    with pytest.raises(UnsupportedAttribute, match=r"axes \[1\]"):
        import_onnx(b.build([b.op("ReduceMean", b.input, axes=[1])]))


@pytest.mark.parametrize("opset", [9, 13])
def test_clip_bounds(opset):
    b = OnnxBuilder("c", SHAPE, opset=opset)
    if opset < 11:
        y = b.op("Clip", b.input, min=-0.5, max=0.7)
    else:
        y = b.op("Clip", b.input, b.const(np.float32(-0.5)), "")
    assert assert_same(b.build([y])) == ["Clip"]


@pytest.mark.parametrize("opset", [9, 13, 18])
def test_split_is_slices(opset):
    b = OnnxBuilder("s", SHAPE, opset=opset)
    if opset < 13:
        ys = b.op("Split", b.input, outputs=2, axis=1, split=[1, 3])
    elif opset < 18:
        ys = b.op("Split", b.input, b.const(np.array([1, 3], np.int64)), outputs=2, axis=1)
    else:
        ys = b.op("Split", b.input, outputs=2, axis=-3, num_outputs=2)
    name = ys.rsplit("_", 1)[0]
    assert assert_same(b.build([f"{name}_0", f"{name}_1"])) == ["Slice", "Slice"]


def test_slice_is_normalized_and_gather_drops_a_scalar_axis():
    b = OnnxBuilder("s", SHAPE, opset=13)
    s = b.op("Slice", b.input, b.const(np.array([-1, 1], np.int64)),
             b.const(np.array([-100, 1000], np.int64)), b.const(np.array([-1, 2], np.int64)),
             b.const(np.array([-2, 2], np.int64)))
    g = b.op("Gather", b.input, b.const(np.int64(-2)), axis=2)
    assert assert_same(b.build([s, g])) == ["Gather", "Slice"]


def test_activations_prelu_leaky_neg():
    b = OnnxBuilder("a", SHAPE, opset=13)
    p = b.op("PRelu", b.input, b.const(np.linspace(0.1, 0.4, 4, dtype=np.float32)
                                       .reshape(4, 1, 1)))
    lk = b.op("LeakyRelu", b.input, alpha=0.3)
    n = b.op("Neg", b.input)
    sm = b.op("Softmax", b.op("Neg", flat(b, b.input)), axis=1)  # PyTorch's softmin
    ops = assert_same(b.build([p, lk, n, sm], output_shapes=[SHAPE] * 3 + [("N", 144)]))
    assert sorted(ops) == ["Flatten", "Neg", "Neg", "PRelu", "PRelu", "Softmax"], ops


def test_torchscript_flatten_shape_chain_folds():
    b = OnnxBuilder("f", SHAPE, opset=13)
    batch = b.op("Unsqueeze", b.op("Gather", b.op("Shape", b.input), b.const(np.int64(0))),
                 b.const(np.array([0], np.int64)))
    target = b.op("Concat", batch, b.const(np.array([-1], np.int64)), axis=0)
    ops = assert_same(b.build([b.op("Reshape", b.input, target)], output_shapes=[("N", 144)]),
                      batch=5)
    assert ops == ["Reshape"], ops


def test_other_batch_dependence_is_refused():
    b = OnnxBuilder("f", SHAPE, opset=13)
    twice = b.op("Mul", b.op("Shape", b.input), b.const(np.array([2, 1, 1, 1], np.int64)))
    with pytest.raises(UnsupportedAttribute, match="batch size"):
        import_onnx(b.build([b.op("Reshape", b.input, twice)], output_shapes=[("M", 4, 6, 3)]))


def test_unread_dropout_mask_negative_flatten_axis_and_pad_axes():
    b = OnnxBuilder("d", SHAPE, opset=18)
    d = b.op("Dropout", b.input, outputs=2)
    p = b.op("Pad", d, b.const(np.array([1, 2, 1, 2], np.int64)), "",
             b.const(np.array([-1, 2], np.int64)))
    y = b.op("Flatten", p, axis=-3)
    assert assert_same(b.build([y])) == ["Dropout", "Pad", "Flatten"]


def test_old_opset_is_upgraded_with_a_note():
    b = OnnxBuilder("o", SHAPE, opset=7)
    model = b.build([b.op("Relu", b.input)])
    notes = []
    import_onnx(model, notes=notes)
    assert len(notes) == 1 and "opset 7 was upgraded to opset 13" in notes[0]


@pytest.mark.parametrize("op,bound", [("Max", -0.25), ("Min", 0.5)])
def test_max_min_by_a_constant_scalar_is_clip(op, bound):
    """tf2onnx writes Keras's clip_by_value (ReLU(max_value) after a batchnorm) as Min/Max."""
    b = OnnxBuilder("m", SHAPE, opset=13)
    y = b.op(op, b.input, b.const(np.float32(bound)))
    assert assert_same(b.build([y])) == ["Clip"]


def test_max_of_two_tensors_imports_and_three_are_refused():
    b = OnnxBuilder("m", SHAPE, opset=13)
    y = b.op("Max", b.input, b.op("Relu", b.input))
    assert assert_same(b.build([y])) == ["Relu", "Max"]
    b = OnnxBuilder("m", SHAPE, opset=13)
    y = b.op("Max", b.input, b.op("Relu", b.input), b.op("Neg", b.input))
    with pytest.raises(UnsupportedAttribute, match="element-wise max of tensors of different "
                                                   "shapes, of more than two"):
        import_onnx(b.build([y]))


def test_slice_over_whole_axes_selects_only_the_cut_ones():
    """tf2onnx slices every axis, the batch axis included, with the full range where it does
    not cut: those axes are dropped, so a batch-axis no-op is not refused."""
    b = OnnxBuilder("s", SHAPE, opset=13)
    big = np.iinfo(np.int64).max
    y = b.op("Slice", b.input, b.const(np.array([0, 0, 1, 0], np.int64)),
             b.const(np.array([big, big, 5, big], np.int64)))
    ops = assert_same(b.build([y]))
    assert ops == ["Slice"]
    b = OnnxBuilder("s", SHAPE, opset=13)
    whole = b.op("Slice", b.input, b.const(np.array([0], np.int64)),
                 b.const(np.array([big], np.int64)), b.const(np.array([0], np.int64)))
    assert assert_same(b.build([whole])) == ["Identity"]


def test_the_upgrade_note_reaches_the_compiled_model():
    import irc

    b = OnnxBuilder("o", SHAPE, opset=7)
    model = irc.compile(b.build([b.op("Relu", b.op("Conv", b.input, b.const(
        np.ones((2, 4, 1, 1), np.float32)), kernel_shape=[1, 1]))]))
    assert any("opset 7 was upgraded to opset 13" in note for note in model.notes)


def test_an_opset_6_model_onnxruntime_cannot_run_verifies_as_upgraded(tmp_path):
    """onnxruntime has no opset-6 PRelu kernel: verify runs the model as onnx.version_converter
    upgrades it (the form irc compiled, with its slope read per channel) and says so."""
    import irc
    from irc.verify import verify

    b = OnnxBuilder("old", (2, 4, 5, 5), opset=6)
    y = b.op("PRelu", b.input, b.const(np.array([0.1, 0.2, 0.3, 0.4], np.float32)))
    model = b.build([y])
    irc.compile(model).save(tmp_path / "o")
    result = verify(model, tmp_path / "o")
    assert result.ok, result.table()
    assert any("onnxruntime cannot run the source at its old opset" in n for n in result.notes)
