"""Small nn.Modules through both of PyTorch's ONNX exporters, compared with PyTorch in numbers;
the dynamo exporter's failure falls back to tracing with the reason noted; the API forms."""
from __future__ import annotations

import pytest

from tests.pytorch.conftest import EXPORTERS, compile_and_verify, seeded, torch

nn = torch.nn


class Residual(nn.Module):
    """conv-bn-relu-conv-bn plus the input, then relu: a ResNet basic block."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), Residual(8), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 10))


def classifier_head():
    return nn.Sequential(nn.Conv2d(3, 6, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(6, 4), nn.Softmax(dim=1))


@pytest.fixture(scope="module")
def example():
    return torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("build", [small_cnn, classifier_head], ids=["residual", "head"])
def test_module_matches_pytorch(build, exporter, example, tmp_path):
    compiled, result = compile_and_verify(seeded(build()), example, tmp_path, exporter)
    assert result.comparisons[0].source_output == "output"
    assert not [n for n in compiled.notes if "exporter failed" in n]


class DataDependent(nn.Module):
    """A Python branch on a tensor's value: torch.export cannot capture it, tracing records
    the branch taken (always the same one here: a sum of absolute values is never negative)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        if y.abs().sum() >= 0:
            return torch.relu(y)
        return y


def test_dynamo_failure_falls_back_to_tracing_and_says_why(example, tmp_path):
    compiled, _ = compile_and_verify(seeded(DataDependent()), example, tmp_path, "auto")
    (note,) = [n for n in compiled.notes if "exporter failed" in n]
    assert "data-dependent" in note and "TorchScript exporter was used" in note


def test_forced_dynamo_failure_is_one_clear_error(example):
    import irc
    from irc.errors import InvalidModel

    with pytest.raises(InvalidModel, match="dynamo ONNX exporter failed") as err:
        irc.compile(seeded(DataDependent()), example_inputs=(example,), torch_exporter="dynamo")
    assert "--torch-exporter torchscript" in err.value.hint


def test_api_takes_an_exported_program_and_a_training_module(example, tmp_path):
    import irc
    from irc.verify import verify

    module = seeded(small_cnn()).train()
    program = torch.export.export(seeded(small_cnn()), (example,))
    irc.compile(program).save(tmp_path / "program")
    assert verify(program, tmp_path / "program").ok  # batch 2 runs as two batches of 1
    compiled = irc.compile(module, example_inputs=(example,))
    assert any("training mode" in n for n in compiled.notes)
    assert module.training and module[1].training  # the caller's module is left as it was
    compiled.save(tmp_path / "module")
    assert verify(module, tmp_path / "module").ok


def test_module_without_example_inputs_takes_input_shape_or_asks(tmp_path):
    import irc
    from irc.errors import InputShapeNeeded
    from irc.verify import verify

    module = seeded(classifier_head())
    with pytest.raises(InputShapeNeeded, match="does not record its input shape"):
        irc.compile(module)
    irc.compile(module, input_shape=(1, 3, 12, 12)).save(tmp_path / "o")
    assert verify(module, tmp_path / "o").ok


def test_dynamo_export_after_tensorflow_is_loaded(tmp_path):
    """TensorFlow then triton in one process segfaults; irc keeps triton out of a process that
    has loaded TensorFlow, so a Keras compile followed by a PyTorch one works. Run in a fresh
    interpreter (this one imported triton first on purpose: tests/conftest.py)."""
    import subprocess
    import sys

    code = ("import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
            "import tensorflow, torch, irc\n"
            "m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()\n"
            "model = irc.compile(m, example_inputs=(torch.randn(1, 3, 8, 8),), "
            "torch_exporter='dynamo')\n"
            "print('layers', len(model.layers))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "layers 3" in result.stdout
