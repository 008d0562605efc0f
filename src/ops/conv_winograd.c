/*
 * conv_winograd.c - Conv by Winograd F(4x4, 3x3), or F(2x2, 3x3) on small
 * maps, for 3x3, stride-1, one-group 2-D float32 convolutions.
 *
 * Each 4x4 output tile of each output channel m is
 *     Y = A^T [ sum_c U_mc .* V_c ] A,   U_mc = G g_mc G^T,  V_c = B^T d_c B
 * with d_c the 6x6 input patch of channel c under the tile (B, G and A
 * are below and in conv_winograd_avx512.c).  The sum over c, for each of
 * the 36 elements xi of the 6x6 products, is a matrix product
 *     M_xi (M x tiles) = U_xi (M x C) * V_xi (C x tiles),
 * so the 9 multiplies per output and channel pair of a direct 3x3 conv
 * become 36 per 16 outputs (2.25), done by the GEMM microkernel.
 * F(2x2, 3x3) is the same with 2x2 tiles, 4x4 patches and 16 products (4
 * multiplies per output): four times as many tiles, for maps too small to
 * fill the GEMM's columns with 4x4 ones (7x7); wino_variant_t holds what
 * differs.
 *
 * Data flow, per block of tiles (tiles numbered row-major over the images,
 * output tile (th, tw) covering output rows 4th.. and columns 4tw..; a
 * block holds as many as keep its V and M matrices in L2):
 *   1. input transform: 16 tiles at a time, one per vector lane (a
 *      kiln_wino_group_t says where each lane's patch lies), each input
 *      channel's patches go through B^T d B and land straight in V_xi,
 *      laid out as kiln_sgemm_packed_b's B panels (no packing pass);
 *   2. the GEMMs M_xi = U_xi V_xi with U_xi packed once as the
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
 * error up to ~2.5e-6 of the sum of the |terms| in the unit test).
 */
#include <stdlib.h>
#include <string.h>

#include "ops/conv_winograd.h"

enum {
    WINO_MAX_SIDE = 6, /* input tile side of F(4x4, 3x3); F(2x2, 3x3) has 4 */
    WINO_LANES = 16, /* tiles per group: one per lane of an AVX-512 register */
    WINO_MAX_GROUPS = 16, /* groups per block at most */
    /* V and M scratch of one block: what fits in L2 next to the weights */
    WINO_BLOCK_BYTES = 1 << 20,
};

/* g_enabled: the switch; g_everywhere: 0, or the tile size to use on every
 * shape that allows it, skipping the size rule (KILN_WINOGRAD=4 or 2, for
 * measuring where it pays); g_force_portable: for tests. */
static bool g_enabled = true, g_env_read, g_force_portable;
static int g_everywhere;

void kiln_conv_winograd_enable(bool enable)
{
    g_enabled = enable;
    g_env_read = true; /* the caller's word beats the environment */
}

void kiln_conv_winograd_force_portable(bool force)
{
    g_force_portable = force;
}

/* The AVX-512 transforms, unless a test asked for the portable ones. */
static bool use_avx512(void)
{
    return !g_force_portable && __builtin_cpu_supports("avx512f");
}

int kiln_winograd_tile(const kiln_window_t *w, int64_t group, int64_t in_channels, int64_t out_channels,
                       int64_t batch)
{
    if (!g_env_read) { /* KILN_WINOGRAD=0 turns it off; =4 / =2: that algorithm everywhere (A/B runs) */
        const char *env = getenv("KILN_WINOGRAD");
        if (env && env[0] == '0')
            g_enabled = false;
        if (env && (env[0] == '4' || env[0] == '2'))
            g_everywhere = env[0] - '0';
        g_env_read = true;
    }
    if (!g_enabled || w->nd != 2 || group != 1 || w->kernel[0] != 1 || w->in[0] != 1 || w->out[0] != 1)
        return 0;
    for (int i = 1; i < 3; i++)
        if (w->kernel[i] != 3 || w->stride[i] != 1 || w->dilation[i] != 1)
            return 0;
    /* the tile offsets are 32-bit; without AVX-512 the portable transforms
     * cost more than they save */
    if (!use_avx512() ||
        batch * (in_channels * w->in[1] * w->in[2] + out_channels * w->out[1] * w->out[2]) >= INT32_MAX / 2)
        return 0;
    if (g_everywhere)
        return g_everywhere;
    /* measured (docs/KERNELS.md): the transforms cost O(C + M) per tile and
     * the GEMMs O(C * M), so few channels do not pay; fewer than 16 tiles
     * (one vector group, one half GEMM panel) waste most of the GEMM: then
     * F(2x2) with 4 times as many tiles */
    if (in_channels < 16 || out_channels < 16)
        return 0;
    /* The transformed weights are 36 (F(4x4)) or 16 (F(2x2)) M x C
     * matrices against im2col's 9, read from memory on every run once they
     * outgrow L2, so with big weights the choice turns on the tile count.
     * Measured inside ResNet-50 (p50 of one conv, im2col / F(4x4) /
     * F(2x2), ms, 1 thread, weights on huge pages): 256ch 14x14 at batch 1
     * (16 tiles of 4x4, 49 of 2x2) 1.81 / 1.65 / 1.03-1.14; 512ch 7x7 at
     * batch 1 (16 tiles of 2x2) 1.98 / 5.9 / 2.6; at 2 threads, batch 2:
     * 14x14 1.83 / - / 0.95, 7x7 2.06 / - / 1.04; batch 4: 14x14 3.45 /
     * 1.37 / 1.72, 7x7 3.6 / 3.5 / 1.92.  Small weights (64ch 56x56,
     * 128ch 28x28) run F(4x4) 2x faster than im2col from 16 tiles on.
     * Big weights always take F(2x2), even where a large batch would run
     * F(4x4) faster: the session caches one transform per weight, and a
     * server's batches change size from run to run, so a choice that
     * followed the batch would transform the weights again on every
     * switch. */
    enum { SMALL_WEIGHTS = 3 << 20, MANY_TILES_2 = 32 };
    double mc_bytes = (double)in_channels * (double)out_channels * sizeof(float);
    int64_t tiles4 = batch * ((w->out[1] + 3) / 4) * ((w->out[2] + 3) / 4);
    int64_t tiles2 = batch * ((w->out[1] + 1) / 2) * ((w->out[2] + 1) / 2);
    bool small = 36 * mc_bytes <= SMALL_WEIGHTS;
    if (small && tiles4 >= 16)
        return 4;
    if (tiles2 >= 16 && (small || tiles2 >= MANY_TILES_2))
        return 2;
    return 0;
}

/* ---- The two algorithms ------------------------------------------------- */

/* o = B^T d for one column or row d of an input patch; F(4x4) then F(2x2). */
static void input_1d_4(const float *d, float *o)
{
    o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    o[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];
    o[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];
    o[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];
    o[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];
    o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

static void input_1d_2(const float *d, float *o)
{
    o[0] = d[0] - d[2];
    o[1] = d[1] + d[2];
    o[2] = d[2] - d[1];
    o[3] = d[1] - d[3];
}

/* o = A^T m for one column or row m of a product tile. */
static void output_1d_4(const float *m, float *o)
{
    float s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    o[0] = m[0] + s12 + s34;
    o[1] = d12 + 2.0f * d34;
    o[2] = s12 + 4.0f * s34;
    o[3] = d12 + 8.0f * d34 + m[5];
}

static void output_1d_2(const float *m, float *o)
{
    o[0] = m[0] + m[1] + m[2];
    o[1] = m[1] - m[2] - m[3];
}

/* G (side x 3) of the weight transform U = G g G^T. */
static const float G_4[6][3] = {
    {1.0f / 4, 0.0f, 0.0f},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6},
    {1.0f / 24, -1.0f / 12, 1.0f / 6},
    {0.0f, 0.0f, 1.0f},
};
static const float G_2[4][3] = {
    {1.0f, 0.0f, 0.0f},
    {0.5f, 0.5f, 0.5f},
    {0.5f, -0.5f, 0.5f},
    {0.0f, 0.0f, 1.0f},
};

/* One algorithm F(tile x tile, 3x3): its matrices as code, and its
 * vectorised transforms. */
typedef struct wino_variant {
    int tile;                /* output tile side */
    int side;                /* input tile side, tile + 2 */
    int xi;                  /* side * side: the number of GEMMs */
    const float (*g)[3];     /* G */
    void (*input_1d)(const float *d, float *o);  /* B^T times a column */
    void (*output_1d)(const float *m, float *o); /* A^T times a column */
    kiln_wino_input_fn input_avx512;
    kiln_wino_output_fn output_avx512;
} wino_variant_t;

static const wino_variant_t VARIANT_4 = {4, 6, 36, G_4, input_1d_4, output_1d_4, kiln_winograd_input_avx512,
                                         kiln_winograd_output_avx512};
static const wino_variant_t VARIANT_2 = {2, 4, 16, G_2, input_1d_2, output_1d_2, kiln_winograd_input2_avx512,
                                         kiln_winograd_output2_avx512};

static const wino_variant_t *variant(int tile)
{
    return tile == 2 ? &VARIANT_2 : &VARIANT_4;
}

/* ---- Weights -------------------------------------------------------------- */

size_t kiln_winograd_weights_floats(int tile, int64_t out_channels, int64_t in_channels)
{
    return (size_t)variant(tile)->xi * kiln_sgemm_packed_a_floats(out_channels, in_channels);
}

bool kiln_winograd_weights(int tile, int64_t out_channels, int64_t in_channels, const float *w, float *dst)
{
    const wino_variant_t *va = variant(tile);
    int64_t mc = out_channels * in_channels;
    /* plane by plane, each a sequential stream over the filters f (once per
     * session, but ResNet-50 has 900k filters): gg = G g as side x 3 planes,
     * then each U_xi plane from three of them, packed */
    float *gg = malloc((size_t)(va->side * 3 * mc) * sizeof *gg), *u = malloc((size_t)mc * sizeof *u);
    if (!gg || !u) {
        free(gg);
        free(u);
        return false;
    }
    for (int i = 0; i < va->side; i++)
        for (int j = 0; j < 3; j++) {
            float *dst_ij = gg + (i * 3 + j) * mc, g0 = va->g[i][0], g1 = va->g[i][1], g2 = va->g[i][2];
            for (int64_t f = 0; f < mc; f++)
                dst_ij[f] = g0 * w[f * 9 + j] + g1 * w[f * 9 + 3 + j] + g2 * w[f * 9 + 6 + j];
        }
    size_t per = kiln_sgemm_packed_a_floats(out_channels, in_channels);
    for (int i = 0; i < va->side; i++)
        for (int k = 0; k < va->side; k++) {
            const float *a0 = gg + i * 3 * mc, *a1 = a0 + mc, *a2 = a1 + mc;
            float g0 = va->g[k][0], g1 = va->g[k][1], g2 = va->g[k][2];
            for (int64_t f = 0; f < mc; f++)
                u[f] = a0[f] * g0 + a1[f] * g1 + a2[f] * g2;
            kiln_sgemm_pack_a(out_channels, in_channels, u, in_channels, dst + (i * va->side + k) * per);
        }
    free(gg);
    free(u);
    return true;
}

/* ---- Portable tile transforms (the reference for the AVX-512 ones) ----- */

static void input_portable(const wino_variant_t *va, const kiln_wino_group_t *g, const float *x, int64_t plane,
                           int64_t in_w, int64_t channels, float *v, int64_t xi_stride, int64_t c_stride)
{
    int s = va->side;
    for (int64_t c = 0; c < channels; c++)
        for (int u = 0; u < WINO_LANES; u++) {
            float d[WINO_MAX_SIDE][WINO_MAX_SIDE], t[WINO_MAX_SIDE][WINO_MAX_SIDE];
            float col[WINO_MAX_SIDE], o[WINO_MAX_SIDE];
            for (int r = 0; r < s; r++)
                for (int q = 0; q < s; q++)
                    d[q][r] = (g->in_row[r] & g->in_col[q]) >> u & 1 ? x[c * plane + g->in_off[u] + r * in_w + q] : 0.0f;
            for (int q = 0; q < s; q++) { /* d[q] is column q: t[.][q] = B^T d[.][q] */
                va->input_1d(d[q], col);
                for (int i = 0; i < s; i++)
                    t[i][q] = col[i];
            }
            for (int i = 0; i < s; i++) {
                va->input_1d(t[i], o);
                for (int k = 0; k < s; k++)
                    v[(i * s + k) * xi_stride + c * c_stride + u] = o[k];
            }
        }
}

static void output_portable(const wino_variant_t *va, const kiln_wino_group_t *g, const float *m, int64_t xs,
                            int64_t out_w, float *y, float bias, bool relu)
{
    int s = va->side;
    for (int u = 0; u < WINO_LANES; u++) {
        if (!(g->out_row[0] >> u & 1))
            continue; /* no tile in this lane */
        float col[WINO_MAX_SIDE], t[WINO_MAX_SIDE][WINO_MAX_SIDE], o[WINO_MAX_SIDE];
        for (int q = 0; q < s; q++) {
            float mq[WINO_MAX_SIDE];
            for (int r = 0; r < s; r++)
                mq[r] = m[(r * s + q) * xs + u];
            va->output_1d(mq, col);
            for (int i = 0; i < va->tile; i++)
                t[i][q] = col[i];
        }
        for (int i = 0; i < va->tile && (g->out_row[i] >> u & 1); i++) {
            va->output_1d(t[i], o);
            for (int j = 0; j < va->tile; j++)
                if (g->out_col[j] >> u & 1) {
                    float val = o[j] + bias;
                    y[g->out_off[u] + i * out_w + j] = relu && val < 0.0f ? 0.0f : val;
                }
        }
    }
}

/* The portable transforms in the kiln_wino_input_fn / output_fn shape. */
static void input4_portable(const kiln_wino_group_t *g, const float *x, int64_t plane, int64_t in_w, int64_t channels,
                            float *v, int64_t xi_stride, int64_t c_stride)
{
    input_portable(&VARIANT_4, g, x, plane, in_w, channels, v, xi_stride, c_stride);
}

static void input2_portable(const kiln_wino_group_t *g, const float *x, int64_t plane, int64_t in_w, int64_t channels,
                            float *v, int64_t xi_stride, int64_t c_stride)
{
    input_portable(&VARIANT_2, g, x, plane, in_w, channels, v, xi_stride, c_stride);
}

static void output4_portable(const kiln_wino_group_t *g, const float *m, int64_t xs, int64_t out_w, float *y,
                             float bias, bool relu)
{
    output_portable(&VARIANT_4, g, m, xs, out_w, y, bias, relu);
}

static void output2_portable(const kiln_wino_group_t *g, const float *m, int64_t xs, int64_t out_w, float *y,
                             float bias, bool relu)
{
    output_portable(&VARIANT_2, g, m, xs, out_w, y, bias, relu);
}

/* ---- The plan ------------------------------------------------------------- */

/* How one convolution is cut into blocks, shared by all threads (only
 * failed is written). */
typedef struct wino_plan {
    const kiln_winograd_conv_t *p;
    int tile, side, xi;      /* the algorithm (wino_variant_t) */
    const float *u;          /* the xi packed U_xi */
    size_t u_floats;         /* floats per U_xi */
    int64_t tiles_h, tiles_w, tiles; /* tiles per image row and column, in all images */
    int64_t block;           /* tiles per block (a multiple of width and 16) */
    int64_t blocks;
    int64_t width;           /* the GEMM's B panel width */
    size_t scratch_floats;   /* V and M of one block */
    size_t pack_reserve;     /* bytes of the GEMM's A scratch made sure of up front */
    kiln_wino_input_fn input;
    kiln_wino_output_fn output;
    int failed;              /* a thread ran out of memory (atomic) */
} wino_plan_t;

/* One block being computed: tiles [t0, t0 + n) in groups of 16 (group g
 * is columns [16g, 16g + 16) of the V and M matrices; columns past the
 * last group are neither written nor read), and its matrices:
 * V_xi (C x n_pad) at v + xi*C*n_pad in the GEMM's B panel layout, M_xi
 * (M x n_pad, row-major) at m + xi*M*n_pad. */
typedef struct wino_block {
    wino_plan_t *plan;
    int64_t t0, n, n_pad;    /* n_pad: n rounded up to the panel width */
    int64_t groups;
    float *v, *m;
    kiln_wino_group_t group[WINO_MAX_GROUPS];
} wino_block_t;

/* Fills the block's group descriptors from the tile numbering. */
static void make_groups(wino_block_t *b)
{
    const wino_plan_t *pl = b->plan;
    const kiln_winograd_conv_t *p = pl->p;
    int64_t per_img = pl->tiles_h * pl->tiles_w;
    b->groups = (b->n + WINO_LANES - 1) / WINO_LANES;
    memset(b->group, 0, (size_t)b->groups * sizeof *b->group);
    for (int64_t t = 0; t < b->n; t++) {
        kiln_wino_group_t *g = &b->group[t / WINO_LANES];
        int u = (int)(t % WINO_LANES);
        uint16_t bit = (uint16_t)(1u << u);
        int64_t img = (b->t0 + t) / per_img, th = (b->t0 + t) % per_img / pl->tiles_w;
        int64_t tw = (b->t0 + t) % pl->tiles_w;
        int64_t ih = pl->tile * th - p->pad_top, iw = pl->tile * tw - p->pad_left;
        g->in_off[u] = (int32_t)((img * p->in_channels * p->in_h + ih) * p->in_w + iw);
        g->out_off[u] = (int32_t)((img * p->out_channels * p->out_h + pl->tile * th) * p->out_w + pl->tile * tw);
        for (int r = 0; r < pl->side; r++) {
            if (ih + r >= 0 && ih + r < p->in_h)
                g->in_row[r] |= bit;
            if (iw + r >= 0 && iw + r < p->in_w)
                g->in_col[r] |= bit;
        }
        for (int i = 0; i < pl->tile; i++) {
            if (pl->tile * th + i < p->out_h)
                g->out_row[i] |= bit;
            if (pl->tile * tw + i < p->out_w)
                g->out_col[i] |= bit;
        }
    }
}

/* ---- 1. Input transform ------------------------------------------------- */

/* Input channels [c0, c1) of the block into V. */
static void input_channels(void *arg, int64_t c0, int64_t c1)
{
    const wino_block_t *b = arg;
    const wino_plan_t *pl = b->plan;
    const kiln_winograd_conv_t *p = pl->p;
    int64_t C = p->in_channels, W = pl->width, plane = p->in_h * p->in_w;
    for (int64_t g = 0; g < b->groups; g++) {
        /* column 16g: panel 16g / W, lanes from 16g % W */
        float *v = b->v + WINO_LANES * g / W * C * W + WINO_LANES * g % W;
        pl->input(&b->group[g], p->x + c0 * plane, plane, p->in_w, c1 - c0, v + c0 * W, C * b->n_pad, W);
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
    /* whole groups of columns: a last panel with one group runs the
     * microkernel's half-width path (14x14 maps: 16 tiles) */
    int64_t C = p->in_channels, M = p->out_channels, n = b->groups * WINO_LANES;
    for (int64_t xi = xi0; xi < xi1; xi++)
        kiln_sgemm_packed_b(M, n, C, 1.0f, NULL, C, pl->u + xi * pl->u_floats, b->v + xi * C * b->n_pad, 0.0f,
                            b->m + xi * M * b->n_pad, b->n_pad, NULL, NULL);
}

/* ---- 3. Output transform ------------------------------------------------- */

/* Output channels [m0, m1) of the block from M into y, + bias, epilogue. */
static void output_channels(void *arg, int64_t m0, int64_t m1)
{
    const wino_block_t *b = arg;
    const wino_plan_t *pl = b->plan;
    const kiln_winograd_conv_t *p = pl->p;
    const kiln_conv_epilogue_t *ep = p->ep;
    /* ReLU goes into the output transform's stores; another in-stores
     * activation runs on each finished row segment, then ep->apply */
    bool relu = ep && ep->act.kind == KILN_ACT_RELU;
    const kiln_act_t *act = ep && ep->act.kind != KILN_ACT_NONE && !relu ? &ep->act : NULL;
    int64_t M = p->out_channels, plane = p->out_h * p->out_w, per_img = pl->tiles_h * pl->tiles_w;
    for (int64_t m = m0; m < m1; m++) {
        float *ym = p->y + m * plane;
        for (int64_t g = 0; g < b->groups; g++)
            pl->output(&b->group[g], b->m + m * b->n_pad + WINO_LANES * g, M * b->n_pad, p->out_w, ym,
                       p->bias ? p->bias[m] : 0.0f, relu);
        if (!act && !(ep && ep->apply))
            continue;
        /* the epilogue on the rows just finished, while in cache: each run
         * of the block's tiles along one tile row covers `tile` row segments */
        for (int64_t t = b->t0; t < b->t0 + b->n;) {
            int64_t img = t / per_img, th = t % per_img / pl->tiles_w, tw = t % pl->tiles_w;
            int64_t tw_end = tw + (b->t0 + b->n - t) < pl->tiles_w ? tw + (b->t0 + b->n - t) : pl->tiles_w;
            int64_t x0 = pl->tile * tw, x1 = pl->tile * tw_end < p->out_w ? pl->tile * tw_end : p->out_w;
            for (int64_t oh = pl->tile * th; oh < pl->tile * th + pl->tile && oh < p->out_h; oh++) {
                int64_t off = ((img * M + m) * p->out_h + oh) * p->out_w + x0;
                float *seg = p->y + off;
                if (act)
                    for (int64_t i = 0; i < x1 - x0; i++)
                        seg[i] = kiln_act_scalar(act, seg[i]);
                if (ep->apply)
                    ep->apply(ep->arg, seg, off, x1 - x0);
            }
            t += tw_end - tw;
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
    b.m = scratch + pl->xi * p->in_channels * b.n_pad;
    make_groups(&b);
    phase(par, p->in_channels, 8, input_channels, &b);
    phase(par, pl->xi, 1, gemm_xis, &b);
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
    bool avx512 = use_avx512();
    const wino_variant_t *va = variant(p->tile);
    wino_plan_t pl = {.p = p, .tile = va->tile, .side = va->side, .xi = va->xi, .width = kiln_sgemm_panel_width()};
    pl.input = avx512 ? va->input_avx512 : p->tile == 2 ? input2_portable : input4_portable;
    pl.output = avx512 ? va->output_avx512 : p->tile == 2 ? output2_portable : output4_portable;
    pl.tiles_h = (p->out_h + pl.tile - 1) / pl.tile;
    pl.tiles_w = (p->out_w + pl.tile - 1) / pl.tile;
    pl.tiles = p->batch * pl.tiles_h * pl.tiles_w;
    /* blocks of whole panels (and 16-tile groups) sized for L2; with
     * several threads, a multiple of the thread count where possible */
    int64_t unit = pl.width > WINO_LANES ? pl.width : WINO_LANES;
    int64_t units = (pl.tiles + unit - 1) / unit;
    int64_t per_unit = pl.xi * (C + M) * unit * (int64_t)sizeof(float);
    int64_t max_units = WINO_BLOCK_BYTES / per_unit > 1 ? WINO_BLOCK_BYTES / per_unit : 1;
    if (max_units > WINO_MAX_GROUPS * WINO_LANES / unit)
        max_units = WINO_MAX_GROUPS * WINO_LANES / unit;
    int64_t blocks = (units + max_units - 1) / max_units;
    int threads = p->threads > 1 ? p->threads : 1;
    if (threads > 1 && blocks >= threads && blocks % threads) {
        int64_t up = (blocks + threads - 1) / threads * threads;
        blocks = up < units ? up : units;
    }
    pl.block = (units + blocks - 1) / blocks * unit;
    pl.blocks = (pl.tiles + pl.block - 1) / pl.block;
    pl.scratch_floats = (size_t)(pl.xi * (C + M) * pl.block);
    pl.pack_reserve = (size_t)((M < 192 ? M : 192) + 16) * (size_t)(C < 320 ? C : 320) * sizeof(float);
    /* the weights, transformed per call when the session has none */
    pl.u_floats = kiln_sgemm_packed_a_floats(M, C);
    pl.u = p->u;
    if (!pl.u) {
        float *u = kiln_gemm_scratch(KILN_SCRATCH_WEIGHTS, kiln_winograd_weights_floats(pl.tile, M, C) * sizeof *u);
        if (!u || !kiln_winograd_weights(pl.tile, M, C, p->w, u))
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
