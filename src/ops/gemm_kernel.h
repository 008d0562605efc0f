/*
 * gemm_kernel.h - the private interface between the blocked SGEMM driver
 * (gemm.c) and its register-tile microkernels (gemm.c's portable one,
 * gemm_avx2.c, gemm_avx512.c).
 *
 * A microkernel multiplies one packed micro-panel of A (kc steps of MR
 * values: column k of an MR-row strip) by one micro-panel of B (kc steps
 * of NR values: row k of an NR-column strip, rows b_step floats apart: NR
 * when packed, B's leading dimension when read in place) and writes the MR x NR
 * result into C as  C = alpha * A*B + beta * C (+ bias[i] on row i when
 * bias is not NULL; then the activation act when not NULL, one of the
 * kinds kiln_act_in_stores accepts),  only the top-left mr x nr
 * corner of it (edge tiles), never reading C when beta == 0.
 */
#ifndef KILN_OPS_GEMM_KERNEL_H
#define KILN_OPS_GEMM_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/gemm.h" /* kiln_act_t */

typedef void (*kiln_sgemm_ukernel_fn)(int64_t kc, const float *a_pack, const float *b_pack,
                                      int64_t b_step, float *c, int64_t ldc, int mr, int nr, float alpha,
                                      float beta, const float *bias, const kiln_act_t *act);

/* The same for a full MR-row tile with A read in place: row i of the tile
 * is a + i*lda, kc values (row-major A, not packed). */
typedef void (*kiln_sgemm_ukernel_direct_fn)(int64_t kc, const float *a, int64_t lda,
                                             const float *b_pack, int64_t b_step, float *c, int64_t ldc, int nr,
                                             float alpha, float beta, const float *bias,
                                             const kiln_act_t *act);

typedef struct kiln_sgemm_ukernel {
    const char *name;
    int mr, nr;               /* register tile */
    int kc, mc, nc;           /* cache blocking: K depth, A block rows, B block cols */
    kiln_sgemm_ukernel_fn run;
    kiln_sgemm_ukernel_direct_fn run_direct; /* NULL: A is always packed */
    bool b_edge_in_place;     /* reads only nr columns of B: a partial panel need not be packed */
} kiln_sgemm_ukernel_t;

/* AVX2+FMA 6x16 tile (gemm_avx2.c); call only when the CPU has avx2 and fma. */
void kiln_sgemm_ukernel_6x16_avx2(int64_t kc, const float *a_pack, const float *b_pack, int64_t b_step, float *c,
                                  int64_t ldc, int mr, int nr, float alpha, float beta,
                                  const float *bias, const kiln_act_t *act);

/* Packs mr rows of a row-major matrix, kc columns each, into one MR-tall
 * micro-panel, 4x4 blocks at a time with SSE transposes (rows past the
 * last multiple of 4 one by one); gemm_avx2.c, call only with avx2. */
void kiln_sgemm_pack_rows_sse(const float *a, int64_t lda, int mr, int64_t kc, float *panel);

/* Dot product and y += a*x (gemm_avx2.c; call only with avx2 and fma). */
float kiln_sdot_avx2(const float *x, const float *y, int64_t n);
void kiln_saxpy_avx2(float *y, const float *x, float a, int64_t n);

/* AVX-512F 12x32 tile (gemm_avx512.c); call only when the CPU has avx512f. */
void kiln_sgemm_ukernel_12x32_avx512(int64_t kc, const float *a_pack, const float *b_pack,
                                     int64_t b_step, float *c, int64_t ldc, int mr, int nr, float alpha,
                                     float beta, const float *bias, const kiln_act_t *act);
void kiln_sgemm_ukernel_12x32_avx512_direct(int64_t kc, const float *a, int64_t lda,
                                            const float *b_pack, int64_t b_step, float *c, int64_t ldc, int nr,
                                            float alpha, float beta, const float *bias,
                                            const kiln_act_t *act);

#endif
