/*
 * fused_avx2.c - the fused kernels' activation loops compiled for AVX2+FMA
 * (see fused_epilogue.h); fused.c calls it after a run-time CPU check.
 */
/* The loops run over any n and select with ?:, so ask for the full
 * vectorizer cost model and allow speculating float ops (results are the
 * same; only FP exception flags could differ). */
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")

#include <math.h>

#include "ops/fused_epilogue.h"

void kiln_act_loop_avx2(kiln_act_kind_t kind, float alpha, float beta, float bias, const float *z, float *y,
                        int64_t n)
{
    kiln_act_loop(kind, alpha, beta, bias, z, y, n, expf, tanhf);
}
