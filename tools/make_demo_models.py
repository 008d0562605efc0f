#!/usr/bin/python3
"""make_demo_models.py OUT_DIR - writes kiln's small demo models and inputs.

Made at build time (Makefile target build/models/.stamp), never committed:
  demo_mlp.onnx           input[N,16] -> MatMul 16x32 -> Add -> Relu -> MatMul 32x10
                          -> Add -> Softmax -> output[N,10]; weights from seed 2026
  demo_mlp_input.npy      a [2,16] float32 input (`make run` feeds it)
  demo_mlp_expected.npy   the output numpy computes for it
  demo_softmax.onnx       input[2,4] -> Softmax -> output (one op, for API examples)
  demo_softmax_expected.npy  its output for the input examples/simple_run.c makes
Uses only python3-onnx and python3-numpy from Debian.
"""
import os
import sys

import numpy as np
from onnx import TensorProto, checker, helper, numpy_helper

OPSET = [helper.make_opsetid("", 13)]


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def save(model, path):
    checker.check_model(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def demo_mlp(out):
    rng = np.random.default_rng(2026)
    w1 = (rng.standard_normal((16, 32)) * 0.25).astype(np.float32)
    b1 = (rng.standard_normal(32) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((32, 10)) * 0.25).astype(np.float32)
    b2 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["h1"], name="fc1"),
        helper.make_node("Add", ["h1", "b1"], ["h1b"], name="fc1_bias"),
        helper.make_node("Relu", ["h1b"], ["h1r"], name="relu1"),
        helper.make_node("MatMul", ["h1r", "w2"], ["h2"], name="fc2"),
        helper.make_node("Add", ["h2", "b2"], ["logits"], name="fc2_bias"),
        helper.make_node("Softmax", ["logits"], ["output"], name="softmax", axis=-1),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    graph = helper.make_graph(
        nodes, "demo_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        initializer=inits)
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="kiln-demo"), os.path.join(out, "demo_mlp.onnx"))
    x = rng.standard_normal((2, 16)).astype(np.float32)
    np.save(os.path.join(out, "demo_mlp_input.npy"), x)
    y = softmax(np.maximum(x @ w1 + b1, 0) @ w2 + b2).astype(np.float32)
    np.save(os.path.join(out, "demo_mlp_expected.npy"), y)


def demo_softmax(out):
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["input"], ["output"], name="softmax", axis=-1)], "demo_softmax",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, 4])])
    save(helper.make_model(graph, opset_imports=OPSET, producer_name="kiln-demo"),
         os.path.join(out, "demo_softmax.onnx"))
    # examples/simple_run.c fills element i of a float input with (i % 10) * 0.1
    x = ((np.arange(8) % 10) * 0.1).astype(np.float32).reshape(2, 4)
    np.save(os.path.join(out, "demo_softmax_expected.npy"), softmax(x).astype(np.float32))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/models"
    os.makedirs(out, exist_ok=True)
    demo_mlp(out)
    demo_softmax(out)


if __name__ == "__main__":
    main()
