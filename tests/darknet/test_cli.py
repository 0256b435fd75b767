"""`irc compile/verify` on darknet nets as a user runs them, and bad input: exit 2, one
message naming the file, section or sizes, nothing written."""
from __future__ import annotations

import json

import pytest

from irc.frontends.darknet.weights import write_weights
from tests.cli_helpers import assert_refused, irc_cli
from tests.darknet.conftest import fixture, random_weights, small_cfg, write_cfg

SMALL = """[net]
height=8
width=8
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=5
size=1
stride=1
pad=1
activation=linear
"""


@pytest.fixture
def yolo(tmp_path):
    cfg = small_cfg(fixture("yolov2-tiny-voc.cfg"), tmp_path / "yolo.cfg", 64)
    return cfg, random_weights(cfg, tmp_path / "yolo.weights")


def test_compile_verify_and_scale_for_0_255_images(tmp_path, yolo):
    pytest.importorskip("cv2", reason="opencv-python-headless is the darknet oracle")
    cfg, weights = yolo
    out = tmp_path / "out"
    result = irc_cli("compile", cfg, "--weights", weights, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout
    assert irc_cli("verify", cfg, out, "--weights", weights).returncode == 0
    payloads = json.loads((out / "model.json").read_text())
    layer = next(c["layer"] for c in payloads["addLayer"] if c["layer"]["type"] == "input")
    assert layer.get("scale", 1) == 1  # Viya feeds what darknet's net reads: values in [0, 1]
    scaled = tmp_path / "scaled"
    result = irc_cli("compile", cfg, "--weights", weights, "-o", scaled,
                     "--scale", "0.0039215686")
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout
    # Viya holds a 0..255 image as B, G, R; darknet reads it as R, G, B in [0, 1]
    import numpy as np

    from irc.backends.viya.executor import run_folder
    from tests.darknet.conftest import opencv

    bgr = np.random.default_rng(2).integers(0, 256, (2, 3, 64, 64)).astype(np.float32)
    (reference,) = opencv(cfg, weights, np.ascontiguousarray(bgr[:, ::-1]) / 255).values()
    name_map = json.loads((scaled / "name_map.json").read_text())
    (layer,) = name_map["outputs"].values()
    got = run_folder(scaled, bgr, all_layers=True)[layer].reshape(reference.shape)
    assert np.abs(got - reference).max() <= 1e-4 * np.abs(reference).max()


def test_structure_only_without_weights(tmp_path):
    out = tmp_path / "o"
    result = irc_cli("compile", write_cfg(tmp_path, SMALL), "-o", out)
    assert result.returncode == 0, result.stderr
    assert "no .weights given" in result.stdout


@pytest.mark.parametrize("cut", [4, 400])
def test_truncated_weights_name_both_sizes(tmp_path, cut):
    cfg = write_cfg(tmp_path, SMALL)
    weights = random_weights(cfg, tmp_path / "w.weights", calibrate=False)
    full = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:full - cut])
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", cfg, "--weights", weights, "-o", out), out,
                   str(weights), f"has {full - cut} bytes", f"implies {full}", "truncated")


def test_weights_of_a_bigger_net_are_refused(tmp_path):
    cfg = write_cfg(tmp_path, SMALL)
    other = write_cfg(tmp_path, SMALL.replace("filters=5", "filters=7"), "other")
    weights = random_weights(other, tmp_path / "w.weights", calibrate=False)
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", cfg, "--weights", weights, "-o", out), out,
                   f"has {weights.stat().st_size} bytes", "left over")


def test_old_header_with_32_bit_seen_count(tmp_path):
    """major*10+minor < 2: the images-seen count is an int32 (a 16-byte header)."""
    pytest.importorskip("cv2", reason="opencv-python-headless is the darknet oracle")
    cfg = write_cfg(tmp_path, SMALL)
    weights = random_weights(cfg, tmp_path / "w.weights", major=0, minor=1)
    assert weights.stat().st_size % 4 == 0
    out = tmp_path / "o"
    result = irc_cli("compile", cfg, "--weights", weights, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout


def test_unknown_section_names_it_and_its_line(tmp_path):
    cfg = write_cfg(tmp_path, SMALL + "\n[bogus]\nsize=2\n")
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", cfg, "-o", out), out, "[bogus]", "line 25")


def test_yolov3_tiny_refused_naming_upsample_and_yolo(tmp_path):
    out = tmp_path / "o"
    result = irc_cli("compile", fixture("yolov3-tiny.cfg"), "-o", out)
    assert_refused(result, out, "[upsample]", "[yolo]", "YOLO v1/v2")


@pytest.mark.parametrize("text,words", [
    (SMALL.replace("stride=2\n", "stride 2\n"), ["line 16", "key=value"]),
    ("size=3\n" + SMALL, ["line 1", "before the first"]),
    (SMALL.replace("[maxpool]", "[maxpool"), ["line 14", "[name]"]),
    (SMALL.replace("[net]", "[convolutional]", 1), ["[net]"]),
    (SMALL.replace("filters=5", "filters=five"), ["line 19", "filters", "integer"]),
    (SMALL.replace("activation=linear", "activation=mish"), ["activation=mish"]),
    (SMALL + "\n[route]\nlayers=-1\ngroups=2\ngroup_id=1\n", ["groups=2", "group_id=1"]),
    (SMALL + "\n[shortcut]\nfrom=-3\n", ["different shapes"]),
    (SMALL + "\n[route]\nlayers=5\n", ["refers to layer 5"]),
    ("[net]\nchannels=3\n" + SMALL[SMALL.index("[conv"):], ["height=0", "--input-shape"]),
    (SMALL + "\n[softmax]\n", ["softmax of a 4x4 image", "[avgpool]"]),
], ids=["no_equals", "option_before_section", "open_header", "no_net_first", "bad_int",
        "unknown_activation", "route_groups", "shortcut_shapes", "route_forward",
        "no_input_size", "spatial_softmax"])
def test_bad_cfg(tmp_path, text, words):
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", write_cfg(tmp_path, text), "-o", out), out, *words)


def test_weights_file_given_as_the_model(tmp_path):
    weights = write_weights(tmp_path / "w.weights", [])
    out = tmp_path / "o"
    assert_refused(irc_cli("compile", weights, "-o", out), out, "--weights")


def test_ops_lists_the_darknet_sections():
    result = irc_cli("ops", "darknet")
    assert result.returncode == 0, result.stderr
    assert "reorg" in result.stdout and "region" in result.stdout


def test_input_shape_overrides_the_cfg_size_and_grayscale_nets(tmp_path):
    """--input-shape replaces [net]'s size (the oracle sizes OpenCV's copy the same way);
    a 1-channel net is read as is (R, G, B order applies to 3-channel nets only)."""
    pytest.importorskip("cv2", reason="opencv-python-headless is the darknet oracle")
    cfg = write_cfg(tmp_path, SMALL.replace("channels=3", "channels=1"))
    weights = random_weights(cfg, tmp_path / "w.weights")
    out = tmp_path / "o"
    result = irc_cli("compile", cfg, "--weights", weights, "-o", out, "--input-shape",
                     "1,1,16,12")
    assert result.returncode == 0, result.stderr
    assert "all outputs match" in result.stdout
    payloads = json.loads((out / "model.json").read_text())
    layer = next(c["layer"] for c in payloads["addLayer"] if c["layer"]["type"] == "input")
    assert (layer["nchannels"], layer["height"], layer["width"]) == (1, 16, 12)
