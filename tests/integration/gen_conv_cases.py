#!/usr/bin/env python3
"""gen_conv_cases.py OUTDIR - writes Conv test cases (model.onnx plus
test_data_set_0/{input,output}_0.pb) that reach conv.c's fast paths the way
real models do: weights and bias as initializers (so sessions pack the
weights once and, from level 2, the optimizer makes FusedConv with a
residual sum and an activation), over odd sizes, strides, pads (explicit
and auto_pad), groups (depthwise included), dilations, 1-D and 3-D
windows and batches of 2.  Expected outputs come from a plain NumPy
convolution (zero-padded input, one multiply-add per tap)."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(4321)


def conv_ref(x, w, b, strides, pads, dilations, group):
    nd = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    n, c = x.shape[:2]
    m = w.shape[0]
    k = w.shape[2:]
    out_sp = [(xp.shape[2 + i] - ((k[i] - 1) * dilations[i] + 1)) // strides[i] + 1 for i in range(nd)]
    y = np.zeros([n, m] + out_sp, dtype=np.float64)
    cg, mg = c // group, m // group
    for tap in np.ndindex(*k):
        sl = tuple(slice(tap[i] * dilations[i], tap[i] * dilations[i] + (out_sp[i] - 1) * strides[i] + 1, strides[i])
                   for i in range(nd))
        for g in range(group):
            xs = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + sl].astype(np.float64)
            ws = w[(slice(g * mg, (g + 1) * mg), slice(None)) + tap].astype(np.float64)
            y[:, g * mg:(g + 1) * mg] += np.einsum('nc...,mc->nm...', xs, ws)
    if b is not None:
        y += b.reshape([1, m] + [1] * nd)
    return y


def save(outdir, name, x, w, b, attrs, act=None, residual=False):
    nd = x.ndim - 2
    strides = attrs.get("strides", [1] * nd)
    dil = attrs.get("dilations", [1] * nd)
    pads = attrs.get("pads", [0] * (2 * nd))
    if attrs.get("auto_pad") == "SAME_UPPER":
        k = w.shape[2:]
        total = [max((-(-x.shape[2 + i] // strides[i]) - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 - x.shape[2 + i], 0)
                 for i in range(nd)]
        pads = [t // 2 for t in total] + [t - t // 2 for t in total]
    y = conv_ref(x, w, b, strides, pads, dil, attrs.get("group", 1))
    nodes, inits = [], [numpy_helper.from_array(w, "W")]
    ins = ["X", "W"]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "B"))
        ins.append("B")
    nodes.append(helper.make_node("Conv", ins, ["C"], **attrs))
    last = "C"
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)]
    if residual:
        z = RNG.standard_normal(y.shape).astype(np.float32)
        inits.append(numpy_helper.from_array(z, "Z"))
        nodes.append(helper.make_node("Add", [last, "Z"], ["S"]))
        last = "S"
        y = y + z
    if act == "Relu":
        nodes.append(helper.make_node("Relu", [last], ["A"]))
        y = np.maximum(y, 0)
        last = "A"
    elif act == "Clip":
        inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"),
                  numpy_helper.from_array(np.array(6, np.float32), "hi")]
        nodes.append(helper.make_node("Clip", [last, "lo", "hi"], ["A"]))
        y = np.clip(y, 0, 6)
        last = "A"
    nodes.append(helper.make_node("Identity", [last], ["Y"]))
    y = y.astype(np.float32)
    graph = helper.make_graph(nodes, name, graph_inputs,
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y.shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    case = os.path.join(outdir, name)
    os.makedirs(os.path.join(case, "test_data_set_0"), exist_ok=True)
    onnx.save(model, os.path.join(case, "model.onnx"))
    with open(os.path.join(case, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "X").SerializeToString())
    with open(os.path.join(case, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y, "Y").SerializeToString())


def case(outdir, name, n, c, m, sp, k, act=None, residual=False, bias=True, **attrs):
    x = RNG.standard_normal([n, c] + list(sp)).astype(np.float32)
    g = attrs.get("group", 1)
    w = (RNG.standard_normal([m, c // g] + list(k)) / np.sqrt(c // g * np.prod(k))).astype(np.float32)
    b = RNG.standard_normal([m]).astype(np.float32) if bias else None
    save(outdir, name, x, w, b, attrs, act, residual)


def main():
    out = sys.argv[1]
    case(out, "conv_3x3_s1_pad1_relu", 1, 16, 24, (13, 17), (3, 3), "Relu", pads=[1, 1, 1, 1])
    case(out, "conv_3x3_s1_pad1_residual_relu", 1, 24, 24, (14, 14), (3, 3), "Relu", True, pads=[1, 1, 1, 1])
    case(out, "conv_3x3_s2_pad1_clip", 2, 8, 20, (15, 33), (3, 3), "Clip", strides=[2, 2], pads=[1, 1, 1, 1])
    case(out, "conv_1x1_residual", 1, 40, 36, (7, 9), (1, 1), None, True)
    case(out, "conv_1x1_relu_wide", 1, 13, 70, (30, 31), (1, 1), "Relu")
    case(out, "conv_1x1_s2", 2, 16, 32, (9, 11), (1, 1), "Relu", strides=[2, 2])
    case(out, "conv_1x1_no_bias", 1, 64, 200, (7, 7), (1, 1), bias=False)
    case(out, "conv_5x5_dilated", 1, 6, 10, (21, 19), (5, 5), "Relu", dilations=[2, 2], pads=[4, 3, 4, 2])
    case(out, "conv_asym_kernel_pads", 1, 5, 7, (10, 23), (3, 2), None, pads=[0, 1, 2, 0], strides=[1, 2])
    case(out, "conv_groups_2", 1, 12, 18, (11, 11), (3, 3), "Relu", group=2, pads=[1, 1, 1, 1])
    case(out, "conv_groups_3_s2", 2, 9, 6, (16, 9), (3, 3), None, group=3, strides=[2, 2], pads=[1, 1, 1, 1])
    case(out, "conv_depthwise_3x3_s1_clip", 1, 32, 32, (28, 28), (3, 3), "Clip", group=32, pads=[1, 1, 1, 1])
    case(out, "conv_depthwise_3x3_s2_clip", 2, 24, 24, (17, 35), (3, 3), "Clip", group=24, strides=[2, 2],
         pads=[1, 1, 1, 1])
    case(out, "conv_depthwise_5x5_residual", 1, 8, 8, (9, 70), (5, 5), "Relu", True, group=8, pads=[2, 2, 2, 2])
    case(out, "conv_depthwise_mult2_dilated", 1, 4, 8, (12, 12), (3, 3), None, group=4, dilations=[2, 3],
         pads=[2, 3, 2, 3])
    case(out, "conv_depthwise_s3", 1, 6, 6, (20, 20), (3, 3), "Relu", group=6, strides=[3, 3], pads=[1, 1, 1, 1])
    case(out, "conv_auto_pad_same", 1, 7, 9, (10, 13), (3, 3), "Relu", auto_pad="SAME_UPPER", strides=[2, 2])
    case(out, "conv_1d", 2, 5, 8, (40,), (3,), "Relu", pads=[1, 1])
    case(out, "conv_1d_depthwise_s2", 1, 6, 6, (41,), (4,), None, group=6, strides=[2], pads=[1, 2])
    case(out, "conv_3d", 1, 3, 4, (5, 6, 7), (3, 3, 3), "Relu", pads=[1, 1, 1, 1, 1, 1])
    case(out, "conv_big_k_slices", 1, 300, 40, (9, 10), (3, 3), "Relu", pads=[1, 1, 1, 1])
    case(out, "conv_large_spatial", 1, 4, 16, (70, 90), (3, 3), "Relu", pads=[1, 1, 1, 1])


if __name__ == "__main__":
    main()
