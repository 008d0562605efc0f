/*
 * rnn.c - Recurrent layers: RNN, GRU, LSTM.
 *
 * The three ops share one driver: the inputs are read once into double
 * arrays in the time-major layout ([seq][batch][...], whatever the `layout`
 * attribute says), each direction then runs its cell step by step for each
 * batch item, and the outputs are written back in the layout asked for.
 * State and gate arithmetic are in double, which keeps float16/float32/
 * float64 on one code path.  The matrix products run through gemm.h: in
 * float32 (kiln_sgemm's packed, vectorised path) for all but float64 models,
 * whose products stay in double.  The input projection W x_t of all steps
 * is one product before the time loop; each step then does one batch-wide
 * R h product and the per-item gate arithmetic.
 *
 * Gate order in W, R and B follows ONNX: RNN (i), GRU (z, r, h),
 * LSTM (i, o, f, c); LSTM peepholes P are (i, o, f).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/gemm.h"
#include "ops/kernel.h"

typedef enum cell_kind { CELL_RNN, CELL_GRU, CELL_LSTM } cell_kind_t;

typedef enum act_kind {
    ACT_RELU,
    ACT_TANH,
    ACT_SIGMOID,
    ACT_AFFINE,
    ACT_LEAKY_RELU,
    ACT_THRESHOLDED_RELU,
    ACT_SCALED_TANH,
    ACT_HARD_SIGMOID,
    ACT_ELU,
    ACT_SOFTSIGN,
    ACT_SOFTPLUS
} act_kind_t;

/* One activation function with its alpha/beta parameters. */
typedef struct activation {
    act_kind_t kind;
    double alpha, beta;
} activation_t;

#define MAX_DIRS 2
#define MAX_ACTS 3 /* LSTM has f, g, h */

/* Everything one recurrent op needs, read from the node and its inputs. */
typedef struct rnn_problem {
    cell_kind_t cell;
    int gates;                /* 1 (RNN), 3 (GRU), 4 (LSTM) */
    int64_t T, B, I, H;       /* sequence length, batch, input size, hidden size */
    int dirs;                 /* 1 or 2 */
    bool reverse;             /* direction == "reverse" (with dirs == 1) */
    int layout;               /* 0: time-major, 1: batch-major */
    bool single;              /* matrix products in float32 (all but float64 models) */
    double clip;              /* < 0 when no clip */
    bool linear_before_reset; /* GRU */
    bool input_forget;        /* LSTM */
    activation_t acts[MAX_DIRS][MAX_ACTS];
    /* Inputs converted to double, time-major. NULL when absent. */
    double *x;         /* [T][B][I] */
    double *w;         /* [dirs][gates*H][I] */
    double *r;         /* [dirs][gates*H][H] */
    double *bias;      /* [dirs][2*gates*H] */
    double *p;         /* [dirs][3*H] */
    double *h0;        /* [dirs][B][H] */
    double *c0;        /* [dirs][B][H] */
    int64_t *seq_lens; /* [B] */
    /* Outputs, time-major. */
    double *y;  /* [T][dirs][B][H] */
    double *yh; /* [dirs][B][H] */
    double *yc; /* [dirs][B][H] */
} rnn_problem_t;

/* ---- Activations --------------------------------------------------------- */

static bool needs_alpha(act_kind_t k)
{
    return k == ACT_AFFINE || k == ACT_LEAKY_RELU || k == ACT_THRESHOLDED_RELU || k == ACT_SCALED_TANH ||
           k == ACT_HARD_SIGMOID || k == ACT_ELU;
}

static bool needs_beta(act_kind_t k)
{
    return k == ACT_AFFINE || k == ACT_SCALED_TANH || k == ACT_HARD_SIGMOID;
}

/* Parses an activation name (case-insensitive) and sets its default
 * alpha/beta as in the corresponding ONNX operator. */
static bool parse_activation(const char *name, activation_t *a)
{
    static const struct {
        const char *name;
        act_kind_t kind;
        double alpha, beta;
    } table[] = {
        {"Relu", ACT_RELU, 0, 0},
        {"Tanh", ACT_TANH, 0, 0},
        {"Sigmoid", ACT_SIGMOID, 0, 0},
        {"Affine", ACT_AFFINE, 1.0, 0.0},
        {"LeakyRelu", ACT_LEAKY_RELU, 0.01, 0},
        {"ThresholdedRelu", ACT_THRESHOLDED_RELU, 1.0, 0},
        {"ScaledTanh", ACT_SCALED_TANH, 1.0, 1.0},
        {"HardSigmoid", ACT_HARD_SIGMOID, 0.2, 0.5},
        {"Elu", ACT_ELU, 1.0, 0},
        {"Softsign", ACT_SOFTSIGN, 0, 0},
        {"Softplus", ACT_SOFTPLUS, 0, 0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (!strcasecmp(name, table[i].name)) {
            a->kind = table[i].kind;
            a->alpha = table[i].alpha;
            a->beta = table[i].beta;
            return true;
        }
    }
    return false;
}

static double activate(const activation_t *a, double x)
{
    switch (a->kind) {
    case ACT_RELU:
        return x > 0 ? x : 0;
    case ACT_TANH:
        return tanh(x);
    case ACT_SIGMOID:
        return 1.0 / (1.0 + exp(-x));
    case ACT_AFFINE:
        return a->alpha * x + a->beta;
    case ACT_LEAKY_RELU:
        return x >= 0 ? x : a->alpha * x;
    case ACT_THRESHOLDED_RELU:
        return x > a->alpha ? x : 0;
    case ACT_SCALED_TANH:
        return a->alpha * tanh(a->beta * x);
    case ACT_HARD_SIGMOID: {
        double v = a->alpha * x + a->beta;
        return v < 0 ? 0 : v > 1 ? 1 : v;
    }
    case ACT_ELU:
        return x >= 0 ? x : a->alpha * (exp(x) - 1.0);
    case ACT_SOFTSIGN:
        return x / (1.0 + fabs(x));
    case ACT_SOFTPLUS:
        return log1p(exp(-fabs(x))) + (x > 0 ? x : 0);
    }
    return x;
}

/* Reads the `activations` attribute (per direction, per function slot),
 * with alpha/beta consumed in order by the functions that take them. */
static kiln_status_t read_activations(kiln_kernel_ctx_t *ctx, rnn_problem_t *pb, int per_dir,
                                      const char *const *defaults)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const char *const *names = NULL;
    const float *alphas = NULL, *betas = NULL;
    int64_t n_names = kiln_attr_strings(node, "activations", &names);
    int64_t n_alpha = kiln_attr_floats(node, "activation_alpha", &alphas);
    int64_t n_beta = kiln_attr_floats(node, "activation_beta", &betas);
    int64_t ia = 0, ib = 0;
    if (n_names >= 0 && n_names != (int64_t)per_dir * pb->dirs && n_names != per_dir)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "activations has %lld names, expected %d per direction", (long long)n_names,
                             per_dir);
    for (int d = 0; d < pb->dirs; d++) {
        for (int k = 0; k < per_dir; k++) {
            const char *name = defaults[k];
            if (n_names > 0)
                name = names[(d * per_dir + k) % n_names];
            activation_t *a = &pb->acts[d][k];
            if (!parse_activation(name, a))
                return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "unknown activation '%s'", name);
            if (needs_alpha(a->kind) && ia < n_alpha)
                a->alpha = alphas[ia++];
            if (needs_beta(a->kind) && ib < n_beta)
                a->beta = betas[ib++];
        }
    }
    return KILN_OK;
}

/* ---- Reading inputs ------------------------------------------------------ */

/* Copies a whole tensor to a new double array (caller frees). */
static double *tensor_to_doubles(const kiln_tensor_t *t)
{
    double *out = malloc((size_t)(t->count ? t->count : 1) * sizeof *out);
    if (!out)
        return NULL;
    for (int64_t i = 0; i < t->count; i++)
        out[i] = kiln_tensor_get_f64(t, i);
    return out;
}

/* Swaps the first two axes of a [a][b][inner] array into a new [b][a][inner]
 * one (used to turn batch-major data time-major and back); frees src. */
static double *swap_leading_axes(double *src, int64_t a, int64_t b, int64_t inner)
{
    double *dst = malloc((size_t)(a * b * inner + 1) * sizeof *dst);
    if (dst) {
        for (int64_t i = 0; i < a; i++)
            for (int64_t j = 0; j < b; j++)
                memcpy(dst + (j * a + i) * inner, src + (i * b + j) * inner, (size_t)inner * sizeof *dst);
    }
    free(src);
    return dst;
}

static bool has_shape3(const kiln_tensor_t *t, int64_t d0, int64_t d1, int64_t d2)
{
    return t->rank == 3 && t->dims[0] == d0 && t->dims[1] == d1 && t->dims[2] == d2;
}

static void free_problem(rnn_problem_t *pb)
{
    free(pb->x);
    free(pb->w);
    free(pb->r);
    free(pb->bias);
    free(pb->p);
    free(pb->h0);
    free(pb->c0);
    free(pb->seq_lens);
    free(pb->y);
    free(pb->yh);
    free(pb->yc);
}

/* Reads an optional initial state ([dirs][B][H], or [B][dirs][H] with
 * layout 1) into *out, time-major. */
static kiln_status_t read_state(kiln_kernel_ctx_t *ctx, const rnn_problem_t *pb, int index, const char *what,
                                double **out)
{
    const kiln_tensor_t *t = kiln_ctx_input(ctx, index);
    if (!t)
        return KILN_OK;
    bool ok = pb->layout ? has_shape3(t, pb->B, pb->dirs, pb->H) : has_shape3(t, pb->dirs, pb->B, pb->H);
    if (!ok)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s has the wrong shape", what);
    *out = tensor_to_doubles(t);
    if (*out && pb->layout)
        *out = swap_leading_axes(*out, pb->B, pb->dirs, pb->H);
    if (!*out)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory reading %s", what);
    return KILN_OK;
}

/* Reads the node's attributes and inputs into *pb. */
static kiln_status_t read_problem(kiln_kernel_ctx_t *ctx, rnn_problem_t *pb)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *w = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *r = kiln_ctx_input(ctx, 2);
    const kiln_tensor_t *b = kiln_ctx_input(ctx, 3);
    const kiln_tensor_t *lens = kiln_ctx_input(ctx, 4);
    if (!x || !w || !r)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X, W and R are required");
    if (!kiln_dtype_is_float(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "X must be a float tensor");
    if (x->rank != 3 || w->rank != 3 || r->rank != 3)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X, W and R must have rank 3");

    const char *direction = kiln_attr_string(node, "direction", "forward");
    if (!strcmp(direction, "bidirectional"))
        pb->dirs = 2;
    else if (!strcmp(direction, "forward") || !strcmp(direction, "reverse"))
        pb->dirs = 1;
    else
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown direction '%s'", direction);
    pb->reverse = !strcmp(direction, "reverse");
    int64_t layout = kiln_attr_int(node, "layout", 0);
    if (layout != 0 && layout != 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "layout must be 0 or 1, got %lld",
                             (long long)layout);
    pb->layout = (int)layout;
    pb->single = x->dtype != KILN_DTYPE_FLOAT64;
    pb->T = pb->layout ? x->dims[1] : x->dims[0];
    pb->B = pb->layout ? x->dims[0] : x->dims[1];
    pb->I = x->dims[2];
    pb->H = r->dims[2];
    int64_t hidden_attr = kiln_attr_int(node, "hidden_size", pb->H);
    const kiln_attr_t *clip = kiln_node_attr(node, "clip");
    pb->clip = clip ? clip->f : -1.0;
    pb->linear_before_reset = kiln_attr_int(node, "linear_before_reset", 0) != 0;
    pb->input_forget = kiln_attr_int(node, "input_forget", 0) != 0;

    int64_t GH = pb->gates * pb->H;
    if (hidden_attr != pb->H || !has_shape3(w, pb->dirs, GH, pb->I) || !has_shape3(r, pb->dirs, GH, pb->H))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "W/R shapes do not match hidden_size %lld, input size %lld and "
                             "%d direction(s)",
                             (long long)hidden_attr, (long long)pb->I, pb->dirs);
    if (b && (b->rank != 2 || b->dims[0] != pb->dirs || b->dims[1] != 2 * GH))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "B has the wrong shape");
    if (lens && (lens->rank != 1 || lens->dims[0] != pb->B || kiln_dtype_is_float(lens->dtype)))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "sequence_lens must be an integer vector of the batch size");

    pb->x = tensor_to_doubles(x);
    if (pb->x && pb->layout)
        pb->x = swap_leading_axes(pb->x, pb->B, pb->T, pb->I);
    pb->w = tensor_to_doubles(w);
    pb->r = tensor_to_doubles(r);
    pb->bias = b ? tensor_to_doubles(b) : calloc((size_t)(pb->dirs * 2 * GH + 1), sizeof(double));
    pb->seq_lens = malloc((size_t)(pb->B + 1) * sizeof *pb->seq_lens);
    if (!pb->x || !pb->w || !pb->r || !pb->bias || !pb->seq_lens)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory reading inputs");
    for (int64_t i = 0; i < pb->B; i++) {
        pb->seq_lens[i] = lens ? kiln_tensor_get_i64(lens, i) : pb->T;
        if (pb->seq_lens[i] < 0 || pb->seq_lens[i] > pb->T)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "sequence_lens[%lld] = %lld is outside [0, %lld]", (long long)i,
                                 (long long)pb->seq_lens[i], (long long)pb->T);
    }
    kiln_status_t st = read_state(ctx, pb, 5, "initial_h", &pb->h0);
    if (st == KILN_OK && pb->cell == CELL_LSTM)
        st = read_state(ctx, pb, 6, "initial_c", &pb->c0);
    if (st != KILN_OK)
        return st;
    if (pb->cell == CELL_LSTM) {
        const kiln_tensor_t *p = kiln_ctx_input(ctx, 7);
        if (p) {
            if (p->rank != 2 || p->dims[0] != pb->dirs || p->dims[1] != 3 * pb->H)
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "P has the wrong shape");
            pb->p = tensor_to_doubles(p);
            if (!pb->p)
                return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory reading P");
        }
    }
    int64_t state = pb->dirs * pb->B * pb->H;
    pb->y = calloc((size_t)(pb->T * state + 1), sizeof(double));
    pb->yh = calloc((size_t)(state + 1), sizeof(double));
    pb->yc = calloc((size_t)(state + 1), sizeof(double));
    if (!pb->y || !pb->yh || !pb->yc)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for outputs");
    return KILN_OK;
}

/* ---- The cells ------------------------------------------------------------ */

static double clip_value(const rnn_problem_t *pb, double v)
{
    if (pb->clip < 0)
        return v;
    return v < -pb->clip ? -pb->clip : v > pb->clip ? pb->clip : v;
}

/* Per-direction weights and the batch-wide buffers of one direction. */
/* One weight matrix ([rows][cols], one direction of W or R) ready for
 * products a * M^T: float32 in M's own layout for kiln_sgemm (models in
 * float32/float16/bfloat16), or double and transposed ([cols][rows], so
 * kiln_dgemm streams along rows) for float64 models. */
typedef struct rnn_weights {
    float *f;  /* single-precision path, or NULL */
    double *t; /* double-precision path: M^T, or NULL */
    int64_t rows, cols;
} rnn_weights_t;

typedef struct direction_state {
    const double *wb, *rb, *p; /* wb, rb: input and recurrent biases */
    rnn_weights_t w, r;
    float *fa, *fc; /* single-precision scratch for the operand and the product */
    const activation_t *acts;
    double *xw;    /* [T][B][gates*H]: W x_t + Wb for every step, computed up front */
    double *hr;    /* [B][gates*H]: R h for the current step */
    double *h;     /* [B][H]: hidden state */
    double *c;     /* [B][H]: cell state (LSTM) */
    double *gates; /* [B][3H]: GRU z, r and r (.) h between the two GRU phases */
    double *rh_r;  /* [B][H]: GRU (r (.) h) R_h^T */
} direction_state_t;

/* One step of batch item b at time t.  Row pointers into the state: */
static const double *xw_row(const rnn_problem_t *pb, const direction_state_t *ds, int64_t t, int64_t b)
{
    return ds->xw + (t * pb->B + b) * pb->gates * pb->H;
}

static void rnn_cell(const rnn_problem_t *pb, direction_state_t *ds, int64_t t, int64_t b)
{
    int64_t H = pb->H;
    const double *xw = xw_row(pb, ds, t, b), *hr = ds->hr + b * H;
    double *h = ds->h + b * H;
    for (int64_t j = 0; j < H; j++)
        h[j] = activate(&ds->acts[0], clip_value(pb, xw[j] + hr[j] + ds->rb[j]));
}

static void lstm_cell(const rnn_problem_t *pb, direction_state_t *ds, int64_t t, int64_t b)
{
    int64_t H = pb->H;
    const double *xw = xw_row(pb, ds, t, b), *hr = ds->hr + b * 4 * H, *rb = ds->rb;
    const double *pi = ds->p, *po = ds->p ? ds->p + H : NULL, *pf = ds->p ? ds->p + 2 * H : NULL;
    double *h = ds->h + b * H, *cs = ds->c + b * H;
    for (int64_t j = 0; j < H; j++) {
        double gi = xw[j] + hr[j] + rb[j];
        double go = xw[H + j] + hr[H + j] + rb[H + j];
        double gf = xw[2 * H + j] + hr[2 * H + j] + rb[2 * H + j];
        double gc = xw[3 * H + j] + hr[3 * H + j] + rb[3 * H + j];
        double c_prev = cs[j];
        if (pi) {
            gi += pi[j] * c_prev;
            gf += pf[j] * c_prev;
        }
        double i = activate(&ds->acts[0], clip_value(pb, gi));
        double f = pb->input_forget ? 1.0 - i : activate(&ds->acts[0], clip_value(pb, gf));
        double c = f * c_prev + i * activate(&ds->acts[1], clip_value(pb, gc));
        if (po)
            go += po[j] * c;
        double o = activate(&ds->acts[0], clip_value(pb, go));
        cs[j] = c;
        h[j] = o * activate(&ds->acts[2], c);
    }
}

/* GRU phase 1: the update and reset gates z, r and the product r (.) h. */
static void gru_gates(const rnn_problem_t *pb, direction_state_t *ds, int64_t t, int64_t b)
{
    int64_t H = pb->H;
    const double *xw = xw_row(pb, ds, t, b), *hr = ds->hr + b * 3 * H, *rb = ds->rb;
    double *z = ds->gates + b * 3 * H, *r = z + H, *rh = r + H;
    const double *h = ds->h + b * H;
    for (int64_t j = 0; j < H; j++) {
        z[j] = activate(&ds->acts[0], clip_value(pb, xw[j] + hr[j] + rb[j]));
        r[j] = activate(&ds->acts[0], clip_value(pb, xw[H + j] + hr[H + j] + rb[H + j]));
        rh[j] = r[j] * h[j];
    }
}

/* GRU phase 2: the candidate and the new hidden state.  Without
 * linear_before_reset the candidate reads (r (.) h) R_h^T from rh_r. */
static void gru_finish(const rnn_problem_t *pb, direction_state_t *ds, int64_t t, int64_t b)
{
    int64_t H = pb->H;
    const double *xh = xw_row(pb, ds, t, b) + 2 * H, *rbh = ds->rb + 2 * H;
    const double *z = ds->gates + b * 3 * H, *r = z + H;
    double *h = ds->h + b * H;
    for (int64_t j = 0; j < H; j++) {
        double v = pb->linear_before_reset ? xh[j] + r[j] * (ds->hr[b * 3 * H + 2 * H + j] + rbh[j])
                                           : xh[j] + ds->rh_r[b * H + j] + rbh[j];
        double cand = activate(&ds->acts[1], clip_value(pb, v));
        h[j] = (1.0 - z[j]) * cand + z[j] * h[j];
    }
}

/* Prepares the [rows][cols] matrix m for products in the chosen precision.
 * False when out of memory. */
static bool weights_init(rnn_weights_t *w, const double *m, int64_t rows, int64_t cols, bool single)
{
    w->rows = rows;
    w->cols = cols;
    if (single) {
        w->f = malloc((size_t)(rows * cols + 1) * sizeof *w->f);
        for (int64_t i = 0; w->f && i < rows * cols; i++)
            w->f[i] = (float)m[i];
        return w->f != NULL;
    }
    w->t = malloc((size_t)(rows * cols + 1) * sizeof *w->t);
    for (int64_t i = 0; w->t && i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            w->t[j * rows + i] = m[i * cols + j];
    return w->t != NULL;
}

static void weights_free(rnn_weights_t *w)
{
    free(w->f);
    free(w->t);
}

/* out[i][j] = sum_k a[i][k] * M[row0 + j][k] for i < m, j < n: the product
 * with rows [row0, row0 + n) of M.  fa/fc: scratch of m*cols and m*n floats. */
static void weights_product(const rnn_weights_t *w, int64_t row0, int64_t n, int64_t m, const double *a,
                            int64_t lda, double *out, int64_t ldo, float *fa, float *fc,
                            const kiln_gemm_parallel_t *par)
{
    int64_t k = w->cols;
    if (!w->f) {
        kiln_dgemm(false, false, m, n, k, 1.0, a, lda, w->t + row0, w->rows, 0.0, out, ldo, par);
        return;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k; p++)
            fa[i * k + p] = (float)a[i * lda + p];
    kiln_sgemm(false, true, m, n, k, 1.0f, fa, k, w->f + row0 * k, k, 0.0f, fc, n, par);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            out[i * ldo + j] = fc[i * n + j];
}

/* The time index batch item b reads at step s (sequences end at their own
 * length, so a backward pass starts at a different t for each item). */
static int64_t step_time(const rnn_problem_t *pb, bool backward, int64_t s, int64_t b)
{
    return backward ? pb->seq_lens[b] - 1 - s : s;
}

/* Runs direction d (0 forward or the only one, 1 backward) over the batch:
 * W x for all steps in one product up front, then per step one batch-wide
 * R h product and the cell update of each item still inside its sequence. */
static kiln_status_t run_direction(kiln_kernel_ctx_t *ctx, rnn_problem_t *pb, int d)
{
    int64_t H = pb->H, I = pb->I, GH = pb->gates * H, B = pb->B, T = pb->T;
    bool backward = (d == 1) || pb->reverse;
    direction_state_t ds = {
        .wb = pb->bias + d * 2 * GH,
        .rb = pb->bias + d * 2 * GH + GH,
        .p = pb->p ? pb->p + d * 3 * H : NULL,
        .acts = pb->acts[d],
    };
    ds.xw = malloc((size_t)(T * B * GH + 1) * sizeof(double));
    ds.hr = calloc((size_t)(B * GH + 1), sizeof(double));
    ds.h = calloc((size_t)(B * H + 1), sizeof(double));
    ds.c = calloc((size_t)(B * H + 1), sizeof(double));
    ds.gates = calloc((size_t)(B * 3 * H + 1), sizeof(double));
    ds.rh_r = calloc((size_t)(B * H + 1), sizeof(double));
    bool single = pb->single;
    int64_t widest = I > H ? I : H;
    ds.fa = single ? malloc((size_t)(T * B * widest + 1) * sizeof(float)) : NULL;
    ds.fc = single ? malloc((size_t)(T * B * GH + 1) * sizeof(float)) : NULL;
    bool ok = weights_init(&ds.w, pb->w + d * GH * I, GH, I, single) &&
              weights_init(&ds.r, pb->r + d * GH * H, GH, H, single);
    kiln_status_t st = KILN_OK;
    if (!ok || !ds.xw || !ds.hr || !ds.h || !ds.c || !ds.gates || !ds.rh_r ||
        (single && (!ds.fa || !ds.fc))) {
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for the recurrent state");
        goto done;
    }
    kiln_gemm_parallel_t par = kiln_gemm_parallel_ctx(ctx);
    weights_product(&ds.w, 0, GH, T * B, pb->x, I, ds.xw, GH, ds.fa, ds.fc, &par);
    for (int64_t row = 0; row < T * B; row++)
        for (int64_t g = 0; g < GH; g++)
            ds.xw[row * GH + g] += ds.wb[g];
    int64_t off = d * B * H;
    if (pb->h0)
        memcpy(ds.h, pb->h0 + off, (size_t)(B * H) * sizeof(double));
    if (pb->c0)
        memcpy(ds.c, pb->c0 + off, (size_t)(B * H) * sizeof(double));
    int64_t max_len = 0;
    for (int64_t b = 0; b < B; b++)
        max_len = pb->seq_lens[b] > max_len ? pb->seq_lens[b] : max_len;
    bool gru_two_phase = pb->cell == CELL_GRU && !pb->linear_before_reset;
    /* Without linear_before_reset GRU's candidate needs (r (.) h) R_h^T, not R_h h. */
    int64_t hr_rows = gru_two_phase ? 2 * H : GH;
    for (int64_t s = 0; s < max_len; s++) {
        weights_product(&ds.r, 0, hr_rows, B, ds.h, H, ds.hr, GH, ds.fa, ds.fc, &par);
        if (pb->cell == CELL_GRU) {
            for (int64_t b = 0; b < B; b++)
                if (s < pb->seq_lens[b])
                    gru_gates(pb, &ds, step_time(pb, backward, s, b), b);
            if (gru_two_phase)
                weights_product(&ds.r, 2 * H, H, B, ds.gates + 2 * H, 3 * H, ds.rh_r, H, ds.fa, ds.fc, &par);
        }
        for (int64_t b = 0; b < B; b++) {
            if (s >= pb->seq_lens[b])
                continue;
            int64_t t = step_time(pb, backward, s, b);
            switch (pb->cell) {
            case CELL_RNN:
                rnn_cell(pb, &ds, t, b);
                break;
            case CELL_GRU:
                gru_finish(pb, &ds, t, b);
                break;
            case CELL_LSTM:
                lstm_cell(pb, &ds, t, b);
                break;
            }
            memcpy(pb->y + ((t * pb->dirs + d) * B + b) * H, ds.h + b * H, (size_t)H * sizeof(double));
        }
    }
    memcpy(pb->yh + off, ds.h, (size_t)(B * H) * sizeof(double));
    memcpy(pb->yc + off, ds.c, (size_t)(B * H) * sizeof(double));
done:
    free(ds.xw);
    free(ds.hr);
    free(ds.h);
    free(ds.c);
    free(ds.gates);
    free(ds.rh_r);
    free(ds.fa);
    free(ds.fc);
    weights_free(&ds.w);
    weights_free(&ds.r);
    return st;
}

/* ---- Writing outputs ------------------------------------------------------ */

/* Writes output `index` from a time-major double array of logical shape
 * [lead][dirs][B][H], swapping to batch-major for layout 1. lead = 0 means
 * the state outputs ([dirs][B][H]). */
static kiln_status_t write_output(kiln_kernel_ctx_t *ctx, const rnn_problem_t *pb, int index,
                                  kiln_dtype_t dtype, const double *src, bool is_sequence)
{
    if (!kiln_ctx_output_wanted(ctx, index))
        return KILN_OK;
    int64_t dims[4];
    int rank;
    if (is_sequence) {
        rank = 4;
        if (pb->layout) {
            dims[0] = pb->B, dims[1] = pb->T, dims[2] = pb->dirs, dims[3] = pb->H;
        } else {
            dims[0] = pb->T, dims[1] = pb->dirs, dims[2] = pb->B, dims[3] = pb->H;
        }
    } else {
        rank = 3;
        if (pb->layout) {
            dims[0] = pb->B, dims[1] = pb->dirs, dims[2] = pb->H;
        } else {
            dims[0] = pb->dirs, dims[1] = pb->B, dims[2] = pb->H;
        }
    }
    kiln_tensor_t *out = kiln_ctx_output(ctx, index, dtype, rank, dims);
    if (!out)
        return kiln_ctx_status(ctx);
    int64_t T = is_sequence ? pb->T : 1;
    for (int64_t t = 0; t < T; t++)
        for (int d = 0; d < pb->dirs; d++)
            for (int64_t b = 0; b < pb->B; b++)
                for (int64_t j = 0; j < pb->H; j++) {
                    int64_t from = ((t * pb->dirs + d) * pb->B + b) * pb->H + j;
                    int64_t to;
                    if (!pb->layout)
                        to = from;
                    else if (is_sequence)
                        to = ((b * pb->T + t) * pb->dirs + d) * pb->H + j;
                    else
                        to = (b * pb->dirs + d) * pb->H + j;
                    kiln_tensor_set_f64(out, to, src[from]);
                }
    return KILN_OK;
}

/* The shared driver of RNN, GRU and LSTM. */
static kiln_status_t recurrent_run(kiln_kernel_ctx_t *ctx, cell_kind_t cell)
{
    static const char *const rnn_defaults[] = {"Tanh"};
    static const char *const gru_defaults[] = {"Sigmoid", "Tanh"};
    static const char *const lstm_defaults[] = {"Sigmoid", "Tanh", "Tanh"};
    rnn_problem_t pb = {.cell = cell};
    const char *const *defaults = rnn_defaults;
    int n_acts = 1;
    pb.gates = 1;
    if (cell == CELL_GRU) {
        pb.gates = 3, defaults = gru_defaults, n_acts = 2;
    } else if (cell == CELL_LSTM) {
        pb.gates = 4, defaults = lstm_defaults, n_acts = 3;
    }
    kiln_status_t st = read_problem(ctx, &pb);
    if (st == KILN_OK)
        st = read_activations(ctx, &pb, n_acts, defaults);
    for (int d = 0; st == KILN_OK && d < pb.dirs; d++)
        st = run_direction(ctx, &pb, d);
    kiln_dtype_t dtype = kiln_ctx_input(ctx, 0) ? kiln_ctx_input(ctx, 0)->dtype : KILN_DTYPE_FLOAT32;
    if (st == KILN_OK)
        st = write_output(ctx, &pb, 0, dtype, pb.y, true);
    if (st == KILN_OK)
        st = write_output(ctx, &pb, 1, dtype, pb.yh, false);
    if (st == KILN_OK && cell == CELL_LSTM)
        st = write_output(ctx, &pb, 2, dtype, pb.yc, false);
    free_problem(&pb);
    return st;
}

static kiln_status_t rnn_run(kiln_kernel_ctx_t *ctx)
{
    return recurrent_run(ctx, CELL_RNN);
}
static kiln_status_t gru_run(kiln_kernel_ctx_t *ctx)
{
    return recurrent_run(ctx, CELL_GRU);
}
static kiln_status_t lstm_run(kiln_kernel_ctx_t *ctx)
{
    return recurrent_run(ctx, CELL_LSTM);
}

void kiln_ops_register_rnn(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "RNN", .since = 1, .run = rnn_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "GRU", .since = 1, .run = gru_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "LSTM", .since = 1, .run = lstm_run});
}
