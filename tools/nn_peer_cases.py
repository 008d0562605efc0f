#!/usr/bin/env python3
"""nn_peer_cases.py - cross-checks kiln's nn and quant kernels against ONNX Runtime.

The ONNX backend tests cover each op at a few attribute settings; this script
writes ~50 more single-node cases (groups with dilations, SAME_LOWER, ceil_mode
windows past the padding, MaxPool Indices in column-major order, per-channel
QLinearConv, broadcast MatMul batches, int8 quantization ...) in the
backend-test layout, runs kiln on each and stores kiln's outputs as the
expected ones.  ONNX Runtime then re-checks them (shared/peer/ort_check.js):

    /usr/bin/python3 tools/nn_peer_cases.py build/nn_cases build/kiln
    ORT_NODE_DIR=.../node_modules node /work/shared/peer/ort_check.js build/nn_cases/*/ --levels disabled

Cases ONNX Runtime itself lacks (GlobalMaxPool on float64, dilations with
SAME_* auto_pad) are left out.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

NP2TP = {np.float32: TP.FLOAT, np.float64: TP.DOUBLE, np.uint8: TP.UINT8, np.int8: TP.INT8,
         np.int32: TP.INT32, np.int64: TP.INT64}
rng = np.random.default_rng(1)
CASES = []


def case(name, op, inputs, attrs=None, outs=1, opset=13, inits=None):
    CASES.append((name, op, inputs, attrs or {}, outs, opset, inits or {}))


def write_case(root, name, op, inputs, attrs, outs, opset, inits):
    """One model directory: model.onnx (output types inferred) and its inputs."""
    d = os.path.join(root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d + '/test_data_set_0')
    node = h.make_node(op, list(inputs) + list(inits), ['Y%d' % i for i in range(outs)], **attrs)
    g = h.make_graph([node], name,
                     [h.make_tensor_value_info(k, NP2TP[v.dtype.type], v.shape) for k, v in inputs.items()],
                     [onnx.ValueInfoProto(name='Y%d' % i) for i in range(outs)],
                     [nh.from_array(v, k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid('', opset)])
    m.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(m)
    types = {v.name: v.type for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for o in m.graph.output:
        o.type.CopyFrom(types[o.name])
    onnx.save(m, d + '/model.onnx')
    for i, (k, v) in enumerate(inputs.items()):
        with open(f'{d}/test_data_set_0/input_{i}.pb', 'wb') as f:
            f.write(nh.from_array(v, k).SerializeToString())
    return d, m


def run_kiln(kiln, d, model, inputs):
    """Runs kiln on the case and stores its outputs as output_N.pb."""
    args = [kiln, 'run', d + '/model.onnx', '--output-dir', d + '/out']
    for i, k in enumerate(inputs):
        args += ['--input', f'{k}={d}/test_data_set_0/input_{i}.pb']
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        print(f'KILN FAIL {d}: {r.stderr.strip()[:300]}')
        return False
    for i, o in enumerate(model.graph.output):
        a = np.load(f'{d}/out/{o.name}.npy')
        with open(f'{d}/test_data_set_0/output_{i}.pb', 'wb') as f:
            f.write(nh.from_array(a, o.name).SerializeToString())
    return True


f = lambda *s: rng.standard_normal(s).astype(np.float32)
u8 = lambda *s: rng.integers(0,256,s).astype(np.uint8)
i8 = lambda *s: rng.integers(-128,128,s).astype(np.int8)
case('conv_groups_dil_samelower','Conv',{'X':f(2,4,11,10),'W':f(6,2,3,3),'B':f(6)},dict(group=2,strides=[2,2],auto_pad='SAME_LOWER'))
case('conv_sameupper_even','Conv',{'X':f(1,3,9,8),'W':f(5,3,4,4)},dict(strides=[2,3],auto_pad='SAME_UPPER'))
case('conv1d_asym','Conv',{'X':f(2,3,17),'W':f(4,3,5),'B':f(4)},dict(pads=[3,1],strides=[2],dilations=[2]))
case('conv_depthwise_s2d2','Conv',{'X':f(1,6,13,12),'W':f(12,1,3,3),'B':f(12)},dict(group=6,pads=[1,2,2,1],strides=[2,1],dilations=[2,2]))
case('conv_pointwise_padend','Conv',{'X':f(1,3,5,5),'W':f(4,3,1,1)},dict(pads=[0,0,1,2]))
case('conv_pointwise','Conv',{'X':f(2,8,7,9),'W':f(16,8,1,1),'B':f(16)})
case('conv3d_groups_pads','Conv',{'X':f(1,4,5,6,7),'W':f(4,2,2,3,3),'B':f(4)},dict(group=2,pads=[1,0,1,0,1,1],strides=[1,2,2]))
case('convT_groups_dil','ConvTranspose',{'X':f(2,4,5,6),'W':f(4,3,3,2),'B':f(6)},dict(group=2,dilations=[2,1],strides=[2,3],pads=[1,0,2,1],output_padding=[1,1]))
case('convT_samelower','ConvTranspose',{'X':f(1,2,5,5),'W':f(2,3,3,3)},dict(strides=[2,2],auto_pad='SAME_LOWER'))
case('convT_sameupper','ConvTranspose',{'X':f(1,2,5,5),'W':f(2,3,4,3)},dict(strides=[2,2],auto_pad='SAME_UPPER'))
case('convT_outshape_odd','ConvTranspose',{'X':f(1,2,4,4),'W':f(2,2,3,3)},dict(strides=[2,2],output_shape=[8,8]))
case('convT_1d','ConvTranspose',{'X':f(2,3,7),'W':f(3,2,4),'B':f(2)},dict(strides=[3],pads=[1,2]))
case('avgpool_ceil_incl','AveragePool',{'X':f(1,2,7,8)},dict(kernel_shape=[3,3],strides=[2,2],pads=[1,1,1,1],ceil_mode=1,count_include_pad=1))
case('avgpool_ceil_excl','AveragePool',{'X':f(1,2,7,8)},dict(kernel_shape=[3,2],strides=[2,3],pads=[1,0,1,1],ceil_mode=1))
case('avgpool_dil','AveragePool',{'X':f(1,2,9,9)},dict(kernel_shape=[2,2],dilations=[2,2],pads=[1,1,1,1]),opset=19)
case('maxpool_ceil_dil_idx','MaxPool',{'X':f(2,3,9,8)},dict(kernel_shape=[3,2],strides=[2,2],dilations=[1,2],pads=[1,1,1,1],ceil_mode=1),outs=2)
case('maxpool_idx_colmajor','MaxPool',{'X':f(1,2,6,5)},dict(kernel_shape=[2,2],strides=[2,2],storage_order=1),outs=2)
case('maxpool_int8','MaxPool',{'X':i8(1,2,6,6)},dict(kernel_shape=[3,3],pads=[1,1,1,1]))
case('maxpool_f64_3d','MaxPool',{'X':rng.standard_normal((1,2,4,5,6))},dict(kernel_shape=[2,2,2],strides=[1,2,2]))
case('lppool_p3','LpPool',{'X':f(1,2,7,7)},dict(kernel_shape=[3,3],strides=[2,2],pads=[1,1,1,1],p=3),opset=18)
case('globallppool','GlobalLpPool',{'X':f(2,3,5,4)},dict(p=2))
case('globalavg_3d','GlobalAveragePool',{'X':f(2,3,4,5,6)})
case('globalmax_3d','GlobalMaxPool',{'X':f(2,3,4,5,3)})
case('maxunpool_pads','MaxUnpool',{'X':f(1,1,3,3),'I':np.array([0,2,4,10,12,14,20,22,24],dtype=np.int64).reshape(1,1,3,3)},dict(kernel_shape=[2,2],strides=[2,2],pads=[1,1,0,0]),opset=11)
case('matmul_1d_nd','MatMul',{'A':f(4),'B':f(2,3,4,5)})
case('matmul_nd_1d','MatMul',{'A':f(2,3,4,5),'B':f(5)})
case('matmul_bcast','MatMul',{'A':f(2,1,3,4),'B':f(5,4,6)})
case('matmul_1d_1d','MatMul',{'A':f(7),'B':f(7)})
case('matmul_f64','MatMul',{'A':rng.standard_normal((3,4,5)),'B':rng.standard_normal((5,2))})
case('matmul_big','MatMul',{'A':f(3,70,130),'B':f(130,90)})
case('matmul_big_batch','MatMul',{'A':f(2,3,70,33),'B':f(2,3,33,140)})
case('gemm_tt_row','Gemm',{'A':f(5,4),'B':f(3,5),'C':f(1,3)},dict(transA=1,transB=1,alpha=0.5,beta=2.0))
case('gemm_col_bias','Gemm',{'A':f(4,5),'B':f(5,3),'C':f(4,1)},dict(beta=-1.0))
case('gemm_f64','Gemm',{'A':rng.standard_normal((4,5)),'B':rng.standard_normal((3,5)),'C':rng.standard_normal((3,))},dict(transB=1))
case('gemm_big','Gemm',{'A':f(100,257),'B':f(130,257),'C':f(130)},dict(transB=1))
case('quant_int8_axis0','QuantizeLinear',{'X':f(3,4,2)*50},dict(axis=0),inits={'S':np.array([0.5,1.0,2.0],np.float32),'Z':np.array([-3,0,7],np.int8)})
case('quant_uint8_noz','QuantizeLinear',{'X':f(3,4)*100,'S':np.array(0.7,np.float32)})
case('dequant_int8_axis','DequantizeLinear',{'X':i8(2,3,4)},dict(axis=-1),inits={'S':np.array([0.5,1.0,2.0,0.1],np.float32),'Z':np.array([-3,0,7,1],np.int8)})
case('dequant_int32','DequantizeLinear',{'X':rng.integers(-1000,1000,(5,)).astype(np.int32),'S':np.array(0.25,np.float32)})
case('dynquant_neg','DynamicQuantizeLinear',{'X':-np.abs(f(3,4))},outs=3,opset=11)
case('matmulint_bcol','MatMulInteger',{'A':u8(2,3,5),'B':u8(5,4)},inits={'AZ':np.array(12,np.uint8),'BZ':np.array([1,2,3,200],np.uint8)},opset=10)
case('matmulint_i8','MatMulInteger',{'A':i8(4,6),'B':i8(6,3)},opset=10)
case('qlinearmatmul_i8','QLinearMatMul',{'A':i8(3,5)},inits={'AS':np.array(0.02,np.float32),'AZ':np.array(3,np.int8),'B':i8(5,4),'BS':np.array(0.03,np.float32),'BZ':np.array(-2,np.int8),'YS':np.array(0.1,np.float32),'YZ':np.array(5,np.int8)},opset=10)
case('qlinearconv_perch','QLinearConv',{'X':u8(1,3,7,7)},dict(pads=[1,1,1,1],strides=[2,2]),inits={'XS':np.array(0.02,np.float32),'XZ':np.array(100,np.uint8),'W':i8(4,3,3,3),'WS':np.array([0.01,0.02,0.03,0.015],np.float32),'WZ':np.array([0,0,0,0],np.int8),'YS':np.array(0.05,np.float32),'YZ':np.array(120,np.uint8),'B':rng.integers(-500,500,(4,)).astype(np.int32)},opset=10)
case('convint_pads','ConvInteger',{'X':u8(1,2,6,6),'W':u8(3,2,3,3)},dict(pads=[1,1,1,1]),inits={'XZ':np.array(128,np.uint8),'WZ':np.array(7,np.uint8)},opset=10)
case('conv_big_blocks','Conv',{'X':f(2,16,70,70),'W':f(8,16,3,3),'B':f(8)},dict(pads=[1,1,1,1],dilations=[2,2]))
case('conv_big_s2','Conv',{'X':f(1,12,130,97),'W':f(10,12,3,3)},dict(pads=[1,0,1,1],strides=[2,2]))
case('maxpool_s2_wide','MaxPool',{'X':f(1,3,37,41)},dict(kernel_shape=[3,3],strides=[2,2],pads=[1,1,1,1]))
case('avgpool_s2_wide','AveragePool',{'X':f(1,3,37,41)},dict(kernel_shape=[3,3],strides=[2,2],pads=[1,1,1,1],count_include_pad=1))
case('avgpool_s1_wide','AveragePool',{'X':f(1,3,30,45)},dict(kernel_shape=[5,3],pads=[2,1,2,1]))
case('dw_s2_wide','Conv',{'X':f(1,8,37,41),'W':f(8,1,3,3),'B':f(8)},dict(group=8,pads=[1,1,1,1],strides=[2,2]))


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: nn_peer_cases.py OUT_DIR KILN_BINARY')
    root, kiln = sys.argv[1], sys.argv[2]
    ok = 0
    for name, op, inputs, attrs, outs, opset, inits in CASES:
        d, m = write_case(root, name, op, inputs, attrs, outs, opset, inits)
        ok += run_kiln(kiln, d, m, inputs)
    print(f'{ok} of {len(CASES)} cases ran under kiln; now run ort_check.js on {root}/*/')


if __name__ == '__main__':
    main()
