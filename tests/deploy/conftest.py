"""Deploy tests: compiled output folders and a guard that fails any attempt to use the network.

Nothing here talks to a CAS server: swat is replaced by tests/deploy/fake_cas.py, and every
socket connect raises, so a code path that would reach a real server fails the test instead of
hanging (swat over REST waits ~40 s on a closed port).
"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

import irc
from irc.utils.onnx_builder import OnnxBuilder

ROOT = Path(__file__).resolve().parents[2]
SECRET = "secretpw"  # a password set in the environment of the error tests; must never show


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise NetworkUsed(f"a deploy test tried to open a network connection: {args[:2]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="session")
def small_cnn(tmp_path_factory) -> Path:
    """The bundled example compiled: conv/pool/residual/concat/global pool/softmax output."""
    out = tmp_path_factory.mktemp("ex") / "small_cnn"
    irc.compile(ROOT / "examples" / "small_cnn.onnx").save(out)
    return out


def vgg_like():
    b = OnnxBuilder("vgg_like", (1, 3, 32, 32), seed=3)
    x = b.input
    for block, (convs, ch) in enumerate([(2, 8), (2, 16)], 1):
        for i in range(1, convs + 1):
            x = b.op("Relu", b.conv(x, ch, 3, pads=[1, 1, 1, 1], name=f"conv{block}_{i}"))
        x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2], name=f"pool{block}")
    x = b.op("Flatten", x)
    x = b.op("Relu", b.gemm(x, 16 * 8 * 8, 32, name="fc6"))
    x = b.op("Softmax", b.gemm(x, 32, 5, name="fc8"))
    return b.build([x])


@pytest.fixture(scope="session")
def vgg(tmp_path_factory) -> Path:
    """A VGG-style model whose model table is expressible (model_table.csv is written)."""
    out = tmp_path_factory.mktemp("vgg") / "vgg_like"
    irc.compile(vgg_like(), name="vgg_like").save(out)
    assert (out / "model_table.csv").is_file()
    return out


def resnet_like():
    """conv/bn/relu, two residual blocks (one with a strided projection), a batchnorm that stays
    a layer (after an add), max and global average pooling, gemm and softmax."""
    b = OnnxBuilder("resnet_like", (1, 3, 32, 32), seed=11)
    x = b.op("Relu", b.batchnorm(b.conv(b.input, 16, 3, pads=[1] * 4, name="stem")))
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2], name="stem_pool")
    y = b.op("Relu", b.batchnorm(b.conv(x, 16, 3, pads=[1] * 4, name="b1_conv1")))
    y = b.batchnorm(b.conv(y, 16, 3, pads=[1] * 4, name="b1_conv2"))
    x = b.op("Relu", b.batchnorm(b.op("Add", x, y, name="b1_add"), name="b1_bn"))
    y = b.op("Relu", b.batchnorm(b.conv(x, 32, 3, stride=2, pads=[1] * 4, name="b2_conv1")))
    y = b.batchnorm(b.conv(y, 32, 3, pads=[1] * 4, name="b2_conv2"))
    short = b.batchnorm(b.conv(x, 32, 1, stride=2, name="b2_proj"))
    x = b.op("Relu", b.op("Add", short, y, name="b2_add"))
    x = b.op("Flatten", b.op("GlobalAveragePool", x, name="gap"))
    b.channels[x] = 32
    x = b.op("Softmax", b.gemm(x, 32, 10, name="fc"))
    return b.build([x])
