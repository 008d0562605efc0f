/*
 * elementwise.h - the shared drivers of elementwise kernels (elementwise.c
 * and activation.c): a kernel supplies one tight loop per dtype, the driver
 * does broadcasting, float16/bfloat16, threading and output allocation.
 *
 * Loops are plain functions over contiguous runs so the compiler vectorises
 * them.  float16 and bfloat16 have no loops of their own: the drivers widen
 * them to float32 in small stack blocks, run the float32 loop and round the
 * result back, which is what "compute in float32" means for these types.
 */
#ifndef KILN_OPS_ELEMENTWISE_H
#define KILN_OPS_ELEMENTWISE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ops/kernel.h"

/* Extra numbers some loops read (alpha of Elu, bounds of Clip...). */
typedef struct kiln_elem_params {
    double alpha, beta, gamma;
    int64_t flag;
} kiln_elem_params_t;

/* y[i] = f(x[i]) for i in [0, n).  y may alias x. */
typedef void (*kiln_unary_loop_fn)(void *y, const void *x, int64_t n, const kiln_elem_params_t *p);

/* y[i] = f(a[i*sa], b[i*sb]) for i in [0, n), where sa and sb are 0 or 1. */
typedef void (*kiln_binary_loop_fn)(void *y, const void *a, const void *b, int64_t sa, int64_t sb, int64_t n,
                                    const kiln_elem_params_t *p);

/* Loops of one op indexed by input dtype; NULL = dtype not supported.  A
 * float32 loop serves float16 and bfloat16 too.  out_bool: the output is
 * bool (comparisons, IsNaN) instead of the input dtype. */
typedef struct kiln_unary_op {
    kiln_unary_loop_fn loops[KILN_DTYPE_COUNT_];
    bool out_bool;
    kiln_unary_loop_fn f32_avx2; /* optional: the float32 loop built for AVX2, used when
                                    the CPU has AVX2 and FMA */
} kiln_unary_op_t;

typedef struct kiln_binary_op {
    kiln_binary_loop_fn loops[KILN_DTYPE_COUNT_];
    bool out_bool;
} kiln_binary_op_t;

/* AVX2 builds of the compute-bound float32 loops (elementwise_avx2.c): the
 * same expressions as the generic loops, 8 lanes wide. */
void kiln_exp_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p);
void kiln_erf_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p);
void kiln_log_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p);
void kiln_softplus_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p);
void kiln_sigmoid_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p);
void kiln_tanh_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p);
void kiln_gelu_erf_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p);
void kiln_gelu_tanh_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p);

/* Runs a unary op on x into output out_index (allocated here). */
kiln_status_t kiln_unary_run(kiln_kernel_ctx_t *ctx, const kiln_unary_op_t *op, const kiln_tensor_t *x,
                             int out_index, const kiln_elem_params_t *p);

/* Runs a unary op from x into y (same shape; may be the same tensor). */
kiln_status_t kiln_unary_into(kiln_kernel_ctx_t *ctx, const kiln_unary_op_t *op, const kiln_tensor_t *x,
                              kiln_tensor_t *y, const kiln_elem_params_t *p);

/* Runs a broadcasting binary op on a and b into output out_index. */
kiln_status_t kiln_binary_run(kiln_kernel_ctx_t *ctx, const kiln_binary_op_t *op, const kiln_tensor_t *a,
                              const kiln_tensor_t *b, int out_index, const kiln_elem_params_t *p);

/* Same into a preallocated y whose shape is the broadcast shape of a, b. */
kiln_status_t kiln_binary_into(kiln_kernel_ctx_t *ctx, const kiln_binary_op_t *op, const kiln_tensor_t *a,
                               const kiln_tensor_t *b, kiln_tensor_t *y, const kiln_elem_params_t *p);

/* Opset < 7 binary ops broadcast B onto A only when broadcast=1, with B's
 * dims placed at A's dim `axis` (default: the trailing dims).  Fills *view
 * with b reshaped to A's rank (borrowing b's data) and returns it, or b
 * itself when the node uses numpy rules or no broadcast. */
const kiln_tensor_t *kiln_legacy_broadcast_view(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                                const kiln_tensor_t *b, kiln_tensor_t *view);

/* Registers Where, Clip, Cast and CastLike (elementwise_cast.c); called by
 * kiln_ops_register_elementwise. */
void kiln_register_elementwise_cast(kiln_registry_t *reg);

/* ---- Vectorisable float32 math ------------------------------------------ */

/* exp(x) for float32 in straight-line code the compiler vectorises (libm's
 * expf is a call per element): x = k*ln2 + r, exp(r) by the Cephes
 * polynomial, 2^k put into exponent bits.  Within a few ulp of expf over
 * the normal range, gradual underflow below it, inf above FLT_MAX, NaN
 * stays NaN. */
static inline __attribute__((always_inline)) float kiln_expf(float x)
{
    const float hi = 88.72283f, lo = -103.9721f; /* beyond these: inf and 0 */
    float c = x > hi ? hi : x < lo ? lo : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float kf = c * 1.44269504088896341f + shifter;
    uint32_t kbits;
    memcpy(&kbits, &kf, sizeof kbits);
    int32_t k = (int32_t)(kbits - 0x4b400000u); /* minus the bits of shifter */
    kf -= shifter;
    float r = c - kf * 0.693359375f + kf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    /* 2^k as two factors 2^k1 * 2^k2, each a normal float, so k from -150
     * (subnormal results) to 128 (near FLT_MAX) scales without overflow. */
    int32_t k1 = k >> 1, k2 = k - k1;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    y = y * s1 * s2;
    y = x > hi ? (float)INFINITY : y;
    return x < lo ? 0.0f : y; /* NaN fails every compare and flows through */
}

/* tanh(x) for float32, vectorisable: the Cephes odd polynomial for
 * |x| < 0.625, 1 - 2 / (exp(2|x|) + 1) with the sign of x elsewhere. */
static inline __attribute__((always_inline)) float kiln_tanhf(float x)
{
    float ax = x < 0 ? -x : x;
    float z = x * x;
    float small =
        ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) *
             z -
         3.33332819422e-1f) *
            z * x +
        x;
    float big = 1.0f - 2.0f / (kiln_expf(2.0f * ax) + 1.0f);
    big = x < 0 ? -big : big;
    return ax < 0.625f ? small : big;
}

/* erf(x) for float32, vectorisable: the rational approximation used by
 * Eigen and XLA (odd degree-13 over even degree-8 in x), on x clamped to
 * [-4, 4] where float32 erf is already +-1. */
static inline __attribute__((always_inline)) float kiln_erff(float x)
{
    float c = x < -4.0f ? -4.0f : x;
    c = c > 4.0f ? 4.0f : c;
    float z = c * c;
    float p = -2.72614225801306e-10f;
    p = p * z + 2.77068142495902e-08f;
    p = p * z - 2.10102402082508e-06f;
    p = p * z - 5.69250639462346e-05f;
    p = p * z - 7.34990630326855e-04f;
    p = p * z - 2.95459980854025e-03f;
    p = p * z - 1.60960333262415e-02f;
    p = p * c;
    float q = -1.45660718464996e-05f;
    q = q * z - 2.13374055278905e-04f;
    q = q * z - 1.68282697438203e-03f;
    q = q * z - 7.37332916720468e-03f;
    q = q * z - 1.42647390514189e-02f;
    return p / q;
}

/* log(x) for float32, vectorisable: x = m * 2^e with m in [sqrt(1/2),
 * sqrt(2)), log(m) by the Cephes polynomial in m - 1.  Subnormals are
 * scaled up first; 0 gives -inf, negatives NaN, inf inf, NaN NaN. */
static inline __attribute__((always_inline)) float kiln_logf(float x)
{
    bool tiny = x < 1.17549435e-38f;     /* FLT_MIN: subnormal, zero or negative */
    float v = tiny ? x * 8388608.0f : x; /* * 2^23 */
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    float e = (float)((int32_t)((bits >> 23) & 0xffu) - 126) - (tiny ? 23.0f : 0.0f);
    bits = (bits & 0x007fffffu) | 0x3f000000u; /* mantissa in [0.5, 1) */
    float m;
    memcpy(&m, &bits, sizeof m);
    bool low = m < 0.707106781186547524f;
    e = low ? e - 1.0f : e;
    float t = low ? m + m - 1.0f : m - 1.0f;
    float z = t * t;
    float p = 7.0376836292e-2f;
    p = p * t - 1.1514610310e-1f;
    p = p * t + 1.1676998740e-1f;
    p = p * t - 1.2420140846e-1f;
    p = p * t + 1.4249322787e-1f;
    p = p * t - 1.6668057665e-1f;
    p = p * t + 2.0000714765e-1f;
    p = p * t - 2.4999993993e-1f;
    p = p * t + 3.3333331174e-1f;
    float y = p * t * z;
    y += -2.12194440e-4f * e;
    y += -0.5f * z;
    y = t + y + 0.693359375f * e;
    y = x == (float)INFINITY ? x : y;
    y = x == 0.0f ? -(float)INFINITY : y;
    return x < 0.0f || x != x ? (float)NAN : y;
}

/* log(1 + e^x) for float32 without overflow: max(x, 0) + log1p(e^-|x|),
 * with log1p(t) = log(u) * t / (u - 1), u = 1 + t, which stays accurate
 * when t is tiny. */
static inline __attribute__((always_inline)) float kiln_softplusf(float x)
{
    float ax = x < 0 ? -x : x;
    float t = kiln_expf(-ax);
    float u = 1.0f + t;
    float d = u - 1.0f;
    float l = d == 0.0f ? t : kiln_logf(u) * (t / (d == 0.0f ? 1.0f : d));
    return (x > 0 ? x : 0.0f) + l;
}

/* In loop expressions: the fast float32 forms, libm for double. */
#define KILN_EXP(x) _Generic((x), float : kiln_expf, default : exp)(x)
#define KILN_TANH(x) _Generic((x), float : kiln_tanhf, default : tanh)(x)
#define KILN_ERF(x) _Generic((x), float : kiln_erff, default : erf)(x)
#define KILN_LOG(x) _Generic((x), float : kiln_logf, default : log)(x)

/* ---- Loop instantiation ------------------------------------------------ */

/* Defines `static void NAME(...)`, a unary loop over T to TO where EXPR
 * computes from `x` (of type elem_t, i.e. T), `p`, and alpha, beta, gamma:
 * p's numbers as float (double when T is double; integer loops read p
 * directly, so an infinite bound never converts to an integer). */
#define KILN_UNARY_LOOP(NAME, T, TO, EXPR)                                                                   \
    static void NAME(void *yv, const void *xv, int64_t n, const kiln_elem_params_t *p)                       \
    {                                                                                                        \
        typedef T elem_t;                                                                                    \
        typedef __typeof__((T)0 + 0.0f) param_t; /* float, or double for double */                           \
        const param_t alpha = (param_t)p->alpha, beta = (param_t)p->beta, gamma = (param_t)p->gamma;         \
        (void)alpha, (void)beta, (void)gamma, (void)sizeof(elem_t);                                          \
        if (yv == xv) { /* in place: one pointer, so no aliasing question */                                 \
            T *io = yv;                                                                                      \
            for (int64_t i = 0; i < n; i++) {                                                                \
                T x = io[i];                                                                                 \
                io[i] = (T)(TO)(EXPR);                                                                       \
            }                                                                                                \
            return;                                                                                          \
        }                                                                                                    \
        TO *restrict y = yv;                                                                                 \
        const T *restrict xs = xv;                                                                           \
        for (int64_t i = 0; i < n; i++) {                                                                    \
            T x = xs[i];                                                                                     \
            y[i] = (TO)(EXPR);                                                                               \
        }                                                                                                    \
    }

/* Defines a binary loop over T to TO where EXPR computes from `a` and `b`,
 * with one specialised loop per operand step so each vectorises. */
#define KILN_BINARY_LOOP(NAME, T, TO, EXPR)                                                                  \
    static void NAME(void *yv, const void *av, const void *bv, int64_t sa, int64_t sb, int64_t n,            \
                     const kiln_elem_params_t *p)                                                            \
    {                                                                                                        \
        TO *restrict y = yv;                                                                                 \
        const T *restrict as = av;                                                                           \
        const T *restrict bs = bv;                                                                           \
        (void)p;                                                                                             \
        if (sa && sb) {                                                                                      \
            for (int64_t i = 0; i < n; i++) {                                                                \
                T a = as[i], b = bs[i];                                                                      \
                y[i] = (TO)(EXPR);                                                                           \
            }                                                                                                \
        } else if (sa) {                                                                                     \
            const T b = bs[0];                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                                \
                T a = as[i];                                                                                 \
                y[i] = (TO)(EXPR);                                                                           \
            }                                                                                                \
        } else if (sb) {                                                                                     \
            const T a = as[0];                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                                \
                T b = bs[i];                                                                                 \
                y[i] = (TO)(EXPR);                                                                           \
            }                                                                                                \
        } else {                                                                                             \
            const T a = as[0], b = bs[0];                                                                    \
            const TO v = (TO)(EXPR);                                                                         \
            for (int64_t i = 0; i < n; i++)                                                                  \
                y[i] = v;                                                                                    \
        }                                                                                                    \
    }

/* One loop per dtype family: DEF is a loop macro taking (NAME, T, EXPR)
 * (e.g. a wrapper of KILN_BINARY_LOOP); the loops are named OP_f32,
 * OP_i8, OP_u64...  The _ENTRIES macros list them as designated
 * initializers of a loops[] table. */
#define KILN_FLOAT_LOOPS(DEF, OP, EXPR) DEF(OP##_f32, float, EXPR) DEF(OP##_f64, double, EXPR)
#define KILN_SINT_LOOPS(DEF, OP, EXPR)                                                                       \
    DEF(OP##_i8, int8_t, EXPR)                                                                               \
    DEF(OP##_i16, int16_t, EXPR) DEF(OP##_i32, int32_t, EXPR) DEF(OP##_i64, int64_t, EXPR)
#define KILN_UINT_LOOPS(DEF, OP, EXPR)                                                                       \
    DEF(OP##_u8, uint8_t, EXPR)                                                                              \
    DEF(OP##_u16, uint16_t, EXPR) DEF(OP##_u32, uint32_t, EXPR) DEF(OP##_u64, uint64_t, EXPR)

#define KILN_FLOAT_ENTRIES(OP) [KILN_DTYPE_FLOAT32] = OP##_f32, [KILN_DTYPE_FLOAT64] = OP##_f64
#define KILN_SINT_ENTRIES(OP)                                                                                \
    [KILN_DTYPE_INT8] = OP##_i8, [KILN_DTYPE_INT16] = OP##_i16, [KILN_DTYPE_INT32] = OP##_i32,               \
    [KILN_DTYPE_INT64] = OP##_i64
#define KILN_UINT_ENTRIES(OP)                                                                                \
    [KILN_DTYPE_UINT8] = OP##_u8, [KILN_DTYPE_UINT16] = OP##_u16, [KILN_DTYPE_UINT32] = OP##_u32,            \
    [KILN_DTYPE_UINT64] = OP##_u64
#define KILN_NUMERIC_ENTRIES(OP) KILN_FLOAT_ENTRIES(OP), KILN_SINT_ENTRIES(OP), KILN_UINT_ENTRIES(OP)

#endif
