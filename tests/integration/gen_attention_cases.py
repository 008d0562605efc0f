#!/usr/bin/env python3
"""gen_attention_cases.py OUTDIR - writes attention test cases (model.onnx
plus test_data_set_0/{input,output}_N.pb) in the forms exporters write, so
the optimizer's attention fusion (src/opt/pass_attention.c) meets them the
way it meets real models.  Expected outputs come from NumPy in float64.
Each case directory name ends with the number of Attention nodes the
optimizer must make at level 2 and above ("..._fuse1", "..._fuse0").

  bert_fuse1      projections, Reshape to [B,S,H,D], the three head
                  Transposes (K with perm 0,2,3,1), Div by sqrt(D),
                  Add of a [B,1,1,S] mask, Softmax, MatMul, Transpose
                  back, Reshape to [B,S,H*D]
  long_fuse1      the same with 150 queries (several query blocks)
  bhsd_fuse1      Q, K, V given as [B,H,S,D]; K^T by perm 0,1,3,2; Mul
                  by a scale; no mask; Softmax axis 3 at opset 11;
                  Sq != Sk, Dv != D
  mqa_fuse1       one K/V head shared by four query heads (broadcast),
                  a full [B,H,Sq,Sk] mask
  probs_out_fuse0 the attention probabilities are also a graph output:
                  nothing may be fused
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(2024)
F = TensorProto.FLOAT


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def write(outdir, name, nodes, inputs, outputs, inits, feeds, expected, opset=13):
    d = os.path.join(outdir, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    g = helper.make_graph(nodes, name, inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(d, "model.onnx"))
    for i, (k, v) in enumerate(feeds.items()):
        t = numpy_helper.from_array(v.astype(np.float32), k)
        open(os.path.join(d, "test_data_set_0", "input_%d.pb" % i), "wb").write(t.SerializeToString())
    for i, (k, v) in enumerate(expected.items()):
        t = numpy_helper.from_array(v.astype(np.float32), k)
        open(os.path.join(d, "test_data_set_0", "output_%d.pb" % i), "wb").write(t.SerializeToString())


def bert_case(outdir, name, b, s, h, dh):
    hidden = h * dh
    x = RNG.standard_normal((b, s, hidden)).astype(np.float32)
    keep = (RNG.random((b, s)) > 0.3).astype(np.float32)
    keep[:, 0] = 1
    mask = ((1.0 - keep) * -10000.0).reshape(b, 1, 1, s).astype(np.float32)
    inits, nodes = {}, []
    heads = {}
    for p in "qkv":
        w = (RNG.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
        bias = (RNG.standard_normal(hidden) * 0.1).astype(np.float32)
        inits["W" + p], inits["b" + p] = w, bias
        nodes += [helper.make_node("MatMul", ["x", "W" + p], [p + "_mm"]),
                  helper.make_node("Add", [p + "_mm", "b" + p], [p + "_proj"]),
                  helper.make_node("Reshape", [p + "_proj", "shape4"], [p + "_4d"])]
        perm = [0, 2, 3, 1] if p == "k" else [0, 2, 1, 3]
        nodes.append(helper.make_node("Transpose", [p + "_4d"], [p + "_t"], perm=perm))
        heads[p] = (x.astype(np.float64) @ w + bias).reshape(b, s, h, dh).transpose(0, 2, 1, 3)
    inits["shape4"] = np.array([b, s, h, dh], np.int64)
    inits["shape3"] = np.array([b, s, hidden], np.int64)
    inits["sqrt_d"] = np.array(np.sqrt(dh), np.float32)
    nodes += [helper.make_node("MatMul", ["q_t", "k_t"], ["scores"]),
              helper.make_node("Div", ["scores", "sqrt_d"], ["scaled"]),
              helper.make_node("Add", ["scaled", "mask"], ["masked"]),
              helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
              helper.make_node("MatMul", ["probs", "v_t"], ["ctx"]),
              helper.make_node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ctx_t", "shape3"], ["y"])]
    scores = heads["q"] @ heads["k"].transpose(0, 1, 3, 2) / np.sqrt(dh) + mask
    y = (softmax(scores) @ heads["v"]).transpose(0, 2, 1, 3).reshape(b, s, hidden)
    write(outdir, name, nodes,
          [helper.make_tensor_value_info("x", F, [b, s, hidden]), helper.make_tensor_value_info("mask", F, [b, 1, 1, s])],
          [helper.make_tensor_value_info("y", F, [b, s, hidden])], inits, {"x": x, "mask": mask}, {"y": y})


def bhsd_case(outdir):
    b, h, sq, sk, d, dv = 2, 3, 5, 9, 8, 6
    q = RNG.standard_normal((b, h, sq, d)).astype(np.float32)
    k = RNG.standard_normal((b, h, sk, d)).astype(np.float32)
    v = RNG.standard_normal((b, h, sk, dv)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["K"], ["Kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["Q", "Kt"], ["scores"]),
             helper.make_node("Mul", ["scores", "scale"], ["scaled"]),
             helper.make_node("Softmax", ["scaled"], ["probs"], axis=3),
             helper.make_node("MatMul", ["probs", "V"], ["Y"])]
    y = softmax(q.astype(np.float64) @ k.transpose(0, 1, 3, 2) * 0.3) @ v
    write(outdir, "bhsd_fuse1", nodes,
          [helper.make_tensor_value_info("Q", F, list(q.shape)), helper.make_tensor_value_info("K", F, list(k.shape)),
           helper.make_tensor_value_info("V", F, list(v.shape))],
          [helper.make_tensor_value_info("Y", F, [b, h, sq, dv])], {"scale": np.array(0.3, np.float32)},
          {"Q": q, "K": k, "V": v}, {"Y": y}, opset=11)


def mqa_case(outdir):
    b, h, sq, sk, d = 2, 4, 5, 6, 8
    q = RNG.standard_normal((b, h, sq, d)).astype(np.float32)
    kt = RNG.standard_normal((b, 1, d, sk)).astype(np.float32)
    v = RNG.standard_normal((b, 1, sk, d)).astype(np.float32)
    mask = (RNG.standard_normal((b, h, sq, sk)) * 2).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["Q", "Kt"], ["scores"]),
             helper.make_node("Div", ["scores", "c"], ["scaled"]),
             helper.make_node("Add", ["mask", "scaled"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["probs"]),
             helper.make_node("MatMul", ["probs", "V"], ["Y"])]
    y = softmax(q.astype(np.float64) @ kt / 2.5 + mask) @ v
    write(outdir, "mqa_fuse1", nodes,
          [helper.make_tensor_value_info(n, F, list(a.shape)) for n, a in (("Q", q), ("Kt", kt), ("V", v), ("mask", mask))],
          [helper.make_tensor_value_info("Y", F, [b, h, sq, d])], {"c": np.array(2.5, np.float32)},
          {"Q": q, "Kt": kt, "V": v, "mask": mask}, {"Y": y})


def probs_out_case(outdir):
    b, h, s, d = 1, 2, 4, 4
    q = RNG.standard_normal((b, h, s, d)).astype(np.float32)
    kt = RNG.standard_normal((b, h, d, s)).astype(np.float32)
    v = RNG.standard_normal((b, h, s, d)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["Q", "Kt"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["probs"]),
             helper.make_node("MatMul", ["probs", "V"], ["Y"])]
    p = softmax(q.astype(np.float64) @ kt)
    write(outdir, "probs_out_fuse0", nodes,
          [helper.make_tensor_value_info(n, F, list(a.shape)) for n, a in (("Q", q), ("Kt", kt), ("V", v))],
          [helper.make_tensor_value_info("Y", F, [b, h, s, d]), helper.make_tensor_value_info("probs", F, [b, h, s, s])],
          {}, {"Q": q, "Kt": kt, "V": v}, {"Y": p @ v, "probs": p})


def main():
    outdir = sys.argv[1]
    bert_case(outdir, "bert_fuse1", 2, 7, 3, 4)
    bert_case(outdir, "long_fuse1", 1, 150, 2, 8)
    bhsd_case(outdir)
    mqa_case(outdir)
    probs_out_case(outdir)


if __name__ == "__main__":
    main()
