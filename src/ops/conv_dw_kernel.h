/*
 * conv_dw_kernel.h - the depthwise convolution plane kernel, written once
 * over a small vector vocabulary and compiled for AVX-512
 * (conv_dw_avx512.c, 16 lanes) and AVX2 (conv_dw_avx2.c, 8 lanes).
 *
 * One output plane of a 2-D depthwise conv straight from its input plane,
 * without a padded copy.  Each output row is computed VW columns per
 * vector, four vectors at a time (independent accumulators hide the FMA
 * latency); the accumulators start as the bias, every kernel tap whose
 * input row exists is added in registers, the activation is applied and
 * the row stored once.  Kernel rows that fall in the top or bottom padding
 * are skipped.  Along the row, the vectors whose every tap reads inside
 * the input row (the interior: all but about one vector at each end) use
 * plain loads; the border vectors use masked loads, whose masked-off lanes
 * read as zero (the padding) and cannot fault.  Stride 2 along the row
 * loads 2*VW consecutive inputs and keeps the even ones.
 *
 * The masks of a border vector depend only on its column, so border
 * columns are done one vector-wide column at a time down the plane, with
 * each tap's mask computed once.
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

/* NV vectors of output row oh from column ow, all interior (plain loads). */
static inline __attribute__((always_inline)) void dw_block(const kiln_dw_plane_t *p, int NV, int kw, int sw,
                                                           int64_t oh, int i_lo, int i_hi, int64_t ow, vec_t va,
                                                           vec_t vb)
{
    vec_t acc[4];
    const vec_t bias = v_set1(p->bias);
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
        acc[v] = bias;
    const float *col = p->x + ow * sw - p->pl;
    for (int i = i_lo; i < i_hi; i++) {
        const float *row = col + (oh * p->sh - p->pt + (int64_t)i * p->dh) * p->in_w;
#pragma GCC unroll 8
        for (int j = 0; j < kw; j++) {
            vec_t w = v_set1(p->f[i * kw + j]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[v] = v_fma(w, v_load_cols(row + (int64_t)j * p->dw + v * VW * sw, sw), acc[v]);
        }
    }
    float *y = p->y + oh * p->out_w + ow;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
        v_store(y + v * VW, v_act(acc[v], &p->act, va, vb));
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

/* NR rows from oh of one border column at ow (masks m0, m1 per tap, c0
 * its first input column), kernel rows [i_lo, i_hi) for all of them. */
static inline __attribute__((always_inline)) void dw_border_rows(const kiln_dw_plane_t *p, int NR, int kw, int sw,
                                                                 int64_t oh, int i_lo, int i_hi, int64_t ow,
                                                                 int64_t c0, const vmask_t *m0, const vmask_t *m1,
                                                                 int64_t count, vec_t va, vec_t vb)
{
    vec_t acc[4];
    const vec_t bias = v_set1(p->bias);
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
        acc[r] = bias;
    for (int i = i_lo; i < i_hi; i++) {
        const float *row = p->x + (oh * p->sh - p->pt + (int64_t)i * p->dh) * p->in_w;
#pragma GCC unroll 8
        for (int j = 0; j < kw; j++) {
            int64_t c = c0 + (int64_t)j * p->dw;
            vec_t w = v_set1(p->f[i * kw + j]);
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                const float *rr = row + (int64_t)r * p->sh * p->in_w;
                vec_t in = sw == 1 ? v_load_masked(rr, c, m0[j])
                                   : v_evens(v_load_masked(rr, c, m0[j]), v_load_masked(rr, c + VW, m1[j]));
                acc[r] = v_fma(w, in, acc[r]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        float *y = p->y + (oh + r) * p->out_w + ow;
        vec_t v = v_act(acc[r], &p->act, va, vb);
        if (count == VW)
            v_store(y, v);
        else
            v_store_part(y, count, v);
    }
}

/* The output columns [ow, ow + VW) of every row, at a border: masked
 * loads (the masks per tap computed once), four rows at a time where all
 * their kernel rows exist, and a partial store at the end of the row. */
static inline __attribute__((always_inline)) void dw_border_column(const kiln_dw_plane_t *p, int kh, int kw,
                                                                   int sw, int64_t ow, vec_t va, vec_t vb)
{
    vmask_t m0[DW_MAX_KW], m1[DW_MAX_KW];
    int64_t c0 = ow * sw - p->pl;
#pragma GCC unroll 8
    for (int j = 0; j < kw; j++) {
        int64_t c = c0 + (int64_t)j * p->dw;
        m0[j] = v_cols_mask(c, p->in_w);
        m1[j] = v_cols_mask(c + VW, p->in_w);
    }
    int64_t count = p->out_w - ow < VW ? p->out_w - ow : VW;
    int64_t full_lo, full_hi;
    dw_full_rows(p, kh, &full_lo, &full_hi);
    for (int64_t oh = 0; oh < p->out_h;) {
        if (oh >= full_lo && oh + 4 <= full_hi) {
            dw_border_rows(p, 4, kw, sw, oh, 0, kh, ow, c0, m0, m1, count, va, vb);
            oh += 4;
        } else if (oh >= full_lo && oh + 2 <= full_hi) {
            dw_border_rows(p, 2, kw, sw, oh, 0, kh, ow, c0, m0, m1, count, va, vb);
            oh += 2;
        } else {
            int i_lo, i_hi;
            dw_valid_rows(p, kh, oh, &i_lo, &i_hi);
            dw_border_rows(p, 1, kw, sw, oh, i_lo, i_hi, ow, c0, m0, m1, count, va, vb);
            oh += 1;
        }
    }
}

/* The whole plane; kh, kw and sw are constants where the caller
 * specialises. */
static inline __attribute__((always_inline)) void dw_plane(const kiln_dw_plane_t *p, int kh, int kw, int sw)
{
    const vec_t va = v_set1(p->act.alpha), vb = v_set1(p->act.beta);
    /* vector starts ow in [safe_lo, safe_end) read only inside the row:
     * ow*sw - pl >= 0 and ow*sw - pl + (kw-1)*dw + VW*sw <= in_w */
    int64_t safe_lo = (p->pl + sw - 1) / sw;
    int64_t room = p->in_w + p->pl - (int64_t)(kw - 1) * p->dw - (int64_t)VW * sw;
    int64_t safe_end = room < 0 ? 0 : room / sw + 1;
    /* left border columns, then the interior [ow_begin, ow_end) row by row,
     * then the right border columns */
    int64_t ow = 0;
    for (; ow < p->out_w && (ow < safe_lo || ow >= safe_end); ow += VW)
        dw_border_column(p, kh, kw, sw, ow, va, vb);
    int64_t ow_begin = ow;
    while (ow < safe_end && ow + VW <= p->out_w)
        ow += VW;
    int64_t ow_end = ow;
    for (int64_t oh = 0; ow_end > ow_begin && oh < p->out_h; oh++) {
        int i_lo, i_hi;
        dw_valid_rows(p, kh, oh, &i_lo, &i_hi);
        int64_t o = ow_begin;
        for (; o + 4 * VW <= ow_end; o += 4 * VW)
            dw_block(p, 4, kw, sw, oh, i_lo, i_hi, o, va, vb);
        for (; o + 2 * VW <= ow_end; o += 2 * VW)
            dw_block(p, 2, kw, sw, oh, i_lo, i_hi, o, va, vb);
        for (; o < ow_end; o += VW)
            dw_block(p, 1, kw, sw, oh, i_lo, i_hi, o, va, vb);
    }
    for (ow = ow_end; ow < p->out_w; ow += VW)
        dw_border_column(p, kh, kw, sw, ow, va, vb);
}

/* The entry point: the common shapes with constant taps and strides, so
 * their loops unroll. */
static inline __attribute__((always_inline)) void dw_plane_dispatch(const kiln_dw_plane_t *p)
{
    if (p->kh == 3 && p->kw == 3 && p->sw == 1)
        dw_plane(p, 3, 3, 1);
    else if (p->kh == 3 && p->kw == 3 && p->sw == 2)
        dw_plane(p, 3, 3, 2);
    else if (p->kh == 5 && p->kw == 5 && p->sw == 1)
        dw_plane(p, 5, 5, 1);
    else if (p->kh == 5 && p->kw == 5 && p->sw == 2)
        dw_plane(p, 5, 5, 2);
    else if (p->sw == 1)
        dw_plane(p, p->kh, p->kw, 1);
    else
        dw_plane(p, p->kh, p->kw, 2);
}

#endif
