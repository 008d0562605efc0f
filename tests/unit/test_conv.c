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
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
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

int main(void)
{
    test_depthwise();
    return check_finish();
}
