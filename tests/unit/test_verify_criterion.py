"""Verification judges each output against its own scale (|d| <= atol + rtol * max|ref|), and a
genuinely wrong layer still fails: the written files are corrupted after compile the way a
lowering bug would (a conv kernel with its spatial axes transposed, a dropped bias, a batchnorm
variance off by a dropped epsilon of 1e-3) and verify must say MISMATCH, with the margin
(max |d| / (atol + rtol * max|ref|)) printed. Default tolerances throughout: rtol 1e-4,
atol 1e-5."""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import irc
from irc.utils.onnx_builder import OnnxBuilder
from irc.verify import compare, measure, verify

ROOT = Path(__file__).resolve().parents[2]


def _net(batch: int = 1):
    """conv3x3 -> relu -> conv3x3 -> relu -> batchnorm: every corruption below has a layer."""
    b = OnnxBuilder("net", (batch, 3, 12, 12))
    x = b.conv(b.input, 8, 3, pads=[1, 1, 1, 1], name="c1")
    x = b.op("Relu", x)
    x = b.conv(x, 8, 3, pads=[1, 1, 1, 1], name="c2")
    x = b.op("Relu", x)
    x = b.batchnorm(x, name="bn")
    return b.build([x])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    model = _net()
    out = tmp_path_factory.mktemp("verify") / "out"
    irc.compile(model, name="m").save(out)
    return model, out


def _copy(compiled, tmp_path) -> Path:
    import shutil

    _, out = compiled
    target = tmp_path / "out"
    shutil.copytree(out, target)
    return target


def _dataset(h5: h5py.File, layer: str, suffix: str) -> h5py.Dataset:
    names = []
    h5[layer].visit(names.append)
    (name,) = [n for n in names if n.endswith(suffix)]
    return h5[layer][name]


def _transpose_kernel(out):
    with h5py.File(out / "m_weights.kerasmodel.h5", "r+") as h5:
        kernel = _dataset(h5, "c1", "kernel:0")
        kernel[...] = np.swapaxes(kernel[...], 2, 3)


def _drop_bias(out):
    with h5py.File(out / "m_weights.kerasmodel.h5", "r+") as h5:
        bias = _dataset(h5, "c1", "bias:0")
        bias[...] = 0.0


def _drop_epsilon(out):
    with h5py.File(out / "m_weights.kerasmodel.h5", "r+") as h5:
        var = _dataset(h5, "bn", "moving_variance:0")
        var[...] = var[...] + 1e-3


def test_the_untouched_files_verify(compiled):
    model, out = compiled
    result = verify(model, out)
    assert result.ok, result.table()


@pytest.mark.parametrize("corrupt", [_transpose_kernel, _drop_bias, _drop_epsilon],
                         ids=["transposed-kernel", "dropped-bias", "dropped-epsilon"])
def test_a_wrong_layer_fails(compiled, tmp_path, corrupt):
    model, _ = compiled
    out = _copy(compiled, tmp_path)
    corrupt(out)
    result = verify(model, out)
    table = result.table()
    (c,) = result.comparisons
    assert not result.ok and "MISMATCH" in table, table
    assert c.margin > 1.0 and f"{c.margin:.3g}" in table, table
    print(f"{corrupt.__name__}: margin {c.margin:.3g}, abs/scale {c.scaled:.3g}")


def test_the_command_exits_1_on_a_wrong_layer(compiled, tmp_path):
    model, _ = compiled
    out = _copy(compiled, tmp_path)
    _drop_epsilon(out)
    import onnx

    onnx.save(model, tmp_path / "net.onnx")
    run = subprocess.run([sys.executable, "-m", "irc", "verify", tmp_path / "net.onnx", out],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "MISMATCH" in run.stdout and "margin" in run.stdout
    # --rtol / --atol still steer the verdict: loose enough, the same files pass.
    run = subprocess.run([sys.executable, "-m", "irc", "verify", tmp_path / "net.onnx", out,
                          "--rtol", "1e-2"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_small_elements_near_zero_do_not_fail_a_large_output():
    """The resnet50 case in small: outputs reach 140, one element near zero is off by 7e-5."""
    ref = np.array([[140.0, -90.0, 1e-6, 3.0]], np.float32)
    got = ref.copy()
    got[0, 2] += 7.4e-5
    a = measure(ref, got, 1e-4, 1e-5)
    assert a.ok and a.max_rel > 1.0 and a.scaled == pytest.approx(7.4e-5 / 140, rel=1e-3)
    # The element-wise test this replaced would fail it:
    assert not np.all(np.abs(ref - got) <= 1e-5 + 1e-4 * np.abs(ref))
    # ...while the same difference on the largest element's scale is judged too.
    got = ref.copy()
    got[0, 0] += 0.1
    assert not compare(ref, got, 1e-4, 1e-5)[2]


def test_non_finite_or_misshapen_candidates_fail():
    ref = np.ones((1, 4), np.float32)
    assert not measure(ref, np.full((1, 4), np.nan, np.float32), 1e-4, 1e-5).ok
    assert not measure(ref, np.ones((1, 5), np.float32), 1e-4, 1e-5).ok


def test_a_fixed_batch_runs_at_its_declared_size(tmp_path):
    """A source with input [3, 3, 12, 12] runs at batch 3 (it failed as 'the source model itself
    is broken' when verify fed it one example at a time)."""
    model = _net(batch=3)
    out = tmp_path / "out"
    irc.compile(model, name="m").save(out)
    result = verify(model, out)
    assert result.ok and result.n_examples == 3, result.table()
    assert "fixed batch of 3" in result.table()
    result = verify(model, out, batch=5)  # rounds up to whole runs of the declared batch
    assert result.ok and result.n_examples == 6, result.table()


def test_inputs_off_the_fixed_batch_are_refused_with_the_reason(tmp_path):
    from irc.errors import IrcIOError

    model = _net(batch=3)
    out = tmp_path / "out"
    irc.compile(model, name="m").save(out)
    feeds = {"input": np.zeros((2, 3, 12, 12), np.float32)}
    with pytest.raises(IrcIOError, match="fixed batch of 3"):
        verify(model, out, inputs=feeds)


def test_onnxruntime_detail_is_kept_without_blaming_the_source(tmp_path, monkeypatch):
    from irc.errors import InvalidModel
    from irc.ir import onnx_export

    model = _net()
    out = tmp_path / "out"
    irc.compile(model, name="m").save(out)

    def refuse(model, feeds):
        raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : some detail")

    monkeypatch.setattr(onnx_export, "run_onnxruntime", refuse)
    with pytest.raises(InvalidModel) as err:
        verify(model, out)
    text = str(err.value)
    assert "some detail" in text and "input [2, 3, 12, 12]" not in text
    assert "input [1, 3, 12, 12]" in text and "itself is broken" not in text


def test_inputs_beyond_float32_are_refused_not_reported_as_a_mismatch(tmp_path):
    """A float64 input Viya cannot hold (|v| > 3.4e38) would become inf and show as a mismatch;
    verify (and --inputs files) refuse it with the reason instead."""
    from irc.errors import IrcIOError
    from irc.verify import float32_inputs, load_inputs

    big = np.array([[1.0, 9e223]])
    with pytest.raises(IrcIOError, match="beyond float32's range"):
        float32_inputs({"x": big})
    np.savez(tmp_path / "x.npz", x=big)
    with pytest.raises(IrcIOError, match="beyond float32's range"):
        load_inputs(tmp_path / "x.npz")
    ok = float32_inputs({"x": np.array([[1.0, np.inf, 3e38]])})["x"]
    assert ok.dtype == np.float32 and np.isinf(ok[0, 1])  # inf stays inf: the user gave it


def test_a_vanishing_output_is_said_to_prove_nothing(tmp_path):
    """A net whose outputs are all within atol of zero passes any comparison; verify says so."""
    b = OnnxBuilder("tiny", (1, 3, 6, 6))
    x = b.op("Conv", b.input, b.const(np.full((2, 3, 1, 1), 1e-9, np.float32)),
             kernel_shape=[1, 1])
    model = b.build([x])
    irc.compile(model).save(tmp_path / "o")
    result = verify(model, tmp_path / "o")
    assert result.ok and any("cannot tell a wrong layer" in n for n in result.notes)
    assert "note: output" in result.table()
