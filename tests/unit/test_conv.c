/*
 * test_conv.c - conv.c's fast paths against plain loops:
 *  - the depthwise plane kernels (kiln_conv_dw_plane) on every path this
 *    CPU has (AVX-512, AVX2, portable) against a naive loop: kernel sizes
 *    1 to 5, strides 1 to 3 (and 2 along rows only), pads (asymmetric,
 *    larger than the kernel reach), dilations, widths around the vector
 *    sizes (1, 7, 15-17, 31-33, 63-65, 112) and 1-D windows, with the
 *    bias and each in-stores activation applied in the kernel; NaN and inf
 *    inputs come out as the naive loop makes them; nothing is written
 *    past the plane; 3-D windows are refused.
 *  - whole depthwise FusedConv nodes (com.kiln, written in memory) with
 *    batch 2, channel multipliers 1 and 2, strides 1 and 2, kernels 3 and
 *    5, odd sizes and Clip / Relu / Sigmoid / no activation, on two
 *    threads, against the naive loop.
 *  - Winograd F(4x4, 3x3) and F(2x2, 3x3) (kiln_conv_winograd) against a direct sum in
 *    double: pads 0 to 2 (asymmetric too), odd sizes, batch 2, channel
 *    counts off the vector widths, bias, the FusedConv epilogue (residual +
 *    ReLU through apply, and ReLU alone), weights transformed per call and
 *    once, one thread and two (both ways of splitting), portable and
 *    AVX-512 transforms.
 *  - the GEMM path (kiln_conv_gemm_forward): batches 1 to 5 whose column
 *    blocks span images (small maps) or are cut inside an image (larger
 *    maps), pointwise and im2col convs, groups, pads, strides, dilations,
 *    on 1 to 3 threads (blocks per thread and blocks split over threads),
 *    weights packed or not, with no epilogue, the GEMM's ReLU, or a
 *    residual-style pass that must see each element's output offset.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/threadpool.h"
#include "ops/conv_winograd.h"
#include "kiln.h"
#include "onnx/pb.h"
#include "ops/gemm.h"
#include "ops/nn_kernels.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static kiln_window_t window2d(int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh,
                              int64_t dw, int64_t pt, int64_t pl, int64_t pb, int64_t pr)
{
    kiln_window_t win;
    memset(&win, 0, sizeof win);
    win.nd = 2;
    win.in[0] = win.out[0] = win.kernel[0] = win.stride[0] = win.dilation[0] = 1;
    win.in[1] = h;
    win.in[2] = w;
    win.kernel[1] = kh;
    win.kernel[2] = kw;
    win.stride[1] = sh;
    win.stride[2] = sw;
    win.dilation[1] = dh;
    win.dilation[2] = dw;
    win.pad_begin[1] = pt;
    win.pad_begin[2] = pl;
    win.pad_end[1] = pb;
    win.pad_end[2] = pr;
    win.out[1] = (h + pt + pb - ((kh - 1) * dh + 1)) / sh + 1;
    win.out[2] = (w + pl + pr - ((kw - 1) * dw + 1)) / sw + 1;
    return win;
}

static void naive_plane(const kiln_window_t *w, const float *x, const float *f, float bias, const kiln_act_t *act,
                        float *y)
{
    for (int64_t oh = 0; oh < w->out[1]; oh++)
        for (int64_t ow = 0; ow < w->out[2]; ow++) {
            double acc = bias;
            for (int64_t i = 0; i < w->kernel[1]; i++)
                for (int64_t j = 0; j < w->kernel[2]; j++) {
                    int64_t ih = oh * w->stride[1] - w->pad_begin[1] + i * w->dilation[1];
                    int64_t iw = ow * w->stride[2] - w->pad_begin[2] + j * w->dilation[2];
                    if (ih >= 0 && ih < w->in[1] && iw >= 0 && iw < w->in[2])
                        acc += (double)f[i * w->kernel[2] + j] * x[ih * w->in[2] + iw];
                }
            y[oh * w->out[2] + ow] = kiln_act_scalar(act, (float)acc);
        }
}

/* Same NaN-ness, same infinities, finite values within tol. */
static bool same_value(float want, float got, double tol)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got))
        return want == got;
    return fabs((double)want - got) <= tol;
}

/* The plane paths to compare: 0 the CPU's best, 1 AVX2 (AVX-512 avoided),
 * 2 portable. */
static const char *set_path(int path)
{
    kiln_conv_dw_avoid_avx512(path == 1);
    kiln_conv_dw_force_portable(path == 2);
    return kiln_conv_dw_path();
}

static const kiln_act_t ACTS[] = {{KILN_ACT_NONE, 0.0f, 0.0f},        {KILN_ACT_CLIP, 0.0f, 6.0f},
                                  {KILN_ACT_RELU, 0.0f, 0.0f},        {KILN_ACT_LEAKY_RELU, 0.1f, 0.0f},
                                  {KILN_ACT_HARD_SIGMOID, 0.2f, 0.5f}, {KILN_ACT_HARD_SWISH, 0.0f, 0.0f},
                                  {KILN_ACT_CLIP, -0.25f, 0.5f}};

static void check_dw_act(kiln_window_t w, const char *what, const kiln_act_t *act, bool specials)
{
    if (w.out[1] < 1 || w.out[2] < 1)
        return;
    unsigned seed = (unsigned)(w.in[1] * 131 + w.in[2] * 7 + w.kernel[2]);
    int64_t in_n = w.in[1] * w.in[2], out_n = w.out[1] * w.out[2];
    float *x = malloc((size_t)in_n * sizeof *x), *f = malloc((size_t)(w.kernel[1] * w.kernel[2]) * sizeof *f);
    float *want = malloc((size_t)out_n * sizeof *want), *got = malloc((size_t)(out_n + 1) * sizeof *got);
    for (int64_t i = 0; i < in_n; i++)
        x[i] = frand(&seed);
    for (int64_t i = 0; i < w.kernel[1] * w.kernel[2]; i++)
        f[i] = frand(&seed) + 2.0f; /* no zero weights: inf * 0 would make NaN */
    if (specials) {
        x[in_n / 3] = NAN;
        x[in_n / 2] = INFINITY;
        x[in_n - 1] = -INFINITY;
    }
    naive_plane(&w, x, f, 0.25f, act, want);
    for (int path = 0; path < 3; path++) {
        const char *name = set_path(path);
        for (int64_t i = 0; i <= out_n; i++)
            got[i] = -12345.0f;
        bool ran = kiln_conv_dw_plane(&w, x, f, 0.25f, act, got);
        CHECK_MSG(ran, "%s: the plane kernel refused a 2-D window", what);
        CHECK_MSG(got[out_n] == -12345.0f, "%s %s: wrote past the plane", what, name);
        int64_t bad = -1;
        for (int64_t i = 0; ran && i < out_n && bad < 0; i++)
            if (!same_value(want[i], got[i], 1e-4))
                bad = i;
        CHECK_MSG(bad < 0,
                  "%s %s act %d: in %lldx%lld k %lldx%lld s %lldx%lld d %lldx%lld pads %lld,%lld,%lld,%lld: "
                  "[%lld] want %g got %g",
                  what, name, act->kind, (long long)w.in[1], (long long)w.in[2], (long long)w.kernel[1],
                  (long long)w.kernel[2], (long long)w.stride[1], (long long)w.stride[2], (long long)w.dilation[1],
                  (long long)w.dilation[2], (long long)w.pad_begin[1], (long long)w.pad_begin[2],
                  (long long)w.pad_end[1], (long long)w.pad_end[2], (long long)bad, bad < 0 ? 0.0 : want[bad],
                  bad < 0 ? 0.0 : got[bad]);
    }
    set_path(0);
    free(x);
    free(f);
    free(want);
    free(got);
}

static void check_dw(kiln_window_t w, const char *what)
{
    check_dw_act(w, what, &ACTS[0], false);
}

static void test_depthwise(void)
{
    static const int64_t widths[] = {1, 2, 7, 14, 15, 16, 17, 31, 33, 63, 64, 65, 112};
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
        for (int64_t k = 1; k <= 5; k += 2)
            for (int64_t s = 1; s <= 3; s++)
                for (int64_t p = 0; p <= k / 2 + 1; p++) {
                    int64_t wd = widths[wi], h = wd > 20 ? 9 : wd + 2;
                    check_dw(window2d(h, wd, k, k, s, s, 1, 1, p, p, p, p), "square");
                    check_dw(window2d(h, wd, k, k, s, s, 1, 1, p, p, p + 1, 0), "asymmetric pads");
                }
    check_dw(window2d(11, 23, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2), "dilated 2");
    check_dw(window2d(13, 40, 3, 5, 2, 1, 3, 1, 1, 2, 0, 2), "mixed kernel, row stride only");
    check_dw(window2d(13, 40, 5, 3, 1, 2, 1, 2, 0, 3, 4, 1), "mixed kernel, column stride only");
    check_dw(window2d(7, 7, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3), "7x7 full reach");
    check_dw(window2d(1, 50, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1), "1-D");
    check_dw(window2d(1, 50, 1, 4, 1, 2, 1, 3, 0, 0, 0, 5), "1-D dilated strided");
    check_dw(window2d(40, 70, 2, 6, 1, 2, 1, 1, 0, 9, 1, 9), "pads wider than a vector");
    /* the activations in the stores, MobileNet's shapes and odd ones, with
     * NaN and inf in the input */
    for (size_t a = 0; a < sizeof ACTS / sizeof ACTS[0]; a++)
        for (int64_t s = 1; s <= 2; s++)
            for (int64_t k = 3; k <= 5; k += 2) {
                check_dw_act(window2d(112, 112, k, k, s, s, 1, 1, k / 2, k / 2, k / 2, k / 2), "mobilenet 112",
                             &ACTS[a], false);
                check_dw_act(window2d(14, 14, k, k, s, s, 1, 1, k / 2, k / 2, k / 2, k / 2), "mobilenet 14",
                             &ACTS[a], true);
                check_dw_act(window2d(7, 7, k, k, s, s, 1, 1, k / 2, k / 2, k / 2, k / 2), "mobilenet 7", &ACTS[a],
                             true);
                check_dw_act(window2d(19, 45, k, k, s, s, 1, 1, 0, 1, 2, 0), "odd, asymmetric pads", &ACTS[a],
                             true);
            }
    /* a 3-D window is not a plane */
    kiln_window_t w = window2d(8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
    w.kernel[0] = 2;
    float x[64] = {0}, f[18] = {0}, y[64];
    CHECK(!kiln_conv_dw_plane(&w, x, f, 0.0f, NULL, y));
}

/* ---- whole FusedConv nodes ---------------------------------------------- */

static void put_input(pb_writer_t *g, const char *name, int rank, const int64_t *dims)
{
    pb_writer_t vi = {0}, type = {0}, tt = {0}, shape = {0};
    pb_put_varint_field(&tt, 1, KILN_DTYPE_FLOAT32);
    for (int d = 0; d < rank; d++) {
        pb_writer_t dim = {0};
        pb_put_varint_field(&dim, 1, (uint64_t)dims[d]);
        pb_put_message_field(&shape, 1, &dim);
    }
    pb_put_message_field(&tt, 2, &shape);
    pb_put_message_field(&type, 1, &tt);
    pb_put_string_field(&vi, 1, name);
    pb_put_message_field(&vi, 2, &type);
    pb_put_message_field(g, 11, &vi);
}

static void put_ints(pb_writer_t *node, const char *name, int n, const int64_t *v)
{
    pb_writer_t a = {0};
    pb_put_string_field(&a, 1, name);
    for (int i = 0; i < n; i++)
        pb_put_varint_field(&a, 8, (uint64_t)v[i]);
    pb_put_varint_field(&a, 20, 7); /* INTS */
    pb_put_message_field(node, 5, &a);
}

static void put_int(pb_writer_t *node, const char *name, int64_t v)
{
    pb_writer_t a = {0};
    pb_put_string_field(&a, 1, name);
    pb_put_varint_field(&a, 3, (uint64_t)v);
    pb_put_varint_field(&a, 20, 2); /* INT */
    pb_put_message_field(node, 5, &a);
}

static void put_float(pb_writer_t *node, const char *name, float v)
{
    pb_writer_t a = {0};
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    pb_put_string_field(&a, 1, name);
    pb_put_fixed32_field(&a, 2, bits);
    pb_put_varint_field(&a, 20, 1); /* FLOAT */
    pb_put_message_field(node, 5, &a);
}

/* FusedConv(X, W, B) -> Y with group, a k x k kernel, strides s, pads
 * pad all round and activation act (NULL: none) with alpha lo, beta hi. */
static kiln_model_t *fused_conv_model(const int64_t *xd, const int64_t *wd, int64_t group, int64_t k, int64_t s,
                                      int64_t pad, const char *act, float lo, float hi)
{
    pb_writer_t model = {0}, graph = {0}, node = {0}, op1 = {0}, op2 = {0}, out = {0};
    pb_put_string_field(&node, 1, "x");
    pb_put_string_field(&node, 1, "w");
    pb_put_string_field(&node, 1, "b");
    pb_put_string_field(&node, 2, "y");
    pb_put_string_field(&node, 3, "conv");
    pb_put_string_field(&node, 4, "FusedConv");
    pb_put_string_field(&node, 7, "com.kiln");
    put_int(&node, "group", group);
    put_ints(&node, "kernel_shape", 2, (int64_t[]){k, k});
    put_ints(&node, "strides", 2, (int64_t[]){s, s});
    put_ints(&node, "pads", 4, (int64_t[]){pad, pad, pad, pad});
    if (act) {
        pb_writer_t a = {0};
        pb_put_string_field(&a, 1, "activation");
        pb_put_string_field(&a, 4, act);
        pb_put_varint_field(&a, 20, 3); /* STRING */
        pb_put_message_field(&node, 5, &a);
        put_float(&node, "activation_alpha", lo);
        put_float(&node, "activation_beta", hi);
    }
    pb_put_message_field(&graph, 1, &node);
    pb_put_string_field(&graph, 2, "g");
    put_input(&graph, "x", 4, xd);
    put_input(&graph, "w", 4, wd);
    put_input(&graph, "b", 1, wd);
    pb_put_string_field(&out, 1, "y");
    pb_put_message_field(&graph, 12, &out);
    pb_put_varint_field(&model, 1, 8);
    pb_put_string_field(&op1, 1, "");
    pb_put_varint_field(&op1, 2, 13);
    pb_put_message_field(&model, 8, &op1);
    pb_put_string_field(&op2, 1, "com.kiln");
    pb_put_varint_field(&op2, 2, 1);
    pb_put_message_field(&model, 8, &op2);
    pb_put_message_field(&model, 7, &graph);
    kiln_model_t *m = NULL;
    kiln_status_t st = model.failed ? KILN_ERR_NO_MEMORY : kiln_model_load_bytes(model.buf, model.len, &m);
    CHECK_MSG(st == KILN_OK, "FusedConv model: %s", kiln_last_error());
    pb_writer_free(&model);
    return st == KILN_OK ? m : NULL;
}

static void check_fused_dw(int64_t c, int64_t mult, int64_t h, int64_t w, int64_t k, int64_t s, const char *act,
                           float lo, float hi)
{
    int64_t pad = k / 2, oc = c * mult;
    int64_t xd[4] = {2, c, h, w}, wd[4] = {oc, 1, k, k};
    kiln_window_t win = window2d(h, w, k, k, s, s, 1, 1, pad, pad, pad, pad);
    int64_t yd[4] = {2, oc, win.out[1], win.out[2]}, in_n = h * w, out_n = win.out[1] * win.out[2];
    kiln_model_t *m = fused_conv_model(xd, wd, c, k, s, pad, act, lo, hi);
    if (!m)
        return;
    kiln_tensor_t *x = kiln_tensor_create(KILN_DTYPE_FLOAT32, 4, xd);
    kiln_tensor_t *f = kiln_tensor_create(KILN_DTYPE_FLOAT32, 4, wd);
    kiln_tensor_t *b = kiln_tensor_create(KILN_DTYPE_FLOAT32, 1, wd), *y = NULL;
    float *xv = kiln_tensor_data(x), *fv = kiln_tensor_data(f), *bv = kiln_tensor_data(b);
    unsigned seed = (unsigned)(c * 7 + h * 3 + k + s);
    for (int64_t i = 0; i < 2 * c * in_n; i++)
        xv[i] = 4.0f * frand(&seed);
    for (int64_t i = 0; i < oc * k * k; i++)
        fv[i] = frand(&seed);
    for (int64_t i = 0; i < oc; i++)
        bv[i] = frand(&seed);
    kiln_session_options_t o;
    kiln_session_options_init(&o);
    o.threads = 2;
    kiln_session_t *sess = NULL;
    const char *names[3] = {"x", "w", "b"};
    const kiln_tensor_t *ins[3] = {x, f, b};
    kiln_status_t st = kiln_session_create(m, &o, &sess);
    if (st == KILN_OK)
        st = kiln_session_run(sess, 3, names, ins, 1, &y);
    CHECK_MSG(st == KILN_OK, "FusedConv run: %s", kiln_last_error());
    if (st == KILN_OK) {
        const float *yv = kiln_tensor_data(y);
        float *want = malloc((size_t)out_n * sizeof *want);
        kiln_act_t a = {KILN_ACT_NONE, lo, hi};
        if (act && !strcmp(act, "Clip"))
            a.kind = KILN_ACT_CLIP;
        else if (act && !strcmp(act, "Relu"))
            a.kind = KILN_ACT_RELU;
        double worst = 0;
        for (int64_t n = 0; n < 2; n++)
            for (int64_t q = 0; q < oc; q++) {
                naive_plane(&win, xv + (n * c + q / mult) * in_n, fv + q * k * k, bv[q], &a, want);
                for (int64_t i = 0; i < out_n; i++) {
                    float v = want[i];
                    if (act && !strcmp(act, "Sigmoid"))
                        v = 1.0f / (1.0f + expf(-v));
                    double d = fabs((double)v - yv[(n * oc + q) * out_n + i]);
                    worst = d > worst ? d : worst;
                }
            }
        CHECK_MSG(worst <= 1e-4 && kiln_tensor_dims(y)[1] == yd[1],
                  "FusedConv %s c %lld x%lld %lldx%lld k %lld s %lld: off by %g", act ? act : "-", (long long)c,
                  (long long)mult, (long long)h, (long long)w, (long long)k, (long long)s, worst);
        free(want);
    }
    kiln_session_free(sess);
    kiln_tensor_free(x);
    kiln_tensor_free(f);
    kiln_tensor_free(b);
    kiln_tensor_free(y);
    kiln_model_free(m);
}

static void test_fused_depthwise(void)
{
    for (int path = 0; path < 3; path++) {
        set_path(path);
        for (int64_t k = 3; k <= 5; k += 2)
            for (int64_t s = 1; s <= 2; s++)
                for (int64_t mult = 1; mult <= 2; mult++) {
                    check_fused_dw(5, mult, 13, 11, k, s, "Clip", 0.0f, 6.0f);
                    check_fused_dw(3, mult, 20, 37, k, s, NULL, 0.0f, 0.0f);
                }
        check_fused_dw(4, 1, 9, 17, 3, 1, "Relu", 0.0f, 0.0f);
        check_fused_dw(4, 1, 9, 17, 3, 2, "Sigmoid", 0.0f, 0.0f);
    }
    set_path(0);
}

/* The FusedConv-style epilogue: y = max(y + residual, 0). */
static void residual_relu(void *arg, float *y, int64_t offset, int64_t n)
{
    const float *res = arg;
    for (int64_t i = 0; i < n; i++) {
        float v = y[i] + res[offset + i];
        y[i] = v < 0.0f ? 0.0f : v;
    }
}

typedef struct wino_case {
    int64_t n, c, m, h, w, pt, pl, pb, pr;
} wino_case_t;

/* Runs one shape every way and compares with a direct double sum: the
 * error must stay within 1e-5 of the sum of the |terms| of each output
 * (the scale of its rounding), plus a hair. */
static void check_winograd(const wino_case_t *k, int tile, kiln_threadpool_t *pool)
{
    int64_t oh = k->h + k->pt + k->pb - 2, ow = k->w + k->pl + k->pr - 2;
    int64_t nx = k->n * k->c * k->h * k->w, nw = k->m * k->c * 9, ny = k->n * k->m * oh * ow;
    unsigned seed = (unsigned)(k->c * 31 + k->m * 7 + k->h);
    float *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)nw * sizeof *w);
    float *bias = malloc((size_t)k->m * sizeof *bias), *res = malloc((size_t)ny * sizeof *res);
    float *y = malloc((size_t)ny * sizeof *y);
    double *want = malloc((size_t)ny * sizeof *want), *scale = malloc((size_t)ny * sizeof *scale);
    float *u = aligned_alloc(64, (kiln_winograd_weights_floats(tile, k->m, k->c) * sizeof *u + 63) & ~(size_t)63);
    for (int64_t i = 0; i < nx; i++)
        x[i] = frand(&seed);
    for (int64_t i = 0; i < nw; i++)
        w[i] = frand(&seed);
    for (int64_t i = 0; i < k->m; i++)
        bias[i] = frand(&seed);
    for (int64_t i = 0; i < ny; i++)
        res[i] = frand(&seed);
    for (int64_t b = 0; b < k->n; b++)
        for (int64_t m = 0; m < k->m; m++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double acc = bias[m], abs_sum = fabs(bias[m]);
                    for (int64_t c = 0; c < k->c; c++)
                        for (int64_t r = 0; r < 3; r++)
                            for (int64_t q = 0; q < 3; q++) {
                                int64_t ih = i - k->pt + r, iw = j - k->pl + q;
                                if (ih < 0 || ih >= k->h || iw < 0 || iw >= k->w)
                                    continue;
                                double t = (double)x[((b * k->c + c) * k->h + ih) * k->w + iw] *
                                           w[((m * k->c + c) * 3 + r) * 3 + q];
                                acc += t;
                                abs_sum += fabs(t);
                            }
                    int64_t at = ((b * k->m + m) * oh + i) * ow + j;
                    want[at] = acc;
                    scale[at] = abs_sum;
                }
    CHECK(kiln_winograd_weights(tile, k->m, k->c, w, u));
    kiln_gemm_parallel_t par = kiln_gemm_parallel_pool(pool);
    /* variant: bit 0 weights once, bit 1 two threads, bits 2-3 epilogue
     * (none, residual + ReLU, ReLU alone in the stores, Clip(-0.5, 0.5)
     * alone), bit 4 portable transforms */
    for (int variant = 0; variant < 32; variant++) {
        int epi = (variant >> 2) & 3;
        kiln_conv_epilogue_t ep = {{KILN_ACT_NONE, 0.0f, 0.0f}, residual_relu, res};
        if (epi >= 2)
            ep = (kiln_conv_epilogue_t){{epi == 2 ? KILN_ACT_RELU : KILN_ACT_CLIP, -0.5f, 0.5f}, NULL, NULL};
        kiln_winograd_conv_t p = {tile, k->n, k->c, k->m, k->h, k->w, oh, ow, k->pt, k->pl, x, w,
                                  variant & 1 ? u : NULL, bias, y, epi ? &ep : NULL, variant & 2 ? 2 : 1};
        kiln_conv_winograd_force_portable(variant & 16);
        for (int64_t i = 0; i < ny; i++)
            y[i] = NAN;
        bool ok = kiln_conv_winograd(&p, variant & 2 ? &par : NULL);
        CHECK_MSG(ok, "winograd F(%d) %lldx%lld c %lld m %lld: failed", tile, (long long)k->h, (long long)k->w,
                  (long long)k->c, (long long)k->m);
        double worst = 0;
        int64_t worst_at = 0;
        for (int64_t i = 0; ok && i < ny; i++) {
            double v = want[i];
            if (epi == 1)
                v += res[i];
            if (epi == 3)
                v = v < -0.5 ? -0.5 : v > 0.5 ? 0.5 : v;
            else if (epi && v < 0)
                v = 0;
            double d = fabs((double)y[i] - v) / (scale[i] + (epi == 1 ? 1.0 : 0.0) + 1e-3);
            if (!(d <= worst)) { /* NaN too */
                worst = isnan(d) ? INFINITY : d;
                worst_at = i;
            }
        }
        CHECK_MSG(worst <= 1e-5, "winograd F(%d) n %lld c %lld m %lld in %lldx%lld pads %lld,%lld,%lld,%lld variant %d: "
                  "relative error %g at %lld",
                  tile, (long long)k->n, (long long)k->c, (long long)k->m, (long long)k->h, (long long)k->w,
                  (long long)k->pt, (long long)k->pl, (long long)k->pb, (long long)k->pr, variant, worst,
                  (long long)worst_at);
    }
    kiln_conv_winograd_force_portable(false);
    free(x);
    free(w);
    free(bias);
    free(res);
    free(y);
    free(want);
    free(scale);
    free(u);
}

static void test_winograd(void)
{
    static const wino_case_t cases[] = {
        {1, 32, 32, 8, 8, 1, 1, 1, 1},        {2, 33, 17, 13, 11, 0, 0, 0, 0},
        {1, 40, 48, 9, 23, 2, 2, 2, 2},       {2, 16, 35, 7, 7, 1, 0, 2, 1},
        {1, 3, 5, 5, 6, 2, 1, 0, 2},          {1, 20, 24, 3, 3, 0, 0, 0, 0},
        {1, 64, 64, 56, 56, 1, 1, 1, 1},      {2, 100, 70, 30, 30, 1, 1, 1, 1},
        {1, 24, 40, 70, 130, 1, 2, 0, 1},     {2, 48, 36, 17, 18, 2, 0, 1, 2},
    };
    kiln_threadpool_t *pool = kiln_threadpool_create(2);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_winograd(&cases[i], 4, pool);
        check_winograd(&cases[i], 2, pool);
    }
    kiln_threadpool_free(pool);
    /* the rule and the switch */
    kiln_window_t w = window2d(14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
    int f4 = __builtin_cpu_supports("avx512f") ? 4 : 0, f2 = f4 / 2;
    /* 16 tiles of 4x4, 49 of 2x2: small transformed weights take F(4x4),
     * big ones (streamed from memory) F(2x2) at every batch size, so a
     * server's changing batches keep one cached transform */
    CHECK(kiln_winograd_tile(&w, 1, 64, 64, 1) == f4);
    CHECK(kiln_winograd_tile(&w, 1, 256, 256, 1) == f2);
    CHECK(kiln_winograd_tile(&w, 1, 256, 256, 2) == f2);
    CHECK(kiln_winograd_tile(&w, 1, 256, 256, 4) == f2);
    CHECK(kiln_winograd_tile(&w, 1, 8, 256, 1) == 0);
    kiln_window_t small = window2d(7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1); /* 4 tiles of 4x4, 16 of 2x2 */
    CHECK(kiln_winograd_tile(&small, 1, 32, 32, 1) == f2);
    CHECK(kiln_winograd_tile(&small, 1, 512, 512, 1) == 0);
    CHECK(kiln_winograd_tile(&small, 1, 512, 512, 2) == f2);
    CHECK(kiln_winograd_tile(&small, 1, 512, 512, 16) == f2);
    kiln_window_t tiny = window2d(3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
    CHECK(kiln_winograd_tile(&tiny, 1, 512, 512, 1) == 0);
    kiln_window_t dilated = window2d(14, 14, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2);
    CHECK(kiln_winograd_tile(&dilated, 1, 256, 256, 1) == 0);
    kiln_window_t k5 = window2d(14, 14, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2);
    CHECK(kiln_winograd_tile(&k5, 1, 256, 256, 1) == 0);
    kiln_conv_winograd_enable(false);
    CHECK(kiln_winograd_tile(&w, 1, 256, 256, 1) == 0);
    kiln_conv_winograd_enable(true);
    kiln_window_t s2 = window2d(14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
    CHECK(kiln_winograd_tile(&s2, 1, 256, 256, 1) == 0);
    CHECK(kiln_winograd_tile(&w, 2, 256, 256, 1) == 0);
}

/* The GEMM path's residual-style epilogue: y = y * 0.5 + residual[offset]. */
static void residual_apply(void *arg, float *y, int64_t offset, int64_t n)
{
    const float *residual = arg;
    for (int64_t i = 0; i < n; i++)
        y[i] = y[i] * 0.5f + residual[offset + i];
}

typedef struct conv_case {
    int64_t batch, in_channels, out_channels, group;
    kiln_window_t w;
} conv_case_t;

static void check_gemm_conv(const conv_case_t *c, const char *what)
{
    const kiln_window_t *w = &c->w;
    int64_t ipg = c->in_channels / c->group, opg = c->out_channels / c->group;
    int64_t in_vol = w->in[1] * w->in[2], out_vol = w->out[1] * w->out[2], kvol = w->kernel[1] * w->kernel[2];
    size_t nx = (size_t)(c->batch * c->in_channels * in_vol), nw = (size_t)(c->out_channels * ipg * kvol);
    size_t ny = (size_t)(c->batch * c->out_channels * out_vol);
    float *x = malloc(nx * sizeof *x), *wt = malloc(nw * sizeof *wt), *b = malloc((size_t)c->out_channels * sizeof *b);
    float *ref = malloc(ny * sizeof *ref), *y = malloc(ny * sizeof *y), *plane = malloc((size_t)out_vol * sizeof *plane);
    float *residual = malloc(ny * sizeof *residual);
    size_t packed_floats = kiln_sgemm_packed_a_floats(opg, ipg * kvol);
    float *packed = aligned_alloc(64, (packed_floats * (size_t)c->group * sizeof(float) + 63) / 64 * 64);
    unsigned seed = 11;
    for (size_t i = 0; i < nx; i++)
        x[i] = frand(&seed);
    for (size_t i = 0; i < nw; i++)
        wt[i] = frand(&seed);
    for (int64_t i = 0; i < c->out_channels; i++)
        b[i] = frand(&seed);
    for (size_t i = 0; i < ny; i++)
        residual[i] = frand(&seed);
    for (int64_t g = 0; g < c->group; g++)
        kiln_sgemm_pack_a(opg, ipg * kvol, wt + g * opg * ipg * kvol, ipg * kvol, packed + g * packed_floats);
    const kiln_act_t no_act = {KILN_ACT_NONE, 0.0f, 0.0f};
    for (int64_t n = 0; n < c->batch; n++)
        for (int64_t m = 0; m < c->out_channels; m++) {
            float *yr = ref + (n * c->out_channels + m) * out_vol;
            for (int64_t i = 0; i < out_vol; i++)
                yr[i] = b[m];
            for (int64_t ci = 0; ci < ipg; ci++) {
                const float *xp = x + (n * c->in_channels + m / opg * ipg + ci) * in_vol;
                naive_plane(w, xp, wt + (m * ipg + ci) * kvol, 0.0f, &no_act, plane);
                for (int64_t i = 0; i < out_vol; i++)
                    yr[i] += plane[i];
            }
        }
    for (int threads = 1; threads <= 3; threads++) {
        kiln_threadpool_t *pool = threads > 1 ? kiln_threadpool_create(threads) : NULL;
        for (int variant = 0; variant < 8; variant++) {
            /* none, ReLU in the GEMM's stores, residual, Clip in the stores
             * and then the residual */
            int epilogue = variant % 4;
            bool use_packed = variant >= 4;
            kiln_conv_epilogue_t ep = {.act = {KILN_ACT_NONE, 0.0f, 0.0f},
                                       .apply = epilogue >= 2 ? residual_apply : NULL, .arg = residual};
            if (epilogue == 1)
                ep.act.kind = KILN_ACT_RELU;
            if (epilogue == 3)
                ep.act = (kiln_act_t){KILN_ACT_CLIP, -0.3f, 0.4f};
            for (size_t i = 0; i < ny; i++)
                y[i] = NAN;
            kiln_status_t st = kiln_conv_gemm_forward(w, c->batch, c->in_channels, c->out_channels, c->group, x, wt,
                                                      use_packed ? packed : NULL, b, y, epilogue ? &ep : NULL, pool);
            CHECK_MSG(st == KILN_OK, "%s: status %d", what, (int)st);
            int bad = 0;
            for (size_t i = 0; i < ny && bad < 3; i++) {
                float want = ref[i];
                if (epilogue == 1)
                    want = want > 0.0f ? want : 0.0f;
                if (epilogue == 3)
                    want = want < -0.3f ? -0.3f : want > 0.4f ? 0.4f : want;
                if (epilogue >= 2)
                    want = want * 0.5f + residual[i];
                if (!(fabsf(y[i] - want) <= 1e-3f * (1.0f + fabsf(want)))) {
                    CHECK_MSG(false, "%s (batch %lld, %d threads, variant %d): y[%zu] = %g, want %g", what,
                              (long long)c->batch, threads, variant, i, (double)y[i], (double)want);
                    bad++;
                }
            }
        }
        kiln_threadpool_free(pool);
    }
    free(x);
    free(wt);
    free(b);
    free(ref);
    free(y);
    free(plane);
    free(residual);
    free(packed);
}

static void test_gemm_conv(void)
{
    for (int64_t batch = 1; batch <= 5; batch++) {
        conv_case_t cases[] = {
            {batch, 16, 24, 1, window2d(7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0)},      /* pointwise, 49 per image */
            {batch, 8, 40, 1, window2d(5, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)},       /* 45 per image */
            {batch, 12, 30, 3, window2d(9, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1)},      /* groups, stride 2 */
            {batch, 6, 13, 1, window2d(14, 14, 3, 3, 1, 1, 2, 2, 2, 1, 2, 0)},     /* dilated, uneven pads */
            {batch, 32, 20, 1, window2d(15, 15, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0)},    /* 1x1 stride 2 */
            {batch, 4, 16, 2, window2d(28, 28, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0)},     /* pointwise, groups, 784 */
            {batch, 64, 36, 1, window2d(30, 31, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)},    /* blocks cut per image */
            {batch, 256, 8, 1, window2d(24, 24, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0)},    /* pointwise, cut per image */
            {batch, 3, 8, 1, window2d(33, 35, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3)},      /* stem-like */
            {batch, 5, 7, 1, window2d(3, 4, 2, 3, 1, 1, 1, 1, 0, 1, 1, 0)},        /* tiny */
            {batch, 0, 5, 1, window2d(9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)},        /* no input channels */
            {batch, 0, 6, 1, window2d(9, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0)},        /* the same, pointwise */
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            char what[64];
            snprintf(what, sizeof what, "gemm conv case %zu", i);
            check_gemm_conv(&cases[i], what);
        }
    }
}

int main(void)
{
    test_depthwise();
    test_winograd();
    test_fused_depthwise();
    test_gemm_conv();
    return check_finish();
}
