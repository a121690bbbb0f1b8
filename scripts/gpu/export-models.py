#!/usr/bin/env python3
"""Models for placement-aware `gpulibs verify` on a real GPU (issue 11), exported on the device
with the torch and onnx of its image. Each covers a way ONNX Runtime places nodes:

    resnet18.onnx        torchvision ResNet-18: convolutions, Gemm (expect every node on CUDA)
    transformer.onnx     2-layer TransformerEncoder, batch and sequence dynamic: attention
                         (MatMul/Softmax), shape subgraphs from the dynamic axes
    recurrent.onnx       a 2-layer GRU feeding an LSTM: recurrent layers
    control_flow.onnx    onnx.helper: If (on the input's sign) and Loop (3 steps) around MatMul,
                         and a Shape -> Gather -> Concat -> Reshape chain (a shape subgraph)
    stft.onnx            a log-mel front end at opset 17: STFT (no CUDA kernel in ORT 1.31), power,
                         a 201x80 mel MatMul, Log. torch.stft when it exports, else onnx.helper
    dynamic_reshape.onnx a small CNN whose flatten uses x.size(0) (torch's Shape/Gather/
                         Concat/Reshape), batch dynamic

    python3 scripts/gpu/export-models.py OUTDIR

Prints one line per model: its file, size, input shapes to pass as --shape, and which ops it has.
Seeded; torch's exporter is called with dynamo=False, opset 17 (gpu-notes.md: what worked).
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1] if len(sys.argv) > 1 else "models"
os.makedirs(out, exist_ok=True)
made = []


def note(name, shapes, detail=""):
    path = os.path.join(out, name)
    m = onnx.load(path, load_external_data=False)
    ops = sorted({n.op_type for n in m.graph.node})
    made.append(name)
    print(f"{name}\t{os.path.getsize(path)} B\tshapes: {shapes or '-'}\tops: {','.join(ops)}\t{detail}")


def torch_models():
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    kw = dict(dynamo=False, opset_version=17, do_constant_folding=True)

    # ResNet-18, untrained (weights do not matter for placement; no network on the device).
    import torchvision

    m = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(m, (x,), os.path.join(out, "resnet18.onnx"), input_names=["image"],
                      output_names=["logits"], **kw)
    note("resnet18.onnx", "")

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128,
                                               batch_first=True, dropout=0.0)
            self.enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.out = nn.Linear(64, 16)

        def forward(self, x):
            return self.out(self.enc(x))

    m = Encoder().eval()
    x = torch.randn(2, 50, 64)
    torch.onnx.export(m, (x,), os.path.join(out, "transformer.onnx"), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "T"}, "y": {0: "batch", 1: "T"}},
                      **kw)
    note("transformer.onnx", "--shape batch=2 --shape T=50")

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(40, 64, num_layers=2, batch_first=True)
            self.lstm = nn.LSTM(64, 32, batch_first=True)
            self.head = nn.Linear(32, 8)

        def forward(self, x):
            y, _ = self.gru(x)
            y, _ = self.lstm(y)
            return self.head(y)

    m = Recurrent().eval()
    x = torch.randn(1, 100, 40)
    torch.onnx.export(m, (x,), os.path.join(out, "recurrent.onnx"), input_names=["feats"],
                      output_names=["y"], dynamic_axes={"feats": {1: "T"}, "y": {1: "T"}}, **kw)
    note("recurrent.onnx", "--shape T=100")

    class Flatten(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 16 * 16, 10)

        def forward(self, x):
            y = torch.relu(self.conv(x))
            return self.fc(y.view(x.size(0), -1))

    m = Flatten().eval()
    x = torch.randn(2, 3, 16, 16)
    torch.onnx.export(m, (x,), os.path.join(out, "dynamic_reshape.onnx"), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      do_constant_folding=False, dynamo=False, opset_version=17)
    note("dynamic_reshape.onnx", "--shape batch=2")

    class Stft(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("window", torch.hann_window(400))
            self.register_buffer("mel", torch.rand(201, 80))

        def forward(self, audio):
            spec = torch.stft(audio, n_fft=400, hop_length=160, window=self.window, center=False,
                              return_complex=True)
            power = torch.view_as_real(spec).pow(2).sum(-1)  # [batch, 201, frames]
            return torch.log(torch.matmul(power.transpose(1, 2), self.mel) + 1e-6)

    try:
        m = Stft().eval()
        x = torch.randn(1, 16000)
        torch.onnx.export(m, (x,), os.path.join(out, "stft.onnx"), input_names=["audio"],
                          output_names=["logmel"], dynamic_axes={"audio": {1: "samples"}}, **kw)
        note("stft.onnx", "--shape samples=16000", "torch.stft")
    except Exception as e:  # the exporter's STFT support varies: build it by hand instead
        print(f"torch.stft export failed ({type(e).__name__}: {str(e)[:200]}); building STFT with onnx.helper")
        stft_by_hand()


def stft_by_hand():
    rng = np.random.default_rng(3)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array([-1], np.int64), "last"),
        numpy_helper.from_array(np.array(160, np.int64), "step"),
        numpy_helper.from_array(window, "window"),
        numpy_helper.from_array(np.array(400, np.int64), "frame_length"),
        numpy_helper.from_array(rng.random((201, 80)).astype(np.float32), "mel"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["audio", "last"], ["signal"], name="to_signal"),
        helper.make_node("STFT", ["signal", "step", "window", "frame_length"], ["spec"], name="stft",
                         onesided=1),
        helper.make_node("Mul", ["spec", "spec"], ["sq"], name="square"),
        helper.make_node("ReduceSum", ["sq", "last"], ["power"], name="power", keepdims=0),
        helper.make_node("MatMul", ["power", "mel"], ["melspec"], name="mel"),
        helper.make_node("Add", ["melspec", "eps"], ["floored"], name="floor"),
        helper.make_node("Log", ["floored"], ["logmel"], name="log"),
    ]
    g = helper.make_graph(nodes, "stft_frontend",
                          [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, "samples"])],
                          [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, [1, None, 80])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, "stft.onnx"))
    note("stft.onnx", "--shape samples=16000", "onnx.helper")


def control_flow():
    """If on the sign of the input's sum, a 3-step Loop, and a shape subgraph, around MatMuls."""
    rng = np.random.default_rng(5)

    def f(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), name)

    then_g = helper.make_graph(
        [helper.make_node("MatMul", ["h", "w_then"], ["branch"], name="then_matmul")], "then", [],
        [helper.make_tensor_value_info("branch", TensorProto.FLOAT, None)])
    else_g = helper.make_graph(
        [helper.make_node("MatMul", ["h", "w_else"], ["m"], name="else_matmul"),
         helper.make_node("Relu", ["m"], ["branch"], name="else_relu")], "else", [],
        [helper.make_tensor_value_info("branch", TensorProto.FLOAT, None)])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="loop_cond"),
         helper.make_node("MatMul", ["carry_in", "w_loop"], ["mm"], name="loop_matmul"),
         helper.make_node("Tanh", ["mm"], ["carry_out"], name="loop_tanh")], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("carry_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("carry_out", TensorProto.FLOAT, None)])
    inits = [f("w_in", 32, 32), f("w_then", 32, 32), f("w_else", 32, 32), f("w_loop", 32, 32),
             numpy_helper.from_array(np.array(3, np.int64), "trips"),
             numpy_helper.from_array(np.array(True), "true"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "idx0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    nodes = [
        helper.make_node("MatMul", ["x", "w_in"], ["h"], name="in_matmul"),
        helper.make_node("ReduceSum", ["x"], ["total"], name="total", keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"], name="positive"),
        helper.make_node("If", ["positive"], ["branch"], name="branch_if", then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trips", "true", "branch"], ["looped"], name="loop", body=body),
        # the shape subgraph: [batch, -1] from Shape(x)[0]
        helper.make_node("Shape", ["x"], ["x_shape"], name="shape_of_x"),
        helper.make_node("Gather", ["x_shape", "idx0"], ["batch"], name="batch_dim", axis=0),
        helper.make_node("Concat", ["batch", "minus1"], ["target"], name="target_shape", axis=0),
        helper.make_node("Reshape", ["looped", "target"], ["y"], name="flatten"),
    ]
    g = helper.make_graph(nodes, "control_flow",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "T", 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, "control_flow.onnx"))
    note("control_flow.onnx", "--shape batch=2 --shape T=10")


control_flow()
try:
    torch_models()
except ImportError as e:
    print(f"torch or torchvision missing ({e}): only the onnx.helper models")
    stft_by_hand()
print(f"{len(made)} models in {out}")
