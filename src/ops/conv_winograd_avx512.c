/*
 * conv_winograd_avx512.c - the tile transforms of Winograd F(4x4, 3x3) and
 * F(2x2, 3x3) (conv_winograd.c) with AVX-512: one tile per lane of a 16-float
 * register.  Input patches are fetched with masked gathers (the lanes'
 * patches may lie on different tile rows or images, and padding is just a
 * cleared mask bit), outputs stored with masked scatters.  The Makefile
 * compiles this file with AVX-512 enabled; call only when the CPU has
 * avx512f (conv_winograd.c chooses at run time).
 *
 * The F(4x4, 3x3) matrices (see conv_winograd.c):
 *     B^T = [4  0 -5  0 1 0]   A^T = [1 1  1 1  1 0]
 *           [0 -4 -4  1 1 0]         [0 1 -1 2 -2 0]
 *           [0  4 -4 -1 1 0]         [0 1  1 4  4 0]
 *           [0 -2 -1  2 1 0]         [0 1 -1 8 -8 1]
 *           [0  2 -1 -2 1 0]
 *           [0  4  0 -5 0 1]
 */
#include <immintrin.h>

#include "ops/conv_winograd.h"

/* o[k] = (B^T d)[k] for the six values d0..d5 of a column or row. */
static inline void input_1d(__m512 d0, __m512 d1, __m512 d2, __m512 d3, __m512 d4, __m512 d5, __m512 *o)
{
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    __m512 d4_d2 = _mm512_sub_ps(d4, d2);
    o[0] = _mm512_fmadd_ps(four, d0, _mm512_fnmadd_ps(five, d2, d4));
    o[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d1, d2), _mm512_add_ps(d3, d4));
    o[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d1, d2), _mm512_sub_ps(d4, d3));
    o[3] = _mm512_fmadd_ps(two, _mm512_sub_ps(d3, d1), d4_d2);
    o[4] = _mm512_fmadd_ps(two, _mm512_sub_ps(d1, d3), d4_d2);
    o[5] = _mm512_fmadd_ps(four, d1, _mm512_fnmadd_ps(five, d3, d5));
}

void kiln_winograd_input_avx512(const kiln_wino_group_t *g, const float *x, int64_t plane, int64_t in_w,
                                int64_t channels, float *v, int64_t xi_stride, int64_t c_stride)
{
    const __m512i base = _mm512_loadu_si512(g->in_off);
    __m512i row[6];
    for (int r = 0; r < 6; r++)
        row[r] = _mm512_add_epi32(base, _mm512_set1_epi32((int32_t)(r * in_w)));
    for (int64_t c = 0; c < channels; c++) {
        const float *xc = x + c * plane;
        __m512 t[6][6]; /* t[i][col] = (B^T d)[i][col] */
        for (int col = 0; col < 6; col++) {
            __m512 d[6];
            __m512i shift = _mm512_set1_epi32(col);
            for (int r = 0; r < 6; r++)
                d[r] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (__mmask16)(g->in_row[r] & g->in_col[col]),
                                                _mm512_add_epi32(row[r], shift), xc, 4);
            __m512 o[6];
            input_1d(d[0], d[1], d[2], d[3], d[4], d[5], o);
            for (int i = 0; i < 6; i++)
                t[i][col] = o[i];
        }
        float *vc = v + c * c_stride;
        for (int i = 0; i < 6; i++) {
            __m512 o[6];
            input_1d(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], o);
            for (int k = 0; k < 6; k++)
                _mm512_store_ps(vc + (i * 6 + k) * xi_stride, o[k]);
        }
    }
}

/* o[i] = (A^T m)[i] for the six values m0..m5 of a column or row. */
static inline void output_1d(__m512 m0, __m512 m1, __m512 m2, __m512 m3, __m512 m4, __m512 m5, __m512 *o)
{
    __m512 s12 = _mm512_add_ps(m1, m2), d12 = _mm512_sub_ps(m1, m2);
    __m512 s34 = _mm512_add_ps(m3, m4), d34 = _mm512_sub_ps(m3, m4);
    o[0] = _mm512_add_ps(_mm512_add_ps(m0, s12), s34);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m5);
}

void kiln_winograd_output_avx512(const kiln_wino_group_t *g, const float *m, int64_t xs, int64_t out_w, float *y,
                                 float bias, bool relu)
{
    __m512 t[4][6]; /* t[i][col] = (A^T M)[i][col] */
    for (int col = 0; col < 6; col++) {
        __m512 o[4];
        output_1d(_mm512_load_ps(m + col * xs), _mm512_load_ps(m + (6 + col) * xs),
                  _mm512_load_ps(m + (12 + col) * xs), _mm512_load_ps(m + (18 + col) * xs),
                  _mm512_load_ps(m + (24 + col) * xs), _mm512_load_ps(m + (30 + col) * xs), o);
        for (int i = 0; i < 4; i++)
            t[i][col] = o[i];
    }
    const __m512i base = _mm512_loadu_si512(g->out_off);
    const __m512 b = _mm512_set1_ps(bias), zero = _mm512_setzero_ps();
    for (int i = 0; i < 4; i++) {
        if (!g->out_row[i])
            break;
        __m512 o[4];
        output_1d(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], o);
        __m512i row = _mm512_add_epi32(base, _mm512_set1_epi32((int32_t)(i * out_w)));
        for (int j = 0; j < 4; j++) {
            __m512 val = _mm512_add_ps(o[j], b);
            if (relu)
                val = _mm512_max_ps(val, zero);
            _mm512_mask_i32scatter_ps(y, (__mmask16)(g->out_row[i] & g->out_col[j]),
                                      _mm512_add_epi32(row, _mm512_set1_epi32(j)), val, 4);
        }
    }
}

/* ---- F(2x2, 3x3): 4x4 patches, 2x2 tiles -------------------------------
 *     B^T = [1  0 -1  0]   A^T = [1 1  1  0]
 *           [0  1  1  0]         [0 1 -1 -1]
 *           [0 -1  1  0]
 *           [0  1  0 -1]
 */

static inline void input2_1d(__m512 d0, __m512 d1, __m512 d2, __m512 d3, __m512 *o)
{
    o[0] = _mm512_sub_ps(d0, d2);
    o[1] = _mm512_add_ps(d1, d2);
    o[2] = _mm512_sub_ps(d2, d1);
    o[3] = _mm512_sub_ps(d1, d3);
}

void kiln_winograd_input2_avx512(const kiln_wino_group_t *g, const float *x, int64_t plane, int64_t in_w,
                                 int64_t channels, float *v, int64_t xi_stride, int64_t c_stride)
{
    const __m512i base = _mm512_loadu_si512(g->in_off);
    __m512i row[4];
    for (int r = 0; r < 4; r++)
        row[r] = _mm512_add_epi32(base, _mm512_set1_epi32((int32_t)(r * in_w)));
    for (int64_t c = 0; c < channels; c++) {
        const float *xc = x + c * plane;
        __m512 t[4][4]; /* t[i][col] = (B^T d)[i][col] */
        for (int col = 0; col < 4; col++) {
            __m512 d[4], o[4];
            __m512i shift = _mm512_set1_epi32(col);
            for (int r = 0; r < 4; r++)
                d[r] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (__mmask16)(g->in_row[r] & g->in_col[col]),
                                                _mm512_add_epi32(row[r], shift), xc, 4);
            input2_1d(d[0], d[1], d[2], d[3], o);
            for (int i = 0; i < 4; i++)
                t[i][col] = o[i];
        }
        float *vc = v + c * c_stride;
        for (int i = 0; i < 4; i++) {
            __m512 o[4];
            input2_1d(t[i][0], t[i][1], t[i][2], t[i][3], o);
            for (int k = 0; k < 4; k++)
                _mm512_store_ps(vc + (i * 4 + k) * xi_stride, o[k]);
        }
    }
}

static inline void output2_1d(__m512 m0, __m512 m1, __m512 m2, __m512 m3, __m512 *o)
{
    o[0] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
    o[1] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
}

void kiln_winograd_output2_avx512(const kiln_wino_group_t *g, const float *m, int64_t xs, int64_t out_w, float *y,
                                  float bias, bool relu)
{
    __m512 t[2][4]; /* t[i][col] = (A^T M)[i][col] */
    for (int col = 0; col < 4; col++) {
        __m512 o[2];
        output2_1d(_mm512_load_ps(m + col * xs), _mm512_load_ps(m + (4 + col) * xs), _mm512_load_ps(m + (8 + col) * xs),
                   _mm512_load_ps(m + (12 + col) * xs), o);
        t[0][col] = o[0];
        t[1][col] = o[1];
    }
    const __m512i base = _mm512_loadu_si512(g->out_off);
    const __m512 b = _mm512_set1_ps(bias), zero = _mm512_setzero_ps();
    for (int i = 0; i < 2; i++) {
        if (!g->out_row[i])
            break;
        __m512 o[2];
        output2_1d(t[i][0], t[i][1], t[i][2], t[i][3], o);
        __m512i row = _mm512_add_epi32(base, _mm512_set1_epi32((int32_t)(i * out_w)));
        for (int j = 0; j < 2; j++) {
            __m512 val = _mm512_add_ps(o[j], b);
            if (relu)
                val = _mm512_max_ps(val, zero);
            _mm512_mask_i32scatter_ps(y, (__mmask16)(g->out_row[i] & g->out_col[j]),
                                      _mm512_add_epi32(row, _mm512_set1_epi32(j)), val, 4);
        }
    }
}
