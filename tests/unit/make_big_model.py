#!/usr/bin/python3
"""make_big_model.py OUT_DIR - the 200 MB models of tests/unit/test_memory.c.

  big_inline.onnx      x[1,3584] -> MatMul w0 -> MatMul w1 -> MatMul w2 -> MatMul w3 -> y,
                       each w a [3584,3584] float32 initializer (51 MB) stored as raw_data
                       inside the file, laid out by python-onnx's own serializer
  big_external.onnx    the same graph with the weights in big_external.weights
                       (ONNX external data, offsets as python-onnx writes them)
Weights are a cheap deterministic pattern (not random) so generation takes a
second or two.  Written once; test_memory.c calls this when the files are missing.
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data

N = 3584
LAYERS = 4


def build():
    base = np.arange(N * N, dtype=np.float32).reshape(N, N) % 97 / 97.0 - 0.5
    inits = [numpy_helper.from_array(base * (1.0 + k), "w%d" % k) for k in range(LAYERS)]
    nodes = []
    prev = "x"
    for k in range(LAYERS):
        out = "y" if k == LAYERS - 1 else "h%d" % k
        nodes.append(helper.make_node("MatMul", [prev, "w%d" % k], [out], name="matmul%d" % k))
        prev = out
    graph = helper.make_graph(nodes, "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="kiln-tests")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    model = build()
    with open(os.path.join(out, "big_inline.onnx.tmp"), "wb") as f:
        f.write(model.SerializeToString())
    os.replace(os.path.join(out, "big_inline.onnx.tmp"), os.path.join(out, "big_inline.onnx"))
    weights = os.path.join(out, "big_external.weights")
    if os.path.exists(weights):
        os.remove(weights)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="big_external.weights",
                                   size_threshold=1024)
    from onnx.external_data_helper import write_external_data_tensors
    model = write_external_data_tensors(model, out)
    with open(os.path.join(out, "big_external.onnx"), "wb") as f:
        f.write(model.SerializeToString())


if __name__ == "__main__":
    main()
