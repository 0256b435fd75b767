"""Debugging: pass instruments (dumps, op-count diffs, timing), provenance, `irc diff`."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import irc
from irc.backends.viya.executor import ExecutorOptions
from irc.debug.diff import diff
from irc.ir.onnx_export import run_onnxruntime
from irc.passes.instruments import DumpAfter, OpCountDiff, Timing, instruments_from_env
from irc.passes.pipeline import DEFAULT_PIPELINE
from irc.utils.onnx_builder import OnnxBuilder

ROOT = Path(__file__).resolve().parents[2]


def resnet_style(blocks=3):
    b = OnnxBuilder("mini_resnet", (1, 3, 16, 16), seed=1)
    x = b.op("Relu", b.batchnorm(b.conv(b.input, 8, 3, pads=[1] * 4, bias=False)))
    for _ in range(blocks):
        y = b.op("Relu", b.batchnorm(b.conv(x, 8, 3, pads=[1] * 4, bias=False)))
        y = b.batchnorm(b.conv(y, 8, 3, pads=[1] * 4, bias=False))
        x = b.op("Relu", b.op("Add", x, y))
        b.channels[x] = 8
    x = b.op("Flatten", b.op("GlobalAveragePool", x))
    return b.build([b.op("Softmax", b.gemm(x, 8, 4))])


def dumped(pass_name: str, ext: str) -> str:
    """The dump file name DumpAfter writes after ``pass_name`` in the default pipeline (its
    1-based position there), so adding a pass to the pipeline does not break these tests."""
    return f"{DEFAULT_PIPELINE.index(pass_name) + 1:03d}_{pass_name}.{ext}"


def test_dumps_and_op_count_diffs_for_a_resnet_style_model(tmp_path):
    counts, timing = OpCountDiff(), Timing()
    dumps = DumpAfter(tmp_path / "d", formats=("txt", "onnx"))
    irc.compile(resnet_style(3), instruments=[counts, timing, dumps])
    diffs = dict(counts.diffs)
    assert diffs["fold_batchnorm"] == {"BatchNormalization": -7}
    assert diffs["fuse_activation"] == {"Relu": -7}
    assert diffs["remove_identity_dropout"] == {}
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    last_pass = DEFAULT_PIPELINE[-1]
    assert names[:3] == ["000_input.onnx", "000_input.txt", dumped(DEFAULT_PIPELINE[0], "onnx")]
    assert names[-1] == dumped(last_pass, "txt")
    assert len(timing.seconds) == len(DEFAULT_PIPELINE) and "total" in timing.report()
    # every dumped stage is a runnable ONNX model computing the same numbers
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    first = run_onnxruntime(onnx.load(tmp_path / "d" / "000_input.onnx"), {"input": x})
    last = run_onnxruntime(onnx.load(tmp_path / "d" / dumped(last_pass, "onnx")), {"input": x})
    for key in first:
        np.testing.assert_allclose(first[key], last[key], rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz `dot` is not installed (.ci/run installs it)")
def test_svg_dumps_are_rendered_by_graphviz(tmp_path):
    dumps = DumpAfter(tmp_path, passes={"fold_batchnorm"}, formats=("svg",))
    irc.compile(resnet_style(1), instruments=[dumps])
    svg = (tmp_path / dumped("fold_batchnorm", "svg")).read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "Conv" in svg


def test_instruments_from_environment(tmp_path):
    found = instruments_from_env({"IRC_DUMP_AFTER": "fuse_activation,fold_pad",
                                  "IRC_DUMP_DIR": str(tmp_path), "IRC_TIME_PASSES": "1"})
    irc.compile(resnet_style(1), instruments=found)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000_input.txt", dumped("fold_pad", "txt"), dumped("fuse_activation", "txt")]


def test_cli_dump_explain_and_provenance(tmp_path):
    b = OnnxBuilder("bn_pool", (1, 3, 8, 8))
    x = b.op("MaxPool", b.conv(b.input, 4, 3, pads=[1] * 4), kernel_shape=[2, 2], strides=[2, 2])
    x = b.batchnorm(x, name="bn_after_pool")
    path = tmp_path / "m.onnx"
    onnx.save(b.build([x]), path)
    result = subprocess.run(
        [sys.executable, "-m", "irc", "compile", path, "-o", tmp_path / "o", "--explain",
         "fold_batchnorm", "--dump-after", "fold_batchnorm", "--dump-dir", tmp_path / "d"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "fold_batchnorm: 1 refusal(s)" in result.stderr and "bn_after_pool" in result.stderr
    assert (tmp_path / "d" / dumped("fold_batchnorm", "txt")).is_file()
    layers = json.loads((tmp_path / "o" / "name_map.json").read_text())["layers"]
    assert layers["bn_after_pool"]["source"] == ["bn_after_pool"]


def test_diff_finds_the_first_diverging_layer_and_writes_a_repro(tmp_path):
    b = OnnxBuilder("bn_mid", (1, 3, 8, 8))
    x = b.op("MaxPool", b.conv(b.input, 4, 3, pads=[1] * 4, name="c1"), kernel_shape=[2, 2],
             strides=[2, 2], name="p1")
    x = b.batchnorm(x, epsilon=1e-3, name="bn")
    x = b.op("Relu", b.conv(x, 4, 3, pads=[1] * 4, name="c2"), name="r2")
    model = b.build([x])
    irc.compile(model).save(tmp_path / "o")
    assert diff(model, tmp_path / "o").first_bad is None
    report = diff(model, tmp_path / "o", options=ExecutorOptions(bn_extra_eps=0.5),
                  repro_dir=tmp_path / "repro")
    assert report.first_bad.layer == "bn" and report.first_bad.kind == "batchnorm"
    assert [d.ok for d in report.layers[:3]] == [True, True, True]  # input, c1, p1
    assert "first divergence: layer 'bn'" in report.text()
    sub = onnx.load(tmp_path / "repro" / "bn.onnx")
    inputs = dict(np.load(tmp_path / "repro" / "bn_inputs.npz"))
    assert list(inputs) == ["p1"] and [o.name for o in sub.graph.output] == ["bn"]
    assert run_onnxruntime(sub, inputs)["bn"].shape == (1, 4, 4, 4)



def test_diff_compares_an_rgb_models_input_layer_channel_for_reversed_channel(tmp_path):
    """--channel-order rgb: Viya's input layer holds B,G,R where the source reads R,G,B; the
    input layer matched nothing before (max abs ~5 on every rgb model) and diff exited 1."""
    b = OnnxBuilder("rgb", (1, 3, 8, 8), seed=2)
    model = b.build([b.op("Relu", b.conv(b.input, 4, 3, pads=[1] * 4, name="c1"))])
    irc.compile(model, input_options={"channel_order": "rgb", "offsets": [1, 2, 3]}
                ).save(tmp_path / "o")
    report = diff(model, tmp_path / "o")
    assert report.layers[0].kind == "input" and report.layers[0].max_abs < 1e-6  # rounding
    assert report.first_bad is None and len(report.layers) >= 2


def test_diff_runs_a_source_with_a_fixed_batch_at_that_batch(tmp_path):
    """An ONNX input [3, 2, 8, 8]: `irc diff` draws 3 examples, as verify does (one example
    made onnxruntime refuse the source)."""
    b = OnnxBuilder("fixed_batch", (3, 2, 8, 8))
    x = b.op("Relu", b.conv(b.input, 4, 3, pads=[1] * 4, name="c1"), name="r1")
    path = tmp_path / "m.onnx"
    onnx.save(b.build([b.conv(x, 2, 1, name="c2")]), path)
    irc.compile(path).save(tmp_path / "o")
    result = subprocess.run([sys.executable, "-m", "irc", "diff", path, tmp_path / "o"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "every compared layer matches" in result.stdout and "c2" in result.stdout
    report = diff(path, tmp_path / "o")
    assert len(report.layers) >= 3 and report.first_bad is None  # input, c1(+relu), c2


def test_inspect_formats(tmp_path):
    example = ROOT / "examples" / "small_cnn.onnx"
    run = lambda *a: subprocess.run([sys.executable, "-m", "irc", "inspect", example, *map(str, a)],
                                    capture_output=True, text=True)
    assert "Conv" in run("--stage", "source").stdout
    out = tmp_path / "g.onnx"
    assert run("--stage", "optimized", "--format", "onnx", "-o", out).returncode == 0
    onnx.checker.check_model(onnx.load(out))
    dot = run("--stage", "ir", "--format", "dot").stdout
    assert dot.startswith("digraph") and "BatchNormalization" in dot


def test_diff_names_a_deliberately_corrupted_layer(tmp_path):
    """Break one weight of one layer in the output folder: irc diff names exactly that layer."""
    import h5py

    example = ROOT / "examples" / "small_cnn.onnx"
    out = tmp_path / "o"
    irc.compile(example).save(out)
    with h5py.File(out / "small_cnn_weights.kerasmodel.h5", "r+") as f:
        kernel = f["res_conv2/res_conv2/kernel:0"]
        kernel[0, 0, 1, 1] = kernel[0, 0, 1, 1] + 0.5
    report = diff(example, out)
    assert report.first_bad.layer == "res_conv2"
    ok = {d.layer: d.ok for d in report.layers}
    assert ok["stem_conv"] and ok["res_conv1"] and not ok["res_conv2"]
    result = subprocess.run([sys.executable, "-m", "irc", "diff", example, out],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "first divergence: layer 'res_conv2'" in result.stdout
