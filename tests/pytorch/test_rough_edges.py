"""Issue 26's PyTorch examples, each run as written: `irc diff model.pt out/ --allow-pickle
--input-shape ...` (every source-reading command takes the source options), the TorchScript
exporter from a .pt2 / ExportedProgram, dynamo-route layer names and refusals that carry the
module path (refusals grouped per op, SiLU found in the traced graph before the ONNX export),
the API's model named after the module's class and `model.verify()`.

resnet18 at 32x32 with random weights (verification: irc.verify's defaults, rtol 1e-4, atol
1e-5, each output against its own scale)."""
from __future__ import annotations

import time
import warnings

import pytest

from tests.cli_helpers import irc_cli
from tests.pytorch.conftest import seeded, torch

torchvision = pytest.importorskip("torchvision")
nn = torch.nn
SHAPE = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def resnet18_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnet18")
    model = seeded(torchvision.models.resnet18(num_classes=10))
    x = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace/save are deprecated, still written
        torch.jit.save(torch.jit.trace(model, x), folder / "resnet18.pt")
    program = torch.export.export(model, (x,))
    torch.export.save(program, folder / "resnet18.pt2")
    return folder, model, program


def test_diff_takes_the_source_options(resnet18_files, tmp_path):
    """The issue's `irc diff resnet18.pt out/ --allow-pickle --input-shape ...` (it was
    'unrecognized arguments'); and without --input-shape, the shape the folder was compiled
    for (in-process: each `irc` run imports torch anew)."""
    import irc
    from irc.debug.diff import diff

    folder, _, _ = resnet18_files
    out = tmp_path / "out"
    irc.compile(folder / "resnet18.pt", allow_pickle=True, input_shape=SHAPE).save(out)
    result = irc_cli("diff", folder / "resnet18.pt", out, "--allow-pickle",
                     "--input-shape", ",".join(map(str, SHAPE)))
    assert result.returncode == 0, result.stderr
    assert "every compared layer matches" in result.stdout, result.stdout
    report = diff(folder / "resnet18.pt", out, allow_pickle=True)
    assert report.first_bad is None and len(report.layers) > 20, report.text()


@pytest.mark.parametrize("command", ["compile", "verify", "diff", "inspect"])
def test_every_source_command_takes_the_source_options(command):
    from irc.cli import build_parser

    places = {"compile": ["m.pt", "-o", "out"], "verify": ["m.pt", "out"],
              "diff": ["m.pt", "out"], "inspect": ["m.pt"]}[command]
    args = build_parser().parse_args([
        command, *places, "--input-shape", "1,3,32,32", "--allow-pickle", "--torch-exporter",
        "torchscript", "--weights", "w.caffemodel", "--drop-lrn", "--allow-lambda",
        "--keras-route", "direct"])
    assert (args.input_shape, args.allow_pickle, args.torch_exporter, args.weights,
            args.drop_lrn, args.allow_lambda, args.keras_route) == (
        ["1,3,32,32"], True, "torchscript", "w.caffemodel", True, True, "direct")


def test_torchscript_exporter_from_a_pt2(resnet18_files, tmp_path):
    """`--torch-exporter torchscript` on a .pt2 failed with 'Cannot insert a Tensor that
    requires grad as a constant'; the program's parameters are left as they were."""
    import irc

    folder, _, _ = resnet18_files
    result = irc_cli("compile", folder / "resnet18.pt2", "-o", tmp_path / "o", "--allow-pickle",
                     "--torch-exporter", "torchscript")
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout
    small = ChannelScale()  # the API form, on a small module (the failure needs only weights)
    program = torch.export.export(small, (torch.randn(1, 3, 8, 8),))
    model = irc.compile(program, torch_exporter="torchscript")
    result = model.verify()
    assert result.ok, result.table()
    assert all(p.requires_grad for p in program.module().parameters())


def test_dynamo_names_carry_the_module_path_and_the_api_verifies(resnet18_files):
    import irc

    _, module, program = resnet18_files
    model = irc.compile(module, example_inputs=(torch.randn(*SHAPE),))
    assert model.name == "resnet"  # the class ResNet, as Viya names go (lower case)
    names = [layer.name for layer in model.layers]
    for name in ("conv1", "layer1_0_conv1", "layer1_0_add", "layer2_0_downsample_0", "fc"):
        assert name in names, names
    assert not [n for n in names if n.startswith("node_")], names
    sources = model.summary().set_index("name")["source nodes"]
    assert sources["conv1"] == "conv1, relu"  # the conv (batch norm fused) and its relu
    result = model.verify()
    assert result.ok, result.table()
    assert irc.compile(program).name == "resnet"


class Gate(nn.Module):
    """A squeeze-excitation-like gate: an element-wise product of two computed tensors that
    no op table can find before the export (a plain `x * y`)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))


def silu_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1),
                         nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.SiLU()),
                         nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.SiLU(), Gate()),
                         nn.Hardswish())


def test_silu_is_refused_from_the_traced_graph_with_module_paths():
    """One line per op, naming each module; found before the ONNX translation."""
    import irc
    from irc.errors import ViyaCannotExpress

    start = time.perf_counter()
    with pytest.raises(ViyaCannotExpress) as err:
        irc.compile(silu_net().eval(), example_inputs=(torch.randn(1, 3, 8, 8),))
    seconds = time.perf_counter() - start
    text = str(err.value)
    assert "before the ONNX export" in text
    assert "SiLU/swish, x * sigmoid(x) x2: 1.1, 2.1" in text, text
    assert "hard-swish, x * relu6(x + 3) / 6 x1: 3" in text, text
    assert "a product of two computed tensors, x * y x1: 2.2" in text, text  # Gate
    assert len(text.splitlines()) == 5, text  # headline, three ops, hint
    print(f"refused in {seconds:.1f} s")


def test_products_refused_after_the_export_are_grouped_with_module_paths(monkeypatch):
    """With the traced-graph check off (as for an op it does not know), the ONNX route refuses
    the same model: one line for every element-wise Mul, each named by its module path."""
    import irc
    from irc.errors import ViyaCannotExpress
    from irc.frontends.pytorch import provenance

    monkeypatch.setattr(provenance, "NO_VIYA_FORM", {"hardswish": "hard-swish"})  # not mul
    model = nn.Sequential(*list(silu_net().children())[:3]).eval()
    with pytest.raises(ViyaCannotExpress) as err:
        irc.compile(model, example_inputs=(torch.randn(1, 3, 8, 8),),
                    torch_exporter="dynamo")
    text = str(err.value)
    line = next(ln for ln in text.splitlines() if "element-wise product" in ln)
    assert "(x3): 1.1, 2.1, 2.2.mul" in line, text
    assert "node_" not in text and "'n0'" not in text, text


class ChannelScale(nn.Module):
    """A product with a weight (LayerScale-like): a scale irc folds, not a refusal."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gamma = nn.Parameter(torch.rand(1, 4, 1, 1) + 0.5)

    def forward(self, x):
        return torch.relu(self.conv(x) * self.gamma)


def test_a_product_with_a_weight_is_not_refused_early():
    import irc

    model = seeded(ChannelScale())
    compiled = irc.compile(model, example_inputs=(torch.randn(1, 3, 8, 8),))
    result = compiled.verify()
    assert result.ok, result.table()
    assert compiled.name == "channelscale"
