"""Every way a Caffe net declares its input, the legacy V1 ``layers`` form, TEST-phase layer
selection and in-place layers (renamed into single-assignment ONNX tensors)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from irc.errors import UnsupportedAttribute
from irc.frontends.caffe import caffe_to_onnx
from tests.caffe.conftest import check_against_opencv, write_net

BODY = ('layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        'convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }\n'
        'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
        'layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" '
        'pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" '
        'inner_product_param { num_output: 5 } }\n')

HEADERS = {
    "input_dim": 'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 10\ninput_dim: 10\n',
    "input_shape": 'input: "data"\ninput_shape { dim: 1 dim: 3 dim: 10 dim: 10 }\n',
    "Input_layer": 'layer { name: "data" type: "Input" top: "data" '
                   'input_param { shape { dim: 7 dim: 3 dim: 10 dim: 10 } } }\n',
    "MemoryData": 'layer { name: "data" type: "MemoryData" top: "data" top: "label" '
                  'memory_data_param { batch_size: 4 channels: 3 height: 10 width: 10 } }\n',
}


@pytest.mark.parametrize("header", HEADERS.values(), ids=HEADERS.keys())
def test_input_declarations(tmp_path, header):
    got = check_against_opencv(tmp_path, 'name: "n"\n' + header + BODY, (2, 3, 10, 10))
    assert set(got) == {"ip"}  # the MemoryData label top is not an output


DATA = ('layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN } '
        'transform_param { scale: 0.00390625 } data_param { source: "train_lmdb" '
        'batch_size: 64 backend: LMDB } }\n'
        'layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TEST } '
        'transform_param { scale: 0.00390625 } data_param { source: "test_lmdb" '
        'batch_size: 100 backend: LMDB } }\n')
LOSS = ('layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" '
        'include { phase: TEST } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" '
        'include { phase: TRAIN } }\n')


def test_data_layer_needs_input_shape(tmp_path):
    proto = write_net(tmp_path, 'name: "n"\n' + DATA + BODY)
    with pytest.raises(UnsupportedAttribute, match=r"pass input_shape=\(C, H, W\)") as err:
        caffe_to_onnx(proto)
    assert err.value.node == "mnist"


def test_data_layer_with_input_shape(tmp_path):
    got = check_against_opencv(tmp_path, 'name: "n"\n' + DATA + BODY, (2, 3, 10, 10),
                               input_shape=(3, 10, 10))
    assert set(got) == {"ip"}
    conversion = caffe_to_onnx(tmp_path / "net.prototxt", input_shape=(3, 10, 10))
    assert any("scale=0.00390625" in w and "input options" in w for w in conversion.warnings)


def test_train_val_net_keeps_the_test_phase_and_lists_loss_layers(tmp_path):
    proto = write_net(tmp_path, 'name: "n"\n' + DATA + BODY + LOSS)
    with pytest.raises(Exception, match=r"Accuracy x1: 'accuracy'") as err:
        caffe_to_onnx(proto, input_shape=(3, 10, 10))
    assert "SoftmaxWithLoss" not in str(err.value)  # a TRAIN-phase layer


def test_input_shape_overrides_the_declared_shape(tmp_path):
    proto = write_net(tmp_path, 'name: "n"\n' + HEADERS["input_shape"] + BODY)
    model = caffe_to_onnx(proto, input_shape={"data": (3, 12, 12)}).model
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 12, 12]
    with pytest.raises(UnsupportedAttribute, match="not net inputs"):
        caffe_to_onnx(proto, input_shape={"image": (3, 12, 12)})
    with pytest.raises(UnsupportedAttribute, match="does not fit"):
        caffe_to_onnx(proto, input_shape=(12, 12))


V1 = ('name: "v1"\ninput: "data"\ninput_dim: 1 input_dim: 3 input_dim: 10 input_dim: 10\n'
      'layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 1 '
      'blobs_lr: 2 weight_decay: 1 weight_decay: 0 convolution_param { num_output: 4 '
      'kernel_size: 3 pad: 1 group: 1 } }\n'
      'layers { name: "relu" type: RELU bottom: "conv" top: "conv" }\n'
      'layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: AVE '
      'kernel_size: 3 stride: 2 } }\n'
      'layers { name: "drop" type: DROPOUT bottom: "pool" top: "pool" }\n'
      'layers { name: "ip" type: INNER_PRODUCT bottom: "pool" top: "ip" blobs_lr: 1 blobs_lr: 2 '
      'inner_product_param { num_output: 5 } }\n'
      'layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" }\n')


@pytest.mark.parametrize("legacy_blobs", [False, True], ids=["shape", "legacy-4d-blobs"])
def test_legacy_v1_layers(tmp_path, legacy_blobs):
    check_against_opencv(tmp_path, V1, (2, 3, 10, 10), legacy_blobs=legacy_blobs)


def test_in_place_layers_become_single_assignment_tensors(tmp_path):
    text = 'name: "n"\n' + HEADERS["input_shape"] + BODY.replace('top: "pool"', 'top: "conv"') \
        .replace('bottom: "pool"', 'bottom: "conv"')
    model = caffe_to_onnx(write_net(tmp_path, text)).model
    onnx.checker.check_model(model)  # each tensor is written once
    produced = [o for n in model.graph.node for o in n.output]
    assert len(produced) == len(set(produced))
    # The last write of blob "conv" keeps its name; node names are the Caffe layer names.
    names = {n.name: (list(n.input), list(n.output)) for n in model.graph.node}
    assert names["pool"][1] == ["conv"]
    assert names["relu"][1][0] != "conv" and names["pool"][0] == names["relu"][1]
    assert {"conv", "relu", "pool", "ip"} <= set(names)


def test_net_outputs_are_the_unread_tops(tmp_path):
    text = 'name: "n"\n' + HEADERS["input_shape"] + BODY + \
        'layer { name: "ip2" type: "InnerProduct" bottom: "pool" top: "ip2" ' \
        'inner_product_param { num_output: 2 } }\n'
    got = check_against_opencv(tmp_path, text, (2, 3, 10, 10))
    assert set(got) == {"ip", "ip2"}
    model = caffe_to_onnx(tmp_path / "net.prototxt").model
    assert [o.name for o in model.graph.output] == ["ip", "ip2"]
    assert np.all([o.type.tensor_type.shape.dim[0].dim_param == "N" for o in model.graph.output])
