/*
 * gemm_kernel.h - the private interface between the blocked SGEMM driver
 * (gemm.c) and its register-tile microkernels (gemm.c's portable one,
 * gemm_avx2.c, gemm_avx512.c).
 *
 * A microkernel multiplies one packed micro-panel of A (kc steps of MR
 * values: column k of an MR-row strip) by one packed micro-panel of B (kc
 * steps of NR values: row k of an NR-column strip) and writes the MR x NR
 * result into C as  C = alpha * A*B + beta * C,  only the top-left mr x nr
 * corner of it (edge tiles), never reading C when beta == 0.
 */
#ifndef KILN_OPS_GEMM_KERNEL_H
#define KILN_OPS_GEMM_KERNEL_H

#include <stdint.h>

typedef void (*kiln_sgemm_ukernel_fn)(int64_t kc, const float *a_pack, const float *b_pack,
                                      float *c, int64_t ldc, int mr, int nr, float alpha,
                                      float beta);

typedef struct kiln_sgemm_ukernel {
    const char *name;
    int mr, nr;               /* register tile */
    int kc, mc, nc;           /* cache blocking: K depth, A block rows, B block cols */
    kiln_sgemm_ukernel_fn run;
} kiln_sgemm_ukernel_t;

/* AVX2+FMA 6x16 tile (gemm_avx2.c); call only when the CPU has avx2 and fma. */
void kiln_sgemm_ukernel_6x16_avx2(int64_t kc, const float *a_pack, const float *b_pack, float *c,
                                  int64_t ldc, int mr, int nr, float alpha, float beta);

/* AVX-512F 12x32 tile (gemm_avx512.c); call only when the CPU has avx512f. */
void kiln_sgemm_ukernel_12x32_avx512(int64_t kc, const float *a_pack, const float *b_pack,
                                     float *c, int64_t ldc, int mr, int nr, float alpha,
                                     float beta);

#endif
