#!/usr/bin/env python3
"""A larger ONNX model for `gpulibs verify` on a real GPU: a convolution stack (cuDNN), a chain
of 2048x2048 matrix products (cuBLAS) and a two-layer-wide LSTM (cuDNN RNN), about 60 MB of
weights, so session creation, first run and steady-state timings and VRAM mean something.

    python3 scripts/gpu/make-large-model.py OUT.onnx

Needs `onnx` and `numpy`. Opset 17, IR 8 (ONNX Runtime 1.20 and later). Seeded weights.
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)
inits, nodes = [], []


def w(name, *shape, scale=None):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    scale = scale or (1.0 / np.sqrt(fan_in))
    inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
    return name


x = "image"
channels = [3, 64, 64, 128, 128, 256, 256]
for i in range(len(channels) - 1):
    out = f"conv{i}"
    nodes.append(helper.make_node("Conv", [x, w(f"cw{i}", channels[i + 1], channels[i], 3, 3), w(f"cb{i}", channels[i + 1], scale=0.01)],
                                  [out], pads=[1, 1, 1, 1], strides=[2, 2] if i % 2 else [1, 1]))
    nodes.append(helper.make_node("Relu", [out], [f"relu{i}"]))
    x = f"relu{i}"
nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
nodes.append(helper.make_node("Flatten", ["gap"], ["feat"], axis=1))
nodes.append(helper.make_node("Gemm", ["feat", w("g0", 256, 2048), w("gb0", 2048, scale=0.01)], ["h0"]))
h = "h0"
for i in range(3):
    nodes.append(helper.make_node("MatMul", [h, w(f"m{i}", 2048, 2048)], [f"mm{i}"]))
    nodes.append(helper.make_node("Add", [f"mm{i}", w(f"mb{i}", 2048, scale=0.01)], [f"ma{i}"]))
    nodes.append(helper.make_node("Tanh", [f"ma{i}"], [f"mt{i}"]))
    h = f"mt{i}"
nodes.append(helper.make_node("Identity", [h], ["dense_out"]))

hidden = 512
nodes.append(helper.make_node("LSTM", ["sequence", w("lw", 1, 4 * hidden, 256), w("lr", 1, 4 * hidden, hidden), w("lb", 1, 8 * hidden, scale=0.01)],
                              ["lstm_y", "lstm_h"], hidden_size=hidden))
nodes.append(helper.make_node("Sigmoid", ["lstm_h"], ["lstm_out"]))

graph = helper.make_graph(
    nodes, "gpulibs-large",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, [4, 3, 128, 128]),
     helper.make_tensor_value_info("sequence", TensorProto.FLOAT, [64, 4, 256])],
    [helper.make_tensor_value_info("dense_out", TensorProto.FLOAT, [4, 2048]),
     helper.make_tensor_value_info("lstm_out", TensorProto.FLOAT, [1, 4, hidden])],
    inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="gpulibs make-large-model.py")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
print(f"{sys.argv[1]}: {sum(t.raw_data.__len__() for t in inits) / 1e6:.1f} MB of weights")
