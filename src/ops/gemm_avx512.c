/*
 * gemm_avx512.c - the AVX-512F SGEMM microkernel: a 12x32 register tile.
 *
 * Twenty-four zmm accumulators hold the 12x32 tile of C; each step of k
 * loads one 32-wide row of packed B (two zmm) and, for each of the twelve
 * packed A values, issues two FMAs with the value broadcast from memory.
 * That is 24 FMAs per 2 loads + 12 broadcasts, enough to keep both 512-bit
 * FMA ports busy.  The accumulator arrays are fully unrolled by the
 * compiler (constant trip counts, #pragma GCC unroll), so they live in
 * registers.  Edge tiles are written with masked stores, and B is read
 * with masked loads (all lanes for a full tile), so a partial panel can be
 * read in place from B.  The bias and
 * the activation (act_simd.h) are applied in registers before the store;
 * the store is compiled once per activation kind, so no branch on the
 * kind is left inside it.
 *
 * A second entry point reads A in place (row i at a + i*lda) instead of
 * from a packed panel; gemm.c uses it when C is narrow and packing A
 * would cost more than the multiply (late ResNet layers, N = 49).
 *
 * Compiled with AVX-512 flags; gemm.c calls it only after
 * __builtin_cpu_supports("avx512f").
 */
#include <immintrin.h>

#include "ops/act_simd.h"
#include "ops/gemm_kernel.h"

enum { TILE_M = 12, TILE_N = 32 };

/* Direct-A kernel prefetch: every 16 steps of k (one cache line of a row),
 * PREFETCH_AHEAD floats ahead. */
enum { PREFETCH_EVERY = 16, PREFETCH_AHEAD = 64 };
/* Packed-A kernel prefetch distance (floats): 32 steps of k. */
enum { PACKED_AHEAD = 32 * TILE_M };

/* Writes the mr x nr corner of alpha*acc + beta*C (+ bias[i] per row,
 * then activation kind with parameters pa, pb; C not read when beta is 0);
 * full tiles with plain stores, edges with masked ones. */
static inline __attribute__((always_inline)) void store_tile(__m512 acc[TILE_M][2], float *c,
                                                             int64_t ldc, int mr, int nr,
                                                             float alpha, float beta,
                                                             const float *bias, kiln_act_kind_t kind,
                                                             __m512 pa, __m512 pb)
{
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (mr == TILE_M && nr == TILE_N) {
#pragma GCC unroll 12
        for (int i = 0; i < TILE_M; i++) {
            float *crow = c + i * ldc;
            __m512 lo = _mm512_mul_ps(acc[i][0], va), hi = _mm512_mul_ps(acc[i][1], va);
            if (beta != 0.0f) {
                lo = _mm512_fmadd_ps(vb, _mm512_loadu_ps(crow), lo);
                hi = _mm512_fmadd_ps(vb, _mm512_loadu_ps(crow + 16), hi);
            }
            if (bias) {
                lo = _mm512_add_ps(lo, _mm512_set1_ps(bias[i]));
                hi = _mm512_add_ps(hi, _mm512_set1_ps(bias[i]));
            }
            lo = kiln_act512(lo, kind, pa, pb);
            hi = kiln_act512(hi, kind, pa, pb);
            _mm512_storeu_ps(crow, lo);
            _mm512_storeu_ps(crow + 16, hi);
        }
        return;
    }
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr <= 16 ? 0 : nr >= 32 ? 0xffff : (__mmask16)((1u << (nr - 16)) - 1);
#pragma GCC unroll 12
    for (int i = 0; i < TILE_M; i++) {
        if (i >= mr)
            break;
        float *crow = c + i * ldc;
        __m512 lo = _mm512_mul_ps(acc[i][0], va), hi = _mm512_mul_ps(acc[i][1], va);
        if (beta != 0.0f) {
            lo = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, crow), lo);
            hi = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, crow + 16), hi);
        }
        if (bias) {
            lo = _mm512_add_ps(lo, _mm512_set1_ps(bias[i]));
            hi = _mm512_add_ps(hi, _mm512_set1_ps(bias[i]));
        }
        lo = kiln_act512(lo, kind, pa, pb);
        hi = kiln_act512(hi, kind, pa, pb);
        _mm512_mask_storeu_ps(crow, m0, lo);
        _mm512_mask_storeu_ps(crow + 16, m1, hi);
    }
}

/* The columns of a B row the tile reads: nr of them, so a partial panel
 * read in place from B is not read past its end. */
static inline __attribute__((always_inline)) void b_masks(int nr, __mmask16 *m0, __mmask16 *m1)
{
    *m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    *m1 = nr <= 16 ? 0 : nr >= 32 ? 0xffff : (__mmask16)((1u << (nr - 16)) - 1);
}

/* store_tile with the activation's kind made a constant. */
static inline __attribute__((always_inline)) void store_tile_act(__m512 acc[TILE_M][2], float *c, int64_t ldc,
                                                                 int mr, int nr, float alpha, float beta,
                                                                 const float *bias, const kiln_act_t *act)
{
    kiln_act_kind_t kind = act ? act->kind : KILN_ACT_NONE;
    __m512 pa = _mm512_set1_ps(act ? act->alpha : 0.0f), pb = _mm512_set1_ps(act ? act->beta : 0.0f);
    switch (kind) {
    case KILN_ACT_RELU:
        store_tile(acc, c, ldc, mr, nr, alpha, beta, bias, KILN_ACT_RELU, pa, pb);
        break;
    case KILN_ACT_CLIP:
        store_tile(acc, c, ldc, mr, nr, alpha, beta, bias, KILN_ACT_CLIP, pa, pb);
        break;
    case KILN_ACT_LEAKY_RELU:
        store_tile(acc, c, ldc, mr, nr, alpha, beta, bias, KILN_ACT_LEAKY_RELU, pa, pb);
        break;
    case KILN_ACT_HARD_SIGMOID:
        store_tile(acc, c, ldc, mr, nr, alpha, beta, bias, KILN_ACT_HARD_SIGMOID, pa, pb);
        break;
    case KILN_ACT_HARD_SWISH:
        store_tile(acc, c, ldc, mr, nr, alpha, beta, bias, KILN_ACT_HARD_SWISH, pa, pb);
        break;
    default:
        store_tile(acc, c, ldc, mr, nr, alpha, beta, bias, KILN_ACT_NONE, pa, pb);
        break;
    }
}

void kiln_sgemm_ukernel_12x32_avx512(int64_t kc, const float *a, const float *b, int64_t b_step, float *c,
                                     int64_t ldc, int mr, int nr, float alpha, float beta,
                                     const float *bias, const kiln_act_t *act)
{
    __m512 acc[TILE_M][2];
#pragma GCC unroll 12
    for (int i = 0; i < TILE_M; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    __mmask16 bm0, bm1;
    b_masks(nr, &bm0, &bm1);
    if (nr <= TILE_N / 2) {
        /* a narrow edge tile: only the left half of the panel matters */
        for (int64_t k = 0; k < kc; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(bm0, b);
#pragma GCC unroll 12
            for (int i = 0; i < TILE_M; i++)
                acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc[i][0]);
            a += TILE_M;
            b += b_step;
        }
    } else {
        for (int64_t k = 0; k < kc; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(bm0, b), b1 = _mm512_maskz_loadu_ps(bm1, b + 16);
            /* A may come from memory (weights packed once, read once per
             * run): fetch the panel PACKED_AHEAD floats ahead */
            _mm_prefetch((const char *)(a + PACKED_AHEAD), _MM_HINT_T0);
#pragma GCC unroll 12
            for (int i = 0; i < TILE_M; i++) {
                __m512 av = _mm512_set1_ps(a[i]);
                acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
            }
            a += TILE_M;
            b += b_step;
        }
    }
    store_tile_act(acc, c, ldc, mr, nr, alpha, beta, bias, act);
}

void kiln_sgemm_ukernel_12x32_avx512_direct(int64_t kc, const float *a, int64_t lda,
                                            const float *b, int64_t b_step, float *c, int64_t ldc, int nr,
                                            float alpha, float beta, const float *bias,
                                            const kiln_act_t *act)
{
    __m512 acc[TILE_M][2];
#pragma GCC unroll 12
    for (int i = 0; i < TILE_M; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    __mmask16 bm0, bm1;
    b_masks(nr, &bm0, &bm1);
    const float *a4 = a + 4 * lda, *a8 = a + 8 * lda;
    int64_t lda3 = 3 * lda;
    if (nr <= TILE_N / 2) {
        for (int64_t k = 0; k < kc; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(bm0, b);
            const float *rows[TILE_M] = {a + k,       a + lda + k,  a + 2 * lda + k,  a + lda3 + k,
                                         a4 + k,      a4 + lda + k, a4 + 2 * lda + k, a4 + lda3 + k,
                                         a8 + k,      a8 + lda + k, a8 + 2 * lda + k, a8 + lda3 + k};
#pragma GCC unroll 12
            for (int i = 0; i < TILE_M; i++)
                acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(*rows[i]), b0, acc[i][0]);
            b += b_step;
        }
    } else {
        for (int64_t k = 0; k < kc; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(bm0, b), b1 = _mm512_maskz_loadu_ps(bm1, b + 16);
            const float *rows[TILE_M] = {a + k,       a + lda + k,  a + 2 * lda + k,  a + lda3 + k,
                                         a4 + k,      a4 + lda + k, a4 + 2 * lda + k, a4 + lda3 + k,
                                         a8 + k,      a8 + lda + k, a8 + 2 * lda + k, a8 + lda3 + k};
            if ((k & (PREFETCH_EVERY - 1)) == 0) {
                /* twelve strided streams: fetch each row's next lines early */
#pragma GCC unroll 12
                for (int i = 0; i < TILE_M; i++)
                    _mm_prefetch((const char *)(rows[i] + PREFETCH_AHEAD), _MM_HINT_T0);
            }
#pragma GCC unroll 12
            for (int i = 0; i < TILE_M; i++) {
                __m512 av = _mm512_set1_ps(*rows[i]);
                acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
            }
            b += b_step;
        }
    }
    store_tile_act(acc, c, ldc, TILE_M, nr, alpha, beta, bias, act);
}
