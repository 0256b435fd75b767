"""`irc compile` on PyTorch files: a .pt2 (torch.export.save) and a TorchScript file compile and
verify from the command line with --allow-pickle; without it nothing is loaded (exit 2, one
message naming the flag); a state_dict is refused with what to give instead."""
from __future__ import annotations

import warnings

import pytest

from tests.cli_helpers import assert_refused, irc_cli
from tests.pytorch.conftest import seeded, torch
from tests.pytorch.test_modules import small_cnn

SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same seeded network as .pt2, TorchScript, a state_dict and a pickled module."""
    folder = tmp_path_factory.mktemp("torch_files")
    model = seeded(small_cnn())
    x = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(2))
    torch.export.save(torch.export.export(model, (x,)), folder / "net.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace/save are deprecated, still written
        torch.jit.save(torch.jit.trace(model, x), folder / "net.pt")
    torch.save(model.state_dict(), folder / "weights.pth")
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, folder / "checkpoint.pth")
    return folder


@pytest.mark.parametrize("name, extra", [("net.pt2", []),
                                         ("net.pt", ["--input-shape", "1,3,16,16"])])
def test_cli_compiles_and_verifies_a_pytorch_file(files, tmp_path, name, extra):
    result = irc_cli("compile", files / name, "-o", tmp_path / "o", "--allow-pickle", *extra)
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    if name.endswith(".pt2"):  # `irc verify` reloads the file with the same opt-in
        again = irc_cli("verify", files / name, tmp_path / "o", "--allow-pickle")
        assert again.returncode == 0 and "all outputs match" in again.stdout, again.stderr


@pytest.mark.parametrize("name", ["net.pt2", "net.pt"])
def test_loading_a_pytorch_file_needs_the_opt_in(files, tmp_path, name):
    result = irc_cli("compile", files / name, "-o", tmp_path / "o", "--input-shape", "1,3,16,16")
    assert_refused(result, tmp_path / "o", "--allow-pickle", "runs code")


def test_torchscript_file_needs_an_input_shape(files, tmp_path):
    import irc
    from irc.errors import InputShapeNeeded

    with pytest.raises(InputShapeNeeded, match="does not record its input shape") as err:
        irc.compile(files / "net.pt", allow_pickle=True)
    assert "--input-shape" in err.value.hint


@pytest.mark.parametrize("name", ["weights.pth", "checkpoint.pth"])
def test_state_dict_is_refused_with_what_to_give(files, tmp_path, name):
    result = irc_cli("compile", files / name, "-o", tmp_path / "o", "--allow-pickle")
    assert_refused(result, tmp_path / "o", "state_dict", "torch.export.save", "example_inputs")
