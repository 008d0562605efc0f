/*
 * test_conv.c - conv.c's fast paths against plain loops:
 *  - the depthwise plane kernel (kiln_conv_dw_plane): kernel sizes 1 to 5,
 *    strides 1 and 2 (and 2 along rows only), pads (asymmetric, larger
 *    than the kernel reach), dilations, widths around the vector sizes
 *    (1, 7, 15-17, 31-33, 63-65, 112) and 1-D windows; where it does not
 *    apply (stride 3, no AVX-512) it must say so and write nothing;
 *  - Winograd F(4x4, 3x3) and F(2x2, 3x3) (kiln_conv_winograd) against a direct sum in
 *    double: pads 0 to 2 (asymmetric too), odd sizes, batch 2, channel
 *    counts off the vector widths, bias, the FusedConv epilogue (residual +
 *    ReLU through apply, and ReLU alone), weights transformed per call and
 *    once, one thread and two (both ways of splitting), portable and
 *    AVX-512 transforms.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/threadpool.h"
#include "ops/conv_winograd.h"
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

static void naive_plane(const kiln_window_t *w, const float *x, const float *f, float bias, float *y)
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
            y[oh * w->out[2] + ow] = (float)acc;
        }
}

static void check_dw(kiln_window_t w, const char *what)
{
    if (w.out[1] < 1 || w.out[2] < 1)
        return;
    unsigned seed = (unsigned)(w.in[1] * 131 + w.in[2] * 7 + w.kernel[2]);
    int64_t in_n = w.in[1] * w.in[2], out_n = w.out[1] * w.out[2];
    float *x = malloc((size_t)in_n * sizeof *x), *f = malloc((size_t)(w.kernel[1] * w.kernel[2]) * sizeof *f);
    float *want = malloc((size_t)out_n * sizeof *want), *got = malloc((size_t)(out_n + 1) * sizeof *got);
    float *scratch = malloc(kiln_conv_dw_scratch_floats(&w) * sizeof *scratch);
    for (int64_t i = 0; i < in_n; i++)
        x[i] = frand(&seed);
    for (int64_t i = 0; i < w.kernel[1] * w.kernel[2]; i++)
        f[i] = frand(&seed);
    naive_plane(&w, x, f, 0.25f, want);
    for (int64_t i = 0; i <= out_n; i++)
        got[i] = -12345.0f;
    bool ran = kiln_conv_dw_plane(&w, x, f, 0.25f, got, scratch);
    CHECK_MSG(got[out_n] == -12345.0f, "%s: wrote past the plane", what);
    if (!__builtin_cpu_supports("avx512f") || w.stride[2] > 2) {
        CHECK_MSG(!ran && got[0] == -12345.0f, "%s: should not apply", what);
    } else {
        CHECK_MSG(ran, "%s: fast path did not run", what);
        double worst = 0;
        for (int64_t i = 0; ran && i < out_n; i++) {
            double d = fabs((double)got[i] - want[i]);
            if (d > worst)
                worst = d;
        }
        CHECK_MSG(worst <= 1e-4, "%s: in %lldx%lld k %lldx%lld s %lldx%lld d %lldx%lld pads %lld,%lld,%lld,%lld: off by %g",
                  what, (long long)w.in[1], (long long)w.in[2], (long long)w.kernel[1], (long long)w.kernel[2],
                  (long long)w.stride[1], (long long)w.stride[2], (long long)w.dilation[1], (long long)w.dilation[2],
                  (long long)w.pad_begin[1], (long long)w.pad_begin[2], (long long)w.pad_end[1],
                  (long long)w.pad_end[2], worst);
    }
    free(x);
    free(f);
    free(want);
    free(got);
    free(scratch);
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
    kiln_conv_dw_enable(false);
    kiln_window_t w = window2d(8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
    float x[64] = {0}, f[9] = {0}, y[64], scratch[1024];
    CHECK(!kiln_conv_dw_plane(&w, x, f, 0.0f, y, scratch));
    kiln_conv_dw_enable(true);
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
     * (none, residual + ReLU, ReLU alone), bit 4 portable transforms */
    for (int variant = 0; variant < 32; variant++) {
        int epi = (variant >> 2) & 3;
        if (epi == 3)
            continue;
        kiln_conv_epilogue_t ep = {residual_relu, res, epi == 2};
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
            if (epi && v < 0)
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
    CHECK(kiln_winograd_tile(&w, 1, 256, 256, 1) == f4);
    CHECK(kiln_winograd_tile(&w, 1, 8, 256, 1) == 0);
    kiln_window_t small = window2d(7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1); /* 4 tiles of 4x4, 16 of 2x2 */
    CHECK(kiln_winograd_tile(&small, 1, 512, 512, 1) == f2);
    CHECK(kiln_winograd_tile(&small, 1, 512, 512, 4) == f4);
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

int main(void)
{
    test_depthwise();
    test_winograd();
    return check_finish();
}
