/*
 * conv_dw_kernel.h - the depthwise convolution plane kernel, written once
 * over a small vector vocabulary and compiled for AVX-512
 * (conv_dw_avx512.c, 16 lanes) and AVX2 (conv_dw_avx2.c, 8 lanes).
 *
 * One output plane of a 2-D depthwise conv straight from its input plane,
 * without a padded copy.  The plane is computed in register tiles of
 * output rows x VW-column vectors (eight accumulators: independent FMA
 * chains hide the latency); the accumulators start as the bias, every
 * kernel tap whose input row exists is added in registers, the
 * activation is applied and the tile stored once.  Kernel rows that fall
 * in the top or bottom padding are skipped.  Along the row, the vectors
 * whose every tap reads inside the input row (the interior: all but about
 * one vector at each end) use plain loads; the border vectors use masked
 * loads, whose masked-off lanes read as zero (the padding) and cannot
 * fault.  Stride 2 along the row loads 2*VW consecutive inputs and keeps
 * the even ones.
 *
 * Layout of the work: the interior in tiles of 4 rows x 2 vectors; the
 * vectors left over and the border vectors as vector-wide columns down
 * the plane, 8 rows x 1 vector at a time (a border column's masks depend
 * only on its column, so they are computed once per tap).  For the common
 * shapes (3x3 and 5x5, equal strides 1 or 2, no dilation) everything is a
 * compile-time constant and a tile walks the input rows it reads, loading
 * each input vector once for all the output rows it feeds: loads, not
 * FMAs, are what bound a 3x3 depthwise conv.
 *
 * The including file defines, before including this header:
 *   vec_t, vmask_t, VW                the vector and mask types, the lanes
 *   vec_t v_set1(float), v_loadu(const float *)
 *   vec_t v_fma(vec_t a, vec_t b, vec_t c)          a * b + c
 *   vec_t v_evens(vec_t a, vec_t b)   the even lanes of a, then of b
 *   vmask_t v_cols_mask(int64_t c, int64_t n)
 *                                     the lanes l of a load at column c
 *                                     with 0 <= c + l < n
 *   vec_t v_load_masked(const float *row, int64_t c, vmask_t m)
 *                                     row[c + l], zero in lanes not in m
 *                                     (which are not read: c may be
 *                                     outside the row)
 *   vec_t v_act(vec_t, const kiln_act_t *, vec_t alpha, vec_t beta)
 *   void v_store(float *, vec_t), v_store_part(float *, int64_t count, vec_t)
 */
#ifndef KILN_OPS_CONV_DW_KERNEL_H
#define KILN_OPS_CONV_DW_KERNEL_H

#include "ops/nn_kernels.h"

/* The kernel rows [*i_lo, *i_hi) of output row oh that read an input row. */
static inline void dw_valid_rows(const kiln_dw_plane_t *p, int kh, int64_t oh, int *i_lo, int *i_hi)
{
    int64_t ih0 = oh * p->sh - p->pt;
    int64_t lo = ih0 >= 0 ? 0 : (-ih0 + p->dh - 1) / p->dh;
    int64_t hi = p->in_h - ih0 <= 0 ? 0 : (p->in_h - ih0 + p->dh - 1) / p->dh;
    if (hi > kh)
        hi = kh;
    if (lo > hi)
        lo = hi;
    *i_lo = (int)lo;
    *i_hi = (int)hi;
}

/* Lanes p[l * sw] (sw 1 or 2). */
static inline __attribute__((always_inline)) vec_t v_load_cols(const float *p, int sw)
{
    return sw == 1 ? v_loadu(p) : v_evens(v_loadu(p), v_loadu(p + VW));
}

/* Most taps along a row the vector kernels take (masks kept per tap). */
enum { DW_MAX_KW = 64 };

/* Output rows [*lo, *hi) whose every kernel row reads an input row. */
static inline void dw_full_rows(const kiln_dw_plane_t *p, int kh, int64_t *lo, int64_t *hi)
{
    *lo = (p->pt + p->sh - 1) / p->sh;
    int64_t room = p->in_h + p->pt - (int64_t)(kh - 1) * p->dh - 1; /* last oh*sh */
    *hi = room < 0 ? 0 : room / p->sh + 1;
    if (*hi > p->out_h)
        *hi = p->out_h;
    if (*lo > *hi)
        *lo = *hi;
}

/* An NR-row x NV-vector tile of the output at row oh, column ow, kernel
 * rows [i_lo, i_hi) for every row of it: NR * NV independent accumulators
 * (at most 8).  masked (then NV is 1): border loads with the per-tap masks
 * m0 (and m1 for the second half of a stride-2 load), and count (< VW at
 * the end of the row) columns stored; else plain loads, all inside the
 * row. */
static inline __attribute__((always_inline)) vec_t dw_load(const float *rr, int64_t c, int v, int sw, bool masked,
                                                          const vmask_t *m0, const vmask_t *m1, int j)
{
    if (!masked)
        return v_load_cols(rr + c + v * VW * sw, sw);
    if (sw == 1)
        return v_load_masked(rr, c, m0[j]);
    return v_evens(v_load_masked(rr, c, m0[j]), v_load_masked(rr, c + VW, m1[j]));
}

static inline __attribute__((always_inline)) void dw_tile(const kiln_dw_plane_t *p, int NR, int NV, int kh, int kw,
                                                          int sw, int SH, bool masked, int64_t oh, int i_lo,
                                                          int i_hi, int64_t ow, const vmask_t *m0,
                                                          const vmask_t *m1, int64_t count, vec_t va, vec_t vb)
{
    vec_t acc[8];
    const vec_t bias = v_set1(p->bias);
    const int64_t c0 = ow * sw - p->pl, row_step = (int64_t)p->sh * p->in_w;
#pragma GCC unroll 8
    for (int t = 0; t < NR * NV; t++)
        acc[t] = bias;
    if (SH && NR > 1) {
        /* row strides SH and dilation 1 known, all kernel rows present:
         * walk the input rows the tile reads, loading each vector once for
         * every output row it feeds (kernel row t - r*SH of row r) */
#pragma GCC unroll 24
        for (int t = 0; t < (NR - 1) * SH + kh; t++) {
            const float *rr = p->x + (oh * SH - p->pt + t) * p->in_w;
#pragma GCC unroll 8
            for (int j = 0; j < kw; j++) {
                const int64_t c = c0 + (int64_t)j * p->dw;
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++) {
                    vec_t in = dw_load(rr, c, v, sw, masked, m0, m1, j);
#pragma GCC unroll 8
                    for (int r = 0; r < NR; r++) {
                        int i = t - r * SH;
                        if (i >= 0 && i < kh)
                            acc[r * NV + v] = v_fma(v_set1(p->f[i * kw + j]), in, acc[r * NV + v]);
                    }
                }
            }
        }
    } else {
        for (int i = i_lo; i < i_hi; i++) {
            const float *row = p->x + (oh * p->sh - p->pt + (int64_t)i * p->dh) * p->in_w;
#pragma GCC unroll 8
            for (int j = 0; j < kw; j++) {
                const int64_t c = c0 + (int64_t)j * p->dw;
                const vec_t w = v_set1(p->f[i * kw + j]);
#pragma GCC unroll 8
                for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
                    for (int v = 0; v < NV; v++)
                        acc[r * NV + v] = v_fma(w, dw_load(row + r * row_step, c, v, sw, masked, m0, m1, j),
                                                acc[r * NV + v]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *y = p->y + (oh + r) * p->out_w + ow + v * VW;
            vec_t out = v_act(acc[r * NV + v], &p->act, va, vb);
            if (masked && count < VW)
                v_store_part(y, count, out);
            else
                v_store(y, out);
        }
}

/* The output columns [ow, ow + VW) of every row, a vector-wide column
 * down the plane: eight rows at a time where all their kernel rows exist
 * (eight independent FMA chains), the rest one by one.  masked: a border
 * column (masked loads, the masks per tap computed once here). */
static inline __attribute__((always_inline)) void dw_column(const kiln_dw_plane_t *p, int kh, int kw, int sw,
                                                            int SH, bool masked, int64_t ow, vec_t va, vec_t vb)
{
    vmask_t m0[DW_MAX_KW], m1[DW_MAX_KW];
    if (masked) {
        int64_t c0 = ow * sw - p->pl;
#pragma GCC unroll 8
        for (int j = 0; j < kw; j++) {
            int64_t c = c0 + (int64_t)j * p->dw;
            m0[j] = v_cols_mask(c, p->in_w);
            m1[j] = v_cols_mask(c + VW, p->in_w);
        }
    }
    int64_t count = p->out_w - ow < VW ? p->out_w - ow : VW;
    int64_t full_lo, full_hi;
    dw_full_rows(p, kh, &full_lo, &full_hi);
    for (int64_t oh = 0; oh < p->out_h;) {
        if (oh >= full_lo && oh + 8 <= full_hi) {
            dw_tile(p, 8, 1, kh, kw, sw, SH, masked, oh, 0, kh, ow, m0, m1, count, va, vb);
            oh += 8;
        } else if (oh >= full_lo && oh + 4 <= full_hi) {
            dw_tile(p, 4, 1, kh, kw, sw, SH, masked, oh, 0, kh, ow, m0, m1, count, va, vb);
            oh += 4;
        } else {
            int i_lo, i_hi;
            dw_valid_rows(p, kh, oh, &i_lo, &i_hi);
            dw_tile(p, 1, 1, kh, kw, sw, SH, masked, oh, i_lo, i_hi, ow, m0, m1, count, va, vb);
            oh += 1;
        }
    }
}

/* The whole plane; kh, kw and sw are constants where the caller
 * specialises, and SH too (the row stride, with row dilation 1) or 0. */
static inline __attribute__((always_inline)) void dw_plane(const kiln_dw_plane_t *p, int kh, int kw, int sw, int SH)
{
    const vec_t va = v_set1(p->act.alpha), vb = v_set1(p->act.beta);
    /* vector starts ow in [safe_lo, safe_end) read only inside the row:
     * ow*sw - pl >= 0 and ow*sw - pl + (kw-1)*dw + VW*sw <= in_w */
    int64_t safe_lo = (p->pl + sw - 1) / sw;
    int64_t room = p->in_w + p->pl - (int64_t)(kw - 1) * p->dw - (int64_t)VW * sw;
    int64_t safe_end = room < 0 ? 0 : room / sw + 1;
    /* left border columns; the interior [ow_begin, ow_end): blocks of four
     * vectors row by row (two rows at a time where their kernel rows all
     * exist), the vectors left over column by column; right border
     * columns */
    int64_t ow = 0;
    for (; ow < p->out_w && (ow < safe_lo || ow >= safe_end); ow += VW)
        dw_column(p, kh, kw, sw, SH, true, ow, va, vb);
    int64_t ow_begin = ow;
    while (ow < safe_end && ow + VW <= p->out_w)
        ow += VW;
    int64_t ow_end = ow, ow_blocks = ow_begin + (ow_end - ow_begin) / (2 * VW) * (2 * VW);
    int64_t full_lo, full_hi;
    dw_full_rows(p, kh, &full_lo, &full_hi);
    for (int64_t oh = 0; ow_blocks > ow_begin && oh < p->out_h;) {
        if (oh >= full_lo && oh + 4 <= full_hi) {
            for (int64_t o = ow_begin; o < ow_blocks; o += 2 * VW)
                dw_tile(p, 4, 2, kh, kw, sw, SH, false, oh, 0, kh, o, NULL, NULL, VW, va, vb);
            oh += 4;
        } else {
            int i_lo, i_hi;
            dw_valid_rows(p, kh, oh, &i_lo, &i_hi);
            for (int64_t o = ow_begin; o < ow_blocks; o += 2 * VW)
                dw_tile(p, 1, 2, kh, kw, sw, SH, false, oh, i_lo, i_hi, o, NULL, NULL, VW, va, vb);
            oh += 1;
        }
    }
    for (ow = ow_blocks; ow < ow_end; ow += VW)
        dw_column(p, kh, kw, sw, SH, false, ow, va, vb);
    for (ow = ow_end; ow < p->out_w; ow += VW)
        dw_column(p, kh, kw, sw, SH, true, ow, va, vb);
}

/* The entry point: the common shapes with constant taps and strides, so
 * their loops unroll. */
static inline __attribute__((always_inline)) void dw_plane_dispatch(const kiln_dw_plane_t *p)
{
    bool square = p->sh == p->sw && p->dh == 1; /* the row stride is the column stride: SH = sw */
    if (p->kh == 3 && p->kw == 3 && p->sw == 1 && square)
        dw_plane(p, 3, 3, 1, 1);
    else if (p->kh == 3 && p->kw == 3 && p->sw == 2 && square)
        dw_plane(p, 3, 3, 2, 2);
    else if (p->kh == 5 && p->kw == 5 && p->sw == 1 && square)
        dw_plane(p, 5, 5, 1, 1);
    else if (p->kh == 5 && p->kw == 5 && p->sw == 2 && square)
        dw_plane(p, 5, 5, 2, 2);
    else if (p->sw == 1)
        dw_plane(p, p->kh, p->kw, 1, 0);
    else
        dw_plane(p, p->kh, p->kw, 2, 0);
}

#endif
