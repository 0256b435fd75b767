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


def vgg16(image: int = 224, classes: int = 1000, seed: int = 0):
    b = OnnxBuilder("vgg16", ("N", 3, image, image), seed=seed)
    x = b.input
    for convs, width in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]:
        for _ in range(convs):
            x = b.op("Relu", b.conv(x, width, 3, pads=[1, 1, 1, 1]))
        x = b.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    side = image // 32
    x = b.op("Flatten", x)
    x = b.op("Relu", b.gemm(x, 512 * side * side, 4096))
    x = b.op("Relu", b.gemm(x, 4096, 4096))
    return b.build([b.op("Softmax", b.gemm(x, 4096, classes))])
