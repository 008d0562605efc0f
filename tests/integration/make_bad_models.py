#!/usr/bin/python3
"""make_bad_models.py OUT_DIR - writes the malformed models and inputs that
tests/integration/test_bad_input.sh feeds to `kiln run`.

Every file is generated here at test time (nothing binary is committed):
  good.onnx            C = Softmax(A), D = Softmax(B), float32 [2,3]
  a.npy, b.npy         good inputs; a_int64.npy (wrong dtype), a_3x2.npy (wrong shape)
  truncated.onnx       good_init.onnx cut in the middle of its weights' header
  corrupted.onnx       good_init.onnx with bytes flipped (fixed seed)
  unknown_op.onnx      a node of op FrobnicateXYZ in domain com.example, opset 7
  empty.onnx           zero bytes
  raw_mismatch.onnx    an initializer of shape [4] float32 with 12 raw bytes
  dims_overflow.onnx   an initializer of shape [2^40, 2^40] float32
  escape.onnx          an initializer whose external data is ../escape_secret.bin
  a_truncated.npy      a.npy missing its last 8 bytes; a_bad.pb a [2,3] TensorProto with 20 raw bytes
  cycle.onnx           Softmax nodes feeding each other; dangling.onnx a node input nobody makes;
  no_import.onnx       a node in a domain the model does not import
  escape_link.onnx     external data through local_weights.bin, a link to ../escape_secret.bin
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
OPSET = [helper.make_opsetid("", 13)]


def save(model, name):
    with open(os.path.join(out, name), "wb") as f:
        f.write(model.SerializeToString())


def add_model(inits=(), extra_nodes=(), opsets=OPSET):
    # Two inputs, each through Softmax (an op kiln has had from the start).
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("B", TensorProto.FLOAT, [2, 3])
    c = helper.make_tensor_value_info("C", TensorProto.FLOAT, [2, 3])
    d = helper.make_tensor_value_info("D", TensorProto.FLOAT, [2, 3])
    nodes = [helper.make_node("Softmax", ["A"], ["C"], name="softmax_a"),
             helper.make_node("Softmax", ["B"], ["D"], name="softmax_b")] + list(extra_nodes)
    g = helper.make_graph(nodes, "bad_input_test", [a, b], [c, d], initializer=list(inits))
    return helper.make_model(g, opset_imports=opsets, producer_name="kiln-tests")


save(add_model(), "good.onnx")
np.save(os.path.join(out, "a.npy"), np.arange(6, dtype=np.float32).reshape(2, 3))
np.save(os.path.join(out, "b.npy"), np.ones((2, 3), dtype=np.float32))
np.save(os.path.join(out, "a_int64.npy"), np.arange(6, dtype=np.int64).reshape(2, 3))
np.save(os.path.join(out, "a_3x2.npy"), np.arange(6, dtype=np.float32).reshape(3, 2))

# A model with a weight, the base of the truncated and corrupted files.
w = numpy_helper.from_array(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), "W")
good_init = add_model(inits=[w])
data = good_init.SerializeToString()
save(good_init, "good_init.onnx")
with open(os.path.join(out, "truncated.onnx"), "wb") as f:
    f.write(data[: len(data) // 2])
rng = np.random.default_rng(20261125)
corrupt = bytearray(data)
for pos in rng.choice(len(data) // 4, size=12, replace=False):  # in the structural part, before the weights
    corrupt[pos] ^= int(rng.integers(1, 256))
with open(os.path.join(out, "corrupted.onnx"), "wb") as f:
    f.write(bytes(corrupt))

x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])
y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])
frob = helper.make_node("FrobnicateXYZ", ["X"], ["Y"], name="frob", domain="com.example")
unknown = helper.make_model(helper.make_graph([frob], "unknown_op", [x], [y]),
                            opset_imports=OPSET + [helper.make_opsetid("com.example", 7)])
save(unknown, "unknown_op.onnx")
open(os.path.join(out, "empty.onnx"), "wb").close()

bad_raw = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4], raw_data=b"\0" * 12)
save(add_model(inits=[bad_raw]), "raw_mismatch.onnx")

huge = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40], raw_data=b"\0" * 16)
save(add_model(inits=[huge]), "dims_overflow.onnx")

esc = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4])
esc.data_location = TensorProto.EXTERNAL
for k, v in (("location", "../escape_secret.bin"), ("offset", "0"), ("length", "16")):
    e = esc.external_data.add()
    e.key, e.value = k, v
with open(os.path.join(out, "..", "escape_secret.bin"), "wb") as f:
    f.write(b"\0" * 16)
save(add_model(inits=[esc]), "escape.onnx")

# Inputs that are broken files rather than wrong tensors.
with open(os.path.join(out, "a.npy"), "rb") as f:
    npy = f.read()
with open(os.path.join(out, "a_truncated.npy"), "wb") as f:
    f.write(npy[:-8])
bad_pb = TensorProto(name="A", data_type=TensorProto.FLOAT, dims=[2, 3], raw_data=b"\0" * 20)
with open(os.path.join(out, "a_bad.pb"), "wb") as f:
    f.write(bad_pb.SerializeToString())

# Graphs that are wrong as graphs.
x2 = helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])
y2 = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])
cycle = helper.make_graph([helper.make_node("Softmax", ["X", ], ["T"], name="s0"),
                           helper.make_node("Softmax", ["U"], ["Y"], name="s1"),
                           helper.make_node("Softmax", ["Y"], ["U"], name="s2")], "cycle", [x2], [y2])
save(helper.make_model(cycle, opset_imports=OPSET), "cycle.onnx")
dangling = helper.make_graph([helper.make_node("Softmax", ["nowhere"], ["Y"], name="lost")], "dangling", [x2], [y2])
save(helper.make_model(dangling, opset_imports=OPSET), "dangling.onnx")
no_import = helper.make_graph([helper.make_node("Softmax", ["X"], ["Y"], name="s", domain="com.example")],
                              "no_import", [x2], [y2])
save(helper.make_model(no_import, opset_imports=OPSET), "no_import.onnx")

# The same escape through a symbolic link that looks local.
link = os.path.join(out, "local_weights.bin")
if os.path.lexists(link):
    os.remove(link)
os.symlink(os.path.join("..", "escape_secret.bin"), link)
esc_link = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4])
esc_link.data_location = TensorProto.EXTERNAL
for k, v in (("location", "local_weights.bin"), ("offset", "0"), ("length", "16")):
    e = esc_link.external_data.add()
    e.key, e.value = k, v
save(add_model(inits=[esc_link]), "escape_link.onnx")
