#!/usr/bin/env python3
"""gen_tensor_cases.py OUTDIR - writes ONNX test cases for the tensor family
(src/ops/shape.c, transpose.c, slice.c, gather.c, scatter.c, pad.c,
tensor.c) in the layout of the ONNX backend tests (model.onnx beside
test_data_set_0/{input,output}_N.pb).

OUTDIR/ok/ holds cases kiln must pass: what Debian's conformance data leaves
out - every element size and strings through the byte-moving ops, large
transposes (blocked and threaded paths), negative steps and clamped slice
bounds, negative pads, pad modes wrap (opset 19) and axes (opset 18), Split
with num_outputs (opset 18), scatter reductions max/min and with duplicate
indices, GatherND with batch_dims.  Expected outputs come from NumPy.

OUTDIR/bad/ holds cases kiln must refuse with a clear message (indices out
of range, absurd shapes from tensor values, inconsistent attributes); the
file OUTDIR/bad/expected.txt lists "case<TAB>substring of the message".
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(7)


def tensor_type(a):
    if a.dtype == object:
        return TensorProto.STRING
    return onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype]


def save_case(outdir, name, op, inputs, outputs, attrs=None, opset=13):
    """inputs: (name, array or None for an omitted input); outputs: (name, array)."""
    case = os.path.join(outdir, "test_" + name)
    os.makedirs(os.path.join(case, "test_data_set_0"), exist_ok=True)
    in_names = [n if a is not None else "" for n, a in inputs]
    present = [(n, a) for n, a in inputs if a is not None]
    node = helper.make_node(op, in_names, [n for n, _ in outputs], **(attrs or {}))
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info(n, tensor_type(a), a.shape) for n, a in present],
        [helper.make_tensor_value_info(n, tensor_type(a), a.shape) for n, a in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, os.path.join(case, "model.onnx"))
    for kind, items in (("input", present), ("output", outputs)):
        for i, (n, a) in enumerate(items):
            with open(os.path.join(case, "test_data_set_0", f"{kind}_{i}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(a, n).SerializeToString())


def ints(*v):
    return np.array(v, dtype=np.int64)


def rand(shape, dtype=np.float32):
    if dtype == object:
        n = int(np.prod(shape))
        return np.array([f"s{i}" * (i % 3 + 1) for i in range(n)], dtype=object).reshape(shape)
    if dtype == np.bool_:
        return RNG.random(shape) > 0.5
    return (RNG.random(shape) * 100).astype(dtype)


DTYPES = [np.float32, np.float16, np.float64, np.int8, np.int64, np.bool_, object]


def transposes(out):
    cases = [((3, 4), (1, 0)), ((64, 96), (1, 0)), ((2, 3, 4, 5), (0, 2, 1, 3)),
             ((2, 3, 4, 5), (3, 2, 1, 0)), ((2, 33, 65, 7), (0, 3, 1, 2)),
             ((8, 128, 12, 64), (0, 2, 1, 3)), ((4, 128, 12, 64), (0, 2, 3, 1)),
             ((512, 300), (1, 0)), ((3, 1, 5), (2, 1, 0)), ((7, 9, 11), (1, 2, 0))]
    for shape, perm in cases:
        for dt in DTYPES:
            if dt == object and np.prod(shape) > 5000:
                continue
            x = rand(shape, dt)
            name = f"transpose_{'x'.join(map(str, shape))}_{''.join(map(str, perm))}_{np.dtype(dt).name}"
            save_case(out, name, "Transpose", [("x", x)], [("y", np.transpose(x, perm))], {"perm": list(perm)})


def slices(out):
    x = rand((5, 6, 7))
    big, small = 2**63 - 1, -2**63
    cases = [((4,), (-100,), (0,), (-1,)), ((-2, 1), (big, -1), (2, 1), (1, 2)),
             ((10,), (0,), (1,), (-3,)), ((0, 0, 0), (5, 6, 7), (0, 1, 2), (2, 3, 4)),
             ((-1,), (small,), (-1,), (-2,)), ((3,), (3,), (0,), (1,))]
    for i, (st, en, ax, sp) in enumerate(cases):
        index = [slice(None)] * 3
        for s, e, a, p in zip(st, en, ax, sp):
            index[a] = slice(s, None if abs(e) > 2**62 else e, p)
        save_case(out, f"slice_{i}", "Slice",
                  [("x", x), ("s", ints(*st)), ("e", ints(*en)), ("a", ints(*ax)), ("p", ints(*sp))],
                  [("y", x[tuple(index)])])
    empty = rand((3, 0, 2))
    save_case(out, "slice_empty_axis_negative_step", "Slice",
              [("x", empty), ("s", ints(-1, 5)), ("e", ints(-10, -10)), ("a", ints(1, 0)), ("p", ints(-1, -2))],
              [("y", empty[::-2, ::-1])])
    xs = rand((4, 5), object)
    save_case(out, "slice_strings", "Slice",
              [("x", xs), ("s", ints(3, 1)), ("e", ints(0, 5)), ("a", ints(0, 1)), ("p", ints(-1, 2))],
              [("y", xs[3:0:-1, 1:5:2])])
    save_case(out, "slice_opset9_attrs", "Slice", [("x", x)], [("y", x[1:3, :, -3:])],
              {"starts": [1, -3], "ends": [3, 100], "axes": [0, 2]}, opset=9)


def gathers(out):
    emb = rand((1000, 64))
    idx = RNG.integers(-1000, 1000, (8, 128)).astype(np.int64)
    save_case(out, "gather_embedding", "Gather", [("x", emb), ("i", idx)], [("y", np.take(emb, idx, axis=0))])
    x = rand((3, 4, 5))
    i32 = np.array([[-1, 0], [2, 3]], dtype=np.int32)
    save_case(out, "gather_axis1_int32", "Gather", [("x", x), ("i", i32)], [("y", np.take(x, i32, axis=1))],
              {"axis": 1})
    for dt in DTYPES:
        xd = rand((3, 4, 5), dt)
        save_case(out, f"gather_last_axis_scalar_{np.dtype(dt).name}", "Gather",
                  [("x", xd), ("i", np.array(-2, dtype=np.int64))], [("y", np.take(xd, -2, axis=-1))],
                  {"axis": -1})
    xs = rand((3, 4), object)
    save_case(out, "gather_strings", "Gather", [("x", xs), ("i", ints(2, 0, 2))],
              [("y", np.take(xs, [2, 0, 2], axis=0))])
    x = rand((4, 5, 6))
    idx = RNG.integers(-5, 5, (4, 3, 6))
    save_case(out, "gather_elements_axis1", "GatherElements", [("x", x), ("i", idx)],
              [("y", np.take_along_axis(x, np.where(idx < 0, idx + 5, idx), axis=1))], {"axis": 1})
    x = rand((2, 3, 4, 5))
    idx = np.stack([RNG.integers(0, 3, (2, 6)), RNG.integers(-4, 4, (2, 6))], axis=-1)
    ref = np.stack([x[b][tuple(idx[b].T)] for b in range(2)])
    save_case(out, "gathernd_batch_dims1", "GatherND", [("x", x), ("i", idx)], [("y", ref)], {"batch_dims": 1})


def crop_and_pad(x, pads, mode, value=0):
    """np.pad that also crops for negative pads (applied first, as ONNX does)."""
    r = x.ndim
    pairs = [(pads[k], pads[k + r]) for k in range(r)]
    kept = x[tuple(slice(max(-a, 0), x.shape[k] - max(-b, 0)) for k, (a, b) in enumerate(pairs))]
    grow = [(max(a, 0), max(b, 0)) for a, b in pairs]
    if mode == "constant":
        return np.pad(kept, grow, mode="constant", constant_values=value)
    return np.pad(kept, grow, mode=mode)


def wrap_pad(x, pads):
    """Periodic padding (NumPy < 1.25 'wrap' is wrong for pads wider than the axis)."""
    r = x.ndim
    for k in range(r):
        a, b = pads[k], pads[k + r]
        positions = (np.arange(-a, x.shape[k] + b)) % x.shape[k]
        x = np.take(x, positions, axis=k)
    return x


def pads(out):
    x = rand((3, 4, 5))
    for mode in ("constant", "reflect", "edge"):
        for i, p in enumerate([(1, 2, 0, 2, 1, 3), (0, -1, 2, 0, 1, -2), (2, 3, 4, 2, 3, 4)]):
            if mode == "reflect" and i == 2:
                continue  # NumPy reflects pads wider than the axis differently
            inputs = [("x", x), ("p", ints(*p))]
            if mode == "constant":
                inputs.append(("c", np.array(1.5, dtype=np.float32)))
            save_case(out, f"pad_{mode}_{i}", "Pad", inputs, [("y", crop_and_pad(x, p, mode, 1.5))],
                      {"mode": mode})
    xi = rand((2, 3), np.int32)
    save_case(out, "pad_opset2_int32", "Pad", [("x", xi)], [("y", crop_and_pad(xi, (1, 2, 0, 1), "constant", 7))],
              {"pads": [1, 2, 0, 1], "value": 7.0}, opset=2)
    xs = rand((2, 2), object)
    save_case(out, "pad_strings", "Pad", [("x", xs), ("p", ints(0, 1, 1, 0))],
              [("y", np.pad(xs, [(0, 1), (1, 0)], constant_values=""))])
    x = rand((2, 3, 4))
    save_case(out, "pad_axes_opset18", "Pad", [("x", x), ("p", ints(1, 2, 0, 3)), ("c", None), ("a", ints(-1, 0))],
              [("y", np.pad(x, [(2, 3), (0, 0), (1, 0)]))], opset=18)
    x = rand((1, 3, 4))
    save_case(out, "pad_wrap_opset19", "Pad", [("x", x), ("p", ints(0, 0, 3, 0, 1, 5))],
              [("y", wrap_pad(x, (0, 0, 3, 0, 1, 5)))], {"mode": "wrap"}, opset=19)


def expands_and_tiles(out):
    x = rand((3, 1, 5))
    save_case(out, "expand_both_ways", "Expand", [("x", x), ("s", ints(2, 1, 4, 1))],
              [("y", x * np.ones((2, 1, 4, 1), np.float32))])
    xs = rand((1,), object)
    save_case(out, "expand_strings", "Expand", [("x", xs), ("s", ints(2, 3))],
              [("y", np.broadcast_to(xs, (2, 3)).copy())])
    x = rand((2, 3, 4))
    save_case(out, "tile_3d", "Tile", [("x", x), ("r", ints(3, 1, 2))], [("y", np.tile(x, (3, 1, 2)))])
    xs = rand((2, 3), object)
    save_case(out, "tile_strings", "Tile", [("x", xs), ("r", ints(2, 2))], [("y", np.tile(xs, (2, 2)))])
    x = rand((2, 3))
    save_case(out, "tile_zero_repeats", "Tile", [("x", x), ("r", ints(0, 2))], [("y", np.tile(x, (0, 2)))])


def joins_and_splits(out):
    a, b, c = rand((2, 0, 4)), rand((2, 3, 4)), rand((2, 1, 4))
    save_case(out, "concat_with_empty", "Concat", [("a", a), ("b", b), ("c", c)],
              [("y", np.concatenate([a, b, c], 1))], {"axis": -2})
    xs, ys = rand((3, 2), object), rand((3, 1), object)
    save_case(out, "concat_strings", "Concat", [("a", xs), ("b", ys)], [("y", np.concatenate([xs, ys], 1))],
              {"axis": 1})
    x = rand((4, 10, 3))
    save_case(out, "split_sizes_input", "Split", [("x", x), ("s", ints(2, 0, 8))],
              [("y0", x[:, :2]), ("y1", x[:, 2:2]), ("y2", x[:, 2:])], {"axis": 1})
    save_case(out, "split_sizes_attr", "Split", [("x", x)], [("y0", x[:1]), ("y1", x[1:])],
              {"axis": 0, "split": [1, 3]}, opset=11)
    save_case(out, "split_equal", "Split", [("x", x)], [("y0", x[:, :5]), ("y1", x[:, 5:])], {"axis": -2})
    save_case(out, "split_num_outputs_opset18", "Split", [("x", x)],
              [("y0", x[:, :4]), ("y1", x[:, 4:8]), ("y2", x[:, 8:])], {"axis": 1, "num_outputs": 3}, opset=18)


def scatters(out):
    x, idx, upd = rand((4, 5)), np.array([[1, 1], [3, 3]]), rand((2, 2))
    for red, fn, opset in (("add", np.add, 16), ("max", np.maximum, 18), ("min", np.minimum, 18)):
        ref = x.copy()
        for i in range(2):
            for j in range(2):
                ref[idx[i, j], j] = fn(ref[idx[i, j], j], upd[i, j])
        save_case(out, f"scatter_elements_{red}_duplicates", "ScatterElements",
                  [("x", x), ("i", idx), ("u", upd)], [("y", ref)], {"axis": 0, "reduction": red}, opset=opset)
    xi, ui = rand((4, 5), np.int64), rand((2, 2), np.int64)
    ref = xi.copy()
    for i in range(2):
        for j in range(2):
            ref[idx[i, j], j] *= ui[i, j]
    save_case(out, "scatter_elements_mul_int64", "ScatterElements", [("x", xi), ("i", idx), ("u", ui)],
              [("y", ref)], {"axis": 0, "reduction": "mul"}, opset=16)
    xs = rand((3, 3), object)
    ref = xs.copy()
    ref[0, 2], ref[0, 0] = "a", "b"
    save_case(out, "scatter_elements_strings", "ScatterElements",
              [("x", xs), ("i", ints(2, 0).reshape(1, 2)), ("u", np.array([["a", "b"]], dtype=object))],
              [("y", ref)], {"axis": 1})
    x, idx, upd = rand((4, 3, 2)), ints(1, 3, -1).reshape(3, 1), rand((3, 3, 2))
    add = x.copy()
    add[1] += upd[0]
    add[3] += upd[1] + upd[2]
    save_case(out, "scatternd_add_duplicates", "ScatterND", [("x", x), ("i", idx), ("u", upd)], [("y", add)],
              {"reduction": "add"}, opset=16)
    low = x.copy()
    low[1] = np.minimum(low[1], upd[0])
    low[3] = np.minimum(np.minimum(low[3], upd[1]), upd[2])
    save_case(out, "scatternd_min", "ScatterND", [("x", x), ("i", idx), ("u", upd)], [("y", low)],
              {"reduction": "min"}, opset=18)


def depth_and_space(out):
    x = rand((2, 18, 5, 7))
    n, c, h, w = x.shape
    b = 3
    dcr = x.reshape(n, b, b, c // 9, h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c // 9, h * b, w * b)
    crd = x.reshape(n, c // 9, b, b, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // 9, h * b, w * b)
    save_case(out, "depth_to_space_dcr", "DepthToSpace", [("x", x)], [("y", dcr)], {"blocksize": 3})
    save_case(out, "depth_to_space_crd", "DepthToSpace", [("x", x)], [("y", crd)], {"blocksize": 3, "mode": "CRD"})
    x = rand((2, 3, 6, 9))
    n, c, h, w = x.shape
    ref = x.reshape(n, c, h // 3, 3, w // 3, 3).transpose(0, 3, 5, 1, 2, 4).reshape(n, c * 9, h // 3, w // 3)
    save_case(out, "space_to_depth_3", "SpaceToDepth", [("x", x)], [("y", ref)], {"blocksize": 3})


def shapes_and_values(out):
    x = rand((2, 3, 4))
    save_case(out, "reshape_copy_and_infer", "Reshape", [("x", x), ("s", ints(0, 4, -1))], [("y", x.reshape(2, 4, 3))],
              opset=14)
    save_case(out, "flatten_axis0", "Flatten", [("x", x)], [("y", x.reshape(1, -1))], {"axis": 0})
    x = rand((1, 3, 1))
    save_case(out, "squeeze_all_ones", "Squeeze", [("x", x)], [("y", x.reshape(3))])
    x = rand((3,))
    save_case(out, "unsqueeze_attr_opset11", "Unsqueeze", [("x", x)], [("y", x.reshape(1, 3, 1))],
              {"axes": [0, -1]}, opset=11)
    x = rand((4, 3), object)
    lens = ints(1, 4, 2)
    ref = x.copy()
    for b in range(3):
        ref[:lens[b], b] = x[:lens[b], b][::-1]
    save_case(out, "reverse_sequence_strings", "ReverseSequence", [("x", x), ("l", lens)], [("y", ref)],
              {"time_axis": 0, "batch_axis": 1}, opset=10)
    xs = np.array(["ab", "c"], dtype=object)
    save_case(out, "identity_strings", "Identity", [("x", xs)], [("y", xs)])
    save_case(out, "constant_of_shape_int32", "ConstantOfShape", [("s", ints(2, 3))],
              [("y", np.full((2, 3), 7, dtype=np.int32))],
              {"value": numpy_helper.from_array(np.array([7], dtype=np.int32))}, opset=9)
    save_case(out, "shape_start_end", "Shape", [("x", rand((2, 3, 4, 5)))], [("y", ints(3, 4))],
              {"start": -3, "end": -1}, opset=15)
    x = rand((3, 4))
    save_case(out, "dropout_opset7_mask_float", "Dropout", [("x", x)], [("y", x), ("m", np.ones_like(x))],
              {"ratio": 0.3}, opset=7)


def spec_slice(dim, start, end, step):
    """The ONNX spec's clamping of one Slice axis, as a Python slice."""
    if dim == 0:
        return slice(0, 0)
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, end if end >= 0 else None, step)


def table_pad(x, pads, mode):
    """Reference for edge, reflect and wrap pads: negative pads crop first,
    then each output position reads the kept position its mode maps it to."""
    r = x.ndim
    x = x[tuple(slice(max(-pads[k], 0), x.shape[k] - max(-pads[k + r], 0)) for k in range(r))]
    for k in range(r):
        n, a, b = x.shape[k], max(pads[k], 0), max(pads[k + r], 0)
        pos = np.arange(-a, n + b)
        if mode == "edge":
            pos = np.clip(pos, 0, n - 1)
        elif mode == "wrap":
            pos = pos % n
        elif n == 1:
            pos = pos * 0
        else:
            period = 2 * (n - 1)
            pos = pos % period
            pos = np.where(pos < n, pos, period - pos)
        x = np.take(x, pos, axis=k)
    return x


def random_slices_and_pads(out):
    """Random bounds (including +-2^63 and 0-sized axes) and random pads in
    every mode, with references written from the spec's rules."""
    rng = np.random.default_rng(99)
    bounds = [-2**63, -100, -7, -5, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 100, 2**63 - 1]
    for c in range(80):
        rank = int(rng.integers(1, 4))
        shape = tuple(int(v) for v in rng.integers(0, 5, rank))
        x = rand(shape)
        k = int(rng.integers(1, rank + 1))
        axes = [int(a) for a in rng.permutation(rank)[:k]]
        st = [int(rng.choice(bounds)) for _ in range(k)]
        en = [int(rng.choice(bounds)) for _ in range(k)]
        sp = [int(rng.choice([-3, -2, -1, 1, 2, 3])) for _ in range(k)]
        index = [slice(None)] * rank
        for s_, e_, a, p in zip(st, en, axes, sp):
            index[a] = spec_slice(shape[a], s_, e_, p)
        named_axes = [a - rank if rng.random() < 0.5 else a for a in axes]
        save_case(out, f"slice_random_{c}", "Slice",
                  [("x", x), ("s", ints(*st)), ("e", ints(*en)), ("a", ints(*named_axes)), ("p", ints(*sp))],
                  [("y", x[tuple(index)])])
    made = 0
    while made < 60:
        rank = int(rng.integers(1, 4))
        shape = tuple(int(v) for v in rng.integers(1, 5, rank))
        mode = str(rng.choice(["constant", "edge", "reflect", "wrap"]))
        p = [int(rng.integers(-shape[i % rank] + 1, 2 * shape[i % rank] + 1)) for i in range(2 * rank)]
        if mode == "reflect":
            p = [min(v, shape[i % rank] - 1) for i, v in enumerate(p)]
        if any(max(-p[i], 0) + max(-p[i + rank], 0) >= shape[i] for i in range(rank)):
            continue
        x = rand(shape)
        ref = crop_and_pad(x, p, "constant", 0) if mode == "constant" else table_pad(x, p, mode)
        save_case(out, f"pad_random_{mode}_{made}", "Pad", [("x", x), ("p", ints(*p))], [("y", ref)],
                  {"mode": mode}, opset=19)
        made += 1


def bad_cases(out):
    """Each returns (case, message substring)."""
    x, y = rand((3, 4)), rand((3, 4))
    expected = []

    def bad(name, op, inputs, want, attrs=None, opset=13, n_out=1):
        save_case(out, name, op, inputs, [(f"y{i}", y) for i in range(n_out)], attrs, opset)
        expected.append((name, want))

    bad("gather_index_too_big", "Gather", [("x", x), ("i", ints(0, 3))], "out of range [-3, 3)")
    bad("gather_index_too_small", "Gather", [("x", x), ("i", ints(-4))], "out of range [-3, 3)")
    bad("gather_elements_index", "GatherElements", [("x", x), ("i", ints(0, 5).reshape(1, 2))],
        "out of range [-4, 4)", {"axis": 1})
    bad("gathernd_index", "GatherND", [("x", x), ("i", ints(2, 4).reshape(1, 2))], "for data axis 1")
    bad("scatter_elements_index", "ScatterElements", [("x", x), ("i", ints(3).reshape(1, 1)), ("u", rand((1, 1)))],
        "out of range [-3, 3)")
    bad("scatternd_index", "ScatterND", [("x", x), ("i", ints(-4).reshape(1, 1)), ("u", rand((1, 4)))],
        "for data axis 0")
    bad("expand_huge", "Expand", [("x", x), ("s", ints(2**40, 2**40, 1, 1))], "too large")
    bad("expand_negative", "Expand", [("x", x), ("s", ints(-2, 3, 4))], "negative dimension")
    bad("tile_huge", "Tile", [("x", x), ("r", ints(2**62, 2**62))], "too large")
    bad("tile_negative", "Tile", [("x", x), ("r", ints(-1, 1))], "negative")
    bad("constant_of_shape_negative", "ConstantOfShape", [("s", ints(3, -1))], "negative dimension", opset=9)
    bad("constant_of_shape_huge", "ConstantOfShape", [("s", ints(2**31, 2**31, 2**31))], "too large", opset=9)
    bad("reshape_cannot_infer", "Reshape", [("x", x), ("s", ints(5, -1))], "cannot infer")
    bad("reshape_two_infers", "Reshape", [("x", x), ("s", ints(-1, -1))], "more than one -1")
    bad("pad_huge", "Pad", [("x", x), ("p", ints(2**62, 0, 0, 2**62))], "do not fit")
    bad("pad_crop_too_much", "Pad", [("x", x), ("p", ints(-5, 0, 0, 0))], "do not fit")
    bad("slice_step_zero", "Slice", [("x", x), ("s", ints(0)), ("e", ints(1)), ("a", ints(0)), ("p", ints(0))],
        "step for axis 0 is 0")
    bad("reverse_sequence_length", "ReverseSequence", [("x", x), ("l", ints(5, 1, 1, 1))], "outside [0, 3]",
        {"time_axis": 0, "batch_axis": 1}, opset=10)
    bad("split_sizes_sum", "Split", [("x", x), ("s", ints(1, 1))], "add up to 2", n_out=2)
    bad("transpose_repeated_axis", "Transpose", [("x", x)], "repeats axis 0", {"perm": [0, 0]})
    bad("depth_to_space_channels", "DepthToSpace", [("x", rand((1, 3, 2, 2)))], "not divisible", {"blocksize": 2})
    bad("unsqueeze_repeated_axis", "Unsqueeze", [("x", x), ("a", ints(0, 0))], "appears twice")
    bad("squeeze_not_one", "Squeeze", [("x", x), ("a", ints(0))], "cannot squeeze axis 0")
    bad("concat_mismatch", "Concat", [("a", x), ("b", rand((2, 5)))], "does not match input 0", {"axis": 0})
    with open(os.path.join(out, "expected.txt"), "w") as f:
        for name, want in expected:
            f.write(f"test_{name}\t{want}\n")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_tensor_cases.py OUTDIR")
    ok, bad = os.path.join(sys.argv[1], "ok"), os.path.join(sys.argv[1], "bad")
    os.makedirs(ok, exist_ok=True)
    os.makedirs(bad, exist_ok=True)
    for make in (transposes, slices, gathers, pads, expands_and_tiles, joins_and_splits, scatters,
                 depth_and_space, shapes_and_values, random_slices_and_pads):
        make(ok)
    bad_cases(bad)


if __name__ == "__main__":
    main()
