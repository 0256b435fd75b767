"""Typos and rough edges of the command line (issue 26): an unknown pass name, dump format or
executor option key is exit 2 naming the valid ones, nothing written; the dump folder is said;
`irc ops` prints whole descriptions; `inspect --stage source` shows weight shapes and sizes
(values only with --values); scripts/what_converts.py --help is complete; each refusal is in
its own error category; the layer summary is a DataFrame every model has."""
import subprocess
import sys

import numpy as np
import pytest

import irc
from irc.errors import InputShapeNeeded, ViyaCannotExpress
from irc.utils.onnx_builder import OnnxBuilder
from tests.cli_helpers import assert_refused
from tests.unit.test_cli import EXAMPLE, ROOT, run_irc


@pytest.mark.parametrize("flags, words", [
    (["--explain", "nosuchpass"], ["--explain", "'nosuchpass'", "fold_batchnorm"]),
    (["--dump-after", "nosuchpass"], ["--dump-after", "'nosuchpass'", "all, ", "fuse_activation"]),
    (["--print-after", "fold_batchnorm,nosuchpass"], ["--print-after", "'nosuchpass'"]),
    (["--dump-after", "all", "--dump-format", "txt,png"], ["--dump-format", "'png'", "onnx"]),
], ids=["explain", "dump-after", "print-after", "dump-format"])
def test_unknown_pass_or_format_is_refused_with_the_valid_ones(tmp_path, flags, words):
    out = tmp_path / "o"
    result = subprocess.run([sys.executable, "-m", "irc", "compile", str(EXAMPLE), "-o",
                             str(out), *flags], capture_output=True, text=True, cwd=tmp_path)
    assert_refused(result, out, "usage", *words)
    assert not (tmp_path / "irc-dumps").exists()


def test_unknown_executor_option_lists_the_keys(tmp_path):
    out = tmp_path / "o"
    assert run_irc("compile", EXAMPLE, "-o", out, "--no-verify", "-q").returncode == 0
    for option, word in (("foo=1", "unknown key 'foo'"), ("bn_extra_eps", "is not KEY=VALUE"),
                         ("avgpool_divisor=nonsense", "avgpool_divisor")):
        result = run_irc("verify", EXAMPLE, out, "--option", option)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert word in result.stderr and "bn_extra_eps=0.0" in result.stderr, result.stderr
    assert run_irc("verify", EXAMPLE, out, "--option", "bn_extra_eps=0").returncode == 0
    exported = run_irc("export", out, "-o", tmp_path / "x.onnx", "--option", "foo=1")
    assert_refused(exported, tmp_path / "x.onnx", "irc: usage: --option", "'foo'",
                   "bn_extra_eps")


def test_dump_folder_is_announced(tmp_path):
    result = subprocess.run([sys.executable, "-m", "irc", "compile", str(EXAMPLE), "-o",
                             str(tmp_path / "o"), "--no-verify", "-q", "--dump-after",
                             "fold_batchnorm"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dumps = tmp_path / "irc-dumps"
    assert sorted(p.name for p in dumps.iterdir()) == ["000_input.txt", "015_fold_batchnorm.txt"]
    assert f"2 graph dump(s) written to {dumps}/" in result.stderr, result.stderr


def test_verify_accepts_the_compiled_input_shape_and_refuses_another(tmp_path):
    out = tmp_path / "o"
    assert run_irc("compile", EXAMPLE, "-o", out, "--no-verify", "-q").returncode == 0
    same = run_irc("verify", EXAMPLE, out, "--input-shape", "1,3,32,32")
    assert same.returncode == 0 and "all outputs match" in same.stdout, same.stderr
    other = run_irc("verify", EXAMPLE, out, "--input-shape", "1,3,16,16")
    assert other.returncode == 2 and "compiled for examples of shape 3,32,32" in other.stderr


def test_ops_prints_whole_descriptions():
    text = run_irc("ops").stdout
    # The Max/Min note runs over two docstring lines; it used to stop at "of two".
    start = text.index("  Max ")
    entry = " ".join(text[start:text.index("\n  MaxPool")].split())
    assert entry.endswith("(rewritten as a + relu(b - a) into residual layers)."), entry
    assert max(len(line) for line in text.splitlines()) <= 120
    keras = run_irc("ops", "keras").stdout
    if "Keras sequence-model layers" in keras:  # the keras extra is installed
        seq = keras[keras.index("Keras sequence-model layers"):]
        line = next(ln for ln in seq.splitlines() if ln.strip().startswith("InputLayer"))
        assert "Dropout" not in line and "input layer" in line, line


def test_inspect_source_shows_shapes_not_values():
    plain = run_irc("inspect", EXAMPLE, "--stage", "source")
    assert plain.returncode == 0, plain.stderr
    values = run_irc("inspect", EXAMPLE, "--stage", "source", "--values")
    assert values.returncode == 0, values.stderr
    # the 3x3 stem kernel: its size is shown, its 16*3*3*3 numbers only with --values
    assert "float32 16x3x3x3 (432 values, 1.7 KiB)" in plain.stdout, plain.stdout[-800:]
    assert len(plain.stdout) * 3 < len(values.stdout), (len(plain.stdout), len(values.stdout))
    assert "Conv" in plain.stdout and "Conv" in values.stdout


def test_what_converts_help_is_complete():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "what_converts.py"),
                             "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "or refused with irc's reason." in text  # the first sentence, whole
    assert "is this script's --md output." in text  # ... and the rest of the docstring
    assert "PyTorch exporters to try" in text


def test_error_categories_differ():
    """A missing input shape is not an unsupported attribute, nor is an element-wise product."""
    b = OnnxBuilder("gate", (1, 3, 8, 8))
    x = b.conv(b.input, 4, 3, name="/a/Conv")
    y = b.conv(b.input, 4, 3, name="/b/Conv")
    with pytest.raises(ViyaCannotExpress) as product:
        irc.compile(b.build([b.op("Mul", x, y, name="/gate/Mul")]))
    assert product.value.kind == "Viya cannot express"
    assert InputShapeNeeded.kind == "input shape needed"
    torch = pytest.importorskip("torch")
    with pytest.raises(InputShapeNeeded) as shape:
        irc.compile(torch.nn.Conv2d(3, 4, 3))
    assert shape.value.kind != product.value.kind


def test_missing_input_shape_says_so_on_the_command_line(tmp_path):
    b = OnnxBuilder("dyn", (1, 3, "H", "W"))
    path = tmp_path / "dyn.onnx"
    import onnx

    onnx.save(b.build([b.conv(b.input, 4, 3, name="/c/Conv")]), str(path))
    result = run_irc("compile", path, "-o", tmp_path / "o")
    assert_refused(result, tmp_path / "o", "irc: input shape needed:", "--input-shape")
    fixed = run_irc("compile", path, "-o", tmp_path / "o", "--input-shape", "1,3,8,8", "-q")
    assert fixed.returncode == 0, fixed.stderr


def test_summary_is_a_frame_for_every_model():
    model = irc.compile(str(EXAMPLE))
    frame = model.summary()
    assert list(frame.columns) == ["name", "kind", "act", "sources", "output shape", "weights",
                                   "source nodes"]
    assert len(frame) == len(model.layers) and frame["name"].tolist() == [
        layer.name for layer in model.layers]
    total = sum(int(np.prod(w.shape)) for layer in model.layers for w in layer.weights.values())
    assert frame["weights"].sum() == total and total > 0
    stem = frame.set_index("name").loc["stem_conv"]
    assert stem["kind"] == "convo" and stem["act"] == "relu" and stem["output shape"]
    assert "stem" in stem["source nodes"].lower()
    html = model._repr_html_()
    assert "stem_conv" in html and "<table" in html and "small_cnn" in html


def test_model_html_draws_the_layer_graph_where_graphviz_is_installed():
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` is not installed (the README's set-up names it)")
    model = irc.compile(str(EXAMPLE))
    html = model._repr_html_()
    svg = html[html.index("<svg"):]
    # every layer is a box of the picture, every source an edge
    assert all(f">{layer.name}</text>" in svg for layer in model.layers), svg[:500]
    edges = sum(len(layer.sources) for layer in model.layers)
    assert svg.count('class="edge"') == edges
