#!/usr/bin/env python3
"""Builds the ONNX models `gpulibs verify` runs.

    python3 scripts/make-probe-model.py                      # the built-in probe model
    python3 scripts/make-probe-model.py --fixtures DIR       # the test fixtures as well

The probe (crates/gpulibs-verify/models/probe.onnx, embedded in the binary) exercises what an
ONNX Runtime CUDA install must get right: a cuDNN convolution, cuBLAS matrix products (MatMul and
Gemm), a cuDNN LSTM and elementwise kernels (Relu, Add, Mul, Sigmoid), at fixed small shapes.

The fixtures (crates/gpulibs-verify/tests/fixtures/) are the shapes real models come in: dynamic
dimensions (named and unnamed), a scalar input that must be a sensible value, a model that
rejects a one-sample input inside the graph (a padded convolution window, as voice-activity
models have), and an
encoder/decoder/joiner directory as speech models ship.

Weights come from a seeded RNG, so the output is byte-for-byte reproducible for one `onnx`
version. Opset 17 and IR version 8: ONNX Runtime 1.20 (IR <= 10, opset <= 21) and every later
release load them.

Needs the `onnx` and `numpy` packages (a venv is fine: `python3 -m venv /tmp/v &&
/tmp/v/bin/pip install onnx numpy`).
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "crates", "gpulibs-verify", "models", "probe.onnx")


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def save(graph, path):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="gpulibs make-probe-model.py",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    print(f"{path}: {os.path.getsize(path)} bytes")


def probe(path):
    rng = np.random.RandomState(20261124)
    f32 = np.float32
    c_in, c_out, hw, hidden, out = 3, 8, 16, 32, 16
    inits = [
        init("conv_w", (rng.randn(c_out, c_in, 3, 3) * 0.3).astype(f32)),
        init("conv_b", (rng.randn(c_out) * 0.1).astype(f32)),
        init("seq_shape", np.array([hw, 1, c_out * hw], dtype=np.int64)),
        # LSTM: W [dirs, 4*hidden, input], R [dirs, 4*hidden, hidden], B [dirs, 8*hidden]
        init("lstm_w", (rng.randn(1, 4 * hidden, c_out * hw) * 0.05).astype(f32)),
        init("lstm_r", (rng.randn(1, 4 * hidden, hidden) * 0.1).astype(f32)),
        init("lstm_b", (rng.randn(1, 8 * hidden) * 0.1).astype(f32)),
        init("y_shape", np.array([hw, hidden], dtype=np.int64)),
        init("h_shape", np.array([1, hidden], dtype=np.int64)),
        init("mm_w", (rng.randn(hidden, out) * 0.3).astype(f32)),
        init("mm_b", (rng.randn(out) * 0.1).astype(f32)),
        init("gemm_w", (rng.randn(hidden, out) * 0.3).astype(f32)),
        init("gemm_b", (rng.randn(out) * 0.1).astype(f32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        # [1, C, H, W] -> [H, 1, C, W] -> [H, 1, C*W]: H time steps of C*W features.
        helper.make_node("Transpose", ["relu"], ["seq4"], perm=[2, 0, 1, 3]),
        helper.make_node("Reshape", ["seq4", "seq_shape"], ["seq"]),
        helper.make_node(
            "LSTM", ["seq", "lstm_w", "lstm_r", "lstm_b"], ["lstm_y", "lstm_h"], hidden_size=hidden
        ),
        helper.make_node("Reshape", ["lstm_y", "y_shape"], ["y2"]),
        helper.make_node("MatMul", ["y2", "mm_w"], ["mm"]),
        helper.make_node("Add", ["mm", "mm_b"], ["mm_biased"]),
        helper.make_node("Sigmoid", ["mm_biased"], ["gate"]),
        helper.make_node("Reshape", ["lstm_h", "h_shape"], ["h"]),
        helper.make_node("Gemm", ["h", "gemm_w", "gemm_b"], ["proj"]),
        helper.make_node("Mul", ["gate", "proj"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "gpulibs-probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, hw, hw])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [hw, out]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, hidden]),
        ],
        inits,
    )
    save(graph, path)


def dynamic(path):
    """x: [batch, time, 8] (named dynamic dims), bias: [?] (an unnamed dynamic dim)."""
    rng = np.random.RandomState(1)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "bias"], ["sum"]),
            helper.make_node("Relu", ["sum"], ["y"]),
        ],
        "dynamic",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", 8]),
            helper.make_tensor_value_info("bias", TensorProto.FLOAT, [None]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "time", 4])],
        [init("w", rng.randn(8, 4).astype(np.float32))],
    )
    save(graph, path)


def scalar(path):
    """sr: an int64 scalar the graph turns into a shape; only sr in [16000, 17000) runs."""
    graph = helper.make_graph(
        [
            helper.make_node("Div", ["sr", "thousand"], ["k"]),
            helper.make_node("Unsqueeze", ["k", "axes0"], ["k1"]),
            helper.make_node("Concat", ["minus_one", "k1"], ["shape"], axis=0),
            helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1),
        ],
        "scalar",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])],
        [
            init("thousand", np.array(1000, dtype=np.int64)),
            init("axes0", np.array([0], dtype=np.int64)),
            init("minus_one", np.array([-1], dtype=np.int64)),
        ],
    )
    save(graph, path)


def rejects(path):
    """audio: [batch, samples]; a reflect Pad then a 16-tap convolution, as a VAD's front end
    has: fewer than 8 samples cannot fill the window, and the graph fails in the Conv node."""
    rng = np.random.RandomState(3)
    graph = helper.make_graph(
        [
            helper.make_node("Pad", ["audio", "pads"], ["padded"], mode="reflect"),
            helper.make_node("Unsqueeze", ["padded", "axes1"], ["chan"]),
            helper.make_node("Conv", ["chan", "taps"], ["frames"]),
            helper.make_node("ReduceMean", ["frames"], ["y"], keepdims=0),
        ],
        "rejects",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [
            init("pads", np.array([0, 4, 0, 4], dtype=np.int64)),
            init("axes1", np.array([1], dtype=np.int64)),
            init("taps", (rng.randn(1, 1, 16) * 0.25).astype(np.float32)),
        ],
    )
    save(graph, path)


def speech_set(directory):
    """encoder.onnx, decoder.onnx, joiner.onnx: the three files a transducer ships as."""
    rng = np.random.RandomState(2)
    f32 = np.float32
    enc = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w"], ["mm"]),
            helper.make_node("Tanh", ["mm"], ["encoder_out"]),
        ],
        "encoder",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, "T", 16])],
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, [1, "T", 8])],
        [init("w", (rng.randn(16, 8) * 0.5).astype(f32))],
    )
    save(enc, os.path.join(directory, "encoder.onnx"))
    dec = helper.make_graph(
        [
            helper.make_node("Gather", ["embedding", "tokens"], ["emb"]),
            helper.make_node("ReduceSum", ["emb", "axis1"], ["decoder_out"], keepdims=0),
        ],
        "decoder",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, 2])],
        [helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, [1, 8])],
        [
            init("embedding", rng.randn(10, 8).astype(f32)),
            init("axis1", np.array([1], dtype=np.int64)),
        ],
    )
    save(dec, os.path.join(directory, "decoder.onnx"))
    join = helper.make_graph(
        [
            helper.make_node("Add", ["enc", "dec"], ["sum"]),
            helper.make_node("Relu", ["sum"], ["act"]),
            helper.make_node("MatMul", ["act", "w"], ["logits"]),
            helper.make_node("ArgMax", ["logits"], ["best"], axis=1, keepdims=0),
        ],
        "joiner",
        [
            helper.make_tensor_value_info("enc", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("dec", TensorProto.FLOAT, [1, 8]),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10]),
            helper.make_tensor_value_info("best", TensorProto.INT64, [1]),
        ],
        [init("w", rng.randn(8, 10).astype(f32))],
    )
    save(join, os.path.join(directory, "joiner.onnx"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=DEFAULT_OUT, help="where to write the probe model")
    p.add_argument("--fixtures", metavar="DIR", help="also write the test fixtures to DIR")
    args = p.parse_args()
    probe(args.out)
    if args.fixtures:
        dynamic(os.path.join(args.fixtures, "dynamic.onnx"))
        scalar(os.path.join(args.fixtures, "scalar.onnx"))
        rejects(os.path.join(args.fixtures, "rejects.onnx"))
        speech_set(os.path.join(args.fixtures, "speech"))


if __name__ == "__main__":
    main()
