"""A tiny builder of ONNX CNNs with seeded random weights, for examples, tests and benchmarks.

    b = OnnxBuilder("net", (1, 3, 32, 32))
    x = b.conv(b.input, 8, 3, pads=[1, 1, 1, 1]); x = b.op("Relu", x)
    model = b.build([x])
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from irc.ir.opset import IR_VERSION


class OnnxBuilder:
    def __init__(self, name: str, input_shape, seed: int = 0, opset: int = 17,
                 input_name: str = "input"):
        self.name = name
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.input = input_name
        self.input_shape = list(input_shape)
        self._n = 0
        self.channels = {input_name: input_shape[1]}

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def weight(self, shape, scale: float | None = None, name: str | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
        name = name or self._name("w")
        data = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(data, name))
        return name

    def const(self, array, name: str | None = None) -> str:
        name = name or self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None,
           **attrs) -> str:
        name = name or self._name(op_type.lower())
        outs = [name] if outputs == 1 else [f"{name}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name, **attrs))
        if inputs and inputs[0] in self.channels:
            self.channels[outs[0]] = self.channels[inputs[0]]
        return outs[0]

    def conv(self, x: str, out_channels: int, kernel: int | tuple, stride: int = 1,
             pads=None, group: int = 1, bias: bool = True, name: str | None = None,
             in_channels: int | None = None, **attrs) -> str:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        cin = in_channels or self.channels[x]
        w = self.weight((out_channels, cin // group, kh, kw))
        inputs = [x, w]
        if bias:
            inputs.append(self.weight((out_channels,), scale=0.1))
        if pads is not None:
            attrs["pads"] = list(pads)
        y = self.op("Conv", *inputs, name=name, kernel_shape=[kh, kw], strides=[stride, stride],
                    group=group, **attrs)
        self.channels[y] = out_channels
        return y

    def batchnorm(self, x: str, epsilon: float = 1e-5, name: str | None = None) -> str:
        c = self.channels[x]
        scale = self.const((1.0 + 0.2 * self.rng.standard_normal(c)).astype(np.float32))
        bias = self.const((0.1 * self.rng.standard_normal(c)).astype(np.float32))
        mean = self.const((0.1 * self.rng.standard_normal(c)).astype(np.float32))
        var = self.const((0.5 + self.rng.random(c)).astype(np.float32))
        return self.op("BatchNormalization", x, scale, bias, mean, var, name=name, epsilon=epsilon)

    def gemm(self, x: str, in_features: int, out_features: int, trans_b: int = 1,
             name: str | None = None, bias: bool = True, **attrs) -> str:
        shape = (out_features, in_features) if trans_b else (in_features, out_features)
        inputs = [x, self.weight(shape)]
        if bias:
            inputs.append(self.weight((out_features,), scale=0.1))
        y = self.op("Gemm", *inputs, name=name, transB=trans_b, **attrs)
        self.channels[y] = out_features
        return y

    def build(self, outputs: list[str], output_shapes=None) -> onnx.ModelProto:
        output_shapes = output_shapes or [None] * len(outputs)
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(self.input, TensorProto.FLOAT, self.input_shape)],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, s)
             for o, s in zip(outputs, output_shapes)],
            initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="irc-builder")
        model.ir_version = IR_VERSION
        # Output types come from shape inference so callers need not compute them.
        done = onnx.shape_inference.infer_shapes(model).graph
        inferred = {v.name: v for v in list(done.value_info) + list(done.output)}
        for out in model.graph.output:
            if not out.type.tensor_type.HasField("shape") and out.name in inferred:
                out.CopyFrom(inferred[out.name])
        onnx.checker.check_model(model)
        return model
