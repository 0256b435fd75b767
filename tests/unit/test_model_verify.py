"""`model.verify()`: the API's proof, for every source kind the README shows (ONNX file and
ModelProto, Caffe prototxt + caffemodel, an in-memory Keras model; PyTorch in
tests/pytorch/test_rough_edges.py). Each compares the source framework's own run with the
written files re-run by the executor (irc.verify's defaults: rtol 1e-4, atol 1e-5 against
each output's scale), and a corrupted weights file fails it."""
import h5py
import onnx
import pytest

import irc
from irc.errors import VerificationFailed
from tests.unit.test_cli import EXAMPLE


def test_onnx_file_and_proto_verify_and_a_corrupted_folder_fails(tmp_path):
    model = irc.compile(str(EXAMPLE))
    assert model.verify().ok
    folder = model.save(tmp_path / "o")
    assert model.verify(folder).ok
    with h5py.File(folder / model.weights_file, "r+") as f:
        kernel = f["res_conv2/res_conv2/kernel:0"]
        kernel[...] = kernel[...] * 1.01
    assert not model.verify(folder).ok
    assert irc.compile(onnx.load(str(EXAMPLE))).verify().ok


CAFFE_NET = """name: "tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 12 dim: 12 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
  inner_product_param { num_output: 5 } }
"""


def test_caffe_verifies_against_opencv(tmp_path):
    pytest.importorskip("cv2", reason="the Caffe oracle is OpenCV: pip install 'irc[test]'")
    from tests.caffe.conftest import random_caffemodel, write_net

    prototxt = write_net(tmp_path, CAFFE_NET)
    caffemodel = random_caffemodel(prototxt)
    result = irc.compile(str(prototxt), weights=str(caffemodel)).verify()
    assert result.ok, result.table()
    with pytest.raises(VerificationFailed, match="structure-only"):
        irc.compile(str(prototxt)).verify()  # no weights: nothing to run


def test_keras_model_in_memory_verifies_against_keras():
    pytest.importorskip("tensorflow", reason="the Keras extra: pip install 'irc[keras]'")
    from irc.frontends.keras.runtime import tf_modules

    keras = tf_modules().keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10, 10, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3)])
    result = irc.compile(model).verify()
    assert result.ok, result.table()
