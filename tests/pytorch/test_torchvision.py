"""torchvision's classification networks (random weights: weights=None, seeded, eval mode)
through both of PyTorch's ONNX exporters, compiled and verified against PyTorch in numbers.

Inputs are small where the network allows (64 px; inception_v3 needs at least 75). alexnet and
vgg11 end in an adaptive average pool to 6x6 / 7x7 that is an identity only at 224 px (at other
sizes it resamples, which neither exporter writes as a plain pooling), so they run at 224.
Batch norm gets random statistics and affine parameters (fresh ones make it an identity).
Tolerance: irc.verify's defaults (rtol 1e-4, atol 1e-5, against each output's own scale).
"""
from __future__ import annotations

import pytest

from tests.pytorch.conftest import EXPORTERS, RTOL, ATOL, torch

torchvision = pytest.importorskip("torchvision", reason="torchvision is in the torch extra: "
                                                       "pip install 'irc[torch]'")
models = torchvision.models

# name -> (builder, input side in pixels)
NETWORKS = {
    "resnet18": (lambda: models.resnet18(weights=None), 64),
    "resnext50_32x4d": (lambda: models.resnext50_32x4d(weights=None), 64),
    "densenet121": (lambda: models.densenet121(weights=None), 64),
    "googlenet": (lambda: models.googlenet(weights=None, aux_logits=False, init_weights=True),
                  64),
    "inception_v3": (lambda: models.inception_v3(weights=None, aux_logits=False,
                                                 init_weights=True), 75),
    "mobilenet_v2": (lambda: models.mobilenet_v2(weights=None), 64),
    "mnasnet1_0": (lambda: models.mnasnet1_0(weights=None), 64),
    "shufflenet_v2_x1_0": (lambda: models.shufflenet_v2_x1_0(weights=None), 64),
    "squeezenet1_1": (lambda: models.squeezenet1_1(weights=None), 64),
    "regnet_x_400mf": (lambda: models.regnet_x_400mf(weights=None), 64),
    "vgg11": (lambda: models.vgg11(weights=None), 224),
    "alexnet": (lambda: models.alexnet(weights=None), 224),
}


def _randomize_batchnorm(model, generator):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                    module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model


@pytest.fixture(scope="module")
def network():
    """Each network built once (seeded) and shared by both exporters' tests."""
    built = {}

    def get(name):
        if name not in built:
            builder, side = NETWORKS[name]
            torch.manual_seed(0)
            generator = torch.Generator().manual_seed(1)
            model = _randomize_batchnorm(builder(), generator).eval()
            built[name] = (model, torch.randn(1, 3, side, side, generator=generator))
        return built[name]
    return get


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_torchvision_network_matches_pytorch(name, exporter, network, tmp_path):
    import irc
    from irc.verify import verify

    model, example = network(name)
    out = tmp_path / "out"
    compiled = irc.compile(model, example_inputs=(example,), torch_exporter=exporter)
    compiled.save(out)
    result = verify(model, out, rtol=RTOL, atol=ATOL, batch=1)
    assert result.ok, result.table()


def test_shufflenet_exported_with_a_dynamic_batch_axis(network, tmp_path):
    """What most users pass: torch.onnx.export(..., dynamic_axes={"input": {0: "batch"}}) with
    the TorchScript exporter. The channel shuffle's view(b, groups, c // groups, h, w) then
    reads the batch size at run time, and the Shape of the next block's input has a type only
    once that Reshape target is folded: irc folds the shape arithmetic in rounds (the batch
    entry of each target becomes 0, "copy the input's batch"). It was refused ("the shape of
    '/stage2/stage2.1/Concat_output_0' cannot be inferred statically"). Verified in
    onnxruntime on the exported file, and against PyTorch at batch 2."""
    import warnings

    import irc
    from irc.verify import verify

    model, example = network("shufflenet_v2_x1_0")
    path = tmp_path / "shufflenet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"],
                          output_names=["output"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    irc.compile(str(path)).save(tmp_path / "out")
    result = verify(str(path), tmp_path / "out", rtol=RTOL, atol=ATOL, batch=2)
    assert result.ok and result.n_examples == 2, result.table()
    result = verify(model, tmp_path / "out", rtol=RTOL, atol=ATOL, batch=2)
    assert result.ok, result.table()
