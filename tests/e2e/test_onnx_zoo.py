"""ONNX's own test models: the light model zoo (seeded inputs) and the PyTorch-exported node
tests (their stored inputs). Each is compiled and verified (the written files re-run by the
executor match onnxruntime on the source, rtol 1e-4, atol 1e-5), or refused with the reason in
EXPECTED. A case changing class (a new conversion, a new refusal reason) fails the test: update
EXPECTED with it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from irc.api import compile as compile_model
from irc.errors import IrcError
from irc.frontends.onnx.opset import upgrade_old_opset
from irc.verify import verify

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
RTOL, ATOL = 1e-4, 1e-5

# "ok": converts and verifies; otherwise a substring of the refusal (test_operator_addconstant
# converts, but its stored float64 input holds values beyond float32, e.g. 9e223, which Viya
# cannot take: verify refuses that input).
EXPECTED = {
    'light_bvlc_alexnet': '2 ONNX node(s) of 1 unsupported type(s):',
    'light_densenet121': 'ok',
    'light_inception_v1': '2 ONNX node(s) of 1 unsupported type(s):',
    'light_inception_v2': 'ok',
    'light_resnet50': 'ok',
    'light_shufflenet': 'ok',
    'light_squeezenet': 'ok',
    'light_vgg19': 'ok',
    'light_zfnet512': '2 ONNX node(s) of 1 unsupported type(s):',
    'test_AvgPool1d': 'ok',
    'test_AvgPool1d_stride': 'ok',
    'test_AvgPool2d': 'ok',
    'test_AvgPool2d_stride': 'ok',
    'test_AvgPool3d': 'AveragePool needs a 4-D (N,C,H,W) input;',
    'test_AvgPool3d_stride': 'AveragePool needs a 4-D (N,C,H,W) input;',
    'test_AvgPool3d_stride1_pad0_gpu_input': 'AveragePool needs a 4-D (N,C,H,W) input;',
    'test_BatchNorm1d_3d_input_eval': 'ok',
    'test_BatchNorm2d_eval': 'ok',
    'test_BatchNorm2d_momentum_eval': 'ok',
    'test_BatchNorm3d_eval': '1 node(s) cannot become Viya layers: inp',
    'test_BatchNorm3d_momentum_eval': '1 node(s) cannot become Viya layers: inp',
    'test_ConstantPad2d': "Pad mode='constant' value=2.0; Viya pads",
    'test_Conv1d': 'ok',
    'test_Conv1d_dilated': 'dilations [1, 2]: Viya has no dilated co',
    'test_Conv1d_groups': 'ok',
    'test_Conv1d_pad1': 'ok',
    'test_Conv1d_pad1size1': 'ok',
    'test_Conv1d_pad2': 'ok',
    'test_Conv1d_pad2size1': 'ok',
    'test_Conv1d_stride': 'ok',
    'test_Conv2d': 'ok',
    'test_Conv2d_depthwise': 'ok',
    'test_Conv2d_depthwise_padded': 'ok',
    'test_Conv2d_depthwise_strided': 'ok',
    'test_Conv2d_depthwise_with_multiplier': 'ok',
    'test_Conv2d_dilated': 'dilations [2, 2]: Viya has no dilated co',
    'test_Conv2d_groups': 'ok',
    'test_Conv2d_groups_thnn': 'ok',
    'test_Conv2d_no_bias': 'ok',
    'test_Conv2d_padding': 'ok',
    'test_Conv2d_strided': 'ok',
    'test_Conv3d': 'Conv needs a 4-D (N,C,H,W) input; irc ha',
    'test_Conv3d_dilated': 'Conv needs a 4-D (N,C,H,W) input; irc ha',
    'test_Conv3d_dilated_strided': 'Conv needs a 4-D (N,C,H,W) input; irc ha',
    'test_Conv3d_groups': 'Conv needs a 4-D (N,C,H,W) input; irc ha',
    'test_Conv3d_no_bias': 'Conv needs a 4-D (N,C,H,W) input; irc ha',
    'test_Conv3d_stride': 'Conv needs a 4-D (N,C,H,W) input; irc ha',
    'test_Conv3d_stride_padding': 'Conv needs a 4-D (N,C,H,W) input; irc ha',
    'test_ConvTranspose2d': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_ConvTranspose2d_no_bias': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_ELU': 'Elu alpha=2; only alpha=1 is known to ma',
    'test_Embedding': "Gather's indices are computed at run tim",
    'test_Embedding_sparse': "Gather's indices are computed at run tim",
    'test_GLU': 'Mul of two tensors is an element-wise pr',
    'test_GLU_dim': 'Mul of two tensors is an element-wise pr',
    'test_LeakyReLU': 'ok',
    'test_LeakyReLU_with_negval': 'ok',
    'test_Linear': 'ok',
    'test_Linear_no_bias': 'ok',
    'test_LogSoftmax': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_MaxPool1d': 'ok',
    'test_MaxPool1d_stride': 'ok',
    'test_MaxPool1d_stride_padding_dilation': 'dilations [1, 10]: Viya has no dilated',
    'test_MaxPool2d': 'ok',
    'test_MaxPool2d_stride_padding_dilation': 'dilations [10, 10]: Viya has no dilated',
    'test_MaxPool3d': 'MaxPool needs a 4-D (N,C,H,W) input; irc',
    'test_MaxPool3d_stride': 'MaxPool needs a 4-D (N,C,H,W) input; irc',
    'test_MaxPool3d_stride_padding': 'MaxPool needs a 4-D (N,C,H,W) input; irc',
    'test_PReLU_1d': 'ok',
    'test_PReLU_1d_multiparam': 'ok',  # opset 6: a (C,) slope is per channel
    'test_PReLU_2d': 'ok',
    'test_PReLU_2d_multiparam': 'ok',
    'test_PReLU_3d': '1 node(s) cannot become Viya layers: inp',
    'test_PReLU_3d_multiparam': '1 node(s) cannot become Viya layers: inp',
    'test_PixelShuffle': '1 node(s) cannot become Viya layers: Res',
    'test_PoissonNLLLLoss_no_reduce': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_ReLU': 'ok',
    'test_ReflectionPad2d': "Pad mode='reflect' value=0.0; Viya pads",
    'test_ReplicationPad2d': "Pad mode='edge' value=0.0; Viya pads wit",
    'test_SELU': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_Sigmoid': 'ok',
    'test_Softmax': 'ok',
    'test_Softmin': 'ok',
    'test_Softplus': 'ok',
    'test_Softsign': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_Tanh': 'ok',
    'test_ZeroPad2d': 'ok',
    'test_log_softmax_dim3': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_log_softmax_lastdim': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_softmax_functional_dim3': 'Softmax is supported over the last axis',
    'test_softmax_lastdim': 'ok',
    'test_operator_add_broadcast': "input '1' has rank 1; irc needs a batch",
    'test_operator_add_size1_broadcast': 'Add of shapes float64[N,3] and float64[N',
    'test_operator_add_size1_right_broadcast': "input '1' has rank 1; irc needs a batch",
    'test_operator_add_size1_singleton_broadcast': 'the model has 2 inputs; a Viya CNN has o',
    'test_operator_addconstant': "holds finite values beyond float32's range",
    'test_operator_addmm': "input '2' has rank 1; irc needs a batch",
    'test_operator_basic': "input '0' has rank 1; irc needs a batch",
    'test_operator_chunk': "input '0' has rank 1; irc needs a batch",
    'test_operator_clip': 'ok',
    'test_operator_concat2': 'the model has 2 inputs; a Viya CNN has o',
    'test_operator_conv': 'ok',
    'test_operator_convtranspose': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_exp': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_flatten': 'ok',
    'test_operator_index': 'ok',  # x[0] of a batch of 1: the slice takes the whole axis
    'test_operator_max': 'the model has 2 inputs; a Viya CNN has o',
    'test_operator_maxpool': 'ok',
    'test_operator_min': 'the model has 2 inputs; a Viya CNN has o',
    'test_operator_mm': "Gemm's B (the weight) is not a constant;",
    'test_operator_non_float_params': 'Mul of two tensors is an element-wise pr',
    'test_operator_pad': "Pad mode='reflect' value=0.0; Viya pads",
    'test_operator_params': 'Mul of two tensors is an element-wise pr',
    'test_operator_permute2': '1 node(s) cannot become Viya layers: inp',
    'test_operator_pow': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_reduced_mean': 'ReduceMean over axes [2] of a 4-D tensor',
    'test_operator_reduced_mean_keepdim': 'ReduceMean over axes [2] of a 4-D tensor',
    'test_operator_reduced_sum': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_reduced_sum_keepdim': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_repeat': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_repeat_dim_overflow': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_selu': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_sqrt': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_symbolic_override': '1 ONNX node(s) of 1 unsupported type(s):',
    'test_operator_symbolic_override_nested': "input '0' has rank 1; irc needs a batch",
    'test_operator_view': "input '0' has rank 1; irc needs a batch",
}


def _cases():
    found = {p.stem: (p, None) for p in sorted((DATA / "light").glob("*.onnx"))}
    for kind in ("pytorch-converted", "pytorch-operator"):
        for folder in sorted((DATA / kind).iterdir()):
            found[folder.name] = (folder / "model.onnx", folder / "test_data_set_0")
    return found


CASES = _cases()


def _feeds(model: onnx.ModelProto, data: Path | None) -> dict[str, np.ndarray]:
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if data is None:  # the light models store an output but no input
        rng = np.random.default_rng(0)
        return {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim])
                .astype(np.float32) for i in inputs}
    feeds = {}
    for k, inp in enumerate(inputs):
        tensor = onnx.TensorProto()
        tensor.ParseFromString((data / f"input_{k}.pb").read_bytes())
        feeds[inp.name] = numpy_helper.to_array(tensor)
    return feeds


def test_every_case_has_an_expectation():
    assert sorted(CASES) == sorted(EXPECTED)


def _oracle(path: Path, data: Path | None, feeds) -> onnx.ModelProto | Path:
    """The source verify runs: the file, or for an opset before 9 (which onnxruntime no longer
    implements) the model upgraded as irc upgrades it, first checked against ONNX's stored
    outputs (same tolerances), so the oracle is ONNX's own reference."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    if data is None or max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 9:
        return path
    upgraded = upgrade_old_opset(model, str(path), [])
    session = ort.InferenceSession(upgraded.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    for k, value in enumerate(got):
        tensor = onnx.TensorProto()
        tensor.ParseFromString((data / f"output_{k}.pb").read_bytes())
        np.testing.assert_allclose(value, numpy_helper.to_array(tensor), rtol=RTOL, atol=ATOL)
    return upgraded


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_case(name, tmp_path):
    path, data = CASES[name]
    expected = EXPECTED[name]
    try:
        model = compile_model(path, name="m")
        model.save(tmp_path / "out")
        feeds = _feeds(onnx.load(str(path)), data)
        result = verify(_oracle(path, data, feeds), tmp_path / "out", inputs=feeds,
                        rtol=RTOL, atol=ATOL)
    except IrcError as exc:
        text = " ".join(str(exc).split())
        assert expected != "ok", f"{name} was expected to convert: {text}"
        assert expected in text, f"{name}: expected a refusal with {expected!r}, got: {text}"
        return
    assert expected == "ok", f"{name} converted; EXPECTED says it is refused with {expected!r}"
    assert result.comparisons and result.ok, result.table()
