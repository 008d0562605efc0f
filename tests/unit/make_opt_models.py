#!/usr/bin/python3
"""make_opt_models.py OUT_DIR - small models for tests/unit/test_opt.c, one
per optimizer pattern: each is OUT_DIR/NAME.onnx with float32 inputs only
(the test feeds random values and compares the levels with each other)."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)


def const(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def rnd(*shape, s=0.5):
    return (rng.standard_normal(shape) * s).astype(np.float32)


def save(out, name, nodes, inputs, outputs, inits, opset=13):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="kiln-test")
    m.ir_version = 7
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, name + ".onnx"))


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def main(out):
    os.makedirs(out, exist_ok=True)
    n = helper.make_node
    # Conv -> BatchNormalization -> Relu
    save(out, "conv_bn_relu", [
        n("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        n("BatchNormalization", ["c", "s", "bb", "m", "v"], ["bn"], epsilon=1e-3),
        n("Relu", ["bn"], ["y"])],
        [f32("x", [1, 3, 8, 8])], [f32("y", [1, 4, 8, 8])],
        [const("w", rnd(4, 3, 3, 3)), const("b", rnd(4)), const("s", rnd(4) + 1), const("bb", rnd(4)),
         const("m", rnd(4)), const("v", np.abs(rnd(4)) + 0.5)])
    # depthwise Conv (no bias) -> Mul per channel -> Add per channel -> Clip(0, 6)
    save(out, "conv_mul_add_clip", [
        n("Conv", ["x", "w"], ["c"], group=4, pads=[1, 1, 1, 1]),
        n("Mul", ["c", "scale"], ["m"]),
        n("Add", ["shift", "m"], ["a"]),
        n("Clip", ["a", "lo", "hi"], ["y"])],
        [f32("x", [2, 4, 6, 6])], [f32("y", [2, 4, 6, 6])],
        [const("w", rnd(4, 1, 3, 3, s=2.0)), const("scale", rnd(4, 1, 1) + 1), const("shift", rnd(1, 4, 1, 1) + 1),
         const("lo", np.array(0.0, np.float32)), const("hi", np.array(6.0, np.float32))])
    # residual block: Conv -> Add(x) -> Relu
    save(out, "conv_residual", [
        n("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        n("Add", ["c", "x"], ["a"]),
        n("Relu", ["a"], ["y"])],
        [f32("x", [1, 4, 6, 6])], [f32("y", [1, 4, 6, 6])], [const("w", rnd(4, 4, 3, 3)), const("b", rnd(4))])
    # Identity / Dropout / Cast-to-same-type around a Relu; the output comes from an Identity
    save(out, "identity_dropout", [
        n("Identity", ["x"], ["i1"]),
        n("Dropout", ["i1"], ["d"]),
        n("Cast", ["d"], ["c"], to=TensorProto.FLOAT),
        n("Sigmoid", ["c"], ["r"]),
        n("Identity", ["r"], ["y"])],
        [f32("x", [3, 5])], [f32("y", [3, 5])], [])
    # constants computed at load: Add of two constants, a shape from Concat, then Reshape(x)
    save(out, "constant_folding", [
        n("Add", ["k1", "k2"], ["k"]),
        n("Concat", ["s1", "s2"], ["shape"], axis=0),
        n("Reshape", ["x", "shape"], ["r"]),
        n("Mul", ["r", "k"], ["y"]),
        n("Relu", ["k"], ["unused"])],
        [f32("x", [2, 6])], [f32("y", [3, 4])],
        [const("k1", rnd(3, 4)), const("k2", rnd(3, 4)), const("s1", np.array([3], np.int64)),
         const("s2", np.array([4], np.int64)), const("dead_weight", rnd(10))])
    # 2-D MatMul + Add -> Gemm (level 1), + LeakyRelu -> FusedGemm (level 2)
    save(out, "matmul_add_leaky", [
        n("MatMul", ["x", "w"], ["mm"]),
        n("Add", ["mm", "b"], ["a"]),
        n("LeakyRelu", ["a"], ["y"], alpha=0.2)],
        [f32("x", [4, 8])], [f32("y", [4, 16])], [const("w", rnd(8, 16)), const("b", rnd(16))])
    # BERT's pieces: LayerNorm written out, MatMul + Add, GELU written out
    # (40 columns: the prepacked weight ends in a partial panel)
    h = 16
    save(out, "layer_norm_gelu", [
        n("ReduceMean", ["x"], ["mean"], axes=[-1]),
        n("Sub", ["x", "mean"], ["d"]),
        n("Pow", ["d", "two"], ["sq"]),
        n("ReduceMean", ["sq"], ["var"], axes=[-1]),
        n("Add", ["var", "eps"], ["ve"]),
        n("Sqrt", ["ve"], ["std"]),
        n("Div", ["d", "std"], ["norm"]),
        n("Mul", ["norm", "gamma"], ["scaled"]),
        n("Add", ["scaled", "beta"], ["ln"]),
        n("MatMul", ["ln", "w"], ["mm"]),
        n("Add", ["bias", "mm"], ["lin"]),
        n("Div", ["lin", "sqrt2"], ["dv"]),
        n("Erf", ["dv"], ["e"]),
        n("Add", ["e", "one"], ["e1"]),
        n("Mul", ["lin", "e1"], ["g"]),
        n("Mul", ["g", "half"], ["y"])],
        [f32("x", [2, 5, h])], [f32("y", [2, 5, 40])],
        [const("two", np.array(2.0, np.float32)), const("eps", np.array(1e-5, np.float32)),
         const("gamma", rnd(h) + 1), const("beta", rnd(h)), const("w", rnd(h, 40)), const("bias", rnd(40)),
         const("sqrt2", np.array(1.4142135381698608, np.float32)), const("one", np.array(1.0, np.float32)),
         const("half", np.array(0.5, np.float32))])
    # attention scores: Q K^T with K transposed by [0,2,3,1] out of [b, s, heads, d]
    save(out, "transpose_matmul", [
        n("Transpose", ["q"], ["qt"], perm=[0, 2, 1, 3]),
        n("Transpose", ["k"], ["kt"], perm=[0, 2, 3, 1]),
        n("MatMul", ["qt", "kt"], ["y"])],
        [f32("q", [1, 6, 2, 4]), f32("k", [1, 6, 2, 4])], [f32("y", [1, 2, 6, 6])], [])
    # every activation the fused kernels apply, each after a Conv, Gemm or MatMul
    acts = [("HardSwish", {}), ("Sigmoid", {}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("Tanh", {}),
            ("LeakyRelu", {"alpha": 0.1}), ("Relu", {})]
    nodes, inits, outs = [], [const("cmin", np.array(-0.5, np.float32))], []
    for i, (op, attrs) in enumerate(acts):
        nodes.append(n("Conv", ["x", f"cw{i}", f"cb{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(n(op, [f"c{i}"], [f"ca{i}"], **attrs))
        nodes.append(n("Gemm", ["m", f"gw{i}", f"gb{i}"], [f"g{i}"], transB=1))
        nodes.append(n(op, [f"g{i}"], [f"ga{i}"], **attrs))
        nodes.append(n("MatMul", ["t", f"mw{i}"], [f"mm{i}"]))
        nodes.append(n("Add", [f"mm{i}", f"mb{i}"], [f"ma{i}"]))
        nodes.append(n(op, [f"ma{i}"], [f"mo{i}"], **attrs))
        inits += [const(f"cw{i}", rnd(2, 3, 3, 3)), const(f"cb{i}", rnd(2)), const(f"gw{i}", rnd(5, 4)),
                  const(f"gb{i}", rnd(5)), const(f"mw{i}", rnd(4, 6)), const(f"mb{i}", rnd(6))]
        outs += [f32(f"ca{i}", [1, 2, 5, 5]), f32(f"ga{i}", [3, 5]), f32(f"mo{i}", [2, 3, 6])]
    nodes.append(n("Conv", ["x", "cw0", "cb0"], ["cc"], pads=[1, 1, 1, 1]))
    nodes.append(n("Clip", ["cc", "cmin"], ["clip_min_only"]))
    outs.append(f32("clip_min_only", [1, 2, 5, 5]))
    save(out, "activations", nodes, [f32("x", [1, 3, 5, 5]), f32("m", [3, 4]), f32("t", [2, 3, 4])], outs, inits,
         opset=14)
    # the same in float64: the float32-only fused op must not be used
    f64 = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.DOUBLE, shape)
    save(out, "transpose_matmul_f64", [
        n("Transpose", ["k"], ["kt"], perm=[0, 2, 3, 1]),
        n("MatMul", ["q", "kt"], ["y"])],
        [f64("q", [1, 2, 6, 4]), f64("k", [1, 6, 2, 4])], [f64("y", [1, 2, 6, 6])], [])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/tests/opt_models")
