/*
 * conv_dw_avx512.c - the AVX-512F depthwise convolution plane kernel.
 *
 * One output plane of a 2-D depthwise conv from a zero-padded copy of its
 * input plane (conv.c builds it): every output row is computed sixteen
 * columns per vector, four vectors at a time (independent accumulators,
 * so the FMA latency is hidden), all kernel taps accumulated in registers
 * and the row stored once with the bias already in it.  Stride 2 along
 * the row loads 32 consecutive inputs and keeps the even ones with one
 * permute.  The taps are read as broadcasts from the filter.
 *
 * Compiled with AVX-512 flags; conv.c calls it only after
 * __builtin_cpu_supports("avx512f").
 */
#include <immintrin.h>

#include "ops/nn_kernels.h"

/* Loads the sixteen inputs of output columns [ow, ow+16) at stride sw (1 or 2). */
static inline __attribute__((always_inline)) __m512 load_cols(const float *p, int sw, __m512i even)
{
    if (sw == 1)
        return _mm512_loadu_ps(p);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_loadu_ps(p + 16));
}

static inline __attribute__((always_inline)) void dw_rows(const float *xp, int64_t ld, const float *f, int kh, int kw,
                                                          int dh, int dw, int sh, int sw, float bias, float *y,
                                                          int64_t oh_n, int64_t ow_n)
{
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512 vb = _mm512_set1_ps(bias);
    for (int64_t oh = 0; oh < oh_n; oh++) {
        float *yrow = y + oh * ow_n;
        const float *base = xp + oh * sh * ld;
        int64_t ow = 0;
        for (; ow + 64 <= ow_n; ow += 64) {
            __m512 a0 = vb, a1 = vb, a2 = vb, a3 = vb;
            for (int i = 0; i < kh; i++) {
                const float *row = base + i * dh * ld + ow * sw;
                for (int j = 0; j < kw; j++) {
                    __m512 wv = _mm512_set1_ps(f[i * kw + j]);
                    const float *p = row + j * dw;
                    a0 = _mm512_fmadd_ps(wv, load_cols(p, sw, even), a0);
                    a1 = _mm512_fmadd_ps(wv, load_cols(p + 16 * sw, sw, even), a1);
                    a2 = _mm512_fmadd_ps(wv, load_cols(p + 32 * sw, sw, even), a2);
                    a3 = _mm512_fmadd_ps(wv, load_cols(p + 48 * sw, sw, even), a3);
                }
            }
            _mm512_storeu_ps(yrow + ow, a0);
            _mm512_storeu_ps(yrow + ow + 16, a1);
            _mm512_storeu_ps(yrow + ow + 32, a2);
            _mm512_storeu_ps(yrow + ow + 48, a3);
        }
        for (; ow + 32 <= ow_n; ow += 32) {
            __m512 a0 = vb, a1 = vb;
            for (int i = 0; i < kh; i++) {
                const float *row = base + i * dh * ld + ow * sw;
                for (int j = 0; j < kw; j++) {
                    __m512 wv = _mm512_set1_ps(f[i * kw + j]);
                    const float *p = row + j * dw;
                    a0 = _mm512_fmadd_ps(wv, load_cols(p, sw, even), a0);
                    a1 = _mm512_fmadd_ps(wv, load_cols(p + 16 * sw, sw, even), a1);
                }
            }
            _mm512_storeu_ps(yrow + ow, a0);
            _mm512_storeu_ps(yrow + ow + 16, a1);
        }
        for (; ow < ow_n; ow += 16) {
            int64_t left = ow_n - ow;
            __mmask16 m = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
            __m512 a0 = vb;
            for (int i = 0; i < kh; i++) {
                const float *row = base + i * dh * ld + ow * sw;
                for (int j = 0; j < kw; j++)
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(f[i * kw + j]), load_cols(row + j * dw, sw, even), a0);
            }
            _mm512_mask_storeu_ps(yrow + ow, m, a0);
        }
    }
}

void kiln_conv_dw_plane_avx512(const float *xp, int64_t ld, const float *f, int kh, int kw, int dh, int dw, int sh,
                               int sw, float bias, float *y, int64_t oh_n, int64_t ow_n)
{
    /* the common shapes with constant taps and strides, so the loops unroll */
    if (kh == 3 && kw == 3 && dh == 1 && dw == 1 && sw == 1)
        dw_rows(xp, ld, f, 3, 3, 1, 1, sh, 1, bias, y, oh_n, ow_n);
    else if (kh == 3 && kw == 3 && dh == 1 && dw == 1 && sw == 2)
        dw_rows(xp, ld, f, 3, 3, 1, 1, sh, 2, bias, y, oh_n, ow_n);
    else if (kh == 5 && kw == 5 && dh == 1 && dw == 1 && sw == 1)
        dw_rows(xp, ld, f, 5, 5, 1, 1, sh, 1, bias, y, oh_n, ow_n);
    else if (sw == 1)
        dw_rows(xp, ld, f, kh, kw, dh, dw, sh, 1, bias, y, oh_n, ow_n);
    else
        dw_rows(xp, ld, f, kh, kw, dh, dw, sh, 2, bias, y, oh_n, ow_n);
}
