"""`irc compile/verify` on Caffe nets: the trained LeNet end to end, structure-only conversion,
and bad input (exit 2, one message, no output folder)."""
from __future__ import annotations

import pytest

from tests.caffe.conftest import corpus, random_caffemodel, write_net
from tests.cli_helpers import assert_refused, irc_cli

NET = """
name: "tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
        inner_product_param { num_output: 5 } }
"""


def test_trained_lenet_compiles_and_verifies_against_opencv(tmp_path):
    pytest.importorskip("cv2", reason="opencv-python-headless is the Caffe oracle")
    out = tmp_path / "lenet"
    result = irc_cli("compile", corpus("lenet.prototxt"), "--weights",
                     corpus("lenet_iter_10000.caffemodel"), "-o", out)
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout
    assert irc_cli("verify", corpus("lenet.prototxt"), out, "--weights",
                   corpus("lenet_iter_10000.caffemodel")).returncode == 0


def test_structure_only_without_weights(tmp_path):
    out = tmp_path / "o"
    result = irc_cli("compile", write_net(tmp_path, NET), "-o", out)
    assert result.returncode == 0, result.stderr
    assert "no .caffemodel given" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.sas",
                                                     "model_table.csv", "name_map.json"]


def test_syntax_error_names_the_line(tmp_path):
    bad = write_net(tmp_path, NET.replace("num_output: 5 }", "num_output: 5 "), "bad")
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", bad, "-o", out), out, str(bad), "line")


def test_blob_shape_mismatch_and_weights_of_another_net(tmp_path):
    net = write_net(tmp_path, NET)
    other = write_net(tmp_path, NET.replace("num_output: 4", "num_output: 6"), "other")
    weights = random_caffemodel(other, tmp_path / "other.caffemodel")
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", net, "--weights", weights, "-o", out), out, "conv1")
    renamed = write_net(tmp_path, NET.replace('"conv1"', '"c1"').replace("bottom: \"conv1\"",
                                                                        "bottom: \"c1\""), "ren")
    weights = random_caffemodel(net, tmp_path / "net.caffemodel")
    assert_refused(irc_cli("compile", renamed, "--weights", weights, "-o", out), out, "c1")


def test_unknown_layer_type(tmp_path):
    text = NET + 'layer { name: "odd" type: "Crop2000" bottom: "fc" top: "odd" }\n'
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", write_net(tmp_path, text), "-o", out), out, "Crop2000",
                   "odd")


def test_caffemodel_given_as_the_model(tmp_path):
    weights = random_caffemodel(write_net(tmp_path, NET), tmp_path / "w.caffemodel")
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", weights, "-o", out), out, "--weights")


def test_diff_walks_a_caffe_net_layer_by_layer(tmp_path):
    out = tmp_path / "lenet"
    proto, weights = corpus("lenet.prototxt"), corpus("lenet_iter_10000.caffemodel")
    assert irc_cli("compile", proto, "--weights", weights, "-o", out, "--no-verify").returncode == 0
    result = irc_cli("diff", proto, out, "--weights", weights)
    assert result.returncode == 0, result.stderr
    assert "conv2" in result.stdout and "every compared layer matches" in result.stdout


def test_a_caffe_mismatch_says_no_float64_run_exists(tmp_path):
    """OpenCV, the Caffe oracle, computes in float32 only: a failing output cannot be measured
    against float64, so it stays a mismatch (exit 1) and the note says why."""
    pytest.importorskip("cv2", reason="opencv-python-headless is the Caffe oracle")
    import h5py
    import numpy as np

    net = write_net(tmp_path, NET)
    weights = random_caffemodel(net, tmp_path / "net.caffemodel")
    out = tmp_path / "o"
    assert irc_cli("compile", net, "--weights", weights, "-o", out).returncode == 0
    with h5py.File(next(out.glob("*.h5")), "r+") as h5:
        names = []
        h5.visit(names.append)
        (bias,) = [n for n in names if n.startswith("conv1") and n.endswith("bias:0")]
        h5[bias][...] = np.asarray(h5[bias]) + 1.0
    result = irc_cli("verify", net, out, "--weights", weights)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "MISMATCH" in result.stdout and "no float64 run of the source exists" in \
        result.stdout and "OpenCV" in result.stdout, result.stdout
