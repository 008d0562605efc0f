/*
 * conv_winograd.c - Conv by Winograd F(4x4, 3x3) for 3x3, stride-1,
 * one-group 2-D float32 convolutions.
 *
 * Each 4x4 output tile of each output channel m is
 *     Y = A^T [ sum_c U_mc .* V_c ] A,   U_mc = G g_mc G^T,  V_c = B^T d_c B
 * with d_c the 6x6 input patch of channel c under the tile (the matrices are
 * in conv_winograd_xform.h and below).  The sum over c, for each of the 36
 * elements xi of the 6x6 products, is a matrix product
 *     M_xi (M x tiles) = U_xi (M x C) * V_xi (C x tiles),
 * so the 9 multiplies per output and channel pair of a direct 3x3 conv
 * become 36 per 16 outputs (2.25), done by the GEMM microkernel.
 *
 * Data flow, per block of tiles (tiles numbered row-major over the images,
 * output tile (th, tw) covering output rows 4th.. and columns 4tw..; a
 * block holds as many as keep its V and M matrices in L2):
 *   1. input transform: each input channel's patches of the block go
 *      through B^T d B and land straight in V_xi, laid out as
 *      kiln_sgemm_packed_b's B panels (no packing pass);
 *   2. 36 GEMMs M_xi = U_xi V_xi with U_xi packed once as the
 *      microkernel's A operand (per session when W is an initializer:
 *      kiln_ctx_input_winograd; else per call);
 *   3. output transform: A^T M A per tile and output channel, + bias,
 *      stored into y, and the FusedConv epilogue on the finished rows while
 *      they are in cache.
 * Threads take whole blocks each (own V/M scratch, no barriers) when there
 * are enough blocks; otherwise (small maps: one block) the three phases of
 * each block are split over the threads: channels, xi, channels.
 *
 * Accuracy: the transforms scale values by up to ~100 and cancel, so the
 * result carries a few more ulps of rounding than a direct sum (relative
 * error ~1e-6 of the output's magnitude on ResNet-50's layers).
 */
#include <stdlib.h>
#include <string.h>

#include "ops/conv_winograd.h"

#define WINO_LINKAGE static
#define WINO_FN(name) winograd_##name##_portable
#include "ops/conv_winograd_xform.h"

enum {
    WINO_TILE = 4,   /* output tile side */
    WINO_SIDE = 6,   /* input tile side: WINO_TILE + 3 - 1 */
    WINO_XI = 36,    /* elements of a 6x6 tile: the number of GEMMs */
    WINO_CHUNK = 64, /* tile columns transformed at a time (stack buffers) */
    /* floats per phase row of the deinterleaved input (WINO_CHUNK lanes,
     * one more for the 6th column, rounded to a cache line) */
    WINO_PH_LD = WINO_CHUNK + 16,
    /* V and M scratch of one block: what fits in L2 next to the weights */
    WINO_BLOCK_BYTES = 1 << 20,
};

static bool g_enabled = true, g_env_read, g_force_portable;

void kiln_conv_winograd_enable(bool enable)
{
    g_enabled = enable;
    g_env_read = true; /* the caller's word beats the environment */
}

void kiln_conv_winograd_force_portable(bool force)
{
    g_force_portable = force;
}

bool kiln_winograd_wanted(const kiln_window_t *w, int64_t group, int64_t in_channels, int64_t out_channels,
                          int64_t batch)
{
    if (!g_env_read) { /* KILN_WINOGRAD=0 turns it off (A/B benchmarks) */
        const char *env = getenv("KILN_WINOGRAD");
        if (env && env[0] == '0')
            g_enabled = false;
        g_env_read = true;
    }
    if (!g_enabled || w->nd != 2 || group != 1 || w->kernel[0] != 1 || w->in[0] != 1 || w->out[0] != 1)
        return false;
    for (int i = 1; i < 3; i++)
        if (w->kernel[i] != 3 || w->stride[i] != 1 || w->dilation[i] != 1)
            return false;
    /* measured (docs/KERNELS.md): the transforms cost O(C + M) per tile and
     * the GEMMs O(C * M), so few channels do not pay; a map of few tiles
     * wastes most of each 32-wide GEMM panel */
    int64_t tiles = batch * ((w->out[1] + 3) / 4) * ((w->out[2] + 3) / 4);
    return in_channels >= 32 && out_channels >= 32 && tiles >= 16;
}

/* ---- Weights -------------------------------------------------------------- */

/* G (6x3) of the weight transform U = G g G^T. */
static const float WINO_G[WINO_SIDE][3] = {
    {1.0f / 4, 0.0f, 0.0f},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6},
    {1.0f / 24, -1.0f / 12, 1.0f / 6},
    {0.0f, 0.0f, 1.0f},
};

size_t kiln_winograd_weights_floats(int64_t out_channels, int64_t in_channels)
{
    return WINO_XI * kiln_sgemm_packed_a_floats(out_channels, in_channels);
}

bool kiln_winograd_weights(int64_t out_channels, int64_t in_channels, const float *w, float *dst)
{
    int64_t mc = out_channels * in_channels;
    float *u = malloc((size_t)(WINO_XI * mc) * sizeof *u); /* 36 plain M x C matrices */
    if (!u)
        return false;
    for (int64_t f = 0; f < mc; f++) {
        const float *g = w + f * 9;
        float gg[WINO_SIDE][3]; /* G g */
        for (int i = 0; i < WINO_SIDE; i++)
            for (int j = 0; j < 3; j++)
                gg[i][j] = WINO_G[i][0] * g[j] + WINO_G[i][1] * g[3 + j] + WINO_G[i][2] * g[6 + j];
        for (int i = 0; i < WINO_SIDE; i++)
            for (int k = 0; k < WINO_SIDE; k++)
                u[(i * WINO_SIDE + k) * mc + f] =
                    gg[i][0] * WINO_G[k][0] + gg[i][1] * WINO_G[k][1] + gg[i][2] * WINO_G[k][2];
    }
    size_t per = kiln_sgemm_packed_a_floats(out_channels, in_channels);
    for (int xi = 0; xi < WINO_XI; xi++)
        kiln_sgemm_pack_a(out_channels, in_channels, u + xi * mc, in_channels, dst + xi * per);
    free(u);
    return true;
}

/* ---- The plan ------------------------------------------------------------- */

typedef void (*wino_xform_fn)(const float *src, int64_t ld, int64_t n, float *out, int64_t ostride);

/* How one convolution is cut into blocks, shared read-only by all threads
 * (but failed). */
typedef struct wino_plan {
    const kiln_winograd_conv_t *p;
    const float *u;          /* the 36 packed U_xi */
    size_t u_floats;         /* floats per U_xi */
    int64_t tiles_h, tiles_w, tiles; /* tiles per image, all images */
    int64_t block;           /* tiles per block (a multiple of width but for the last) */
    int64_t blocks;
    int64_t width;           /* the GEMM's B panel width */
    size_t scratch_floats;   /* V and M of one block, with slack */
    size_t pack_reserve;     /* bytes of the GEMM's A scratch asked for up front */
    wino_xform_fn input, output;
    int failed;              /* a thread ran out of memory (atomic) */
} wino_plan_t;

/* One block being computed: tiles [t0, t0 + n) and its matrices. */
typedef struct wino_block {
    wino_plan_t *plan;
    int64_t t0, n, n_pad;    /* n_pad: n rounded up to the panel width */
    float *v;                /* V_xi at v + xi*C*n_pad, panel layout */
    float *m;                /* M_xi at m + xi*M*n, M x n row-major */
} wino_block_t;

/* A run of tiles in one tile row of one image: tiles [tw0, tw1) of row th
 * of image img, the first being tile `local` of the block. */
typedef struct wino_run {
    int64_t img, th, tw0, tw1, local;
} wino_run_t;

/* The next run of the block from its tile `local` on (false at the end). */
static bool next_run(const wino_block_t *b, int64_t local, wino_run_t *r)
{
    const wino_plan_t *pl = b->plan;
    if (local >= b->n)
        return false;
    int64_t t = b->t0 + local, in_img = t % (pl->tiles_h * pl->tiles_w);
    r->img = t / (pl->tiles_h * pl->tiles_w);
    r->th = in_img / pl->tiles_w;
    r->tw0 = in_img % pl->tiles_w;
    r->tw1 = r->tw0 + (b->n - local) < pl->tiles_w ? r->tw0 + (b->n - local) : pl->tiles_w;
    r->local = local;
    return true;
}

/* ---- 1. Input transform ------------------------------------------------- */

/* Deinterleaves the 6 input rows under tile columns [tw0, tw0 + len) of
 * tile row th of plane x into ph (see winograd input: phase q of row r
 * holds columns q, q+4, ... of the padded window), zeros outside the input
 * and up to WINO_PH_LD lanes. */
static void gather_rows(const kiln_winograd_conv_t *p, const float *x, int64_t th, int64_t tw0, int64_t len,
                        float *ph)
{
    int64_t cols = 4 * ((len + 15) / 16 * 16 + 1); /* what the transform may read */
    int64_t iw0 = WINO_TILE * tw0 - p->pad_left;
    for (int r = 0; r < WINO_SIDE; r++) {
        int64_t ih = WINO_TILE * th - p->pad_top + r;
        float *row = ph + r * 4 * WINO_PH_LD;
        if (ih < 0 || ih >= p->in_h) {
            for (int q = 0; q < 4; q++)
                memset(row + q * WINO_PH_LD, 0, (size_t)(cols / 4) * sizeof *row);
            continue;
        }
        const float *src = x + ih * p->in_w;
        /* columns [lo, hi) of the window lie inside the input row */
        int64_t lo = iw0 < 0 ? -iw0 : 0, hi = p->in_w - iw0 < cols ? p->in_w - iw0 : cols;
        if (hi < lo)
            hi = lo;
        for (int64_t col = 0; col < lo && col < cols; col++)
            row[(col & 3) * WINO_PH_LD + (col >> 2)] = 0.0f;
        for (int64_t col = lo; col < hi; col++)
            row[(col & 3) * WINO_PH_LD + (col >> 2)] = src[iw0 + col];
        for (int64_t col = hi > lo ? hi : lo; col < cols; col++)
            row[(col & 3) * WINO_PH_LD + (col >> 2)] = 0.0f;
    }
}

/* Input channels [c0, c1) of the block into V. */
static void input_channels(void *arg, int64_t c0, int64_t c1)
{
    const wino_block_t *b = arg;
    const wino_plan_t *pl = b->plan;
    const kiln_winograd_conv_t *p = pl->p;
    int64_t C = p->in_channels, W = pl->width, plane = p->in_h * p->in_w;
    float ph[4 * WINO_SIDE * WINO_PH_LD];
    float out[WINO_XI * WINO_CHUNK];
    for (int64_t c = c0; c < c1; c++) {
        wino_run_t r;
        for (int64_t local = 0; next_run(b, local, &r); local += r.tw1 - r.tw0) {
            const float *x = p->x + (r.img * C + c) * plane;
            for (int64_t tw = r.tw0; tw < r.tw1; tw += WINO_CHUNK) {
                int64_t len = r.tw1 - tw < WINO_CHUNK ? r.tw1 - tw : WINO_CHUNK;
                gather_rows(p, x, r.th, tw, len, ph);
                pl->input(ph, WINO_PH_LD, len, out, WINO_CHUNK);
                /* tile u is column local + (tw - r.tw0) + u of V_xi: panel
                 * (column / W), row c, lane (column % W) */
                int64_t col0 = r.local + (tw - r.tw0);
                for (int xi = 0; xi < WINO_XI; xi++) {
                    float *v = b->v + xi * C * b->n_pad + c * W;
                    const float *o = out + xi * WINO_CHUNK;
                    for (int64_t u = 0; u < len;) {
                        int64_t col = col0 + u, lane = col % W, run = W - lane < len - u ? W - lane : len - u;
                        float *dst = v + col / W * C * W + lane;
                        for (int64_t k = 0; k < run; k++)
                            dst[k] = o[u + k];
                        u += run;
                    }
                }
            }
        }
        if (b->n < b->n_pad) /* zero the last panel's unused lanes */
            for (int xi = 0; xi < WINO_XI; xi++)
                memset(b->v + xi * C * b->n_pad + b->n / W * C * W + c * W + b->n % W, 0,
                       (size_t)(W - b->n % W) * sizeof(float));
    }
}

/* ---- 2. The GEMMs ---------------------------------------------------------- */

/* M_xi = U_xi V_xi for xi in [xi0, xi1), one thread each. */
static void gemm_xis(void *arg, int64_t xi0, int64_t xi1)
{
    const wino_block_t *b = arg;
    wino_plan_t *pl = b->plan;
    const kiln_winograd_conv_t *p = pl->p;
    /* the GEMM falls back to reading A unpacked if it cannot get its
     * scratch; there is no unpacked A here, so make sure it can */
    if (!kiln_gemm_scratch(KILN_SCRATCH_PACK_A, pl->pack_reserve)) {
        __atomic_store_n(&pl->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    int64_t C = p->in_channels, M = p->out_channels;
    for (int64_t xi = xi0; xi < xi1; xi++)
        kiln_sgemm_packed_b(M, b->n, C, 1.0f, NULL, C, pl->u + xi * pl->u_floats, b->v + xi * C * b->n_pad, 0.0f,
                            b->m + xi * M * b->n, b->n, NULL, NULL);
}

/* ---- 3. Output transform ------------------------------------------------- */

/* Output channels [m0, m1) of the block from M into y, + bias, epilogue. */
static void output_channels(void *arg, int64_t m0, int64_t m1)
{
    const wino_block_t *b = arg;
    const wino_plan_t *pl = b->plan;
    const kiln_winograd_conv_t *p = pl->p;
    const kiln_conv_epilogue_t *ep = p->ep;
    bool relu = ep && ep->gemm_relu;
    int64_t M = p->out_channels, plane = p->out_h * p->out_w;
    float out[WINO_TILE * WINO_TILE * WINO_CHUNK];
    for (int64_t m = m0; m < m1; m++) {
        float bias = p->bias ? p->bias[m] : 0.0f;
        wino_run_t r;
        for (int64_t local = 0; next_run(b, local, &r); local += r.tw1 - r.tw0) {
            float *y = p->y + (r.img * M + m) * plane;
            for (int64_t tw = r.tw0; tw < r.tw1; tw += WINO_CHUNK) {
                int64_t len = r.tw1 - tw < WINO_CHUNK ? r.tw1 - tw : WINO_CHUNK;
                pl->output(b->m + m * b->n + r.local + (tw - r.tw0), M * b->n, len, out, WINO_CHUNK);
                for (int i = 0; i < WINO_TILE; i++) {
                    int64_t oh = WINO_TILE * r.th + i;
                    if (oh >= p->out_h)
                        break;
                    float *row = y + oh * p->out_w + WINO_TILE * tw;
                    int64_t n_out = p->out_w - WINO_TILE * tw < WINO_TILE * len ? p->out_w - WINO_TILE * tw
                                                                               : WINO_TILE * len;
                    for (int64_t k = 0; k < n_out; k++) {
                        float v = out[(i * WINO_TILE + (k & 3)) * WINO_CHUNK + (k >> 2)] + bias;
                        row[k] = relu && v < 0.0f ? 0.0f : v;
                    }
                }
            }
            if (ep && !relu) /* the finished rows, while in cache */
                for (int i = 0; i < WINO_TILE && WINO_TILE * r.th + i < p->out_h; i++) {
                    int64_t off = (WINO_TILE * r.th + i) * p->out_w + WINO_TILE * r.tw0;
                    int64_t end = WINO_TILE * r.tw1 < p->out_w ? WINO_TILE * r.tw1 : p->out_w;
                    ep->apply(ep->arg, y + off, (r.img * M + m) * plane + off, end - WINO_TILE * r.tw0);
                }
        }
    }
}

/* ---- Driver ----------------------------------------------------------------- */

/* Runs fn over [0, n) on par's threads, or inline when par is NULL. */
static void phase(const kiln_gemm_parallel_t *par, int64_t n, int64_t grain, kiln_range_fn fn, void *arg)
{
    if (par && par->run)
        par->run(par->ctx, n, grain, fn, arg);
    else
        fn(arg, 0, n);
}

/* Block bi with scratch (plan->scratch_floats), its phases over par. */
static void run_block(wino_plan_t *pl, int64_t bi, float *scratch, const kiln_gemm_parallel_t *par)
{
    const kiln_winograd_conv_t *p = pl->p;
    wino_block_t b = {.plan = pl, .t0 = bi * pl->block};
    b.n = pl->tiles - b.t0 < pl->block ? pl->tiles - b.t0 : pl->block;
    b.n_pad = (b.n + pl->width - 1) / pl->width * pl->width;
    b.v = scratch;
    b.m = scratch + WINO_XI * p->in_channels * b.n_pad;
    phase(par, p->in_channels, 8, input_channels, &b);
    phase(par, WINO_XI, 1, gemm_xis, &b);
    if (!__atomic_load_n(&pl->failed, __ATOMIC_RELAXED))
        phase(par, p->out_channels, 8, output_channels, &b);
}

/* Blocks [b0, b1) on this thread, with its own scratch. */
static void run_blocks(void *arg, int64_t b0, int64_t b1)
{
    wino_plan_t *pl = arg;
    float *scratch = kiln_gemm_scratch(KILN_SCRATCH_IM2COL, pl->scratch_floats * sizeof(float));
    if (!scratch) {
        __atomic_store_n(&pl->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t bi = b0; bi < b1 && !__atomic_load_n(&pl->failed, __ATOMIC_RELAXED); bi++)
        run_block(pl, bi, scratch, NULL);
}

bool kiln_conv_winograd(const kiln_winograd_conv_t *p, const kiln_gemm_parallel_t *par)
{
    int64_t C = p->in_channels, M = p->out_channels;
    bool avx512 = !g_force_portable && __builtin_cpu_supports("avx512f");
    wino_plan_t pl = {.p = p, .width = kiln_sgemm_panel_width(),
                      .input = avx512 ? kiln_winograd_input_avx512 : winograd_input_portable,
                      .output = avx512 ? kiln_winograd_output_avx512 : winograd_output_portable};
    pl.tiles_h = (p->out_h + WINO_TILE - 1) / WINO_TILE;
    pl.tiles_w = (p->out_w + WINO_TILE - 1) / WINO_TILE;
    pl.tiles = p->batch * pl.tiles_h * pl.tiles_w;
    /* blocks of whole panels sized for L2; with several threads, a
     * multiple of the thread count when that is possible */
    int64_t panels = (pl.tiles + pl.width - 1) / pl.width;
    int64_t per_panel = WINO_XI * (C + M) * pl.width * (int64_t)sizeof(float);
    int64_t max_panels = WINO_BLOCK_BYTES / per_panel > 1 ? WINO_BLOCK_BYTES / per_panel : 1;
    int64_t blocks = (panels + max_panels - 1) / max_panels;
    int threads = p->threads > 1 ? p->threads : 1;
    if (threads > 1 && blocks >= threads && blocks % threads) {
        int64_t up = (blocks + threads - 1) / threads * threads;
        blocks = up < panels ? up : panels;
    }
    pl.block = (panels + blocks - 1) / blocks * pl.width;
    pl.blocks = (pl.tiles + pl.block - 1) / pl.block;
    int64_t block_pad = pl.block; /* already a multiple of the width */
    pl.scratch_floats = (size_t)(WINO_XI * (C + M) * block_pad + 64);
    pl.pack_reserve = (size_t)((M < 192 ? M : 192) + 16) * (size_t)(C < 320 ? C : 320) * sizeof(float);
    /* the weights, transformed per call when the session has none */
    pl.u_floats = kiln_sgemm_packed_a_floats(M, C);
    pl.u = p->u;
    if (!pl.u) {
        float *u = kiln_gemm_scratch(KILN_SCRATCH_WEIGHTS, kiln_winograd_weights_floats(M, C) * sizeof *u);
        if (!u || !kiln_winograd_weights(M, C, p->w, u))
            return false;
        pl.u = u;
    }
    if (threads > 1 && pl.blocks >= threads) {
        phase(par, pl.blocks, 1, run_blocks, &pl); /* each thread its own blocks */
    } else {
        float *scratch = kiln_gemm_scratch(KILN_SCRATCH_IM2COL, pl.scratch_floats * sizeof(float));
        if (!scratch)
            return false;
        for (int64_t bi = 0; bi < pl.blocks && !pl.failed; bi++)
            run_block(&pl, bi, scratch, threads > 1 ? par : NULL);
    }
    return !pl.failed;
}
