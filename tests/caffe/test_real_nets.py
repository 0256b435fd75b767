"""The real Caffe nets kept as test fixtures (tests/fixtures/caffe): the real LeNet with its trained caffemodel, real
architectures with random caffemodels (compiled by irc, re-executed from the written files,
compared with OpenCV), structure-only conversion of the large ones, and the LRN nets."""
from __future__ import annotations

import json

import numpy as np
import pytest

from irc.errors import UnsupportedOp
from irc.frontends.caffe import caffe_to_onnx, import_caffe
from tests.caffe.conftest import assert_close, calibrate_batchnorm, compile_caffe, corpus, \
    opencv, random_caffemodel, run_viya_files, without_final_softmax


def viya_layers(outdir) -> dict[str, dict]:
    payloads = json.loads((outdir / "model.json").read_text())
    return {c["name"]: c["layer"] for c in payloads["addLayer"]}


def test_real_lenet_with_its_trained_caffemodel(tmp_path):
    """Trained on pixels scaled by 1/256 (the training net's transform_param): Viya's input
    layer does that scaling, OpenCV gets the scaled values."""
    proto, weights = corpus("lenet.prototxt"), corpus("lenet_iter_10000.caffemodel")
    compile_caffe(proto, weights, tmp_path / "out", input_options={"scale": 1 / 256})
    raw = np.random.default_rng(0).integers(0, 256, (8, 1, 28, 28)).astype(np.float32)
    reference = opencv(proto, weights, raw / 256)
    from irc.backends.viya.executor import execute, load_viya_model

    name_map = json.loads((tmp_path / "out" / "name_map.json").read_text())
    got = execute(load_viya_model(tmp_path / "out"), raw)[name_map["outputs"]["prob"]]
    assert_close(reference, {"prob": got})
    assert (got.reshape(8, -1).argmax(1) == reference["prob"].argmax(1)).all()
    layers = viya_layers(tmp_path / "out")
    assert layers["data"]["scale"] == pytest.approx(1 / 256)
    assert [l["type"] for l in layers.values()] == ["input", "convo", "pool", "convo", "pool",
                                                    "fc", "output"]
    assert layers["ip2"]["act"] == "softmax" and layers["ip1"]["act"] == "relu"


# (file, input_shape for speed or None, rtol/atol). ResNet50's fixed 7x7 average pool needs
# 224x224. Random deep nets need BatchNorm calibrated to stay well conditioned; even then
# float32 rounding over ResNet50's 50 layers (fan-in up to 4608) differs between any two
# runtimes by ~1e-4 on logits of std ~1.6: onnxruntime and OpenCV differ by 9.3e-5 on the same
# files, so its atol is 3e-4 (the others keep 1e-5).
REAL = [("cifar10_quick.prototxt", None, 1e-5), ("squeezenet_v1.1.prototxt", (3, 64, 64), 1e-5),
        ("mobilenet_v1.prototxt", (3, 64, 64), 1e-5), ("mobilenet_v2.prototxt", (3, 64, 64), 1e-5),
        ("resnet50.prototxt", None, 3e-4)]


@pytest.mark.parametrize("name,input_shape,atol", REAL, ids=[r[0].split(".")[0] for r in REAL])
def test_real_architecture_random_weights(tmp_path, name, input_shape, atol):
    """Logits (the final Softmax removed: random weights saturate it) of the real architecture
    with random He-scaled weights, executor on the written Viya files vs OpenCV."""
    proto = without_final_softmax(corpus(name), tmp_path / name)
    declared = caffe_to_onnx(proto).model.graph.input[0].type.tensor_type.shape.dim
    x_shape = (2,) + (input_shape or tuple(d.dim_value for d in declared[1:]))
    rng = np.random.default_rng(1)
    weights = random_caffemodel(proto, tmp_path / "w.caffemodel", input_shape=input_shape)
    calib = rng.standard_normal((8,) + x_shape[1:]).astype(np.float32)
    calibrate_batchnorm(proto, weights, calib, input_shape=input_shape)
    x = rng.standard_normal(x_shape).astype(np.float32)
    reference = opencv(proto, weights, x)
    compile_caffe(proto, weights, tmp_path / "out", input_shape=input_shape)
    worst = assert_close(reference, run_viya_files(tmp_path / "out", x), atol=atol)
    print(f"\n{name}: max abs difference vs OpenCV {worst:.3g}")
    layers = viya_layers(tmp_path / "out")
    if name == "resnet50.prototxt":  # trap 23: 7x7/2 pad 3 stays explicit padding 3
        assert layers["conv1"]["paddingheight"] == layers["conv1"]["paddingwidth"] == 3
        assert "paddingheight" not in layers["pool1"]  # ceil 3x3/2 on 112: automatic padding
    if name == "mobilenet_v1.prototxt":  # trap 24: depthwise conv is a groupconvo
        assert layers["conv2_1_dw"]["type"] == "groupconvo"
        assert layers["conv2_1_dw"]["ngroups"] == 32


def test_real_softmax_net_with_random_weights(tmp_path):
    """cifar10_quick as published (Softmax output) compiles to a softmax output layer."""
    proto = corpus("cifar10_quick.prototxt")
    weights = random_caffemodel(proto, tmp_path / "w.caffemodel")
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32) * 0.1
    reference = opencv(proto, weights, x)
    compile_caffe(proto, weights, tmp_path / "out")
    assert_close(reference, run_viya_files(tmp_path / "out", x))
    assert viya_layers(tmp_path / "out")["ip2"]["act"] == "softmax"


def test_squeezenet_v1_0_with_padding_beyond_its_kernel(tmp_path):
    """SqueezeNet v1.0's conv10 is a 1x1 convolution with pad 1: the border is the bias alone,
    which Viya's explicit padding computes too. The whole net matches OpenCV."""
    proto = corpus("squeezenet_v1.0.prototxt")
    weights = random_caffemodel(proto, tmp_path / "w.caffemodel", input_shape=(3, 64, 64))
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    compile_caffe(proto, weights, tmp_path / "out", input_shape=(3, 64, 64))
    assert viya_layers(tmp_path / "out")["conv10"]["paddingheight"] == 1
    assert_close(opencv(proto, weights, x), run_viya_files(tmp_path / "out", x))


LRN_NETS = {"bvlc_alexnet.prototxt": ["norm1", "norm2"],
            "bvlc_reference_caffenet.prototxt": ["norm1", "norm2"],
            "bvlc_googlenet.prototxt": ["pool1/norm1", "conv2/norm2"],
            "cifar10_full.prototxt": ["norm1", "norm2"]}


@pytest.mark.parametrize("name", LRN_NETS)
def test_lrn_nets_are_refused_in_one_error(name):
    with pytest.raises(UnsupportedOp) as err:
        caffe_to_onnx(corpus(name))
    text = str(err.value)
    assert f"LRN x{len(LRN_NETS[name])}: " + ", ".join(repr(n) for n in LRN_NETS[name]) in text
    assert "drop_lrn=True" in text and err.value.node == LRN_NETS[name][0]


def test_drop_lrn_cifar10_full_deviation(tmp_path, record_property):
    """cifar10_full with its LRN layers dropped (drop_lrn=True) vs OpenCV running them: the
    measured deviation is reported (it is a different function, not a tolerance failure)."""
    proto = without_final_softmax(corpus("cifar10_full.prototxt"), tmp_path / "c.prototxt")
    weights = random_caffemodel(proto, tmp_path / "w.caffemodel", drop_lrn=True)
    x = np.random.default_rng(4).uniform(0, 1, (8, 3, 32, 32)).astype(np.float32)
    reference = opencv(proto, weights, x)["ip1"]
    conversion = caffe_to_onnx(proto, weights, drop_lrn=True)
    assert [w.split(":")[0] for w in conversion.warnings] == ["norm1", "norm2"]
    compile_caffe(proto, weights, tmp_path / "out", drop_lrn=True)
    got = run_viya_files(tmp_path / "out", x)["ip1"].reshape(reference.shape)
    deviation = float(np.abs(got - reference).max())
    relative = deviation / float(np.abs(reference).max())
    record_property("lrn_drop_max_abs", deviation)
    print(f"\ncifar10_full drop_lrn: logits max abs deviation {deviation:.3g} "
          f"({relative:.2%} of max |logit| {np.abs(reference).max():.3g}); "
          f"same argmax: {(got.argmax(1) == reference.argmax(1)).mean():.0%}")
    assert 0 < relative < 0.05


def test_vgg16_structure_without_weights():
    conversion = caffe_to_onnx(corpus("vgg16.prototxt"))
    model = conversion.model
    assert not conversion.has_weights and conversion.input_name == "data"
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 13
    assert all(list(a.ints) == [1, 1, 1, 1] for n in convs for a in n.attribute if a.name == "pads")
    out = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in out[1:]] == [1000]
    assert sum(int(np.prod(t.dims)) for t in model.graph.initializer) == 138_357_544


def test_vgg16_random_weights_match_opencv(tmp_path):
    """The full VGG16 (138 M weights, a 553 MB caffemodel) against OpenCV, logits compared."""
    proto = without_final_softmax(corpus("vgg16.prototxt"), tmp_path / "vgg16.prototxt")
    weights = random_caffemodel(proto, tmp_path / "w.caffemodel")
    x = np.random.default_rng(4).standard_normal((1, 3, 224, 224)).astype(np.float32)
    compile_caffe(proto, weights, tmp_path / "out")
    assert_close(opencv(proto, weights, x), run_viya_files(tmp_path / "out", x), atol=1e-4)


@pytest.mark.parametrize("name,grouped", [("bvlc_alexnet.prototxt", ["conv2", "conv4", "conv5"]),
                                          ("bvlc_googlenet.prototxt", [])])
def test_lrn_nets_with_drop_lrn_lower_structurally(name, grouped):
    """Structure only (zero weights, nothing written): every other layer lowers to Viya."""
    from irc.api import optimize
    from irc.backends.viya.lower import lower

    graph = import_caffe(corpus(name), None, drop_lrn=True)
    optimize(graph)
    model = lower(graph, name="m")
    kinds = {layer.name: layer for layer in model.layers}
    for conv in grouped:  # trap 24: AlexNet's group=2 convolutions
        assert kinds[conv].kind == "groupconvo" and kinds[conv].options["ngroups"] == 2
