/*
 * signal.c - Signal processing: DFT, STFT, window functions, MelWeightMatrix.
 *
 * Complex tensors in ONNX are real tensors whose last axis holds 1 (real)
 * or 2 (real, imaginary) components.  Transforms run in double through a
 * small FFT: an iterative radix-2 FFT for power-of-two lengths, and
 * Bluestein's chirp-z algorithm (a convolution done with the radix-2 FFT)
 * for every other length, so any dft_length costs O(n log n).  A plan holds
 * the tables of one length and is reused for every signal of a call.
 * The inverse transform is the forward one on conjugated data, scaled 1/n.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

/* ==== The transform ========================================================= */

/* Longest transform kiln accepts (keeps k*k in int64 and tables sane). */
#define MAX_DFT_LENGTH ((int64_t)1 << 24)

/* Tables for transforms of one length n.  Complex arrays are interleaved
 * (re, im) doubles. */
typedef struct dft_plan {
    int64_t n;          /* transform length */
    int64_t m;          /* radix-2 length: n itself, or >= 2n - 1 for Bluestein */
    double *tw;         /* m twiddles exp(-2*pi*i*k/m) */
    double *chirp;      /* Bluestein only: exp(-pi*i*k^2/n) for k in [0, n) */
    double *filter_fft; /* Bluestein only: FFT of the conjugate chirp, m points */
    double *work;       /* m points of scratch */
} dft_plan_t;

static bool is_pow2(int64_t n)
{
    return n > 0 && (n & (n - 1)) == 0;
}

/* In-place forward radix-2 FFT of m points (m a power of two), tw from the plan. */
static void fft_pow2(double *a, int64_t m, const double *tw)
{
    for (int64_t i = 1, j = 0; i < m; i++) { /* bit-reversal permutation */
        int64_t bit = m >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            double re = a[2 * i], im = a[2 * i + 1];
            a[2 * i] = a[2 * j], a[2 * i + 1] = a[2 * j + 1];
            a[2 * j] = re, a[2 * j + 1] = im;
        }
    }
    for (int64_t len = 2; len <= m; len <<= 1) {
        int64_t half = len / 2, step = m / len;
        for (int64_t i = 0; i < m; i += len)
            for (int64_t j = 0; j < half; j++) {
                double wr = tw[2 * j * step], wi = tw[2 * j * step + 1];
                double *u = a + 2 * (i + j), *v = a + 2 * (i + j + half);
                double vr = v[0] * wr - v[1] * wi, vi = v[0] * wi + v[1] * wr;
                v[0] = u[0] - vr, v[1] = u[1] - vi;
                u[0] += vr, u[1] += vi;
            }
    }
}

static void dft_plan_free(dft_plan_t *p)
{
    free(p->tw);
    free(p->chirp);
    free(p->filter_fft);
    free(p->work);
    memset(p, 0, sizeof *p);
}

/* Builds the tables for length n (n >= 1).  False when out of memory. */
static bool dft_plan_init(dft_plan_t *p, int64_t n)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->m = n;
    if (!is_pow2(n))
        for (p->m = 1; p->m < 2 * n - 1; p->m <<= 1) {
        }
    int64_t m = p->m;
    p->tw = malloc((size_t)(2 * m) * sizeof(double));
    p->work = calloc((size_t)(2 * m), sizeof(double));
    if (!p->tw || !p->work)
        return dft_plan_free(p), false;
    for (int64_t k = 0; k < m; k++) {
        double angle = -2.0 * M_PI * (double)k / (double)m;
        p->tw[2 * k] = cos(angle);
        p->tw[2 * k + 1] = sin(angle);
    }
    if (m == n)
        return true;
    p->chirp = malloc((size_t)(2 * n) * sizeof(double));
    p->filter_fft = calloc((size_t)(2 * m), sizeof(double));
    if (!p->chirp || !p->filter_fft)
        return dft_plan_free(p), false;
    for (int64_t k = 0; k < n; k++) {
        /* k^2 mod 2n keeps the angle small and exact. */
        int64_t q = (k * k) % (2 * n); /* n <= MAX_DFT_LENGTH: no overflow */
        double angle = -M_PI * (double)q / (double)n;
        p->chirp[2 * k] = cos(angle);
        p->chirp[2 * k + 1] = sin(angle);
    }
    double *f = p->filter_fft; /* conj(chirp) at k and at m - k */
    for (int64_t k = 0; k < n; k++) {
        f[2 * k] = p->chirp[2 * k];
        f[2 * k + 1] = -p->chirp[2 * k + 1];
        if (k > 0) {
            f[2 * (m - k)] = f[2 * k];
            f[2 * (m - k) + 1] = f[2 * k + 1];
        }
    }
    fft_pow2(f, m, p->tw);
    return true;
}

/* Forward transform of n points: out[k] = sum_j in[j] exp(-2*pi*i*j*k/n). */
static void dft_forward(dft_plan_t *p, const double *in, double *out)
{
    int64_t n = p->n, m = p->m;
    double *w = p->work;
    if (m == n) {
        memcpy(w, in, (size_t)(2 * n) * sizeof(double));
        fft_pow2(w, m, p->tw);
        memcpy(out, w, (size_t)(2 * n) * sizeof(double));
        return;
    }
    /* Bluestein: X_k = chirp_k * sum_j (x_j chirp_j) conj(chirp_{k-j}). */
    memset(w, 0, (size_t)(2 * m) * sizeof(double));
    for (int64_t j = 0; j < n; j++) {
        double cr = p->chirp[2 * j], ci = p->chirp[2 * j + 1];
        w[2 * j] = in[2 * j] * cr - in[2 * j + 1] * ci;
        w[2 * j + 1] = in[2 * j] * ci + in[2 * j + 1] * cr;
    }
    fft_pow2(w, m, p->tw);
    for (int64_t k = 0; k < m; k++) { /* multiply, conjugated for the inverse FFT */
        double ar = w[2 * k], ai = w[2 * k + 1];
        double br = p->filter_fft[2 * k], bi = p->filter_fft[2 * k + 1];
        w[2 * k] = ar * br - ai * bi;
        w[2 * k + 1] = -(ar * bi + ai * br);
    }
    fft_pow2(w, m, p->tw);
    for (int64_t k = 0; k < n; k++) {
        double cr = w[2 * k] / (double)m, ci = -w[2 * k + 1] / (double)m;
        double hr = p->chirp[2 * k], hi = p->chirp[2 * k + 1];
        out[2 * k] = cr * hr - ci * hi;
        out[2 * k + 1] = cr * hi + ci * hr;
    }
}

/* The forward or inverse transform of n points; in is clobbered. */
static void dft_execute(dft_plan_t *p, double *in, bool inverse, double *out)
{
    int64_t n = p->n;
    if (!inverse) {
        dft_forward(p, in, out);
        return;
    }
    for (int64_t j = 0; j < n; j++)
        in[2 * j + 1] = -in[2 * j + 1];
    dft_forward(p, in, out);
    for (int64_t k = 0; k < n; k++) {
        out[2 * k] /= (double)n;
        out[2 * k + 1] = -out[2 * k + 1] / (double)n;
    }
}

/* Reads a scalar (or one-element) integer input; def when absent. */
static int64_t scalar_i64(const kiln_tensor_t *t, int64_t def)
{
    return t && t->count > 0 ? kiln_tensor_get_i64(t, 0) : def;
}

/* ==== DFT =================================================================== */

static kiln_status_t dft_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *len_t = kiln_ctx_input(ctx, 1);
    bool inverse = kiln_attr_int(node, "inverse", 0) != 0;
    bool onesided = kiln_attr_int(node, "onesided", 0) != 0;
    int64_t axis;
    if (kiln_ctx_opset(ctx) >= 20)
        axis = scalar_i64(kiln_ctx_input(ctx, 2), -2);
    else
        axis = kiln_attr_int(node, "axis", 1);
    if (!x || x->rank < 2 || (x->dims[x->rank - 1] != 1 && x->dims[x->rank - 1] != 2))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "input must have a last axis of 1 (real) or 2 (complex)");
    if (!kiln_dtype_is_float(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "input must be a float tensor");
    int rank = x->rank;
    if (axis < 0)
        axis += rank;
    if (axis < 0 || axis > rank - 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis is out of range");
    int64_t L = x->dims[axis];
    int64_t n = scalar_i64(len_t, L);
    if (n <= 0 || n > MAX_DFT_LENGTH)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "dft_length %lld is invalid", (long long)n);
    int64_t n_out = onesided ? n / 2 + 1 : n;
    int64_t comps = x->dims[rank - 1];

    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)rank);
    dims[axis] = n_out;
    dims[rank - 1] = 2;
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= x->dims[i];
    for (int i = (int)axis + 1; i < rank - 1; i++)
        inner *= x->dims[i];
    double *in = calloc((size_t)(2 * n), sizeof *in);
    double *out = calloc((size_t)(2 * n), sizeof *out);
    dft_plan_t plan;
    if (!in || !out || !dft_plan_init(&plan, n)) {
        free(in), free(out);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for the DFT");
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            memset(in, 0, (size_t)(2 * n) * sizeof *in);
            for (int64_t j = 0; j < L && j < n; j++) {
                int64_t src = ((o * L + j) * inner + i) * comps;
                in[2 * j] = kiln_tensor_get_f64(x, src);
                in[2 * j + 1] = comps == 2 ? kiln_tensor_get_f64(x, src + 1) : 0.0;
            }
            dft_execute(&plan, in, inverse, out);
            for (int64_t k = 0; k < n_out; k++) {
                int64_t dst = ((o * n_out + k) * inner + i) * 2;
                kiln_tensor_set_f64(y, dst, out[2 * k]);
                kiln_tensor_set_f64(y, dst + 1, out[2 * k + 1]);
            }
        }
    free(in);
    free(out);
    dft_plan_free(&plan);
    return KILN_OK;
}

/* ==== STFT ================================================================== */

static kiln_status_t stft_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *step_t = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *window = kiln_ctx_input(ctx, 2);
    const kiln_tensor_t *len_t = kiln_ctx_input(ctx, 3);
    bool onesided = kiln_attr_int(kiln_ctx_node(ctx), "onesided", 1) != 0;
    if (!x || x->rank != 3 || (x->dims[2] != 1 && x->dims[2] != 2))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "signal must be [batch, length, 1 or 2]");
    if (!kiln_dtype_is_float(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "signal must be a float tensor");
    int64_t step = scalar_i64(step_t, 0);
    int64_t frame = scalar_i64(len_t, window ? window->count : 0);
    if (window && (window->rank != 1 || window->count != frame))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "window must be a vector of frame_length values");
    int64_t B = x->dims[0], L = x->dims[1], comps = x->dims[2];
    if (step <= 0 || frame <= 0 || frame > L || frame > MAX_DFT_LENGTH)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "frame_step %lld and frame_length %lld are invalid for length %lld",
                             (long long)step, (long long)frame, (long long)L);
    int64_t frames = (L - frame) / step + 1;
    int64_t bins = onesided ? frame / 2 + 1 : frame;
    int64_t dims[4] = {B, frames, bins, 2};
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, 4, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    double *in = calloc((size_t)(2 * frame), sizeof *in);
    double *out = calloc((size_t)(2 * frame), sizeof *out);
    dft_plan_t plan;
    if (!in || !out || !dft_plan_init(&plan, frame)) {
        free(in), free(out);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for the STFT");
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t f = 0; f < frames; f++) {
            for (int64_t j = 0; j < frame; j++) {
                int64_t src = (b * L + f * step + j) * comps;
                double w = window ? kiln_tensor_get_f64(window, j) : 1.0;
                in[2 * j] = w * kiln_tensor_get_f64(x, src);
                in[2 * j + 1] = comps == 2 ? w * kiln_tensor_get_f64(x, src + 1) : 0.0;
            }
            dft_execute(&plan, in, false, out);
            for (int64_t k = 0; k < bins; k++) {
                int64_t dst = ((b * frames + f) * bins + k) * 2;
                kiln_tensor_set_f64(y, dst, out[2 * k]);
                kiln_tensor_set_f64(y, dst + 1, out[2 * k + 1]);
            }
        }
    free(in);
    free(out);
    dft_plan_free(&plan);
    return KILN_OK;
}

/* ==== Windows =============================================================== */

/* A generalised cosine window: sum_m a[m] * cos(2*pi*m*n/N) with alternating
 * signs already folded into a[]. */
typedef struct cosine_window {
    double a0, a1, a2;
} cosine_window_t;

static bool output_dtype_ok(kiln_dtype_t d)
{
    return kiln_dtype_is_float(d) || kiln_dtype_is_integer(d);
}

static kiln_status_t window_run(kiln_kernel_ctx_t *ctx, cosine_window_t w)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *size_t_ = kiln_ctx_input(ctx, 0);
    bool periodic = kiln_attr_int(node, "periodic", 1) != 0;
    kiln_dtype_t dtype = (kiln_dtype_t)kiln_attr_int(node, "output_datatype", KILN_DTYPE_FLOAT32);
    if (!output_dtype_ok(dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "output_datatype %d is not numeric", (int)dtype);
    if (!size_t_ || size_t_->count != 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "size must be a scalar");
    int64_t size = kiln_tensor_get_i64(size_t_, 0);
    if (size < 0 || size > ((int64_t)1 << 28))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "size %lld is invalid", (long long)size);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, dtype, 1, &size);
    if (!y)
        return kiln_ctx_status(ctx);
    double N = periodic ? (double)size : (double)size - 1;
    for (int64_t i = 0; i < size; i++) {
        double t = N > 0 ? 2.0 * M_PI * (double)i / N : 0.0;
        kiln_tensor_set_f64(y, i, w.a0 + w.a1 * cos(t) + w.a2 * cos(2 * t));
    }
    return KILN_OK;
}

static kiln_status_t hann_run(kiln_kernel_ctx_t *ctx)
{
    return window_run(ctx, (cosine_window_t){0.5, -0.5, 0.0});
}

static kiln_status_t hamming_run(kiln_kernel_ctx_t *ctx)
{
    return window_run(ctx, (cosine_window_t){25.0 / 46.0, -21.0 / 46.0, 0.0});
}

static kiln_status_t blackman_run(kiln_kernel_ctx_t *ctx)
{
    return window_run(ctx, (cosine_window_t){0.42, -0.5, 0.08});
}

/* ==== MelWeightMatrix ======================================================= */

/* Triangular filters on the mel scale, as the ONNX reference builds them:
 * band edges are spaced evenly in mel and snapped to DFT bins with
 * floor((dft_length + 1) * hz / sample_rate). Output [dft_length/2+1, bins]. */
static kiln_status_t mel_weight_matrix_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    for (int i = 0; i < 5; i++)
        if (!kiln_ctx_input(ctx, i) || kiln_ctx_input(ctx, i)->count != 1)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input %d must be a scalar", i);
    int64_t mel_bins = kiln_tensor_get_i64(kiln_ctx_input(ctx, 0), 0);
    int64_t dft_length = kiln_tensor_get_i64(kiln_ctx_input(ctx, 1), 0);
    int64_t sample_rate = kiln_tensor_get_i64(kiln_ctx_input(ctx, 2), 0);
    double lower = kiln_tensor_get_f64(kiln_ctx_input(ctx, 3), 0);
    double upper = kiln_tensor_get_f64(kiln_ctx_input(ctx, 4), 0);
    kiln_dtype_t dtype = (kiln_dtype_t)kiln_attr_int(node, "output_datatype", KILN_DTYPE_FLOAT32);
    if (!output_dtype_ok(dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "output_datatype %d is not numeric", (int)dtype);
    if (mel_bins <= 0 || dft_length <= 0 || sample_rate <= 0 || mel_bins > (1 << 20) ||
        dft_length > ((int64_t)1 << 24))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "num_mel_bins, dft_length and sample_rate must be positive");
    int64_t spec_bins = dft_length / 2 + 1;
    int64_t dims[2] = {spec_bins, mel_bins};
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, dtype, 2, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t *edges = malloc((size_t)(mel_bins + 2) * sizeof *edges);
    if (!edges)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for mel bins");
    double low_mel = 2595.0 * log10(1.0 + lower / 700.0);
    double high_mel = 2595.0 * log10(1.0 + upper / 700.0);
    /* The reference divides the mel range into num_mel_bins + 2 steps (not
     * + 1) although it places num_mel_bins + 2 edges; the conformance data
     * and ONNX Runtime follow it, so kiln does too. */
    double step = (high_mel - low_mel) / (double)(mel_bins + 2);
    for (int64_t i = 0; i < mel_bins + 2; i++) {
        double hz = 700.0 * (pow(10.0, ((double)i * step + low_mel) / 2595.0) - 1.0);
        int64_t bin = (int64_t)floor((double)(dft_length + 1) * hz / (double)sample_rate);
        edges[i] = bin < 0 ? 0 : bin >= spec_bins ? spec_bins - 1 : bin;
    }
    for (int64_t i = 0; i < mel_bins; i++) {
        int64_t lo = edges[i], center = edges[i + 1], hi = edges[i + 2];
        if (center == lo) {
            kiln_tensor_set_f64(y, center * mel_bins + i, 1.0);
        } else {
            for (int64_t j = lo; j <= center; j++)
                kiln_tensor_set_f64(y, j * mel_bins + i, (double)(j - lo) / (double)(center - lo));
        }
        for (int64_t j = center; j < hi; j++)
            kiln_tensor_set_f64(y, j * mel_bins + i, (double)(hi - j) / (double)(hi - center));
    }
    free(edges);
    return KILN_OK;
}

void kiln_ops_register_signal(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "DFT", .since = 17, .run = dft_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "STFT", .since = 17, .run = stft_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "HannWindow", .since = 17, .run = hann_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "HammingWindow", .since = 17, .run = hamming_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "BlackmanWindow", .since = 17, .run = blackman_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "MelWeightMatrix", .since = 17, .run = mel_weight_matrix_run});
}
