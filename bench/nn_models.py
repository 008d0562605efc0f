#!/usr/bin/env python3
"""nn_models.py - synthetic models for timing kiln's Conv/MatMul/pool kernels
against ONNX Runtime (random weights, backend-test layout):

  per-layer: conv3x3_l1 (64->64 @56x56), conv1x1_l1 (256->64 @56), conv7x7_stem,
             conv3x3_l4 (512->512 @7x7), conv1x1_l4 (512->2048 @7), bert_ffn
             (128x768 @ 768x3072), bert_attn (12 heads 128x64 @ 64x128),
             maxpool_stem, avgpool_3x3, dwconv_mbv2 (depthwise 144 @56)
  resnet50:  ResNet-50's conv/relu/add/pool/gemm graph without BatchNorm.

    /usr/bin/python3 bench/nn_models.py build/nn_models
    build/kiln bench build/nn_models/resnet50 --threads 1 --json
    node /work/shared/peer/ort_bench.js build/nn_models/resnet50 --threads 1

On a shared machine compare min_ms, or CPU time per iteration (user time of
two runs with different --iters, divided by the difference).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

rng = np.random.default_rng(0)


def f(*s):
    return rng.standard_normal(s).astype(np.float32)


def save(root, name, nodes, inputs, inits, graph_inputs=None):
    d = os.path.join(root, name)
    os.makedirs(d + '/test_data_set_0', exist_ok=True)
    g = h.make_graph(nodes, name,
                     [h.make_tensor_value_info(k, TP.FLOAT, v.shape) for k, v in inputs.items()],
                     [h.make_tensor_value_info('Y', TP.FLOAT, None)],
                     [nh.from_array(v, k) for k, v in inits.items()] if isinstance(inits, dict) else inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid('', 13)])
    m.ir_version = 8
    onnx.save(m, d + '/model.onnx')
    for i, (k, v) in enumerate(inputs.items()):
        with open(f'{d}/test_data_set_0/input_{i}.pb', 'wb') as fh:
            fh.write(nh.from_array(v, k).SerializeToString())


def layer_models(root):
    def conv(name, c, m, hw, k, s=1):
        save(root, name, [h.make_node('Conv', ['X', 'W', 'B'], ['Y'], pads=[k // 2] * 4, strides=[s, s])],
             {'X': f(1, c, hw, hw)}, {'W': f(m, c, k, k) * 0.05, 'B': f(m)})
    conv('conv3x3_l1', 64, 64, 56, 3)
    conv('conv1x1_l1', 256, 64, 56, 1)
    conv('conv7x7_stem', 3, 64, 224, 7, 2)
    conv('conv3x3_l4', 512, 512, 7, 3)
    conv('conv1x1_l4', 512, 2048, 7, 1)
    save(root, 'bert_ffn', [h.make_node('MatMul', ['X', 'W'], ['Y'])], {'X': f(1, 128, 768)},
         {'W': f(768, 3072) * 0.05})
    save(root, 'bert_attn', [h.make_node('MatMul', ['Q', 'K'], ['Y'])],
         {'Q': f(1, 12, 128, 64), 'K': f(1, 12, 64, 128)}, {})
    save(root, 'maxpool_stem', [h.make_node('MaxPool', ['X'], ['Y'], kernel_shape=[3, 3], strides=[2, 2],
                                            pads=[1, 1, 1, 1])], {'X': f(1, 64, 112, 112)}, {})
    save(root, 'avgpool_3x3', [h.make_node('AveragePool', ['X'], ['Y'], kernel_shape=[3, 3],
                                           pads=[1, 1, 1, 1])], {'X': f(1, 64, 56, 56)}, {})
    save(root, 'dwconv_mbv2', [h.make_node('Conv', ['X', 'W', 'B'], ['Y'], group=144, pads=[1, 1, 1, 1])],
         {'X': f(1, 144, 56, 56)}, {'W': f(144, 1, 3, 3), 'B': f(144)})


def resnet50(root):
    nodes, inits, count = [], [], [0]

    def fresh(prefix):
        count[0] += 1
        return f'{prefix}{count[0]}'

    def conv(x, cin, cout, k, s=1, relu=True):
        w, b, y = fresh('w'), fresh('b'), fresh('c')
        inits.append(nh.from_array((rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(np.float32), w))
        inits.append(nh.from_array(np.zeros(cout, np.float32), b))
        nodes.append(h.make_node('Conv', [x, w, b], [y], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4))
        if not relu:
            return y
        r = fresh('r')
        nodes.append(h.make_node('Relu', [y], [r]))
        return r

    def block(x, cin, mid, cout, s):
        y = conv(conv(conv(x, cin, mid, 1), mid, mid, 3, s), mid, cout, 1, relu=False)
        shortcut = conv(x, cin, cout, 1, s, relu=False) if (s != 1 or cin != cout) else x
        a, r = fresh('add'), fresh('r')
        nodes.append(h.make_node('Add', [y, shortcut], [a]))
        nodes.append(h.make_node('Relu', [a], [r]))
        return r

    x = conv('X', 3, 64, 7, 2)
    p = fresh('pool')
    nodes.append(h.make_node('MaxPool', [x], [p], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = p, 64
    for mid, n, s in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(n):
            x = block(x, cin, mid, mid * 4, s if i == 0 else 1)
            cin = mid * 4
    g, fl = fresh('gap'), fresh('flat')
    nodes.append(h.make_node('GlobalAveragePool', [x], [g]))
    nodes.append(h.make_node('Flatten', [g], [fl]))
    inits.append(nh.from_array((rng.standard_normal((1000, 2048)) * 0.02).astype(np.float32), 'fcw'))
    inits.append(nh.from_array(np.zeros(1000, np.float32), 'fcb'))
    nodes.append(h.make_node('Gemm', [fl, 'fcw', 'fcb'], ['Y'], transB=1))
    save(root, 'resnet50', nodes, {'X': f(1, 3, 224, 224)}, inits)


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: nn_models.py OUT_DIR')
    layer_models(sys.argv[1])
    resnet50(sys.argv[1])
