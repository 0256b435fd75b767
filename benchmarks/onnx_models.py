"""ResNet50- and VGG16-shaped ONNX CNNs with seeded random weights, built in code (no downloads)."""
from __future__ import annotations

from irc.utils.onnx_builder import OnnxBuilder


def resnet50(image: int = 224, classes: int = 1000, seed: int = 0):
    """The ResNet50 v1 graph: 7x7/2 stem, 3-4-6-3 bottleneck blocks, BN after every conv."""
    b = OnnxBuilder("resnet50", ("N", 3, image, image), seed=seed)

    def conv_bn(x, out, k, stride=1, relu=True):
        y = b.batchnorm(b.conv(x, out, k, stride=stride, pads=[k // 2] * 4, bias=False))
        return b.op("Relu", y) if relu else y

    x = conv_bn(b.input, 64, 7, 2)
    x = b.op("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)]):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 0 else 1
            y = conv_bn(x, width, 1)
            y = conv_bn(y, width, 3, stride)
            y = conv_bn(y, width * 4, 1, relu=False)
            shortcut = conv_bn(x, width * 4, 1, stride, relu=False) if block == 0 else x
            x = b.op("Relu", b.op("Add", y, shortcut))
            b.channels[x] = width * 4
    x = b.op("Flatten", b.op("GlobalAveragePool", x))
    return b.build([b.op("Softmax", b.gemm(x, 2048, classes))])


def vgg16(image: int = 224, classes: int = 1000, seed: int = 0, dense: str = "gemm",
          flatten: str = "nchw", batchnorm: bool = False):
    """VGG16, with its weights in one of the layouts real files use (the same 138 M values
    whatever the layout, give or take the batchnorms):

    - ``dense``: "gemm" (W (out, in), transB=1, Viya's own layout), "gemm_in_out" (W (in, out),
      transB=0), "matmul" (MatMul by an (in, out) initializer, then Add of the bias);
    - ``flatten``: "nchw", or "nhwc" (a Transpose to N,H,W,C before the Flatten, as Keras-side
      exporters write it: the fc1 rows are in H,W,C order);
    - ``batchnorm``: a BatchNormalization after every conv and on the flattened vector before
      fc1 (folded into the conv kernels and, forward, into the fc1 columns).
    """
    import numpy as np

    b = OnnxBuilder("vgg16", ("N", 3, image, image), seed=seed)
    x = b.input
    for convs, width in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]:
        for _ in range(convs):
            x = b.conv(x, width, 3, pads=[1, 1, 1, 1])
            x = b.op("Relu", b.batchnorm(x) if batchnorm else x)
        x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    side = image // 32
    if flatten == "nhwc":
        x = b.op("Transpose", x, perm=[0, 2, 3, 1])
    x = b.op("Flatten", x)
    features = 512 * side * side
    if batchnorm:
        rng = np.random.default_rng(seed + 1)
        stats = [b.const(rng.uniform(lo, hi, features).astype(np.float32))
                 for lo, hi in ((0.5, 1.5), (-0.1, 0.1), (-0.1, 0.1), (0.5, 1.5))]
        x = b.op("BatchNormalization", x, *stats, epsilon=1e-3)

    def dense_layer(v, n_in, n_out):
        if dense == "matmul":
            return b.op("Add", b.op("MatMul", v, b.weight((n_in, n_out), 1 / np.sqrt(n_in))),
                        b.weight((n_out,), scale=0.1))
        return b.gemm(v, n_in, n_out, trans_b=0 if dense == "gemm_in_out" else 1)

    x = b.op("Relu", dense_layer(x, features, 4096))
    x = b.op("Relu", dense_layer(x, 4096, 4096))
    return b.build([b.op("Softmax", dense_layer(x, 4096, classes))])


def big_external(folder, in_features: int = 512 * 7 * 7, out_features: int = 22_000,
                 seed: int = 0, dense: str = "gemm", flatten: str = "nchw",
                 batchnorm: bool = False):
    """A conv + fc model whose fc weight (2.2 GB) lives in an external data file, in the same
    layouts as ``vgg16`` (``dense``: "gemm" W (out, in) with transB=1, "gemm_in_out" W (in, out)
    with transB=0, "matmul" by (in, out) then Add; ``flatten``: "nchw" or "nhwc";
    ``batchnorm``: after the conv and on the flattened vector, folded forward into the 2.2 GB
    fc weight), so that every transform irc applies meets a weight past protobuf's 2 GB.

    The weight file is filled in chunks through a memory map, so building it never holds
    2 GB in memory, and the .onnx file itself stays small (protobuf cannot exceed 2 GB).
    """
    from pathlib import Path

    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    folder = Path(folder)
    data_path = folder / "big.data"
    shape = (out_features, in_features) if dense == "gemm" else (in_features, out_features)
    weight = np.memmap(data_path, dtype=np.float32, mode="w+", shape=shape)
    rng = np.random.default_rng(seed)
    for start in range(0, shape[0], 1000):
        rows = weight[start:start + 1000]
        rows[...] = rng.standard_normal(rows.shape, dtype=np.float32) / np.sqrt(in_features)
    weight.flush()
    del weight
    tensor = TensorProto(name="fc_w", data_type=TensorProto.FLOAT, dims=shape)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", data_path.name), ("offset", "0"),
                       ("length", str(4 * out_features * in_features))):
        tensor.external_data.add(key=key, value=value)
    b = OnnxBuilder("big", ("N", 3, 14, 14), seed=seed)
    x = b.conv(b.input, in_features // 49, 3, stride=2, pads=[1, 1, 1, 1])
    x = b.op("Relu", b.batchnorm(x) if batchnorm else x)
    if flatten == "nhwc":
        x = b.op("Transpose", x, perm=[0, 2, 3, 1])
    x = b.op("Flatten", x)
    if batchnorm:
        stats = [b.const(rng.uniform(lo, hi, in_features).astype(np.float32))
                 for lo, hi in ((0.5, 1.5), (-0.1, 0.1), (-0.1, 0.1), (0.5, 1.5))]
        x = b.op("BatchNormalization", x, *stats, epsilon=1e-3)
    if dense == "matmul":
        fc = [helper.make_node("MatMul", [x, "fc_w"], ["fc_mm"], name="fc"),
              helper.make_node("Add", ["fc_mm", b.weight((out_features,), scale=0.1)],
                               ["logits"], name="fc_bias")]
    else:
        fc = [helper.make_node("Gemm", [x, "fc_w"], ["logits"], name="fc",
                               transB=1 if dense == "gemm" else 0)]
    graph = helper.make_graph(
        b.nodes + fc,
        "big", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 14, 14])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", out_features])],
        initializer=b.inits + [tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "big.onnx"
    onnx.save(model, str(path))
    return path
