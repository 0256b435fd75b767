"""The `irc` command line: the README's example, exit codes, atomic outputs, light start-up."""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import irc
from irc.backends.viya.executor import ExecutorOptions
from irc.verify import verify
from irc.utils.onnx_builder import OnnxBuilder

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "small_cnn.onnx"


def run_irc(*args):
    return subprocess.run([sys.executable, "-m", "irc", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)


def test_readme_example_converts_and_verifies(tmp_path):
    out = tmp_path / "small_cnn"
    result = run_irc("compile", EXAMPLE, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout
    assert (out / "model.json").is_file() and (out / "small_cnn_weights.kerasmodel.h5").is_file()
    assert not list(tmp_path.glob(".*irc-*"))  # no temporary folder left behind


def test_existing_output_is_kept_without_force(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_irc("compile", EXAMPLE, "-o", out, "--no-verify")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"
    result = run_irc("compile", EXAMPLE, "-o", out, "--no-verify", "--force", "--quiet")
    assert result.returncode == 0 and result.stdout == ""
    assert not (out / "keep.txt").exists() and (out / "model.json").is_file()


def test_verify_detects_tampered_weights(tmp_path):
    out = tmp_path / "o"
    assert run_irc("compile", EXAMPLE, "-o", out, "--no-verify").returncode == 0
    assert run_irc("verify", EXAMPLE, out).returncode == 0
    with h5py.File(out / "small_cnn_weights.kerasmodel.h5", "r+") as f:
        ds = f["res_conv2/res_conv2/kernel:0"]
        ds[...] = ds[...] * 1.01
    result = run_irc("verify", EXAMPLE, out)
    assert result.returncode == 1 and "MISMATCH" in result.stdout


def test_open_point_options_change_the_verdict(tmp_path):
    """A standalone batchnorm relies on Viya adding no eps of its own (an open point)."""
    b = OnnxBuilder("bn", (1, 3, 8, 8))
    x = b.op("MaxPool", b.input, kernel_shape=[2, 2], strides=[2, 2])
    x = b.batchnorm(x, epsilon=1e-3)
    model = b.build([x])
    irc.compile(model).save(tmp_path / "o")
    assert verify(model, tmp_path / "o").ok
    assert not verify(model, tmp_path / "o", options=ExecutorOptions(bn_extra_eps=1e-3)).ok


def test_error_exit_code_and_single_message(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    result = run_irc("compile", bad, "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and str(bad) in result.stderr
    assert not (tmp_path / "out").exists()
    debug = run_irc("compile", bad, "-o", tmp_path / "out", "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_version_passes_ops_inspect():
    assert run_irc("--version").stdout.strip() == f"irc {irc.__version__}"
    passes = run_irc("passes").stdout
    from irc.passes.pipeline import DEFAULT_PIPELINE
    assert all(name in passes for name in DEFAULT_PIPELINE)
    assert "Conv" in run_irc("ops").stdout
    text = run_irc("inspect", EXAMPLE, "--stage", "optimized").stdout
    assert "BatchNormalization" not in text and "Conv(" in text
    viya = run_irc("inspect", EXAMPLE, "--stage", "viya").stdout
    assert "residual" in viya and "output" in viya


def test_help_imports_no_heavy_modules():
    code = ("import sys, irc.cli; irc.cli.build_parser().format_help(); "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'tensorflow', 'h5py', 'networkx') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout


@pytest.mark.parametrize("spec,expected", [("1,3,8,8", (1, 3, 8, 8)),
                                           ("input:1,3,8,8", {"input": (1, 3, 8, 8)})])
def test_input_shape_parsing(spec, expected):
    from irc.cli import _input_shapes
    assert _input_shapes([spec]) == expected


def test_preprocessing_is_verified(tmp_path):
    """--scale/--offsets: the source sees (x*scale - offsets); verification feeds both sides."""
    out = tmp_path / "o"
    result = run_irc("compile", EXAMPLE, "-o", out, "--scale", "0.5", "--offsets", "1,2,3")
    assert result.returncode == 0, result.stderr
    import json
    layer = json.loads((out / "model.json").read_text())["addLayer"][0]["layer"]
    assert layer["scale"] == 0.5 and layer["offsets"] == [1.0, 2.0, 3.0]
    np.testing.assert_equal(layer["nchannels"], 3)


def test_rgb_source_reads_bgr_images(tmp_path):
    """--channel-order rgb: first conv kernels reversed on the channel axis, offsets too."""
    out = tmp_path / "o"
    result = run_irc("compile", EXAMPLE, "-o", out, "--channel-order", "rgb", "--offsets", "1,2,3")
    assert result.returncode == 0, result.stderr + result.stdout
    import json
    payloads = json.loads((out / "model.json").read_text())
    assert payloads["addLayer"][0]["layer"]["offsets"] == [3.0, 2.0, 1.0]
    assert payloads["input"]["source_channel_order"] == "rgb"
    plain = tmp_path / "plain"
    assert run_irc("compile", EXAMPLE, "-o", plain, "--no-verify").returncode == 0
    with h5py.File(out / "small_cnn_weights.kerasmodel.h5") as a, \
            h5py.File(plain / "small_cnn_weights.kerasmodel.h5") as b:
        k_rgb, k_plain = a["stem_conv/stem_conv/kernel:0"][...], b["stem_conv/stem_conv/kernel:0"][...]
    np.testing.assert_array_equal(k_rgb, k_plain[:, ::-1])


@pytest.mark.parametrize("option", [["--scale", "1e308"], ["--scale", "1e-45"],
                                    ["--offsets", "1e308,0,0"], ["--normstds", "1,2e-40,1"]],
                         ids=["scale_overflows", "scale_subnormal", "offset_overflows",
                              "normstd_subnormal"])
def test_preprocessing_outside_float32_is_refused(tmp_path, option):
    """Viya computes in float32: 1e308 is infinite there and 1/1e-45 overflows; such values
    used to convert and then fail verification with NaN (fuzz), now they are exit 2."""
    out = tmp_path / "o"
    result = run_irc("compile", EXAMPLE, "-o", out, *option)
    assert result.returncode == 2 and "outside float32" in result.stderr, result.stderr
    assert not out.exists()


def test_preprocessing_outside_float32_is_refused_by_the_api():
    """The same InputSpec check as the CLI's, naming the API's key."""
    from irc.errors import UnsupportedAttribute

    with pytest.raises(UnsupportedAttribute, match="scale 1e-45 is outside float32"):
        irc.compile(str(EXAMPLE), input_options={"scale": 1e-45})


def test_closed_output_pipe_ends_quietly():
    """`irc ops | head -0`: the reader is gone before irc writes (it starts in ~50 ms); no
    BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "irc", "ops"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait() in (0, 141) and "Traceback" not in stderr, stderr
