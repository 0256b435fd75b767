"""Writes examples/small_cnn.onnx: a small CNN with seeded random weights (run from the repo root).

conv-bn-relu, a residual block, max pooling, a three-branch concat, global average pooling
and a softmax classifier: one of each thing irc's ONNX path handles.
"""
from pathlib import Path

from irc.utils.onnx_builder import OnnxBuilder


def build():
    b = OnnxBuilder("small_cnn", (1, 3, 32, 32), seed=7)
    x = b.conv(b.input, 16, 3, pads=[1, 1, 1, 1], name="stem_conv")
    x = b.op("Relu", b.batchnorm(x, name="stem_bn"), name="stem_relu")
    x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2], name="stem_pool")
    y = b.op("Relu", b.conv(x, 16, 3, pads=[1, 1, 1, 1], name="res_conv1"), name="res_relu1")
    y = b.conv(y, 16, 3, pads=[1, 1, 1, 1], name="res_conv2")
    x = b.op("Relu", b.op("Add", x, y, name="res_add"), name="res_relu2")
    branches = [b.op("Relu", b.conv(x, 8, k, pads=[k // 2] * 4, name=f"branch{k}_conv"),
                     name=f"branch{k}_relu") for k in (1, 3, 5)]
    x = b.op("Concat", *branches, axis=1, name="branches")
    b.channels[x] = 24
    x = b.op("GlobalAveragePool", x, name="gap")
    x = b.op("Flatten", x, name="flatten")
    x = b.gemm(x, 24, 10, name="classifier")
    x = b.op("Softmax", x, name="prob")
    return b.build([x])


if __name__ == "__main__":
    import onnx

    target = Path(__file__).with_name("small_cnn.onnx")
    onnx.save(build(), target)
    print(f"wrote {target}")
