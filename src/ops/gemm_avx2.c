/*
 * gemm_avx2.c - the AVX2+FMA SGEMM microkernel: a 6x16 register tile.
 *
 * Twelve ymm accumulators hold the 6x16 tile of C; each step of k loads one
 * 16-wide row of packed B (two ymm), broadcasts six packed A values and
 * issues twelve FMAs.  That is 2 loads + 6 broadcasts per 12 FMAs, which
 * keeps both FMA ports of a Haswell-or-later core busy.  Edge tiles (mr < 6
 * or nr < 16) are computed in full into a stack buffer and copied out.
 * The bias and the activation (act_simd.h) are applied in registers.
 *
 * Also here: the SSE-transposing packer of A row panels used by both SIMD
 * paths, and the dot/axpy of the one-row (matrix-vector) path.
 *
 * Compiled with -mavx2 -mfma; gemm.c calls these only after
 * __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma").
 */
#include <immintrin.h>

#include "ops/act_simd.h"
#include "ops/gemm_kernel.h"

enum { TILE_M = 6, TILE_N = 16 };

/* Writes one 16-wide row: c = alpha*acc + beta*c + bias, then the
 * activation kind with parameters pa, pb (c not read when beta == 0). */
static inline __attribute__((always_inline)) void store_row(float *c, __m256 lo, __m256 hi, __m256 alpha,
                                                            float beta, const float *bias, kiln_act_kind_t kind,
                                                            __m256 pa, __m256 pb)
{
    lo = _mm256_mul_ps(lo, alpha);
    hi = _mm256_mul_ps(hi, alpha);
    if (beta != 0.0f) {
        __m256 vb = _mm256_set1_ps(beta);
        lo = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), lo);
        hi = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), hi);
    }
    if (bias) {
        __m256 vbias = _mm256_broadcast_ss(bias);
        lo = _mm256_add_ps(lo, vbias);
        hi = _mm256_add_ps(hi, vbias);
    }
    lo = kiln_act256(lo, kind, pa, pb);
    hi = kiln_act256(hi, kind, pa, pb);
    _mm256_storeu_ps(c, lo);
    _mm256_storeu_ps(c + 8, hi);
}

void kiln_sgemm_ukernel_6x16_avx2(int64_t kc, const float *a, const float *b, int64_t b_step, float *c,
                                  int64_t ldc, int mr, int nr, float alpha, float beta,
                                  const float *bias, const kiln_act_t *act)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b);
        __m256 b1 = _mm256_loadu_ps(b + 8);
        __m256 av = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(av, b0, c00);
        c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(av, b0, c10);
        c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(av, b0, c20);
        c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(av, b0, c30);
        c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(av, b0, c40);
        c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(av, b0, c50);
        c51 = _mm256_fmadd_ps(av, b1, c51);
        a += TILE_M;
        b += b_step;
    }

    __m256 va = _mm256_set1_ps(alpha);
    if (mr == TILE_M && nr == TILE_N) {
        kiln_act_kind_t kind = act ? act->kind : KILN_ACT_NONE;
        __m256 pa = _mm256_set1_ps(act ? act->alpha : 0.0f), pb = _mm256_set1_ps(act ? act->beta : 0.0f);
#define STORE_ROWS(KIND)                                                                                     \
    do {                                                                                                     \
        store_row(c + 0 * ldc, c00, c01, va, beta, bias ? bias + 0 : NULL, KIND, pa, pb);                    \
        store_row(c + 1 * ldc, c10, c11, va, beta, bias ? bias + 1 : NULL, KIND, pa, pb);                    \
        store_row(c + 2 * ldc, c20, c21, va, beta, bias ? bias + 2 : NULL, KIND, pa, pb);                    \
        store_row(c + 3 * ldc, c30, c31, va, beta, bias ? bias + 3 : NULL, KIND, pa, pb);                    \
        store_row(c + 4 * ldc, c40, c41, va, beta, bias ? bias + 4 : NULL, KIND, pa, pb);                    \
        store_row(c + 5 * ldc, c50, c51, va, beta, bias ? bias + 5 : NULL, KIND, pa, pb);                    \
    } while (0)
        /* one store sequence per kind: no branch on it per row */
        switch (kind) {
        case KILN_ACT_RELU:
            STORE_ROWS(KILN_ACT_RELU);
            break;
        case KILN_ACT_CLIP:
            STORE_ROWS(KILN_ACT_CLIP);
            break;
        case KILN_ACT_LEAKY_RELU:
            STORE_ROWS(KILN_ACT_LEAKY_RELU);
            break;
        case KILN_ACT_HARD_SIGMOID:
            STORE_ROWS(KILN_ACT_HARD_SIGMOID);
            break;
        case KILN_ACT_HARD_SWISH:
            STORE_ROWS(KILN_ACT_HARD_SWISH);
            break;
        default:
            STORE_ROWS(KILN_ACT_NONE);
            break;
        }
#undef STORE_ROWS
        return;
    }

    /* Edge tile: full result to a buffer, then the wanted corner to C. */
    float buf[TILE_M * TILE_N];
    store_row(buf + 0 * TILE_N, c00, c01, va, 0.0f, NULL, KILN_ACT_NONE, va, va);
    store_row(buf + 1 * TILE_N, c10, c11, va, 0.0f, NULL, KILN_ACT_NONE, va, va);
    store_row(buf + 2 * TILE_N, c20, c21, va, 0.0f, NULL, KILN_ACT_NONE, va, va);
    store_row(buf + 3 * TILE_N, c30, c31, va, 0.0f, NULL, KILN_ACT_NONE, va, va);
    store_row(buf + 4 * TILE_N, c40, c41, va, 0.0f, NULL, KILN_ACT_NONE, va, va);
    store_row(buf + 5 * TILE_N, c50, c51, va, 0.0f, NULL, KILN_ACT_NONE, va, va);
    for (int i = 0; i < mr; i++) {
        float *crow = c + i * ldc;
        const float *brow = buf + i * TILE_N;
        float add = bias ? bias[i] : 0.0f;
        for (int j = 0; j < nr; j++) {
            float v = brow[j] + add + (beta == 0.0f ? 0.0f : beta * crow[j]);
            crow[j] = act ? kiln_act_scalar(act, v) : v;
        }
    }
}

void kiln_sgemm_pack_rows_sse(const float *a, int64_t lda, int mr, int64_t kc, float *panel)
{
    int quads = mr / 4 * 4; /* rows done by 4x4 transposes; the rest one by one */
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        for (int r = quads; r < mr; r++)
            for (int64_t q = p; q < p + 4; q++)
                panel[q * mr + r] = a[r * lda + q];
        for (int r = 0; r < quads; r += 4) {
            const float *src = a + r * lda + p;
            __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + lda);
            __m128 r2 = _mm_loadu_ps(src + 2 * lda), r3 = _mm_loadu_ps(src + 3 * lda);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            float *dst = panel + p * mr + r;
            _mm_storeu_ps(dst, r0);
            _mm_storeu_ps(dst + mr, r1);
            _mm_storeu_ps(dst + 2 * mr, r2);
            _mm_storeu_ps(dst + 3 * mr, r3);
        }
    }
    for (; p < kc; p++)
        for (int r = 0; r < mr; r++)
            panel[p * mr + r] = a[r * lda + p];
}

float kiln_sdot_avx2(const float *x, const float *y, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float sum = _mm_cvtss_f32(h);
    for (; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

void kiln_saxpy_avx2(float *y, const float *x, float a, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}
