/*
 * conv.c - Conv and ConvTranspose for float32 (1-D to 3-D, groups,
 * dilations, strides, pads, auto_pad, bias); float16/bfloat16 Conv runs
 * on float32 copies.
 *
 * Conv lowers each group to one GEMM whose columns are the output
 * positions of all the images of the batch: im2col lays the receptive
 * fields out as a (C/group * kernel volume) x (batch * output positions)
 * matrix, image n's positions being columns [n*out_vol, (n+1)*out_vol),
 * and the group's weights (M/group rows) multiply it.  The matrix is built
 * a block of columns at a time, sized to stay in L2 and cut into whole
 * panels, and written straight into the GEMM's packed-panel layout
 * (kiln_sgemm_packed_b), so it is neither streamed through memory nor
 * copied a second time; the bias is added by the GEMM's epilogue.  A
 * block may span images (small maps: a 7x7 image is 49 columns, a batch of
 * 8 is 392, and one block of those reads the weights once for all 8 and
 * fills its panels): its GEMM writes a per-thread scratch and the GEMM's
 * block hook moves each finished block to the NCHW output while it is in
 * cache; a block inside one image is written in place.  A pointwise conv
 * (1x1, stride 1, no pad) needs no im2col: its blocks are copied from the
 * input planes into panels, and a single image whose blocks are split
 * over the threads skips even that (the input already is the matrix).
 *
 * Threads: when there are enough panels (a few per thread), the blocks
 * are shared out whole, their number a multiple of the threads: each
 * thread builds its own block in its own scratch and runs a one-thread
 * GEMM on it while it is in its L2, one barrier per conv.  Otherwise
 * (small maps of one image) the blocks go one after another, the im2col
 * split over the threads by rows and the GEMM over its row and column
 * blocks.  Weights that are initializers are packed once per session as
 * the GEMM's A operand (kiln_ctx_input_packed_a; the packed kernel
 * prefetches them, since they come from memory on every run); others are
 * packed once per call when several blocks use them.  FusedConv's
 * activation, when cheap (ReLU, Clip, ...: kiln_act_in_stores), is
 * applied with the bias in the GEMM's stores; its residual sum and
 * costlier activations run in the GEMM's block hook, on each finished
 * block while it is in cache.  Depthwise convs (one input channel per
 * group) take a direct path, since their GEMM would be a single row: a
 * plane kernel (conv_dw_kernel.h, built for AVX-512 and AVX2, or portable
 * tap-major loops here) computes each output plane from its input plane
 * with bias and activation in registers, reading the padding as
 * masked-off lanes rather than from a padded copy; planes are split over
 * the session's threads.
 *
 * 3x3 stride-1 convs with enough channels and tiles leave before all this
 * for Winograd F(4x4, 3x3) / F(2x2, 3x3) (conv_winograd.c; the hook is in
 * kiln_conv_run_epilogue).
 *
 * ConvTranspose is the adjoint: a GEMM with the transposed weights makes
 * the columns, and col2im scatters and adds them into the output.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv_winograd.h"
#include "ops/gemm.h"
#include "ops/nn_geometry.h"
#include "ops/nn_kernels.h"
#include "ops/nn_rows.h"

/* ---- Shared checks ----------------------------------------------------- */

typedef struct conv_shapes {
    int64_t batch, in_channels, out_channels, group;
    int64_t in_per_group, out_per_group;
    kiln_window_t w;
    int64_t in_vol, out_vol, kernel_vol;
} conv_shapes_t;

static kiln_status_t check_float32(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                   const kiln_tensor_t *w, const kiln_tensor_t *b)
{
    if (!x || !w)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "inputs X and W are required");
    if (x->dtype != KILN_DTYPE_FLOAT32 || w->dtype != KILN_DTYPE_FLOAT32 ||
        (b && b->dtype != KILN_DTYPE_FLOAT32))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "only float32 is implemented");
    if (w->rank != x->rank)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "W has rank %d but X has rank %d",
                             w->rank, x->rank);
    return KILN_OK;
}

/* ---- im2col ------------------------------------------------------------ */

typedef struct im2col_job {
    const float *x;        /* the group's first input channel in image 0 */
    int64_t image_stride;  /* floats from one image's input to the next */
    float *panels;         /* the column block in kiln_sgemm_packed_b's panel layout */
    int64_t panel_width;   /* kiln_sgemm_panel_width() */
    int64_t rows;          /* rows of the column matrix: channels x kernel volume */
    const kiln_window_t *w;
    int64_t in_vol, out_vol, kernel_vol;
    bool pointwise;        /* 1x1, stride 1, no pad: column j is input position j */
    int64_t j0, j1;        /* the block of columns: column j is image j / out_vol,
                            * output position j % out_vol (flattened od, oh, ow) */
} im2col_job_t;

/* Most output positions per im2col block (one block row is built on the
 * stack before it is spread into panels). */
enum { IM2COL_MAX_COLS = 4096 };

/* Writes output columns [ow0, ow1) of one output row of a column-matrix
 * row: src is the input row (already offset by the kernel column), zeros
 * where the window hangs over the padding. */
static void im2col_segment(float *dst, const float *src, int64_t ow0, int64_t ow1, int64_t ow_lo,
                           int64_t ow_hi, int64_t stride)
{
    int64_t lo = ow_lo > ow0 ? ow_lo : ow0, hi = ow_hi < ow1 ? ow_hi : ow1;
    if (lo > hi)
        lo = hi = ow1;
    for (int64_t ow = ow0; ow < lo; ow++)
        dst[ow - ow0] = 0.0f;
    if (stride == 1)
        memcpy(dst + (lo - ow0), src + lo, (size_t)(hi - lo) * sizeof *dst);
    else
        for (int64_t ow = lo; ow < hi; ow++)
            dst[ow - ow0] = src[ow * stride];
    for (int64_t ow = hi; ow < ow1; ow++)
        dst[ow - ow0] = 0.0f;
}

/* One row of the column block: channel c at kernel offset (kd, kh, kw),
 * columns [j0, j1), walked one output row segment at a time (an image
 * ends with an output row, so a segment never spans two images). */
static void im2col_row(const im2col_job_t *job, int64_t row)
{
    const kiln_window_t *w = job->w;
    int64_t c = row / job->kernel_vol, kk = row % job->kernel_vol;
    int64_t kw = kk % w->kernel[2], kh = kk / w->kernel[2] % w->kernel[1];
    int64_t kd = kk / (w->kernel[2] * w->kernel[1]);
    float line[IM2COL_MAX_COLS];
    float *dst = line;
    int64_t w_off = kw * w->dilation[2] - w->pad_begin[2], s2 = w->stride[2];
    /* output columns ow whose input column lies inside [0, in[2]) */
    int64_t ow_lo = w_off >= 0 ? 0 : (-w_off + s2 - 1) / s2;
    int64_t ow_hi = w->in[2] - w_off <= 0 ? 0 : (w->in[2] - w_off + s2 - 1) / s2;
    if (ow_hi > w->out[2])
        ow_hi = w->out[2];
    if (ow_lo > ow_hi)
        ow_lo = ow_hi;
    /* the position of column j: image n, output (od, oh, ow0) */
    int64_t p = job->j0 % job->out_vol, n = job->j0 / job->out_vol;
    int64_t ow0 = p % w->out[2], oh = p / w->out[2] % w->out[1], od = p / (w->out[2] * w->out[1]);
    for (int64_t j = job->j0; j < job->j1;) {
        const float *x = job->x + n * job->image_stride + c * job->in_vol;
        int64_t ow1 = w->out[2] < ow0 + (job->j1 - j) ? w->out[2] : ow0 + (job->j1 - j);
        int64_t id = od * w->stride[0] - w->pad_begin[0] + kd * w->dilation[0];
        int64_t ih = oh * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1];
        if (id < 0 || id >= w->in[0] || ih < 0 || ih >= w->in[1])
            memset(dst, 0, (size_t)(ow1 - ow0) * sizeof *dst);
        else
            im2col_segment(dst, x + (id * w->in[1] + ih) * w->in[2] + w_off, ow0, ow1, ow_lo, ow_hi,
                           s2);
        dst += ow1 - ow0;
        j += ow1 - ow0;
        ow0 = 0; /* the next output row, plane or image */
        if (++oh == w->out[1]) {
            oh = 0;
            if (++od == w->out[0]) {
                od = 0;
                n++;
            }
        }
    }
    /* spread the row over the panels: row `row` of panel s holds columns
     * [s*W, s*W + W) of the block, zero past its end */
    int64_t cols = job->j1 - job->j0, width = job->panel_width;
    for (int64_t j = 0; j < cols; j += width) {
        float *out = job->panels + (j * job->rows + row * width);
        int64_t n = cols - j < width ? cols - j : width;
        if (n == 32) /* constant sizes inline into vector moves */
            memcpy(out, line + j, 32 * sizeof *out);
        else if (n == 16)
            memcpy(out, line + j, 16 * sizeof *out);
        else
            memcpy(out, line + j, (size_t)n * sizeof *out);
        for (int64_t q = n; q < width; q++)
            out[q] = 0.0f;
    }
}

/* A pointwise conv's row (input channel) of the block: straight from the
 * input planes into the panels, a panel's row (or the part of it left in
 * the image) at a time. */
static void im2col_pointwise_row(const im2col_job_t *job, int64_t row)
{
    int64_t width = job->panel_width, cols = job->j1 - job->j0, out_vol = job->out_vol;
    int64_t p = job->j0 % out_vol; /* the position in the image's plane */
    const float *x = job->x + job->j0 / out_vol * job->image_stride + row * job->in_vol;
    float *out = job->panels + row * width; /* row `row` of the first panel */
    int64_t q = 0;                           /* the column in the panel */
    for (int64_t done = 0; done < cols;) {
        int64_t len = width - q;
        if (len > out_vol - p)
            len = out_vol - p;
        if (len > cols - done)
            len = cols - done;
        if (len == 32) /* constant sizes inline into vector moves */
            memcpy(out + q, x + p, 32 * sizeof *out);
        else if (len == 16)
            memcpy(out + q, x + p, 16 * sizeof *out);
        else
            memcpy(out + q, x + p, (size_t)len * sizeof *out);
        done += len;
        if ((q += len) == width) { /* the next panel */
            q = 0;
            out += width * job->rows;
        }
        if ((p += len) == out_vol) { /* the next image */
            p = 0;
            x += job->image_stride;
        }
    }
    for (; q > 0 && q < width; q++) /* zeros past the end of the last panel */
        out[q] = 0.0f;
}

static void im2col_rows(void *arg, int64_t begin, int64_t end)
{
    const im2col_job_t *job = arg;
    for (int64_t r = begin; r < end; r++) {
        if (job->pointwise)
            im2col_pointwise_row(job, r);
        else
            im2col_row(job, r);
    }
}

/* Columns per im2col block: the block (rows x cols floats) should stay in
 * L2 so the GEMM packs it from cache rather than from memory.  Capped so
 * that spreading the columns evenly over blocks of whole panels (which can
 * add up to two panels) still fits IM2COL_MAX_COLS. */
static int64_t im2col_block_cols(int64_t rows, int64_t cols_total)
{
    enum { BLOCK_FLOATS = 128 * 1024, MIN_COLS = 64, COL_ALIGN = 32, MAX_COLS = IM2COL_MAX_COLS - 128 };
    int64_t cols = BLOCK_FLOATS / (rows > 0 ? rows : 1) / COL_ALIGN * COL_ALIGN;
    if (cols < MIN_COLS)
        cols = MIN_COLS;
    if (cols * 4 >= cols_total * 3) /* nearly everything: take it all in one block */
        cols = cols_total;
    return cols < MAX_COLS ? cols : MAX_COLS;
}

/* ---- Depthwise direct path ---------------------------------------------- */

typedef struct depthwise_job {
    const float *x, *w, *b;
    float *y;
    const conv_shapes_t *s;
    const kiln_conv_epilogue_t *ep; /* act in the plane kernels' stores, apply after each plane; or NULL */
} depthwise_job_t;

/* The output positions o in [0, out) whose input o*stride + off lies in
 * [0, in): [*lo, *hi). */
static void valid_outputs(int64_t off, int64_t stride, int64_t in, int64_t out, int64_t *lo,
                          int64_t *hi)
{
    *lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    *hi = in - off <= 0 ? 0 : (in - off + stride - 1) / stride;
    if (*hi > out)
        *hi = out;
    if (*lo > *hi)
        *lo = *hi;
}

static bool g_dw_portable, g_dw_avoid_avx512;

void kiln_conv_dw_force_portable(bool force)
{
    g_dw_portable = force;
}

void kiln_conv_dw_avoid_avx512(bool avoid)
{
    g_dw_avoid_avx512 = avoid;
}

typedef void (*dw_plane_fn)(const kiln_dw_plane_t *p);

/* The plane kernel for this CPU (and the test switches). */
static dw_plane_fn dw_kernel(const char **name)
{
    if (!g_dw_portable && !g_dw_avoid_avx512 && __builtin_cpu_supports("avx512f")) {
        *name = "avx512";
        return kiln_conv_dw_plane_avx512;
    }
    if (!g_dw_portable && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *name = "avx2";
        return kiln_conv_dw_plane_avx2;
    }
    *name = "portable";
    return kiln_conv_dw_plane_portable;
}

const char *kiln_conv_dw_path(void)
{
    const char *name;
    dw_kernel(&name);
    return name;
}

/* The portable plane kernel, tap-major: the plane starts as the bias and
 * each tap adds its weight times the shifted input over the output
 * positions where the tap lands inside the input (a branch-free,
 * vectorizable axpy), then the activation. */
void kiln_conv_dw_plane_portable(const kiln_dw_plane_t *p)
{
    int64_t n = p->out_h * p->out_w;
    for (int64_t i = 0; i < n; i++)
        p->y[i] = p->bias;
    for (int i = 0; i < p->kh; i++) {
        int64_t h_off = (int64_t)i * p->dh - p->pt, oh_lo, oh_hi;
        valid_outputs(h_off, p->sh, p->in_h, p->out_h, &oh_lo, &oh_hi);
        for (int j = 0; j < p->kw; j++) {
            int64_t w_off = (int64_t)j * p->dw - p->pl, ow_lo, ow_hi;
            valid_outputs(w_off, p->sw, p->in_w, p->out_w, &ow_lo, &ow_hi);
            float wv = p->f[i * p->kw + j];
            for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
                const float *xrow = p->x + (oh * p->sh + h_off) * p->in_w + w_off;
                kiln_row_axpy(p->y + oh * p->out_w + ow_lo, xrow + ow_lo * p->sw, p->sw, wv, ow_hi - ow_lo);
            }
        }
    }
    if (p->act.kind != KILN_ACT_NONE)
        for (int64_t i = 0; i < n; i++)
            p->y[i] = kiln_act_scalar(&p->act, p->y[i]);
}

bool kiln_conv_dw_plane(const kiln_window_t *w, const float *x, const float *f, float bias, const kiln_act_t *act,
                        float *y)
{
    enum { MAX_TAPS = 1 << 16 };
    if (w->kernel[0] != 1 || w->in[0] != 1 || w->out[0] != 1 || w->pad_begin[0] != 0 || w->pad_begin[1] < 0 ||
        w->pad_begin[2] < 0 || w->out[1] < 1 || w->out[2] < 1 || w->kernel[1] > MAX_TAPS ||
        w->kernel[2] > MAX_TAPS || w->stride[1] > MAX_TAPS || w->stride[2] > MAX_TAPS ||
        w->dilation[1] > MAX_TAPS || w->dilation[2] > MAX_TAPS)
        return false;
    kiln_dw_plane_t p = {.x = x, .f = f, .y = y, .in_h = w->in[1], .in_w = w->in[2], .out_h = w->out[1],
                         .out_w = w->out[2], .kh = (int)w->kernel[1], .kw = (int)w->kernel[2],
                         .sh = (int)w->stride[1], .sw = (int)w->stride[2], .dh = (int)w->dilation[1],
                         .dw = (int)w->dilation[2], .pt = w->pad_begin[1], .pl = w->pad_begin[2], .bias = bias,
                         .act = act ? *act : (kiln_act_t){KILN_ACT_NONE, 0.0f, 0.0f}};
    const char *name;
    dw_plane_fn run = dw_kernel(&name);
    if (p.sw > 2) /* the vector kernels read the row at stride 1 or 2 */
        run = kiln_conv_dw_plane_portable;
    run(&p);
    return true;
}

/* Output plane p = (image, out channel): one input channel, one filter.
 * 2-D and 1-D planes go to the plane kernels; 3-D ones are summed here
 * tap by tap, as the portable plane kernel does. */
static void depthwise_plane(const depthwise_job_t *job, int64_t p)
{
    const conv_shapes_t *s = job->s;
    const kiln_window_t *w = &s->w;
    int64_t m = p % s->out_channels, n = p / s->out_channels;
    int64_t c = m / s->out_per_group;
    const float *x = job->x + (n * s->in_channels + c) * s->in_vol;
    const float *f = job->w + m * s->kernel_vol;
    float *y = job->y + p * s->out_vol;
    float bias = job->b ? job->b[m] : 0.0f;
    const kiln_act_t *act = job->ep ? &job->ep->act : NULL;
    if (kiln_conv_dw_plane(w, x, f, bias, act, y))
        return;
    for (int64_t i = 0; i < s->out_vol; i++)
        y[i] = bias;
    int64_t s2 = w->stride[2];
    for (int64_t kd = 0; kd < w->kernel[0]; kd++) {
        int64_t d_off = kd * w->dilation[0] - w->pad_begin[0], od_lo, od_hi;
        valid_outputs(d_off, w->stride[0], w->in[0], w->out[0], &od_lo, &od_hi);
        for (int64_t kh = 0; kh < w->kernel[1]; kh++) {
            int64_t h_off = kh * w->dilation[1] - w->pad_begin[1], oh_lo, oh_hi;
            valid_outputs(h_off, w->stride[1], w->in[1], w->out[1], &oh_lo, &oh_hi);
            for (int64_t kw = 0; kw < w->kernel[2]; kw++) {
                int64_t w_off = kw * w->dilation[2] - w->pad_begin[2], ow_lo, ow_hi;
                valid_outputs(w_off, s2, w->in[2], w->out[2], &ow_lo, &ow_hi);
                float wv = f[(kd * w->kernel[1] + kh) * w->kernel[2] + kw];
                for (int64_t od = od_lo; od < od_hi; od++)
                    for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
                        int64_t id = od * w->stride[0] + d_off, ih = oh * w->stride[1] + h_off;
                        const float *xrow = x + (id * w->in[1] + ih) * w->in[2] + w_off;
                        float *yrow = y + (od * w->out[1] + oh) * w->out[2];
                        kiln_row_axpy(yrow + ow_lo, xrow + ow_lo * s2, s2, wv, ow_hi - ow_lo);
                    }
            }
        }
    }
    if (act && act->kind != KILN_ACT_NONE)
        for (int64_t i = 0; i < s->out_vol; i++)
            y[i] = kiln_act_scalar(act, y[i]);
}

static void depthwise_planes(void *arg, int64_t begin, int64_t end)
{
    const depthwise_job_t *job = arg;
    for (int64_t p = begin; p < end; p++) {
        depthwise_plane(job, p);
        if (job->ep && job->ep->apply) /* while the plane is in cache */
            job->ep->apply(job->ep->arg, job->y + p * job->s->out_vol, p * job->s->out_vol, job->s->out_vol);
    }
}

/* ---- Conv ---------------------------------------------------------------- */

static kiln_status_t conv_shapes(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                 const kiln_tensor_t *w, const kiln_tensor_t *b, conv_shapes_t *s)
{
    s->batch = x->dims[0];
    s->in_channels = x->dims[1];
    s->out_channels = w->dims[0];
    s->group = kiln_attr_int(kiln_ctx_node(ctx), "group", 1);
    if (s->group < 1 || s->in_channels % s->group || s->out_channels % s->group)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "group %lld does not divide channels in %lld / out %lld",
                             (long long)s->group, (long long)s->in_channels,
                             (long long)s->out_channels);
    s->in_per_group = s->in_channels / s->group;
    s->out_per_group = s->out_channels / s->group;
    if (w->dims[1] != s->in_per_group)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "W has %lld input channels per group; X gives %lld",
                             (long long)w->dims[1], (long long)s->in_per_group);
    if (b && (b->rank != 1 || b->dims[0] != s->out_channels))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "B must have shape [%lld]",
                             (long long)s->out_channels);
    kiln_status_t st = kiln_window_forward(ctx, x, w->dims + 2, false, &s->w);
    if (st != KILN_OK)
        return st;
    s->in_vol = kiln_window_volume(s->w.in);
    s->out_vol = kiln_window_volume(s->w.out);
    s->kernel_vol = kiln_window_volume(s->w.kernel);
    return KILN_OK;
}

static bool is_pointwise(const kiln_window_t *w)
{
    for (int i = 0; i < KILN_WINDOW_DIMS; i++)
        if (w->kernel[i] != 1 || w->stride[i] != 1 || w->pad_begin[i] != 0 || w->pad_end[i] != 0)
            return false;
    return true;
}

/* Fills each of the rows of y (length len) with its bias. */
static void fill_bias(float *y, const float *bias, int64_t rows, int64_t len)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < len; i++)
            y[r * len + i] = bias[r];
}

/* The GEMM's block hook: the conv epilogue on each finished block of
 * output rows (channels) x columns (positions) while it is in cache. */
typedef struct gemm_block_ep {
    const kiln_conv_epilogue_t *ep;
    float *y0; /* the whole output */
} gemm_block_ep_t;

static void gemm_block_epilogue(void *arg, float *c, int64_t ldc, int64_t i0, int64_t rows, int64_t j0, int64_t cols)
{
    const gemm_block_ep_t *b = arg;
    for (int64_t r = i0; r < i0 + rows; r++) {
        float *y = c + r * ldc + j0;
        b->ep->apply(b->ep->arg, y, y - b->y0, cols);
    }
}

/* ---- The GEMM path: column blocks over all the images ------------------- */

/* One group's product: its weights (m x k) times the column matrix of all
 * the images (k x batch*out_vol: image n's output positions are columns
 * [n*out_vol, (n+1)*out_vol)), cut into blocks of whole panels. */
typedef struct conv_gemm {
    const conv_shapes_t *s;
    const float *x;          /* the group's first input channel in image 0 */
    float *y;                /* the whole output */
    int64_t y_channel;       /* the group's first output channel */
    const float *a;          /* the group's weights, row-major m x k */
    const float *a_packed;   /* the same packed by kiln_sgemm_pack_a, or NULL */
    int64_t m, k, cols;      /* cols = batch * out_vol */
    int64_t width;           /* kiln_sgemm_panel_width() */
    /* The columns are cut into segments (each image's, or all of them as
     * one when blocks span images), each segment into blocks of whole
     * panels: its block b has block_panels panels, one more when b <
     * extra_panels (the last one ends with the segment). */
    int64_t segment_cols, segment_blocks, blocks; /* blocks = segments * segment_blocks */
    int64_t block_panels, extra_panels;
    bool pointwise;
    kiln_sgemm_epilogue_t gep;          /* the bias and activation in the GEMM's stores */
    const kiln_conv_epilogue_t *after;  /* the rest of the epilogue, or NULL */
    gemm_block_ep_t block_ep;           /* `after` as the GEMM's block hook */
    atomic_bool failed;                 /* a block found no scratch memory */
} conv_gemm_t;

/* Block t's columns [*j0, *j1). */
static void conv_block_range(const conv_gemm_t *g, int64_t t, int64_t *j0, int64_t *j1)
{
    int64_t b = t % g->segment_blocks, base = t / g->segment_blocks * g->segment_cols;
    int64_t p0 = b * g->block_panels + (b < g->extra_panels ? b : g->extra_panels);
    int64_t p1 = p0 + g->block_panels + (b < g->extra_panels);
    *j0 = base + p0 * g->width;
    *j1 = p1 * g->width < g->segment_cols ? base + p1 * g->width : base + g->segment_cols;
}

static im2col_job_t conv_im2col_job(const conv_gemm_t *g, float *panels, int64_t j0, int64_t j1)
{
    const conv_shapes_t *s = g->s;
    return (im2col_job_t){.x = g->x, .image_stride = s->in_channels * s->in_vol, .panels = panels,
                          .panel_width = g->width, .rows = g->k, .w = &s->w, .in_vol = s->in_vol,
                          .out_vol = s->out_vol, .kernel_vol = s->kernel_vol, .pointwise = g->pointwise,
                          .j0 = j0, .j1 = j1};
}

/* A block that spans images is computed into scratch (m x cols, column
 * 0 is column j0 of the group's product) and each finished GEMM block of
 * it moved to the NCHW output by the GEMM's block hook, on the thread that
 * made it while it is in cache, with the rest of the epilogue on each
 * piece. */
typedef struct conv_scatter {
    const conv_gemm_t *g;
    int64_t j0;
} conv_scatter_t;

static void conv_scatter_block(void *arg, float *c, int64_t ldc, int64_t i0, int64_t rows, int64_t jb, int64_t cols)
{
    const conv_scatter_t *sc = arg;
    const conv_gemm_t *g = sc->g;
    int64_t out_vol = g->s->out_vol, j1 = sc->j0 + jb + cols;
    for (int64_t r = i0; r < i0 + rows; r++) {
        const float *src = c + r * ldc + jb;
        for (int64_t j = sc->j0 + jb; j < j1;) {
            int64_t n = j / out_vol, p = j % out_vol;
            int64_t len = out_vol - p < j1 - j ? out_vol - p : j1 - j;
            float *y = g->y + (n * g->s->out_channels + g->y_channel + r) * out_vol + p;
            memcpy(y, src, (size_t)len * sizeof *y);
            if (g->after)
                g->after->apply(g->after->arg, y, y - g->y, len);
            src += len;
            j += len;
        }
    }
}

/* The GEMM of columns [j0, j1) (in panels): straight into the output when
 * they are one image's, else through scratch.  par may be NULL (this
 * thread only).  False when out of memory. */
static bool conv_block_gemm(conv_gemm_t *g, const float *panels, int64_t j0, int64_t j1,
                            const kiln_gemm_parallel_t *par)
{
    int64_t out_vol = g->s->out_vol, n = j0 / out_vol, p = j0 % out_vol, cols = j1 - j0;
    kiln_sgemm_epilogue_t gep = g->gep;
    if (p + cols <= out_vol) {
        gep.block = g->after ? gemm_block_epilogue : NULL;
        gep.block_arg = &g->block_ep;
        float *c = g->y + (n * g->s->out_channels + g->y_channel) * out_vol + p;
        kiln_sgemm_packed_b(g->m, cols, g->k, 1.0f, g->a, g->k, g->a_packed, panels, 0.0f, c, out_vol, &gep,
                            par);
        return true;
    }
    float *c = kiln_gemm_scratch(KILN_SCRATCH_CONV_OUT, (size_t)(g->m * cols) * sizeof *c);
    if (!c)
        return false;
    conv_scatter_t sc = {g, j0};
    gep.block = conv_scatter_block;
    gep.block_arg = &sc;
    kiln_sgemm_packed_b(g->m, cols, g->k, 1.0f, g->a, g->k, g->a_packed, panels, 0.0f, c, cols, &gep, par);
    return true;
}

/* Blocks [begin, end), each wholly on this thread: im2col into this
 * thread's scratch, then a one-thread GEMM while the block is in its L2. */
static void conv_block_tasks(void *arg, int64_t begin, int64_t end)
{
    conv_gemm_t *g = arg;
    size_t floats = (size_t)((g->k > 0 ? g->k : 1) * (g->block_panels + 1) * g->width);
    float *panels = kiln_gemm_scratch(KILN_SCRATCH_IM2COL, floats * sizeof *panels);
    for (int64_t t = begin; t < end; t++) {
        int64_t j0, j1;
        conv_block_range(g, t, &j0, &j1);
        im2col_job_t job = conv_im2col_job(g, panels, j0, j1);
        if (!panels || (im2col_rows(&job, 0, g->k), !conv_block_gemm(g, panels, j0, j1, NULL))) {
            atomic_store(&g->failed, true);
            return;
        }
    }
}

/* Cuts the columns into blocks that fit L2 and says how to run them.
 * Blocks are cut at image boundaries when an image fills about a block
 * and its last panel wastes little (no scatter then); else (small maps)
 * they span images.  Each block runs on one thread (true) when there are
 * enough panels to give every thread a few (the number of blocks then a
 * multiple of the threads where the panels allow), else one block after
 * another, each split over the threads (false). */
static bool conv_plan_blocks(conv_gemm_t *g, int threads)
{
    enum { MIN_THREAD_PANELS = 4, MAX_WASTE = 16 /* 1/16 of an image's columns */ };
    int64_t out_vol = g->s->out_vol, image_panels = (out_vol + g->width - 1) / g->width;
    int64_t image_target = im2col_block_cols(g->k, out_vol);
    bool per_image = g->s->batch == 1 ||
                     (out_vol * 4 >= image_target * 3 && (image_panels * g->width - out_vol) * MAX_WASTE <= out_vol);
    int64_t segments = per_image ? g->s->batch : 1;
    g->segment_cols = per_image ? out_vol : g->cols;
    int64_t panels = (g->segment_cols + g->width - 1) / g->width;
    int64_t target = im2col_block_cols(g->k, g->segment_cols);
    int64_t blocks = (g->segment_cols + target - 1) / target;
    bool per_thread = threads > 1 && panels * segments >= threads * MIN_THREAD_PANELS;
    if (per_thread)
        while ((blocks * segments < threads || blocks * segments % threads) && blocks < panels)
            blocks++;
    if (blocks > panels)
        blocks = panels;
    g->segment_blocks = blocks;
    g->blocks = blocks * segments;
    g->block_panels = panels / blocks;
    g->extra_panels = panels % blocks;
    return per_thread;
}

/* Conv by GEMM (every conv but depthwise): see the top of the file.  par
 * gives the threads; the status is KILN_ERR_NO_MEMORY when scratch ran
 * out. */
static kiln_status_t conv_gemm_path(const conv_shapes_t *s, const float *xd, const float *wd,
                                    const float *w_packed, const float *bd, float *yd,
                                    const kiln_conv_epilogue_t *ep, const kiln_gemm_parallel_t *par)
{
    int64_t col_rows = s->in_per_group * s->kernel_vol;
    size_t packed_floats = kiln_sgemm_packed_a_floats(s->out_per_group, col_rows);
    /* the bias and the activation go in with the GEMM's stores; the
     * epilogue's apply runs on each finished block, on the thread that made
     * it, while it is in cache */
    const kiln_conv_epilogue_t *after = ep && ep->apply ? ep : NULL;
    for (int64_t grp = 0; grp < s->group; grp++) {
        conv_gemm_t g = {.s = s, .x = xd + grp * s->in_per_group * s->in_vol, .y = yd,
                         .y_channel = grp * s->out_per_group, .a = wd + grp * s->out_per_group * col_rows,
                         .a_packed = w_packed ? w_packed + grp * packed_floats : NULL, .m = s->out_per_group,
                         .k = col_rows, .cols = s->batch * s->out_vol, .width = kiln_sgemm_panel_width(),
                         .pointwise = is_pointwise(&s->w), .after = after, .block_ep = {after, yd}};
        g.gep = (kiln_sgemm_epilogue_t){.row_bias = bd ? bd + g.y_channel : NULL,
                                        .act = ep ? ep->act : (kiln_act_t){KILN_ACT_NONE, 0.0f, 0.0f}};
        atomic_init(&g.failed, false);
        bool per_thread = conv_plan_blocks(&g, par->threads);
        if (g.pointwise && s->batch == 1 && !per_thread) {
            /* the input already is the column matrix: the GEMM packs it */
            kiln_sgemm_epilogue_t gep = g.gep;
            gep.block = after ? gemm_block_epilogue : NULL;
            gep.block_arg = &g.block_ep;
            float *yg = yd + g.y_channel * s->out_vol;
            if (g.a_packed)
                kiln_sgemm_prepacked_a(g.m, s->out_vol, g.k, g.a_packed, g.x, s->out_vol, yg, s->out_vol, &gep, par);
            else
                kiln_sgemm_ex(false, false, g.m, s->out_vol, g.k, 1.0f, g.a, g.k, g.x, s->out_vol, 0.0f, yg,
                              s->out_vol, &gep, par);
            continue;
        }
        /* weights used by several blocks are packed once for all of them */
        float *wtmp;
        if (!g.a_packed && g.blocks > 1 &&
            (wtmp = kiln_gemm_scratch(KILN_SCRATCH_WEIGHTS, packed_floats * sizeof *wtmp))) {
            kiln_sgemm_pack_a(g.m, g.k, g.a, g.k, wtmp);
            g.a_packed = wtmp;
        }
        if (per_thread) {
            par->run(par->ctx, g.blocks, 1, conv_block_tasks, &g);
            if (atomic_load(&g.failed))
                return KILN_ERR_NO_MEMORY;
            continue;
        }
        float *panels = kiln_gemm_scratch(KILN_SCRATCH_IM2COL,
                                          (size_t)((g.k > 0 ? g.k : 1) * (g.block_panels + 1) * g.width) *
                                              sizeof *panels);
        if (!panels)
            return KILN_ERR_NO_MEMORY;
        for (int64_t t = 0; t < g.blocks; t++) {
            int64_t j0, j1;
            conv_block_range(&g, t, &j0, &j1);
            im2col_job_t job = conv_im2col_job(&g, panels, j0, j1);
            if (par->run)
                par->run(par->ctx, g.k, 4096 / (j1 - j0) + 1, im2col_rows, &job);
            else
                im2col_rows(&job, 0, g.k);
            if (!conv_block_gemm(&g, panels, j0, j1, par))
                return KILN_ERR_NO_MEMORY;
        }
    }
    return KILN_OK;
}

/* The float32 computation of Conv into y (allocated by the caller with
 * the output shape; every element is written, so it need not be zeroed),
 * then the epilogue (may be NULL) on each block of y right after its GEMM. */
static kiln_status_t conv_compute(kiln_kernel_ctx_t *ctx, const conv_shapes_t *sp, const float *xd,
                                  const float *wd, const float *w_packed, const float *bd, float *yd,
                                  const kiln_conv_epilogue_t *ep)
{
    conv_shapes_t s = *sp;
    if (s.in_per_group == 1 && s.group > 1) {
        depthwise_job_t job = {xd, wd, bd, yd, &s, ep};
        kiln_ctx_parallel_for(ctx, s.batch * s.out_channels, 1, depthwise_planes, &job);
        return KILN_OK;
    }
    kiln_gemm_parallel_t par = kiln_gemm_parallel_ctx(ctx);
    if (conv_gemm_path(&s, xd, wd, w_packed, bd, yd, ep, &par) != KILN_OK)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for the im2col blocks (%lld x %lld)",
                             (long long)(s.in_per_group * s.kernel_vol), (long long)(s.batch * s.out_vol));
    return KILN_OK;
}

kiln_status_t kiln_conv_gemm_forward(const kiln_window_t *w, int64_t batch, int64_t in_channels,
                                     int64_t out_channels, int64_t group, const float *x, const float *wt,
                                     const float *w_packed, const float *b, float *y,
                                     const kiln_conv_epilogue_t *ep, kiln_threadpool_t *pool)
{
    conv_shapes_t s = {.batch = batch, .in_channels = in_channels, .out_channels = out_channels,
                       .group = group, .in_per_group = in_channels / group,
                       .out_per_group = out_channels / group, .w = *w};
    s.in_vol = kiln_window_volume(s.w.in);
    s.out_vol = kiln_window_volume(s.w.out);
    s.kernel_vol = kiln_window_volume(s.w.kernel);
    kiln_gemm_parallel_t par = kiln_gemm_parallel_pool(pool);
    return conv_gemm_path(&s, x, wt, w_packed, b, y, ep, &par);
}

kiln_status_t kiln_conv_float32(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                const kiln_tensor_t *w, const kiln_tensor_t *b, kiln_tensor_t **y)
{
    *y = NULL;
    kiln_status_t st = check_float32(ctx, x, w, b);
    conv_shapes_t s;
    if (st != KILN_OK || (st = conv_shapes(ctx, x, w, b, &s)) != KILN_OK)
        return st;
    int64_t dims[KILN_MAX_RANK];
    kiln_window_output_dims(&s.w, s.batch, s.out_channels, dims);
    if (!(*y = kiln_tensor_new(KILN_DTYPE_FLOAT32, x->rank, dims)))
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for the convolution output");
    if ((*y)->count == 0)
        return KILN_OK;
    st = conv_compute(ctx, &s, x->data, w->data, NULL, b ? b->data : NULL, (*y)->data, NULL);
    if (st != KILN_OK) {
        kiln_tensor_free(*y);
        *y = NULL;
    }
    return st;
}

/* float16/bfloat16 Conv: float32 copies in, the float32 result rounded out. */
static kiln_status_t conv_half(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                               const kiln_tensor_t *w, const kiln_tensor_t *b)
{
    kiln_tensor_t *xf = kiln_nn_float32_copy(x), *wf = kiln_nn_float32_copy(w);
    kiln_tensor_t *bf = b ? kiln_nn_float32_copy(b) : NULL, *yf = NULL;
    kiln_status_t st;
    if (!xf || !wf || (b && !bf))
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for float32 copies of the inputs");
    else
        st = kiln_conv_float32(ctx, xf, wf, bf, &yf);
    if (st == KILN_OK) {
        kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, x->dtype, yf->rank, yf->dims);
        if (y)
            kiln_nn_store_float32(yf, y);
        else
            st = kiln_ctx_status(ctx);
    }
    kiln_tensor_free(xf);
    kiln_tensor_free(wf);
    kiln_tensor_free(bf);
    kiln_tensor_free(yf);
    return st;
}

kiln_status_t kiln_conv_run(kiln_kernel_ctx_t *ctx)
{
    return kiln_conv_run_epilogue(ctx, NULL);
}

kiln_status_t kiln_conv_run_epilogue(kiln_kernel_ctx_t *ctx, const kiln_conv_epilogue_t *ep)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *w = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *b = kiln_ctx_input(ctx, 2);
    if (x && w && kiln_nn_is_half(x->dtype) && w->dtype == x->dtype && (!b || b->dtype == x->dtype))
        return conv_half(ctx, x, w, b);
    kiln_status_t st = check_float32(ctx, x, w, b);
    conv_shapes_t s;
    if (st != KILN_OK || (st = conv_shapes(ctx, x, w, b, &s)) != KILN_OK)
        return st;
    int64_t dims[KILN_MAX_RANK];
    kiln_window_output_dims(&s.w, s.batch, s.out_channels, dims);
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, KILN_DTYPE_FLOAT32, x->rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (y->count == 0)
        return KILN_OK;
    /* 3x3 stride-1 convs with enough channels: Winograd (conv_winograd.c),
     * weights transformed once per session.  Here rather than in
     * conv_compute: ConvInteger and QLinearConv also come through there and
     * need exact sums.  Out of memory there falls through to im2col. */
    int tile = kiln_winograd_tile(&s.w, s.group, s.in_channels, s.out_channels, s.batch);
    if (tile) {
        kiln_winograd_conv_t wc = {tile, s.batch, s.in_channels, s.out_channels, s.w.in[1], s.w.in[2], s.w.out[1],
                                   s.w.out[2], s.w.pad_begin[1], s.w.pad_begin[2], x->data, w->data,
                                   kiln_ctx_input_winograd(ctx, 1, tile), b ? b->data : NULL, y->data, ep,
                                   kiln_ctx_threads(ctx)};
        kiln_gemm_parallel_t par = kiln_gemm_parallel_ctx(ctx);
        if (kiln_conv_winograd(&wc, &par))
            return KILN_OK;
    }
    /* the weights packed once per session (not for depthwise: no GEMM) */
    const float *w_packed = s.in_per_group == 1 && s.group > 1 ? NULL : kiln_ctx_input_packed_a(ctx, 1, s.group);
    return conv_compute(ctx, &s, x->data, w->data, w_packed, b ? b->data : NULL, y->data, ep);
}

/* ---- ConvTranspose ------------------------------------------------------- */

typedef struct col2im_job {
    const float *col;  /* rows = out channel x kernel offset, cols = input position */
    float *y;          /* the group's first output channel */
    const conv_shapes_t *s;
} col2im_job_t;

/* Adds the kernel_vol column rows of output channel co into its plane. */
static void col2im_channel(const col2im_job_t *job, int64_t co)
{
    const conv_shapes_t *s = job->s;
    const kiln_window_t *w = &s->w;
    float *y = job->y + co * s->out_vol;
    for (int64_t kk = 0; kk < s->kernel_vol; kk++) {
        int64_t kw = kk % w->kernel[2], kh = kk / w->kernel[2] % w->kernel[1];
        int64_t kd = kk / (w->kernel[2] * w->kernel[1]);
        const float *src = job->col + (co * s->kernel_vol + kk) * s->in_vol;
        for (int64_t id = 0; id < w->in[0]; id++) {
            int64_t od = id * w->stride[0] - w->pad_begin[0] + kd * w->dilation[0];
            for (int64_t ih = 0; ih < w->in[1]; ih++, src += w->in[2]) {
                int64_t oh = ih * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1];
                if (od < 0 || od >= w->out[0] || oh < 0 || oh >= w->out[1])
                    continue;
                float *yrow = y + (od * w->out[1] + oh) * w->out[2];
                for (int64_t iw = 0; iw < w->in[2]; iw++) {
                    int64_t ow = iw * w->stride[2] - w->pad_begin[2] + kw * w->dilation[2];
                    if (ow >= 0 && ow < w->out[2])
                        yrow[ow] += src[iw];
                }
            }
        }
    }
}

static void col2im_channels(void *arg, int64_t begin, int64_t end)
{
    for (int64_t co = begin; co < end; co++)
        col2im_channel(arg, co);
}

static kiln_status_t conv_transpose_shapes(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                           const kiln_tensor_t *w, const kiln_tensor_t *b,
                                           conv_shapes_t *s)
{
    s->batch = x->dims[0];
    s->in_channels = x->dims[1];
    s->group = kiln_attr_int(kiln_ctx_node(ctx), "group", 1);
    if (s->group < 1 || s->in_channels % s->group || w->dims[0] != s->in_channels)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "W has %lld input channels, X has %lld, group %lld",
                             (long long)w->dims[0], (long long)s->in_channels, (long long)s->group);
    s->in_per_group = s->in_channels / s->group;
    s->out_per_group = w->dims[1];
    s->out_channels = s->out_per_group * s->group;
    if (b && (b->rank != 1 || b->dims[0] != s->out_channels))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "B must have shape [%lld]",
                             (long long)s->out_channels);
    kiln_status_t st = kiln_window_transpose(ctx, x, w->dims + 2, &s->w);
    if (st != KILN_OK)
        return st;
    s->in_vol = kiln_window_volume(s->w.in);
    s->out_vol = kiln_window_volume(s->w.out);
    s->kernel_vol = kiln_window_volume(s->w.kernel);
    return KILN_OK;
}

kiln_status_t kiln_conv_transpose_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *w = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *b = kiln_ctx_input(ctx, 2);
    kiln_status_t st = check_float32(ctx, x, w, b);
    conv_shapes_t s;
    if (st != KILN_OK || (st = conv_transpose_shapes(ctx, x, w, b, &s)) != KILN_OK)
        return st;
    int64_t dims[KILN_MAX_RANK];
    kiln_window_output_dims(&s.w, s.batch, s.out_channels, dims);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, KILN_DTYPE_FLOAT32, x->rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (y->count == 0)
        return KILN_OK;
    const float *xd = x->data, *wd = w->data, *bd = b ? b->data : NULL;
    float *yd = y->data;
    int64_t col_rows = s.out_per_group * s.kernel_vol;
    float *col = kiln_gemm_scratch(KILN_SCRATCH_IM2COL, (size_t)(col_rows * s.in_vol) * sizeof *col);
    if (!col)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for a %lld x %lld column buffer",
                             (long long)col_rows, (long long)s.in_vol);
    kiln_gemm_parallel_t par = kiln_gemm_parallel_ctx(ctx);
    for (int64_t n = 0; n < s.batch; n++)
        for (int64_t g = 0; g < s.group; g++) {
            const float *xg = xd + (n * s.in_channels + g * s.in_per_group) * s.in_vol;
            float *yg = yd + (n * s.out_channels + g * s.out_per_group) * s.out_vol;
            kiln_sgemm(true, false, col_rows, s.in_vol, s.in_per_group, 1.0f,
                       wd + g * s.in_per_group * col_rows, col_rows, xg, s.in_vol, 0.0f, col,
                       s.in_vol, &par);
            if (bd)
                fill_bias(yg, bd + g * s.out_per_group, s.out_per_group, s.out_vol);
            col2im_job_t job = {col, yg, &s};
            kiln_ctx_parallel_for(ctx, s.out_per_group, 1, col2im_channels, &job);
        }
    return KILN_OK;
}
