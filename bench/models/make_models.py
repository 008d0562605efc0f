#!/usr/bin/python3
"""make_models.py OUT_DIR [resnet50 mobilenetv2 bert] - writes the benchmark
models in the ONNX backend-test layout (OUT_DIR/NAME/model.onnx and
OUT_DIR/NAME/test_data_set_0/input_N.pb), at fixed seeds, shaped the way a
framework exporter writes them:

  resnet50     ResNet-50 v1.5 (stride on the 3x3 conv), 1x3x224x224, opset 13:
               Conv (no bias) -> BatchNormalization -> Relu, MaxPool, Add,
               GlobalAveragePool, Flatten, Gemm.
  mobilenetv2  MobileNetV2 1.0, 1x3x224x224, opset 13: Conv/depthwise Conv ->
               BatchNormalization -> Clip(0, 6), residual Add, GlobalAveragePool,
               Flatten, Gemm.
  bert         BERT-base encoder (12 layers, hidden 768, 12 heads), batch 1,
               sequence 128, as PyTorch exports it at opset 13: Gather embeddings,
               MatMul + Add, Reshape, Transpose, Softmax, LayerNorm written out as
               ReduceMean/Sub/Pow/Sqrt/Div, GELU written out with Erf.

Expected outputs (output_N.pb) come from ONNX Runtime: bench/peer/make_expected.js.
Weights are random (He-scaled, fixed seeds); batch-norm statistics are kept
realistic so activations stay in range.  Uses python3-onnx and python3-numpy.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 13)]


class Builder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array, prefix="w"):
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def node(self, op, inputs, n_out=1, **attrs):
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(op), **attrs))
        return outs[0] if n_out == 1 else outs

    def conv_bn(self, x, cin, cout, k, stride=1, groups=1, act="relu"):
        fan_in = cin // groups * k * k
        w = (self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        y = self.node("Conv", [x, self.const(w)], kernel_shape=[k, k], strides=[stride, stride],
                      pads=[k // 2] * 4, group=groups, dilations=[1, 1])
        scale = (1.0 + 0.1 * self.rng.standard_normal(cout)).astype(np.float32)
        bias = (0.1 * self.rng.standard_normal(cout)).astype(np.float32)
        mean = (0.1 * self.rng.standard_normal(cout)).astype(np.float32)
        var = (1.0 + 0.1 * np.abs(self.rng.standard_normal(cout))).astype(np.float32)
        y = self.node("BatchNormalization", [y, self.const(scale), self.const(bias), self.const(mean),
                                             self.const(var)], epsilon=1e-5, momentum=0.9)
        if act == "relu":
            y = self.node("Relu", [y])
        elif act == "relu6":
            y = self.node("Clip", [y, self.const(np.array(0.0, np.float32)), self.const(np.array(6.0, np.float32))])
        return y

    def classifier(self, x, cin, classes=1000):
        y = self.node("GlobalAveragePool", [x])
        y = self.node("Flatten", [y], axis=1)
        w = (self.rng.standard_normal((classes, cin)) * np.sqrt(1.0 / cin)).astype(np.float32)
        b = (0.01 * self.rng.standard_normal(classes)).astype(np.float32)
        return self.node("Gemm", [y, self.const(w), self.const(b)], alpha=1.0, beta=1.0, transB=1)

    def model(self, name, inputs, output, out_shape, out_type=TensorProto.FLOAT):
        outs = [helper.make_tensor_value_info(output, out_type, out_shape)]
        graph = helper.make_graph(self.nodes, name, inputs, outs, self.inits)
        m = helper.make_model(graph, opset_imports=OPSET, producer_name="kiln-bench")
        m.ir_version = 7
        return m


def resnet50():
    b = Builder(50)
    x = b.conv_bn("input", 3, 64, 7, stride=2)
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]):
        for i in range(blocks):
            s = stride if i == 0 else 1
            cout = width * 4
            y = b.conv_bn(x, cin, width, 1)
            y = b.conv_bn(y, width, width, 3, stride=s)
            y = b.conv_bn(y, width, cout, 1, act=None)
            short = b.conv_bn(x, cin, cout, 1, stride=s, act=None) if i == 0 else x
            x = b.node("Relu", [b.node("Add", [y, short])])
            cin = cout
    out = b.classifier(x, 2048)
    b.nodes[-1].output[0] = "output"
    inp = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])]
    return b.model("resnet50", inp, "output", [1, 1000]), {"input": image(b.rng)}


def mobilenetv2():
    b = Builder(2)
    x = b.conv_bn("input", 3, 32, 3, stride=2, act="relu6")
    cin = 32
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x
            if t != 1:
                y = b.conv_bn(y, cin, hidden, 1, act="relu6")
            y = b.conv_bn(y, hidden, hidden, 3, stride=stride, groups=hidden, act="relu6")
            y = b.conv_bn(y, hidden, c, 1, act=None)
            x = b.node("Add", [x, y]) if stride == 1 and cin == c else y
            cin = c
    x = b.conv_bn(x, cin, 1280, 1, act="relu6")
    b.classifier(x, 1280)
    b.nodes[-1].output[0] = "output"
    inp = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])]
    return b.model("mobilenetv2", inp, "output", [1, 1000]), {"input": image(b.rng)}


def image(rng):
    return rng.standard_normal((1, 3, 224, 224)).astype(np.float32)


def bert(layers=12, hidden=768, heads=12, seq=128, vocab=30522, inter=3072):
    b = Builder(768)
    rnd = lambda *shape, s=0.02: (b.rng.standard_normal(shape) * s).astype(np.float32)
    f32 = lambda v: b.const(np.array(v, np.float32), "c")

    def layer_norm(x):
        mean = b.node("ReduceMean", [x], axes=[-1], keepdims=1)
        d = b.node("Sub", [x, mean])
        var = b.node("ReduceMean", [b.node("Pow", [d, f32(2.0)])], axes=[-1], keepdims=1)
        y = b.node("Div", [d, b.node("Sqrt", [b.node("Add", [var, f32(1e-12)])])])
        gamma = (1.0 + 0.02 * b.rng.standard_normal(hidden)).astype(np.float32)
        return b.node("Add", [b.node("Mul", [y, b.const(gamma)]), b.const(rnd(hidden))])

    def linear(x, cin, cout):
        return b.node("Add", [b.node("MatMul", [x, b.const(rnd(cin, cout))]), b.const(rnd(cout))])

    def gelu(x):
        e = b.node("Erf", [b.node("Div", [x, f32(1.4142135381698608)])])
        return b.node("Mul", [b.node("Mul", [x, b.node("Add", [e, f32(1.0)])]), f32(0.5)])

    ids = "input_ids"
    emb = b.node("Gather", [b.const(rnd(vocab, hidden)), ids], axis=0)
    pos = b.node("Gather", [b.const(rnd(512, hidden)), b.const(np.arange(seq, dtype=np.int64).reshape(1, seq))], axis=0)
    typ = b.node("Gather", [b.const(rnd(2, hidden)), "token_type_ids"], axis=0)
    x = layer_norm(b.node("Add", [b.node("Add", [emb, pos]), typ]))
    # attention mask [1, seq] -> [1, 1, 1, seq] additive
    mask = b.node("Unsqueeze", ["attention_mask", b.const(np.array([1, 2], np.int64))])
    mask = b.node("Cast", [mask], to=TensorProto.FLOAT)
    mask = b.node("Mul", [b.node("Sub", [f32(1.0), mask]), f32(-10000.0)])
    head_dim = hidden // heads
    split_shape = b.const(np.array([1, seq, heads, head_dim], np.int64))
    merge_shape = b.const(np.array([1, seq, hidden], np.int64))
    for _ in range(layers):
        q = b.node("Transpose", [b.node("Reshape", [linear(x, hidden, hidden), split_shape])], perm=[0, 2, 1, 3])
        k = b.node("Transpose", [b.node("Reshape", [linear(x, hidden, hidden), split_shape])], perm=[0, 2, 3, 1])
        v = b.node("Transpose", [b.node("Reshape", [linear(x, hidden, hidden), split_shape])], perm=[0, 2, 1, 3])
        scores = b.node("Div", [b.node("MatMul", [q, k]), f32(float(np.sqrt(head_dim)))])
        probs = b.node("Softmax", [b.node("Add", [scores, mask])], axis=-1)
        ctx = b.node("Transpose", [b.node("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = b.node("Reshape", [ctx, merge_shape])
        x = layer_norm(b.node("Add", [linear(ctx, hidden, hidden), x]))
        h = gelu(linear(x, hidden, inter))
        x = layer_norm(b.node("Add", [linear(h, inter, hidden), x]))
    b.nodes[-1].output[0] = "last_hidden_state"
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, [1, seq])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    feeds = {
        "input_ids": b.rng.integers(0, vocab, (1, seq)).astype(np.int64),
        "attention_mask": np.concatenate([np.ones((1, seq - 16)), np.zeros((1, 16))], 1).astype(np.int64),
        "token_type_ids": np.concatenate([np.zeros((1, seq // 2)), np.ones((1, seq // 2))], 1).astype(np.int64),
    }
    return b.model("bert", inputs, "last_hidden_state", [1, seq, hidden]), feeds


MODELS = {"resnet50": resnet50, "mobilenetv2": mobilenetv2, "bert": bert}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench_models"
    names = sys.argv[2:] or list(MODELS)
    for name in names:
        model, feeds = MODELS[name]()
        d = os.path.join(out, name)
        os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
        onnx.checker.check_model(model)
        onnx.save(model, os.path.join(d, "model.onnx"))
        for i, inp in enumerate(model.graph.input):
            t = numpy_helper.from_array(feeds[inp.name], inp.name)
            with open(os.path.join(d, "test_data_set_0", f"input_{i}.pb"), "wb") as f:
                f.write(t.SerializeToString())
        print(f"{name}: {len(model.graph.node)} nodes, "
              f"{sum(np.prod(t.dims) for t in model.graph.initializer) / 1e6:.1f}M weights -> {d}")


if __name__ == "__main__":
    main()
