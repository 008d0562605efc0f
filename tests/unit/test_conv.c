/*
 * test_conv.c - conv.c's fast paths against plain loops:
 *  - the depthwise plane kernel (kiln_conv_dw_plane): kernel sizes 1 to 5,
 *    strides 1 and 2 (and 2 along rows only), pads (asymmetric, larger
 *    than the kernel reach), dilations, widths around the vector sizes
 *    (1, 7, 15-17, 31-33, 63-65, 112) and 1-D windows; where it does not
 *    apply (stride 3, no AVX-512) it must say so and write nothing;
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
    for (int64_t n = 0; n < c->batch; n++)
        for (int64_t m = 0; m < c->out_channels; m++) {
            float *yr = ref + (n * c->out_channels + m) * out_vol;
            for (int64_t i = 0; i < out_vol; i++)
                yr[i] = b[m];
            for (int64_t ci = 0; ci < ipg; ci++) {
                const float *xp = x + (n * c->in_channels + m / opg * ipg + ci) * in_vol;
                naive_plane(w, xp, wt + (m * ipg + ci) * kvol, 0.0f, plane);
                for (int64_t i = 0; i < out_vol; i++)
                    yr[i] += plane[i];
            }
        }
    for (int threads = 1; threads <= 3; threads++) {
        kiln_threadpool_t *pool = threads > 1 ? kiln_threadpool_create(threads) : NULL;
        for (int variant = 0; variant < 6; variant++) {
            int epilogue = variant % 3; /* none, the GEMM's ReLU, residual */
            bool use_packed = variant >= 3;
            kiln_conv_epilogue_t ep = {.apply = epilogue == 2 ? residual_apply : NULL, .arg = residual,
                                       .gemm_relu = epilogue == 1};
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
                else if (epilogue == 2)
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
    test_gemm_conv();
    return check_finish();
}
