"""One darknet section at a time, in small nets written in code: irc compiles and verifies
each, and the written files re-executed match OpenCV within 1e-4 of the output's scale.

A convolution comes first in each net: darknet reads R, G, B, and irc makes Viya's B, G, R
input read that way by reversing the input channels of the layers reading the input, which
must be convolutions."""
from __future__ import annotations

import pytest

from tests.darknet.conftest import compile_and_compare, write_cfg


def net(size: int, *sections: str, channels: int = 3, first: str = "") -> str:
    head = f"[net]\nheight={size}\nwidth={size}\nchannels={channels}\n\n"
    conv = first or ("[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\n"
                     "activation=leaky\n\n")
    return head + conv + "\n".join(sections)


# Darknet's maxpool: padding defaults to size-1, the window starts at -padding/2 (C integer
# division): the odd padded cell goes after the input. Each case's output size is darknet's
# (w + padding - size)/stride + 1.
MAXPOOLS = {
    "2x2s1_on_7 (yolov2-tiny's: pads 0 before, 1 after, 7x7 out)": (7, "size=2\nstride=1"),
    "2x2s2_on_7 (odd input: 4x4 out)": (7, "size=2\nstride=2"),
    "2x2s2_on_8": (8, "size=2\nstride=2"),
    "3x3s2_on_8 (default padding 2: 1 before, 4x4 out)": (8, "size=3\nstride=2"),
    "3x3s1_padding3 (odd explicit padding: 1 before, 2 after, 9x9 out)": (8,
                                                                          "size=3\nstride=1\n"
                                                                          "padding=3"),
    "2x2s2_padding0": (9, "size=2\nstride=2\npadding=0"),
    "stride_only (size defaults to stride)": (8, "stride=2"),
}


@pytest.mark.parametrize("size,options", MAXPOOLS.values(), ids=list(MAXPOOLS))
def test_maxpool_geometry(tmp_path, size, options):
    cfg = write_cfg(tmp_path, net(size, f"[maxpool]\n{options}\n",
                                  "[convolutional]\nfilters=6\nsize=1\nstride=1\npad=1\n"
                                  "activation=linear\n"))
    compile_and_compare(tmp_path, cfg)


CONVS = {
    "pad0_size3": "filters=6\nsize=3\nstride=1\npad=0\nactivation=leaky",
    "padding2_size3 (pad=0 uses padding=)": "filters=6\nsize=3\nstride=1\npadding=2\n"
                                             "activation=relu",
    "size5_stride2_pad1": "filters=6\nsize=5\nstride=2\npad=1\nactivation=logistic",
    "groups2_bn": "batch_normalize=1\nfilters=6\nsize=3\nstride=1\npad=1\ngroups=2\n"
                  "activation=leaky",
    "depthwise": "filters=8\nsize=3\nstride=1\npad=1\ngroups=8\nactivation=linear",
    "default_activation_logistic": "filters=6\nsize=1\nstride=1",
}


@pytest.mark.parametrize("options", CONVS.values(), ids=list(CONVS))
def test_convolutional(tmp_path, options):
    cfg = write_cfg(tmp_path, net(9, f"[convolutional]\n{options}\n"))
    compile_and_compare(tmp_path, cfg)


def test_connected_with_batchnorm_dropout_and_softmax(tmp_path):
    """[connected] flattens C, H, W; batch_normalize=1 stores biases, weights, then scales,
    mean, variance; [dropout] vanishes; [softmax] over the vector; [cost] is ignored."""
    cfg = write_cfg(tmp_path, net(6, "[maxpool]\nsize=2\nstride=2\n",
                                  "[connected]\noutput=12\nbatch_normalize=1\nactivation=leaky\n",
                                  "[dropout]\nprobability=.5\n",
                                  "[connected]\noutput=7\nactivation=linear\n",
                                  "[softmax]\n", "[cost]\ntype=sse\n"))
    compile_and_compare(tmp_path, cfg)


def test_connected_logits(tmp_path):
    cfg = write_cfg(tmp_path, net(5, "[connected]\noutput=10\nactivation=relu\n",
                                  "[connected]\noutput=4\nactivation=linear\n"))
    compile_and_compare(tmp_path, cfg)


def test_route_and_shortcut(tmp_path):
    """[route] of one layer (identity, absolute and relative), of several (channel concat);
    [shortcut] adds from= (with an activation)."""
    conv = "[convolutional]\nbatch_normalize=1\nfilters={}\nsize={}\nstride=1\npad=1\n" \
           "activation=leaky\n"
    cfg = write_cfg(tmp_path, net(8, conv.format(8, 1),          # 1
                                  "[shortcut]\nfrom=-2\nactivation=linear\n",  # 2 = 1 + 0
                                  conv.format(4, 3),             # 3
                                  "[route]\nlayers=-1,0, 2\n",   # 4: 4+8+8 channels
                                  conv.format(8, 1),             # 5
                                  "[shortcut]\nfrom=2\nactivation=leaky\n",  # 6
                                  "[route]\nlayers=-3\n",        # 7: identity of layer 4
                                  conv.format(5, 1)))
    compile_and_compare(tmp_path, cfg)


def test_avgpool_then_softmax(tmp_path):
    cfg = write_cfg(tmp_path, net(7, "[convolutional]\nfilters=10\nsize=1\nstride=1\npad=1\n"
                                     "activation=linear\n", "[avgpool]\n", "[softmax]\ngroups=1\n"))
    compile_and_compare(tmp_path, cfg)


@pytest.mark.parametrize("size,channels", [(8, 16), (12, 4), (4, 64)])
def test_reorg_alone(tmp_path, size, channels):
    """darknet's [reorg] (stride 2) as Reshape + 0/1 stride-2 Conv + Reshape, vs OpenCV."""
    cfg = write_cfg(tmp_path, net(size, "[reorg]\nstride=2\n",
                                  "[convolutional]\nfilters=5\nsize=1\nstride=1\npad=1\n"
                                  "activation=linear\n",
                                  first=f"[convolutional]\nfilters={channels}\nsize=3\n"
                                        "stride=1\npad=1\nactivation=leaky\n\n"))
    compile_and_compare(tmp_path, cfg)


def test_transposed_header_connected_weights(tmp_path):
    """A header major > 1000 marks [connected] matrices stored (inputs, outputs): darknet
    transposes them on load. The file holding W.T that way computes what the plain file
    holding W does (OpenCV refuses the marker; its check runs on a plain copy)."""
    import numpy as np

    from irc.frontends.darknet import darknet_to_onnx
    from irc.frontends.darknet.weights import write_weights
    from tests.darknet.conftest import random_weights, run_written

    cfg = write_cfg(tmp_path, net(4, "[connected]\noutput=6\nbatch_normalize=1\n"
                                     "activation=leaky\n",
                                  "[connected]\noutput=5\nactivation=linear\n"))
    plain = random_weights(cfg, tmp_path / "plain.weights")
    specs = darknet_to_onnx(cfg).weight_specs
    floats = np.fromfile(plain, "<f4", offset=20)
    arrays, offset = [], 0
    for layer, role, shape in specs:
        a = floats[offset:offset + int(np.prod(shape))].reshape(shape)
        offset += a.size
        arrays.append(a.T if layer.startswith("connected") and role == "weights" else a)
    flipped = write_weights(tmp_path / "flipped.weights", arrays, major=1001, minor=0)
    compile_and_compare(tmp_path, cfg, weights=flipped)
    x = np.random.default_rng(3).uniform(0, 1, (2, 3, 4, 4)).astype(np.float32)
    (from_flipped,) = run_written(tmp_path / "out", x).values()
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    compile_and_compare(plain_dir, cfg, weights=plain)
    (from_plain,) = run_written(plain_dir / "out", x).values()
    np.testing.assert_array_equal(from_flipped, from_plain)
