"""irc's Caffe schema: Caffe's field numbers (proved by OpenCV reading a caffemodel irc wrote),
the committed generated code, the real corpus files, and the errors for bad files."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from irc.errors import InvalidModel
from irc.frontends.caffe import CAFFE_LAYERS, caffe_subset_pb2 as pb, caffe_to_onnx
from irc.frontends.caffe.reader import blob_array, read_caffemodel, read_prototxt
from tests.caffe.conftest import CORPUS, add_blob, corpus, opencv, random_caffemodel, write_net

# Caffe's numbers (BVLC/caffe src/caffe/proto/caffe.proto) for the fields irc relies on most.
CAFFE_FIELD_NUMBERS = {
    "NetParameter": {"name": 1, "layers": 2, "input": 3, "input_dim": 4, "input_shape": 8,
                     "layer": 100},
    "LayerParameter": {"name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7, "include": 8,
                       "convolution_param": 106, "pooling_param": 121, "batch_norm_param": 139,
                       "scale_param": 142, "input_param": 143, "eltwise_param": 110,
                       "inner_product_param": 117, "lrn_param": 118, "relu_param": 123},
    "BlobProto": {"num": 1, "channels": 2, "height": 3, "width": 4, "data": 5, "shape": 7,
                  "double_data": 8},
    "V1LayerParameter": {"bottom": 2, "top": 3, "name": 4, "type": 5, "blobs": 6,
                         "convolution_param": 10, "pooling_param": 19, "blobs_lr": 7},
    "ConvolutionParameter": {"num_output": 1, "bias_term": 2, "pad": 3, "kernel_size": 4,
                             "group": 5, "stride": 6, "dilation": 18},
    "PoolingParameter": {"pool": 1, "kernel_size": 2, "stride": 3, "pad": 4,
                         "global_pooling": 12},
}


def test_field_numbers_are_caffes():
    for message, fields in CAFFE_FIELD_NUMBERS.items():
        descriptor = getattr(pb, message).DESCRIPTOR
        for name, number in fields.items():
            assert descriptor.fields_by_name[name].number == number, (message, name)
    assert pb.V1LayerParameter.CONVOLUTION == 4 and pb.V1LayerParameter.POOLING == 17


def test_generated_code_matches_the_proto(tmp_path):
    """The committed caffe_subset_pb2.py is what protoc makes of caffe_subset.proto."""
    pytest.importorskip("grpc_tools.protoc", reason=(
        "grpcio-tools is not installed (the `dev` extra: pip install -e '.[dev]'), so the "
        "committed caffe_subset_pb2.py was NOT checked against caffe_subset.proto"))
    import subprocess
    import sys
    from pathlib import Path

    src = Path(pb.__file__).with_name("caffe_subset.proto")
    (tmp_path / src.name).write_text(src.read_text())
    # In a subprocess: protoc's extension and an already-loaded protobuf runtime can crash
    # each other inside one interpreter.
    result = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}",
                             f"--python_out={tmp_path}", str(tmp_path / src.name)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    regenerated = (tmp_path / "caffe_subset_pb2.py").read_text()
    assert pb.DESCRIPTOR.serialized_pb.hex()[:64] and \
        regenerated.split("AddSerializedFile(")[1].split(")\n")[0] == \
        Path(pb.__file__).read_text().split("AddSerializedFile(")[1].split(")\n")[0]


@pytest.mark.parametrize("legacy", [False, True], ids=["shape", "num-channels-height-width"])
def test_opencv_reads_a_caffemodel_written_with_irc_schema(tmp_path, legacy):
    """Round trip: OpenCV's Caffe reader computes with the blobs irc's schema wrote."""
    text = ('name: "rt"\ninput: "data"\ninput_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
            'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
            'convolution_param { num_output: 3 kernel_size: 1 } }\n'
            'layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" '
            'inner_product_param { num_output: 4 } }\n')
    proto = write_net(tmp_path, text)
    rng = np.random.default_rng(0)
    w1, b1, w2, b2 = (rng.standard_normal(s).astype(np.float32)
                      for s in [(3, 2, 1, 1), (3,), (4, 27), (4,)])
    weights = random_caffemodel(proto, legacy_blobs=legacy,
                                override={"conv": [w1, b1], "ip": [w2, b2]})
    x = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    conv = np.einsum("oc,nchw->nohw", w1[:, :, 0, 0], x) + b1[None, :, None, None]
    expected = conv.reshape(2, -1) @ w2.T + b2
    got = opencv(proto, weights, x)["ip"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # ... and irc reads back what it wrote.
    net = read_caffemodel(weights)
    assert [tuple(blob_array(b).shape) for b in net.layer[0].blobs] == \
        ([(3, 2, 1, 1), (1, 1, 1, 3)] if legacy else [(3, 2, 1, 1), (3,)])


def test_opencv_reads_a_v1_caffemodel_written_with_irc_schema(tmp_path):
    text = ('name: "v1"\ninput: "data"\ninput_dim: 1 input_dim: 3 input_dim: 2 input_dim: 2\n'
            'layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" '
            'blobs_lr: 1 blobs_lr: 2 inner_product_param { num_output: 2 } }\n')
    proto = write_net(tmp_path, text)
    rng = np.random.default_rng(1)
    w, b = rng.standard_normal((2, 12)).astype(np.float32), rng.standard_normal(2)
    net = pb.NetParameter(name="v1")
    layer = net.layers.add(name="ip", type=pb.V1LayerParameter.INNER_PRODUCT)
    add_blob(layer, w, legacy=True)
    add_blob(layer, b, legacy=True)
    (tmp_path / "v1.caffemodel").write_bytes(net.SerializeToString())
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    got = opencv(proto, tmp_path / "v1.caffemodel", x)["ip"]
    np.testing.assert_allclose(got, x.reshape(2, -1) @ w.T + b, rtol=1e-5, atol=1e-5)


EXPECTED_TYPES = {  # layer counts of the fixtures (tests/fixtures/caffe)
    "lenet.prototxt": {"Input": 1, "Convolution": 2, "Pooling": 2, "InnerProduct": 2},
    "resnet50.prototxt": {"Convolution": 53, "BatchNorm": 53, "Scale": 53, "Eltwise": 16},
    "mobilenet_v1.prototxt": {"Convolution": 28, "BatchNorm": 27, "Scale": 27},
    "bvlc_googlenet.prototxt": {"Convolution": 57, "LRN": 2, "Concat": 9},
    "cifar10_full.prototxt": {"LRN": 2},
    "vgg16.prototxt": {"Convolution": 13, "InnerProduct": 3},
}


def test_all_corpus_prototxts_parse():
    files = sorted(CORPUS.glob("*.prototxt"))
    assert len(files) == 12, f"expected the 12 Caffe nets in {CORPUS}, found {len(files)}"
    found = {}
    for path in files:
        net = read_prototxt(path)
        assert not net.ignored_fields, (path.name, net.ignored_fields)
        found[path.name] = Counter(layer.type for layer in net.layers)
    for name, types in EXPECTED_TYPES.items():
        for type_, count in types.items():
            assert found[name][type_] == count, (name, type_, found[name])
    all_types = sorted(set().union(*found.values()))
    print("\nlayer types in the corpus:", ", ".join(all_types))
    unsupported = [t for t in all_types if t not in CAFFE_LAYERS]
    assert unsupported == ["LRN"], unsupported


def test_real_lenet_caffemodel_loads():
    net = read_caffemodel(corpus("lenet_iter_10000.caffemodel"))
    blobs = {layer.name: [blob_array(b).shape for b in layer.blobs] for layer in net.layer
             if len(layer.blobs)}
    assert blobs == {"conv1": [(20, 1, 5, 5), (20,)], "conv2": [(50, 20, 5, 5), (50,)],
                     "ip1": [(500, 800), (500,)], "ip2": [(10, 500), (10,)]}


def test_irc_ops_lists_the_caffe_layers():
    table = dict(CAFFE_LAYERS.support_table())
    assert set(table) == {"BatchNorm", "Concat", "Convolution", "Data", "Dropout", "Eltwise",
                          "Flatten", "InnerProduct", "Input", "MemoryData", "Pooling", "PReLU",
                          "ReLU", "Scale", "Sigmoid", "Softmax", "Split", "TanH"}
    assert all(note for note in table.values())


# ---- errors ---------------------------------------------------------------------------------

NET = ('name: "e"\ninput: "data"\ninput_shape { dim: 1 dim: 2 dim: 4 dim: 4 }\n'
       'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
       'convolution_param { num_output: 3 kernel_size: 3 } }\n')


def test_missing_files(tmp_path):
    with pytest.raises(InvalidModel, match="not found") as err:
        caffe_to_onnx(tmp_path / "absent.prototxt")
    assert err.value.file.endswith("absent.prototxt") and err.value.hint
    proto = write_net(tmp_path, NET)
    with pytest.raises(InvalidModel, match="caffemodel not found"):
        caffe_to_onnx(proto, tmp_path / "absent.caffemodel")


def test_parse_error_reports_line_and_column(tmp_path):
    proto = write_net(tmp_path, NET + 'layer { name: "r" type: "ReLU" bottom: "conv" top: }\n')
    with pytest.raises(InvalidModel, match=r"line 5, column 52.*Expected string") as err:
        caffe_to_onnx(proto)
    assert err.value.file == str(proto) and err.value.hint


def test_unknown_fields_are_skipped_and_reported(tmp_path):
    text = NET.replace("kernel_size: 3", "kernel_size: 3 my_fork_option: 7 "
                                         "fancy_param { a: 1 b { c: 2 } }")
    conversion = caffe_to_onnx(write_net(tmp_path, text))
    assert any("ConvolutionParameter.my_fork_option" in w and "line 4" in w
               for w in conversion.warnings), conversion.warnings
    assert any("ConvolutionParameter.fancy_param" in w for w in conversion.warnings)


def test_garbage_caffemodel(tmp_path):
    (tmp_path / "bad.caffemodel").write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(InvalidModel, match="not a readable caffemodel"):
        caffe_to_onnx(write_net(tmp_path, NET), tmp_path / "bad.caffemodel")


def test_caffemodel_that_does_not_match(tmp_path):
    proto = write_net(tmp_path, NET + 'layer { name: "ip" type: "InnerProduct" bottom: "conv" '
                                      'top: "ip" inner_product_param { num_output: 5 } }\n')
    net = pb.NetParameter()
    conv = net.layer.add(name="conv")
    add_blob(conv, np.zeros((3, 2, 5, 5)))  # a 5x5 kernel; the prototxt says 3x3
    add_blob(conv, np.zeros(3))
    (tmp_path / "w.caffemodel").write_bytes(net.SerializeToString())
    with pytest.raises(InvalidModel) as err:
        caffe_to_onnx(proto, tmp_path / "w.caffemodel")
    text = str(err.value)
    assert "conv: weights blob has shape [3, 2, 5, 5], the prototxt implies [3, 2, 3, 3]" in text
    assert "ip: the caffemodel has no blobs" in text and "weights [5, 12]" in text
    assert err.value.node == "conv" and err.value.file.endswith("w.caffemodel") and err.value.hint


def test_structure_only_without_caffemodel(tmp_path):
    conversion = caffe_to_onnx(write_net(tmp_path, NET))
    assert conversion.has_weights is False and conversion.input_name == "data"
    assert conversion.blob_shapes == {"conv": [("weights", (3, 2, 3, 3)), ("bias", (3,))]}
    from onnx import numpy_helper

    assert all(not numpy_helper.to_array(t).any() for t in conversion.model.graph.initializer)
