#!/usr/bin/env python3
"""gen_ops_misc_cases.py OUTDIR [BADDIR] - writes ONNX test cases (model.onnx plus
test_data_set_0/{input,output}_N.pb, the layout of the ONNX backend tests)
for the features of RNN/GRU/LSTM, Resize, DFT/STFT, the window ops and the
text ops that Debian's conformance data leaves untested: bidirectional and
reverse directions, batch-first layout with sequence_lens and initial
states, custom activations, clip, Resize with axes (opset 18), DFT with
dft_length, onesided and opset-20 axis input, STFT with complex input.

Expected outputs come from NumPy (np.fft, the ONNX backend's Resize
reference) or from plain-NumPy references written here, independent of the
C kernels' structure (the recurrent reference masks finished sequences over
the whole batch instead of looping per batch item).

BADDIR receives hostile cases (BADDIR/NAME/model.onnx, INPUT.pb files and
`expect`, a substring the error must hold, or empty when the model must run
cleanly): NaN and absurd sizes, shapes that do not match, indices out of
range, unknown activations.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.backend.test.case.node import resize as resize_ref

RNG = np.random.default_rng(1234)


def save_case(outdir, name, node, inputs, outputs, opset, output_types=None):
    """inputs/outputs: lists of (name, array); an input named '' is omitted."""
    case = os.path.join(outdir, name)
    os.makedirs(os.path.join(case, "test_data_set_0"), exist_ok=True)
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype)
                                                  if hasattr(helper, "np_dtype_to_tensor_dtype")
                                                  else onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype],
                                                  a.shape) for n, a in inputs]
    graph_outputs = []
    for n, a in outputs:
        dt = onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype] if a.dtype != object else TensorProto.STRING
        graph_outputs.append(helper.make_tensor_value_info(n, dt, None))
    graph = helper.make_graph([node], name, graph_inputs, graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, os.path.join(case, "model.onnx"))
    for i, (n, a) in enumerate(inputs):
        t = numpy_helper.from_array(a, n)
        with open(os.path.join(case, "test_data_set_0", f"input_{i}.pb"), "wb") as f:
            f.write(t.SerializeToString())
    for i, (n, a) in enumerate(outputs):
        t = numpy_helper.from_array(a, n)
        with open(os.path.join(case, "test_data_set_0", f"output_{i}.pb"), "wb") as f:
            f.write(t.SerializeToString())


# ---- Recurrent reference -----------------------------------------------------

ACTS = {
    "Relu": lambda x, a, b: np.maximum(x, 0),
    "Tanh": lambda x, a, b: np.tanh(x),
    "Sigmoid": lambda x, a, b: 1 / (1 + np.exp(-x)),
    "Affine": lambda x, a, b: a * x + b,
    "LeakyRelu": lambda x, a, b: np.where(x >= 0, x, a * x),
    "ThresholdedRelu": lambda x, a, b: np.where(x > a, x, 0),
    "ScaledTanh": lambda x, a, b: a * np.tanh(b * x),
    "HardSigmoid": lambda x, a, b: np.clip(a * x + b, 0, 1),
    "Elu": lambda x, a, b: np.where(x >= 0, x, a * (np.exp(x) - 1)),
    "Softsign": lambda x, a, b: x / (1 + np.abs(x)),
    "Softplus": lambda x, a, b: np.log1p(np.exp(x)),
}
DEFAULTS = {"Affine": (1.0, 0.0), "LeakyRelu": (0.01, 0), "ThresholdedRelu": (1.0, 0),
            "ScaledTanh": (1.0, 1.0), "HardSigmoid": (0.2, 0.5), "Elu": (1.0, 0)}
USES_ALPHA = {"Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu"}
USES_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}


def bind_activations(names, alphas, betas):
    """Returns callables; alpha/beta are consumed in order by the functions using them."""
    alphas, betas = list(alphas), list(betas)
    out = []
    for n in names:
        a, b = DEFAULTS.get(n, (0, 0))
        if n in USES_ALPHA and alphas:
            a = alphas.pop(0)
        if n in USES_BETA and betas:
            b = betas.pop(0)
        out.append(lambda x, n=n, a=a, b=b: ACTS[n](x, a, b))
    return out


def recurrent_ref(cell, X, W, R, B, lens, h0, c0, P, direction, layout, clip, acts, lbr=0,
                  input_forget=0):
    if layout:
        X = X.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        c0 = None if c0 is None else c0.transpose(1, 0, 2)
    X = X.astype(np.float64)
    T, Bn, _ = X.shape
    D, H = W.shape[0], R.shape[2]
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[cell]
    per_dir = len(acts) // D
    if lens is None:
        lens = np.full(Bn, T)
    Y = np.zeros((T, D, Bn, H))
    Yh = np.zeros((D, Bn, H))
    Yc = np.zeros((D, Bn, H))
    cl = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)
    for d in range(D):
        back = d == 1 or direction == "reverse"
        f = acts[d * per_dir:(d + 1) * per_dir]
        Wb = B[d][:G * H] if B is not None else np.zeros(G * H)
        Rb = B[d][G * H:] if B is not None else np.zeros(G * H)
        h = np.zeros((Bn, H)) if h0 is None else h0[d].astype(np.float64)
        c = np.zeros((Bn, H)) if c0 is None else c0[d].astype(np.float64)
        for s in range(T):
            # Each batch item reads its own time index; inactive items keep their state.
            t = np.array([(lens[b] - 1 - s) if back else s for b in range(Bn)])
            active = s < lens
            tt = np.clip(t, 0, T - 1)
            x = X[tt, np.arange(Bn)]
            xw = x @ W[d].T + Wb
            hr = h @ R[d].T
            if cell == "RNN":
                hn = f[0](cl(xw + hr + Rb))
                cn = c
            elif cell == "GRU":
                z = f[0](cl(xw[:, :H] + hr[:, :H] + Rb[:H]))
                r = f[0](cl(xw[:, H:2 * H] + hr[:, H:2 * H] + Rb[H:2 * H]))
                if lbr:
                    cand = f[1](cl(xw[:, 2 * H:] + r * (hr[:, 2 * H:] + Rb[2 * H:])))
                else:
                    cand = f[1](cl(xw[:, 2 * H:] + (r * h) @ R[d][2 * H:].T + Rb[2 * H:]))
                hn = (1 - z) * cand + z * h
                cn = c
            else:
                g = xw + hr + Rb
                gi, go, gf, gc = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
                if P is not None:
                    gi = gi + P[d][:H] * c
                    gf = gf + P[d][2 * H:] * c
                i = f[0](cl(gi))
                fg = 1 - i if input_forget else f[0](cl(gf))
                cn = fg * c + i * f[1](cl(gc))
                if P is not None:
                    go = go + P[d][H:2 * H] * cn
                o = f[0](cl(go))
                hn = o * f[2](cn)
            h = np.where(active[:, None], hn, h)
            c = np.where(active[:, None], cn, c)
            for b in range(Bn):
                if active[b]:
                    Y[t[b], d, b] = h[b]
        Yh[d], Yc[d] = h, c
    if layout:
        Y = Y.transpose(2, 0, 1, 3)
        Yh = Yh.transpose(1, 0, 2)
        Yc = Yc.transpose(1, 0, 2)
    return Y, Yh, Yc


def recurrent_case(outdir, name, cell, T, Bn, I, H, direction="forward", layout=0, lens=None,
                   with_h0=False, with_c0=False, with_p=False, clip=None, act_names=None,
                   alphas=(), betas=(), lbr=0, input_forget=0, outputs=("Y", "Y_h", "Y_c"),
                   dtype=np.float32):
    D = 2 if direction == "bidirectional" else 1
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[cell]
    X = RNG.standard_normal((Bn, T, I) if layout else (T, Bn, I)).astype(dtype)
    W = (RNG.standard_normal((D, G * H, I)) * 0.5).astype(dtype)
    R = (RNG.standard_normal((D, G * H, H)) * 0.5).astype(dtype)
    B = (RNG.standard_normal((D, 2 * G * H)) * 0.3).astype(dtype)
    state_shape = (Bn, D, H) if layout else (D, Bn, H)
    h0 = RNG.standard_normal(state_shape).astype(dtype) if with_h0 else None
    c0 = RNG.standard_normal(state_shape).astype(dtype) if with_c0 else None
    P = (RNG.standard_normal((D, 3 * H)) * 0.3).astype(dtype) if with_p else None
    lens_a = None if lens is None else np.array(lens, dtype=np.int32)
    defaults = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
    names = act_names or defaults[cell] * D
    acts = bind_activations(names, alphas, betas)
    Y, Yh, Yc = recurrent_ref(cell, X, W, R, B, lens_a, h0, c0, P, direction, layout, clip,
                              acts, lbr, input_forget)
    inputs = [("X", X), ("W", W), ("R", R), ("B", B)]
    node_inputs = ["X", "W", "R", "B"]
    optional = [("sequence_lens", lens_a), ("initial_h", h0)]
    if cell == "LSTM":
        optional += [("initial_c", c0), ("P", P)]
    # Trailing omitted inputs are dropped; inner ones are written as ''.
    last = max([i for i, (_, a) in enumerate(optional) if a is not None], default=-1)
    for i, (n, a) in enumerate(optional[:last + 1]):
        if a is None:
            node_inputs.append("")
        else:
            node_inputs.append(n)
            inputs.append((n, a))
    all_out = {"Y": Y, "Y_h": Yh, "Y_c": Yc}
    names_out = ["Y", "Y_h"] + (["Y_c"] if cell == "LSTM" else [])
    node_outputs = [n if n in outputs else "" for n in names_out]
    while node_outputs and node_outputs[-1] == "":
        node_outputs.pop()
    attrs = dict(hidden_size=H, direction=direction)
    if layout:
        attrs["layout"] = layout
    if clip is not None:
        attrs["clip"] = clip
    if act_names:
        attrs["activations"] = act_names
    if alphas:
        attrs["activation_alpha"] = list(alphas)
    if betas:
        attrs["activation_beta"] = list(betas)
    if cell == "GRU":
        attrs["linear_before_reset"] = lbr
    if cell == "LSTM" and input_forget:
        attrs["input_forget"] = input_forget
    node = helper.make_node(cell, node_inputs, node_outputs, **attrs)
    outs = [(n, all_out[n].astype(dtype)) for n in node_outputs if n]
    save_case(outdir, name, node, inputs, outs, 14)


def recurrent_cases(outdir):
    recurrent_case(outdir, "lstm_bidirectional_seq_lens", "LSTM", 4, 3, 3, 5,
                   direction="bidirectional", lens=[4, 1, 3], with_h0=True, with_c0=True,
                   with_p=True)
    recurrent_case(outdir, "lstm_reverse_batch_first_clip_input_forget", "LSTM", 5, 2, 4, 3,
                   direction="reverse", layout=1, lens=[2, 5], with_h0=True, with_c0=True,
                   clip=0.7, input_forget=1, outputs=("Y_h", "Y_c"))
    recurrent_case(outdir, "lstm_bidirectional_batch_first_activations", "LSTM", 3, 2, 2, 4,
                   direction="bidirectional", layout=1, with_h0=True,
                   act_names=["HardSigmoid", "Softsign", "Elu", "Sigmoid", "ScaledTanh", "Tanh"],
                   alphas=[0.3, 0.9, 0.8], betas=[0.4, 1.2], outputs=("Y",))
    recurrent_case(outdir, "gru_bidirectional_batch_first_lbr", "GRU", 4, 3, 3, 4,
                   direction="bidirectional", layout=1, lens=[4, 2, 3], with_h0=True, lbr=1)
    recurrent_case(outdir, "gru_reverse_activations", "GRU", 5, 2, 3, 3, direction="reverse",
                   lens=[5, 3], act_names=["Sigmoid", "LeakyRelu"], alphas=[0.2], lbr=0,
                   clip=2.0)
    recurrent_case(outdir, "gru_float64", "GRU", 3, 2, 3, 2, with_h0=True, dtype=np.float64)
    recurrent_case(outdir, "rnn_bidirectional_relu_affine", "RNN", 4, 2, 3, 3,
                   direction="bidirectional", lens=[3, 4], with_h0=True,
                   act_names=["Relu", "Affine"], alphas=[0.5], betas=[0.1])
    recurrent_case(outdir, "rnn_reverse_batch_first_softplus", "RNN", 3, 3, 2, 2,
                   direction="reverse", layout=1, act_names=["Softplus"], outputs=("Y_h",))


# ---- Resize --------------------------------------------------------------------

def resize_case(outdir, name, x, mode, opset=18, scales=None, sizes=None, axes=None, roi=None,
                **attrs):
    """Expected output: the ONNX backend's reference on the full-rank scales."""
    rank = x.ndim
    ax = list(range(rank)) if axes is None else [a % rank for a in axes]
    full_scales = np.ones(rank)
    full_sizes = list(x.shape)
    full_roi = None
    if scales is not None:
        for a, s in zip(ax, scales):
            full_scales[a] = s
        out_size = None
    else:
        for a, s in zip(ax, sizes):
            full_sizes[a] = s
        out_size = full_sizes
    if roi is not None:
        full_roi = np.array([0.0] * rank + [1.0] * rank)
        n = len(ax)
        for i, a in enumerate(ax):
            full_roi[a] = roi[i]
            full_roi[rank + a] = roi[n + i]
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    kw = dict(coordinate_transformation_mode=ctm,
              exclude_outside=bool(attrs.get("exclude_outside", 0)),
              extrapolation_value=attrs.get("extrapolation_value", 0.0))
    if mode == "nearest":
        nm = attrs.get("nearest_mode", "round_prefer_floor")
        coeffs = lambda r: resize_ref.nearest_coeffs(r, mode=nm)
    elif mode == "linear":
        coeffs = resize_ref.linear_coeffs
    else:
        A = attrs.get("cubic_coeff_a", -0.75)
        coeffs = lambda r: resize_ref.cubic_coeffs(r, A=A)
    y = resize_ref.interpolate_nd(x, coeffs, output_size=out_size,
                                  scale_factors=None if out_size else full_scales, roi=full_roi,
                                  **kw).astype(x.dtype)
    inputs = [("X", x)]
    node_inputs = ["X", "roi" if roi is not None else ""]
    if roi is not None:
        inputs.append(("roi", np.array(roi, dtype=np.float32)))
    if scales is not None:
        node_inputs.append("scales")
        inputs.append(("scales", np.array(scales, dtype=np.float32)))
    else:
        node_inputs += ["", "sizes"]
        inputs.append(("sizes", np.array(sizes, dtype=np.int64)))
    if axes is not None:
        attrs["axes"] = axes
    node = helper.make_node("Resize", node_inputs, ["Y"], mode=mode, **attrs)
    save_case(outdir, name, node, inputs, [("Y", y)], opset)


def antialias_coeffs(mode, scale, A=-0.75):
    """The newer ONNX reference's antialiased filters (Resize-18)."""
    def linear(ratio):
        sc = min(scale, 1.0)
        start = int(np.floor(-1 / sc) + 1)
        args = (np.arange(start, 2 - start) - ratio) * sc
        c = np.clip(1 - np.abs(args), 0, 1)
        return c / c.sum()

    def cubic(ratio):
        sc = min(scale, 1.0)

        def f(x):
            x = abs(x)
            if x <= 1:
                return (A + 2) * x ** 3 - (A + 3) * x ** 2 + 1
            if x < 2:
                return A * x ** 3 - 5 * A * x ** 2 + 8 * A * x - 4 * A
            return 0.0
        start = int(np.floor(-2 / sc) + 1)
        c = np.array([f(sc * (i - ratio)) for i in range(start, 2 - start)])
        return c / c.sum()
    return linear if mode == "linear" else cubic


def antialias_case(outdir, name, x, mode, scale):
    y = resize_ref.interpolate_nd(x, antialias_coeffs(mode, scale),
                                  scale_factors=np.array([scale] * x.ndim)).astype(x.dtype)
    node = helper.make_node("Resize", ["X", "", "scales"], ["Y"], mode=mode, antialias=1)
    save_case(outdir, name, node, [("X", x), ("scales", np.array([scale] * x.ndim, np.float32))],
              [("Y", y)], 18)


def resize_cases(outdir):
    xa = RNG.standard_normal((9, 13)).astype(np.float32)
    antialias_case(outdir, "resize_antialias_linear_third", xa, "linear", 1 / 3)
    antialias_case(outdir, "resize_antialias_cubic_0p6", xa, "cubic", 0.6)
    xu = np.array([[0, 255, 0, 255], [255, 0, 255, 0], [0, 0, 255, 255]], dtype=np.uint8)
    yu = resize_ref.interpolate_nd(xu.astype(np.float64), resize_ref.cubic_coeffs,
                                   scale_factors=np.array([2.0, 1.5]))
    yu = np.clip(np.rint(yu), 0, 255).astype(np.uint8)
    node = helper.make_node("Resize", ["X", "", "scales"], ["Y"], mode="cubic")
    save_case(outdir, "resize_cubic_uint8_saturates", node,
              [("X", xu), ("scales", np.array([2.0, 1.5], np.float32))], [("Y", yu)], 13)

    x4 = RNG.standard_normal((1, 2, 4, 5)).astype(np.float32)
    x3 = RNG.standard_normal((2, 6, 7)).astype(np.float32)
    resize_case(outdir, "resize_axes_linear_scales", x4, "linear", scales=[1.5, 0.8], axes=[2, 3])
    resize_case(outdir, "resize_axes_negative_cubic_sizes", x4, "cubic", sizes=[7], axes=[-1],
                coordinate_transformation_mode="align_corners")
    resize_case(outdir, "resize_3d_nearest_ceil", x3, "nearest", scales=[1.0, 0.5, 1.7],
                nearest_mode="ceil", coordinate_transformation_mode="asymmetric", opset=13)
    resize_case(outdir, "resize_crop_and_resize_axes", x4, "linear", sizes=[3, 3], axes=[2, 3],
                roi=[0.2, 0.1, 0.9, 1.2], coordinate_transformation_mode="tf_crop_and_resize",
                extrapolation_value=-2.0)
    resize_case(outdir, "resize_cubic_exclude_outside_pytorch", x4, "cubic", opset=13,
                scales=[1, 1, 0.5, 1.5], exclude_outside=1, cubic_coeff_a=-0.5,
                coordinate_transformation_mode="pytorch_half_pixel")


# ---- DFT, STFT, windows ----------------------------------------------------------

def as_pairs(c):
    return np.stack([c.real, c.imag], axis=-1).astype(np.float32)


def signal_cases(outdir):
    x = RNG.standard_normal((2, 5, 10, 1)).astype(np.float32)
    n = helper.make_node("DFT", ["x", "len"], ["y"], axis=2, onesided=1)
    y = np.fft.rfft(x[..., 0].astype(np.float64), n=12, axis=2)
    save_case(outdir, "dft_onesided_padded_axis2", n,
              [("x", x), ("len", np.array(12, dtype=np.int64))], [("y", as_pairs(y))], 17)

    xc = RNG.standard_normal((3, 8, 2)).astype(np.float32)
    c = xc[..., 0].astype(np.float64) + 1j * xc[..., 1]
    n = helper.make_node("DFT", ["x", "len"], ["y"], axis=1, inverse=1)
    save_case(outdir, "dft_inverse_complex_truncated", n,
              [("x", xc), ("len", np.array(6, dtype=np.int64))],
              [("y", as_pairs(np.fft.ifft(c, n=6, axis=1)))], 17)

    x20 = RNG.standard_normal((2, 7, 3, 1)).astype(np.float32)
    n = helper.make_node("DFT", ["x", "", "axis"], ["y"])
    save_case(outdir, "dft_opset20_axis_input", n,
              [("x", x20), ("axis", np.array(-3, dtype=np.int64))],
              [("y", as_pairs(np.fft.fft(x20[..., 0].astype(np.float64), axis=1)))], 20)

    for n_fft in (1000, 1024, 1):  # Bluestein, radix-2, trivial
        xl = RNG.standard_normal((1, n_fft, 2)).astype(np.float32)
        cl = xl[..., 0].astype(np.float64) + 1j * xl[..., 1]
        n = helper.make_node("DFT", ["x"], ["y"], axis=1)
        save_case(outdir, f"dft_complex_length_{n_fft}", n, [("x", xl)],
                  [("y", as_pairs(np.fft.fft(cl, axis=1)))], 17)

    sig = RNG.standard_normal((2, 40, 2)).astype(np.float32)
    frame, step = 8, 5
    sc = sig[..., 0].astype(np.float64) + 1j * sig[..., 1]
    frames = (40 - frame) // step + 1
    want = np.stack([np.fft.fft(sc[:, f * step:f * step + frame], axis=1) for f in range(frames)],
                    axis=1)
    n = helper.make_node("STFT", ["signal", "step", "", "frame_length"], ["y"], onesided=0)
    save_case(outdir, "stft_complex_twosided", n,
              [("signal", sig), ("step", np.array(step, dtype=np.int64)),
               ("frame_length", np.array(frame, dtype=np.int64))], [("y", as_pairs(want))], 17)

    for op, ref in [("HannWindow", np.hanning), ("HammingWindow", None),
                    ("BlackmanWindow", np.blackman)]:
        N = 9
        if ref is None:
            k = np.arange(N + 1)
            w = 25 / 46 - 21 / 46 * np.cos(2 * np.pi * k / N)
        else:
            w = ref(N + 1)
        n = helper.make_node(op, ["size"], ["y"], output_datatype=TensorProto.DOUBLE)
        save_case(outdir, op.lower() + "_periodic_double", n,
                  [("size", np.array(N, dtype=np.int64))], [("y", w[:N].astype(np.float64))], 17)


# ---- Text --------------------------------------------------------------------------

def text_cases(outdir):
    x = np.array([["Hello", "the", "WORLD", "The", "end"]], dtype=object)
    n = helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="LOWER",
                         is_case_sensitive=0, stopwords=["the", "END"])
    save_case(outdir, "strnormalizer_lower_insensitive_2d", n, [("x", x)],
              [("y", np.array([["hello", "world"]], dtype=object))], 10)

    pool = ["a", "b", "c", "a", "b", "b", "c"]  # unigrams a b c; bigrams (a,b) (b,c)
    x = np.array([["a", "b", "c", "b", "c"], ["c", "x", "a", "x", "b"]], dtype=object)
    weights = [0.5, 2.0, 1.5, 3.0, 0.25]
    idx = [4, 3, 2, 1, 0]
    # Counts per pool n-gram with max_skip_count 1 (bigrams may skip one item).
    counts = np.array([[1, 2, 2, 1 + 0, 2], [1, 1, 1, 1, 0]], dtype=np.float64)
    # row 0: a1 b2 c2; (a,b): a_b(skip0) -> 1; (b,c): b_c(0), b_c(skip0 at 3-4), b.c? (1,3)->b,b no
    #        -> (b,c) at (1,2),(3,4) = 2; skip1: (0,2) a,c no; (1,3) b,b no; (2,4) c,c no.
    # row 1: a1 b1 c1; (a,b) skip1: (2,4) a,b -> 1; (b,c) none.
    out = np.zeros((2, 5), dtype=np.float32)
    for g in range(5):
        out[:, idx[g]] = counts[:, g] * weights[g]
    # A big int pool (with repeated n-grams: the first one counts) against a
    # brute-force count, mode IDF, trigrams and skips.
    vocab = 30
    uni = list(RNG.integers(0, vocab, 25))
    bi = [list(RNG.integers(0, vocab, 2)) for _ in range(300)]
    tri = [list(RNG.integers(0, vocab, 3)) for _ in range(300)]
    pool_grams = [[u] for u in uni] + bi + tri
    pool_ints = [int(v) for g in pool_grams for v in g]
    ngram_counts = [0, len(uni), len(uni) + 2 * len(bi)]
    n_grams = len(pool_grams)
    out_idx = list(RNG.permutation(n_grams))
    wts = list(RNG.uniform(0.5, 2.0, n_grams).astype(np.float32))
    rows = RNG.integers(0, vocab, (3, 40)).astype(np.int64)
    first = {}
    for o, g in enumerate(pool_grams):
        first.setdefault(tuple(g), o)
    big = np.zeros((3, n_grams), dtype=np.float32)
    for r in range(3):
        cnt = np.zeros(n_grams)
        row = list(rows[r])
        for st in range(len(row)):
            for n in (2, 3):
                for skip in range(3):
                    pos = [st + i * (skip + 1) for i in range(n)]
                    if pos[-1] >= len(row):
                        break
                    o = first.get(tuple(row[p] for p in pos))
                    if o is not None:
                        cnt[o] += 1
        for o in range(n_grams):
            if cnt[o]:
                big[r, out_idx[o]] += wts[o]
    n = helper.make_node("TfIdfVectorizer", ["x"], ["y"], mode="IDF", min_gram_length=2,
                         max_gram_length=3, max_skip_count=2, ngram_counts=ngram_counts,
                         ngram_indexes=[int(v) for v in out_idx], pool_int64s=pool_ints,
                         weights=[float(w) for w in wts])
    save_case(outdir, "tfidf_big_int_pool_idf_trigrams", n, [("x", rows)], [("y", big)], 9)

    n = helper.make_node("TfIdfVectorizer", ["x"], ["y"], mode="TFIDF", min_gram_length=1,
                         max_gram_length=2, max_skip_count=1, ngram_counts=[0, 3],
                         ngram_indexes=idx, pool_strings=pool, weights=weights)
    save_case(outdir, "tfidf_strings_tfidf_skip1", n, [("x", x)], [("y", out)], 9)


# ---- Opset 20: AffineGrid, StringConcat, StringSplit ------------------------------

def affine_grid_ref(theta, size, align_corners):
    spatial = size[2:]
    axes = []
    for n in spatial:
        if align_corners:
            axes.append(np.linspace(-1, 1, n) if n > 1 else np.array([-1.0]))
        else:
            axes.append((2 * np.arange(n) + 1) / n - 1)
    mesh = np.meshgrid(*axes, indexing="ij")           # D, H, W order
    base = np.stack(mesh[::-1] + [np.ones_like(mesh[0])], axis=-1)  # (x, y[, z], 1)
    return np.einsum("nrc,...c->n...r", theta.astype(np.float64), base).astype(np.float32)


def opset20_cases(outdir):
    for k, align in ((2, 0), (2, 1), (3, 0)):
        size = [2, 3, 4, 5] if k == 2 else [2, 1, 3, 4, 2]
        theta = RNG.standard_normal((2, k, k + 1)).astype(np.float32)
        n = helper.make_node("AffineGrid", ["theta", "size"], ["grid"], align_corners=align)
        save_case(outdir, f"affinegrid_{k}d_align{align}", n,
                  [("theta", theta), ("size", np.array(size, np.int64))],
                  [("grid", affine_grid_ref(theta, size, align))], 20)

    x = np.array([["a", "bc"], ["", "d"]], dtype=object)
    y = np.array(["_1", "_2"], dtype=object)
    n = helper.make_node("StringConcat", ["x", "y"], ["z"])
    want = np.array([[a + b for a, b in zip(row, y)] for row in x], dtype=object)
    save_case(outdir, "stringconcat_broadcast", n, [("x", x), ("y", y)], [("z", want)], 20)

    def split_case(name, strings, **attrs):
        xs = np.array(strings, dtype=object)
        sep = attrs.get("delimiter") or None
        maxsplit = attrs.get("maxsplit", -1)
        pieces = [v.split(sep, maxsplit) for v in xs.ravel()]
        width = max([len(p) for p in pieces], default=0)
        ys = np.array([p + [""] * (width - len(p)) for p in pieces], dtype=object)
        ys = ys.reshape(xs.shape + (width,))
        zs = np.array([len(p) for p in pieces], dtype=np.int64).reshape(xs.shape)
        n = helper.make_node("StringSplit", ["x"], ["y", "z"], **attrs)
        save_case(outdir, name, n, [("x", xs)], [("y", ys), ("z", zs)], 20)

    import re

    def regex_case(name, strings, pattern):
        xs = np.array(strings, dtype=object)
        want = np.vectorize(lambda v: re.fullmatch(pattern, v) is not None, otypes=[bool])(xs)
        n = helper.make_node("RegexFullMatch", ["x"], ["y"], pattern=pattern)
        save_case(outdir, name, n, [("x", xs)], [("y", want.reshape(xs.shape))], 20)

    regex_case("regex_full_match_basic", ["www.google.com", "www.facebook.com", "www.bbc.co.uk"],
               r"www\.[\w.-]+\.\bcom\b")
    regex_case("regex_full_match_email", [["account@gmail.com", "account@hotmail.com"],
                                          ["not email", "account2@yahoo.com"]],
               r"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)")
    regex_case("regex_full_match_digits_lazy", ["a12", "a1b", "zz", "a", "7-8"],
               r"(?:[a-z]\d+?)|\d-\d|z*?")

    split_case("stringsplit_delimiter", [["a,b,,c", ","], ["", "x"]], delimiter=",")
    split_case("stringsplit_delimiter_maxsplit", ["a--b--c--d", "--", "e"], delimiter="--",
               maxsplit=2)
    split_case("stringsplit_whitespace", ["  hello   world ", "", "one", "\ta\nb  c"])
    split_case("stringsplit_whitespace_maxsplit", ["  a b   c  ", "x  y"], maxsplit=1)


def gridsample_3d_case(outdir):
    """Trilinear GridSample on a 5-D input (opset 20), zeros padding, written
    as PyTorch defines it: grid[..., 0] indexes W, [..., 1] H, [..., 2] D."""
    x = RNG.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    grid = RNG.uniform(-1.2, 1.2, (2, 2, 3, 2, 3)).astype(np.float32)
    N, C, D, H, W = x.shape
    y = np.zeros((N, C) + grid.shape[1:4])
    for n in range(N):
        for idx in np.ndindex(*grid.shape[1:4]):
            gx, gy, gz = grid[(n,) + idx].astype(np.float64)
            pos = [((gz + 1) * D - 1) / 2, ((gy + 1) * H - 1) / 2, ((gx + 1) * W - 1) / 2]
            base = [int(np.floor(v)) for v in pos]
            for corner in np.ndindex(2, 2, 2):
                ijk = [b + c for b, c in zip(base, corner)]
                w = np.prod([(v - b) if c else (1 - (v - b))
                             for v, b, c in zip(pos, base, corner)])
                if all(0 <= i < s for i, s in zip(ijk, (D, H, W))):
                    y[(n, slice(None)) + idx] += w * x[n, :, ijk[0], ijk[1], ijk[2]]
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"], mode="linear")
    save_case(outdir, "gridsample_3d_trilinear_zeros", node, [("X", x), ("grid", grid)],
              [("Y", y.astype(np.float32))], 20)


# ---- Hostile inputs -----------------------------------------------------------------

def bad_case(outdir, name, node, inputs, opset, expect):
    """A model `kiln run` must refuse with a message holding `expect` ('' =
    it must run cleanly).  Inputs are written as NAME.pb next to the model."""
    case = os.path.join(outdir, name)
    os.makedirs(case, exist_ok=True)
    vi = [helper.make_tensor_value_info(n, onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype], a.shape)
          for n, a in inputs]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in node.output if o]
    graph = helper.make_graph([node], name, vi, outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, os.path.join(case, "model.onnx"))
    for n, a in inputs:
        with open(os.path.join(case, n + ".pb"), "wb") as f:
            f.write(numpy_helper.from_array(a, n).SerializeToString())
    with open(os.path.join(case, "expect"), "w") as f:
        f.write(expect)


def bad_cases(outdir):
    f32 = lambda *shape: RNG.standard_normal(shape).astype(np.float32)
    i64 = lambda *v: np.array(v, dtype=np.int64)
    x = f32(1, 1, 4, 4)
    resize_s = helper.make_node("Resize", ["X", "", "scales"], ["Y"], mode="linear")
    resize_z = helper.make_node("Resize", ["X", "", "", "sizes"], ["Y"])
    bad_case(outdir, "resize_nan_scale", resize_s,
             [("X", x), ("scales", np.array([1, 1, np.nan, 2], np.float32))], 13,
             "must be positive")
    bad_case(outdir, "resize_negative_size", resize_z, [("X", x), ("sizes", i64(1, 1, -3, 4))],
             13, "size -3 is invalid")
    bad_case(outdir, "resize_absurd_size", resize_z,
             [("X", x), ("sizes", i64(1, 1, 1 << 41, 4))], 13, "is invalid")
    bad_case(outdir, "resize_scales_and_sizes",
             helper.make_node("Resize", ["X", "", "scales", "sizes"], ["Y"]),
             [("X", x), ("scales", np.ones(4, np.float32)), ("sizes", i64(1, 1, 4, 4))], 13,
             "exactly one of scales and sizes")
    lstm_in = [("X", f32(4, 2, 3)), ("W", f32(1, 8, 3)), ("R", f32(1, 8, 2)), ("B", f32(1, 16))]
    bad_case(outdir, "lstm_seq_lens_too_long",
             helper.make_node("LSTM", ["X", "W", "R", "B", "L"], ["Y"], hidden_size=2),
             lstm_in + [("L", np.array([4, 9], np.int32))], 14,
             "sequence_lens[1] = 9 is outside [0, 4]")
    bad_case(outdir, "lstm_w_shape",
             helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=3), lstm_in[:3], 14,
             "W/R shapes do not match")
    bad_case(outdir, "gru_unknown_activation",
             helper.make_node("GRU", ["X", "W", "R"], ["Y"], hidden_size=2,
                              activations=["Sigmoid", "Frob"]),
             [("X", f32(2, 1, 3)), ("W", f32(1, 6, 3)), ("R", f32(1, 6, 2))], 14,
             "unknown activation 'Frob'")
    roi_node = helper.make_node("RoiAlign", ["X", "rois", "idx"], ["Y"], output_height=2,
                                output_width=2)
    bad_case(outdir, "roialign_batch_index", roi_node,
             [("X", f32(1, 1, 5, 5)), ("rois", np.array([[0, 0, 3, 3]], np.float32)),
              ("idx", i64(3))], 16, "batch_indices[0] = 3 is out of range")
    bad_case(outdir, "roialign_nan_roi", roi_node,
             [("X", f32(1, 1, 5, 5)), ("rois", np.array([[0, np.nan, 3, 3]], np.float32)),
              ("idx", i64(0))], 16, "is not finite")
    bad_case(outdir, "nms_boxes_shape",
             helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["Y"]),
             [("boxes", f32(1, 3, 5)), ("scores", f32(1, 1, 3))], 11,
             "expected boxes [B, N, 4]")
    bad_case(outdir, "nms_nan_scores_run",
             helper.make_node("NonMaxSuppression", ["boxes", "scores", "m"], ["Y"]),
             [("boxes", f32(1, 3, 4)), ("scores", np.array([[[np.nan, 1, np.nan]]], np.float32)),
              ("m", i64(5))], 11, "")
    bad_case(outdir, "dft_zero_length", helper.make_node("DFT", ["x", "n"], ["y"]),
             [("x", f32(1, 8, 1)), ("n", i64(0))], 17, "dft_length 0 is invalid")
    bad_case(outdir, "stft_frame_too_long",
             helper.make_node("STFT", ["s", "step", "", "len"], ["y"]),
             [("s", f32(1, 20, 1)), ("step", i64(4)), ("len", i64(100))], 17,
             "frame_step 4 and frame_length 100 are invalid")
    bad_case(outdir, "hann_negative_size", helper.make_node("HannWindow", ["n"], ["y"]),
             [("n", i64(-1))], 17, "size -1 is invalid")
    bad_case(outdir, "mel_zero_bins",
             helper.make_node("MelWeightMatrix", ["a", "b", "c", "d", "e"], ["y"]),
             [("a", i64(0)), ("b", i64(16)), ("c", i64(8000)), ("d", np.array(0, np.float32)),
              ("e", np.array(4000, np.float32))], 17, "must be positive")
    bad_case(outdir, "tfidf_pool_mismatch",
             helper.make_node("TfIdfVectorizer", ["x"], ["y"], mode="TF", min_gram_length=1,
                              max_gram_length=1, max_skip_count=0, ngram_counts=[0],
                              ngram_indexes=[0], pool_int64s=[1]),
             [("x", np.array(["a", "b"], dtype=object))], 9, "string input needs pool_strings")
    bad_case(outdir, "strnormalizer_rank3", helper.make_node("StringNormalizer", ["x"], ["y"]),
             [("x", np.array([[["a"]]], dtype=object))], 10, "X must have shape [C] or [1, C]")
    bad_case(outdir, "regex_lookahead",
             helper.make_node("RegexFullMatch", ["x"], ["y"], pattern="(?=a)a"),
             [("x", np.array(["a"], dtype=object))], 20, "RE2 syntax kiln cannot translate")
    bad_case(outdir, "regex_unbalanced",
             helper.make_node("RegexFullMatch", ["x"], ["y"], pattern="(a"),
             [("x", np.array(["a"], dtype=object))], 20, "does not compile")
    bad_case(outdir, "gridsample_nan_grid_runs",
             helper.make_node("GridSample", ["X", "G"], ["Y"], padding_mode="reflection"),
             [("X", f32(1, 1, 3, 3)), ("G", np.array([[[[np.nan, 1e30], [-1e30, np.inf]]]],
                                                      np.float32))], 16, "")


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    recurrent_cases(outdir)
    resize_cases(outdir)
    signal_cases(outdir)
    text_cases(outdir)
    opset20_cases(outdir)
    gridsample_3d_case(outdir)
    if len(sys.argv) > 2:
        os.makedirs(sys.argv[2], exist_ok=True)
        bad_cases(sys.argv[2])


if __name__ == "__main__":
    main()
