/*
 * conv_winograd_xform.h - the per-tile transforms of Winograd F(4x4, 3x3)
 * (conv_winograd.c), written once and compiled twice: by conv_winograd.c
 * as the portable reference and by conv_winograd_avx512.c with AVX-512
 * enabled.  The includer defines WINO_FN(name) to give the functions its
 * own names and WINO_LINKAGE (static or nothing) their linkage.
 *
 * Both transforms work on a row of tiles at a time, one tile per vector
 * lane: the inner loops run over 16 lanes with no dependence between them
 * and the compiler vectorises them (16 floats: one AVX-512 register, four
 * SSE ones).  Callers pad their buffers to a multiple of 16 lanes; lanes
 * past n are computed and ignored.
 *
 * With d the 6x6 input tile, g the 3x3 filter and Y the 4x4 output tile,
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"),
 * interpolation points 0, 1, -1, 2, -2 and infinity:
 *     B^T = [4  0 -5  0 1 0]   A^T = [1 1  1 1  1 0]
 *           [0 -4 -4  1 1 0]         [0 1 -1 2 -2 0]
 *           [0  4 -4 -1 1 0]         [0 1  1 4  4 0]
 *           [0 -2 -1  2 1 0]         [0 1 -1 8 -8 1]
 *           [0  2 -1 -2 1 0]
 *           [0  4  0 -5 0 1]
 * (G is in conv_winograd.c, where the weights are transformed.)
 */
#if !defined(WINO_FN) || !defined(WINO_LINKAGE)
#error "define WINO_FN(name) and WINO_LINKAGE before including conv_winograd_xform.h"
#endif

#include <stdint.h>

enum { WINO_LANES = 16 };

/* Input transform of n tiles side by side: ph holds the 6 input rows of the
 * tile row deinterleaved by 4 (row r, phase q at ph + (r*4 + q)*ld: columns
 * q, q+4, q+8... of the padded row, so tile u's column c is at index
 * u + c/4 of phase c%4), at least round_up(n, 16) + 1 floats per phase.
 * Element xi = i*6 + k of B^T d B of tile u goes to out[xi*ostride + u]. */
WINO_LINKAGE void WINO_FN(input)(const float *ph, int64_t ld, int64_t n, float *out, int64_t ostride)
{
    for (int64_t l0 = 0; l0 < n; l0 += WINO_LANES) {
        float t[6][6][WINO_LANES]; /* t[i][c] = (B^T d)[i][c] */
        for (int c = 0; c < 6; c++) {
            const float *p0 = ph + (0 * 4 + (c & 3)) * ld + l0 + (c >> 2);
            const float *p1 = p0 + 4 * ld, *p2 = p1 + 4 * ld, *p3 = p2 + 4 * ld;
            const float *p4 = p3 + 4 * ld, *p5 = p4 + 4 * ld;
            for (int l = 0; l < WINO_LANES; l++) {
                float d0 = p0[l], d1 = p1[l], d2 = p2[l], d3 = p3[l], d4 = p4[l], d5 = p5[l];
                t[0][c][l] = 4.0f * d0 - 5.0f * d2 + d4;
                t[1][c][l] = -4.0f * (d1 + d2) + d3 + d4;
                t[2][c][l] = 4.0f * (d1 - d2) - d3 + d4;
                t[3][c][l] = 2.0f * (d3 - d1) - d2 + d4;
                t[4][c][l] = 2.0f * (d1 - d3) - d2 + d4;
                t[5][c][l] = 4.0f * d1 - 5.0f * d3 + d5;
            }
        }
        for (int i = 0; i < 6; i++) {
            float *o = out + i * 6 * ostride + l0;
            for (int l = 0; l < WINO_LANES; l++) {
                float d0 = t[i][0][l], d1 = t[i][1][l], d2 = t[i][2][l];
                float d3 = t[i][3][l], d4 = t[i][4][l], d5 = t[i][5][l];
                o[0 * ostride + l] = 4.0f * d0 - 5.0f * d2 + d4;
                o[1 * ostride + l] = -4.0f * (d1 + d2) + d3 + d4;
                o[2 * ostride + l] = 4.0f * (d1 - d2) - d3 + d4;
                o[3 * ostride + l] = 2.0f * (d3 - d1) - d2 + d4;
                o[4 * ostride + l] = 2.0f * (d1 - d3) - d2 + d4;
                o[5 * ostride + l] = 4.0f * d1 - 5.0f * d3 + d5;
            }
        }
    }
}

/* Output transform of n tiles side by side: element xi of the product for
 * tile u is m[xi*xs + u] (readable up to round_up(n, 16) lanes); output
 * (i, j) of A^T M A for tile u goes to out[(i*4 + j)*ostride + u]. */
WINO_LINKAGE void WINO_FN(output)(const float *m, int64_t xs, int64_t n, float *out, int64_t ostride)
{
    for (int64_t l0 = 0; l0 < n; l0 += WINO_LANES) {
        float t[4][6][WINO_LANES]; /* t[i][c] = (A^T M)[i][c] */
        for (int c = 0; c < 6; c++) {
            const float *p0 = m + c * xs + l0, *p1 = p0 + 6 * xs, *p2 = p1 + 6 * xs;
            const float *p3 = p2 + 6 * xs, *p4 = p3 + 6 * xs, *p5 = p4 + 6 * xs;
            for (int l = 0; l < WINO_LANES; l++) {
                float m0 = p0[l], m1 = p1[l], m2 = p2[l], m3 = p3[l], m4 = p4[l], m5 = p5[l];
                float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
                t[0][c][l] = m0 + s12 + s34;
                t[1][c][l] = d12 + 2.0f * d34;
                t[2][c][l] = s12 + 4.0f * s34;
                t[3][c][l] = d12 + 8.0f * d34 + m5;
            }
        }
        for (int i = 0; i < 4; i++) {
            float *o = out + i * 4 * ostride + l0;
            for (int l = 0; l < WINO_LANES; l++) {
                float m0 = t[i][0][l], m1 = t[i][1][l], m2 = t[i][2][l];
                float m3 = t[i][3][l], m4 = t[i][4][l], m5 = t[i][5][l];
                float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
                o[0 * ostride + l] = m0 + s12 + s34;
                o[1 * ostride + l] = d12 + 2.0f * d34;
                o[2 * ostride + l] = s12 + 4.0f * s34;
                o[3 * ostride + l] = d12 + 8.0f * d34 + m5;
            }
        }
    }
}
