/* ops_basic.c - elementwise arithmetic, normalisations, softmax, activations, embeddings and
 * positional encodings (ops.h, first section).
 *
 * Every output value is computed by one thread with the same instruction sequence whatever the
 * split, so results do not depend on the thread count. AVX-512 builds vectorise the loops (tails
 * with masked loads, so a value never depends on its position in the array); other builds use
 * plain loops and libm. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ops.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#define OPS_AVX512 1
#else
#define OPS_AVX512 0
#endif

/* ---- splitting work over the pool ----------------------------------------------------- */

/* Below this many "cost units" (about one cheap float operation each) an op stays on the
 * calling thread: waking the pool costs a few microseconds. */
#define PAR_MIN_WORK (1 << 16)

typedef void (*range_fn)(void *arg, int64_t begin, int64_t end);

struct par_task {
    range_fn fn;
    void *arg;
    int64_t n;
};

static void par_worker(void *vp, int ith, int nth)
{
    struct par_task *t = vp;
    int64_t b, e;
    pool_split(t->n, ith, nth, &b, &e);
    if (b < e)
        t->fn(t->arg, b, e);
}

/* Call fn over [0, n) items, split over ctx's pool when n * cost is large enough. */
static void par_for(cochlea_ctx *ctx, int64_t n, int64_t cost, range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (ctx && ctx->pool && ctx->n_threads > 1 && n > 1 && (double)n * (double)cost >= PAR_MIN_WORK) {
        struct par_task t = {fn, arg, n};
        pool_run(ctx->pool, par_worker, &t);
    } else {
        fn(arg, 0, n);
    }
}

/* Elementwise ops split their n values in blocks of this many (one cache line = 16 floats,
 * four of them), so threads never write the same line. */
#define EW_BLOCK 64

static int64_t ew_blocks(int64_t n)
{
    return (n + EW_BLOCK - 1) / EW_BLOCK;
}

static void ew_range(int64_t n, int64_t b0, int64_t b1, int64_t *i0, int64_t *i1)
{
    *i0 = b0 * EW_BLOCK;
    *i1 = b1 * EW_BLOCK < n ? b1 * EW_BLOCK : n;
}

/* ---- vector math ------------------------------------------------------------------------ */

#if OPS_AVX512
static inline __mmask16 tail_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* exp(x): x = n ln2 + r, |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial (truncation
 * error < 1e-8 relative), scaled by 2^n with scalef (gives 0 below about -103.3, inf above
 * 88.73, denormals in between; NaN propagates). */
static inline __m512 v_exp(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-110.0f), x); /* max/min return x when x is NaN */
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* expm1(x) for x <= 0: with x = n ln2 + r, expm1(x) = 2^n expm1(r) + (2^n - 1); expm1(r) by its
 * degree-8 Taylor polynomial. Exact reduction for n = 0 keeps the relative accuracy near 0. */
static inline __m512 v_expm1_neg(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-30.0f), x);
    x = _mm512_min_ps(_mm512_setzero_ps(), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 40320.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 5040.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    __m512 q = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r); /* r + r^2 (1/2 + r/6 + ...) */
    __m512 t = _mm512_scalef_ps(_mm512_set1_ps(1.0f), n);
    return _mm512_fmadd_ps(t, q, _mm512_sub_ps(t, _mm512_set1_ps(1.0f)));
}

static inline __m512 v_abs(__m512 x)
{
    return _mm512_castsi512_ps(_mm512_and_epi32(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

/* |a| with the sign of s */
static inline __m512 v_copysign(__m512 a, __m512 s)
{
    __m512i sign = _mm512_and_epi32(_mm512_castps_si512(s), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_epi32(_mm512_castps_si512(v_abs(a)), sign));
}

/* sigmoid(x) = 1/(1+e) for x >= 0 and e/(1+e) for x < 0, with e = exp(-|x|). */
static inline __m512 v_sigmoid(__m512 x)
{
    __m512 e = v_exp(_mm512_sub_ps(_mm512_setzero_ps(), v_abs(x)));
    __m512 s = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(s, neg, s, e);
}

/* tanh(x) = sign(x) * -m / (2 + m) with m = expm1(-2|x|). */
static inline __m512 v_tanh(__m512 x)
{
    __m512 m = v_expm1_neg(_mm512_mul_ps(_mm512_set1_ps(-2.0f), v_abs(x)));
    __m512 t = _mm512_div_ps(_mm512_sub_ps(_mm512_setzero_ps(), m), _mm512_add_ps(_mm512_set1_ps(2.0f), m));
    return v_copysign(t, x);
}

/* erfc(a) for a >= 0 as t * P(t) * exp(-a^2), t = 1/(1 + a/2), P a degree-9 least-squares
 * fit of erfc(a) exp(a^2) / t on [0, 10] made for this file (relative error 2.2e-8 in exact
 * arithmetic, about 3e-7 evaluated in float). The caller passes a^2 exactly as hi + lo, so
 * exp(-a^2) = exp(-hi) (1 - lo) carries no rounding error of a^2 (which would grow with a^2). */
static inline __m512 v_erfc_pos(__m512 a, __m512 hi, __m512 lo)
{
    static const float c[10] = {2.820628826e-01f, 2.828940154e-01f, 2.382882295e-01f,  2.274455204e-01f,
                                -1.045284805e-01f, 4.341518796e-01f, -6.870457975e-01f, 4.428111338e-01f,
                                -1.296140483e-01f, 1.353464925e-02f};
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(a, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(c[9]);
    for (int i = 8; i >= 0; i--)
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c[i]));
    __m512 e = v_exp(_mm512_sub_ps(_mm512_setzero_ps(), hi));
    e = _mm512_fnmadd_ps(e, lo, e);
    return _mm512_mul_ps(_mm512_mul_ps(t, p), e);
}

/* GELU(x) = x/2 * erfc(w), w = -x/sqrt 2, with erfc(w) = 2 - erfc(|w|) for w < 0 and
 * w^2 = x^2/2 = (hi + lo)/2 split exactly with an fma. |x| is clamped to 15 inside erfc, where
 * exp(-x^2/2) is already 0 in float (GELU is x or -0 beyond it). */
static inline __m512 v_gelu(__m512 x)
{
    __m512 xc = _mm512_min_ps(_mm512_set1_ps(15.0f), v_abs(x));
    __m512 a = _mm512_mul_ps(xc, _mm512_set1_ps(0.707106781186547524f));
    __m512 x2 = _mm512_mul_ps(xc, xc);
    __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(xc, xc, x2), _mm512_set1_ps(0.5f));
    __m512 ec = v_erfc_pos(a, _mm512_mul_ps(x2, _mm512_set1_ps(0.5f)), lo);
    __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    ec = _mm512_mask_sub_ps(ec, pos, _mm512_set1_ps(2.0f), ec);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), ec);
}

/* GELU-tanh(x) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): the same value as
 * x/2 (1 + tanh u) without the cancellation for negative x. */
static inline __m512 v_gelu_tanh(__m512 x)
{
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.797884560802865356f),
                             _mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x));
    return _mm512_mul_ps(x, v_sigmoid(_mm512_add_ps(u, u)));
}

/* ELU: x for x > 0, alpha * expm1(x) otherwise */
static inline __m512 v_elu(__m512 x, float alpha)
{
    __m512 m = _mm512_mul_ps(_mm512_set1_ps(alpha), v_expm1_neg(x));
    __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_mov_ps(m, pos, x);
}
#endif

/* Scalar versions: the portable path (libm), same formulas where accuracy needs them. */
static inline float s_sigmoid(float x)
{
    float e = expf(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x < 0 ? s * e : s;
}

/* in double, so the rounding of x/sqrt 2 does not show in the negative tail */
static inline float s_gelu(float x)
{
    return (float)(0.5 * (double)x * erfc((double)x * -0.70710678118654752440));
}

static inline float s_gelu_tanh(float x)
{
    float u = 0.797884560802865356f * (x + 0.044715f * x * x * x);
    return x * s_sigmoid(u + u);
}

static inline float s_elu(float x, float alpha)
{
    return x > 0 ? x : alpha * expm1f(x);
}

/* ---- elementwise arithmetic --------------------------------------------------------------- */

enum ew_op { EW_ADD, EW_MUL, EW_SCALE, EW_ADD_SCALED };

struct ew_args {
    enum ew_op op;
    const float *a, *b;
    float s;
    float *y;
    int64_t n;
};

/* One elementwise op on values [i0, i1). */
static void ew_run(const struct ew_args *w, int64_t i0, int64_t i1)
{
    const float *a = w->a, *b = w->b;
    float *y = w->y;
    const float s = w->s;
#if OPS_AVX512
    const __m512 vs = _mm512_set1_ps(s);
    for (int64_t i = i0; i < i1; i += 16) {
        __mmask16 m = tail_mask(i1 - i);
        __m512 va = _mm512_maskz_loadu_ps(m, a + i), r;
        switch (w->op) {
        case EW_ADD: r = _mm512_add_ps(va, _mm512_maskz_loadu_ps(m, b + i)); break;
        case EW_MUL: r = _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, b + i)); break;
        case EW_SCALE: r = _mm512_mul_ps(va, vs); break;
        default: r = _mm512_fmadd_ps(vs, _mm512_maskz_loadu_ps(m, b + i), va); break;
        }
        _mm512_mask_storeu_ps(y + i, m, r);
    }
#else
    switch (w->op) {
    case EW_ADD: for (int64_t i = i0; i < i1; i++) y[i] = a[i] + b[i]; break;
    case EW_MUL: for (int64_t i = i0; i < i1; i++) y[i] = a[i] * b[i]; break;
    case EW_SCALE: for (int64_t i = i0; i < i1; i++) y[i] = a[i] * s; break;
    default: for (int64_t i = i0; i < i1; i++) y[i] = fmaf(s, b[i], a[i]); break;
    }
#endif
}

static void ew_task(void *arg, int64_t b0, int64_t b1)
{
    const struct ew_args *w = arg;
    int64_t i0, i1;
    ew_range(w->n, b0, b1, &i0, &i1);
    ew_run(w, i0, i1);
}

static void ew_dispatch(cochlea_ctx *ctx, struct ew_args *w)
{
    if (w->n > 0)
        par_for(ctx, ew_blocks(w->n), EW_BLOCK / 4, ew_task, w);
}

void ops_add(cochlea_ctx *ctx, const float *a, const float *b, float *y, int64_t n)
{
    struct ew_args w = {EW_ADD, a, b, 0.0f, y, n};
    ew_dispatch(ctx, &w);
}

void ops_mul(cochlea_ctx *ctx, const float *a, const float *b, float *y, int64_t n)
{
    struct ew_args w = {EW_MUL, a, b, 0.0f, y, n};
    ew_dispatch(ctx, &w);
}

void ops_scale(cochlea_ctx *ctx, const float *x, float s, float *y, int64_t n)
{
    struct ew_args w = {EW_SCALE, x, NULL, s, y, n};
    ew_dispatch(ctx, &w);
}

void ops_add_scaled(cochlea_ctx *ctx, const float *a, const float *b, float s, float *y, int64_t n)
{
    struct ew_args w = {EW_ADD_SCALED, a, b, s, y, n};
    ew_dispatch(ctx, &w);
}

/* ---- row broadcasts ---------------------------------------------------------------------- */

struct row_args {
    enum ew_op op; /* EW_ADD or EW_MUL */
    const float *x, *row;
    float *y;
    int64_t cols, ldx, ldy;
};

static void row_task(void *arg, int64_t r0, int64_t r1)
{
    const struct row_args *w = arg;
    for (int64_t r = r0; r < r1; r++) {
        struct ew_args e = {w->op, w->x + r * w->ldx, w->row, 0.0f, w->y + r * w->ldy, w->cols};
        ew_run(&e, 0, w->cols);
    }
}

static void row_dispatch(cochlea_ctx *ctx, struct row_args *w, int64_t rows)
{
    if (rows <= 0 || w->cols <= 0)
        return;
    par_for(ctx, rows, w->cols / 4 + 1, row_task, w);
}

void ops_add_row(cochlea_ctx *ctx, const float *x, const float *row, float *y, int64_t rows, int64_t cols)
{
    struct row_args w = {EW_ADD, x, row, y, cols, cols, cols};
    row_dispatch(ctx, &w, rows);
}

void ops_mul_row(cochlea_ctx *ctx, const float *x, const float *row, float *y, int64_t rows, int64_t cols)
{
    struct row_args w = {EW_MUL, x, row, y, cols, cols, cols};
    row_dispatch(ctx, &w, rows);
}

void ops_add_bias(cochlea_ctx *ctx, float *x, int64_t rows, int64_t cols, int64_t ldx, const float *bias)
{
    if (ldx < cols)
        return;
    struct row_args w = {EW_ADD, x, bias, x, cols, ldx, ldx};
    row_dispatch(ctx, &w, rows);
}

/* ---- activations ------------------------------------------------------------------------- */

enum act_op { ACT_GELU, ACT_GELU_TANH, ACT_SILU, ACT_RELU, ACT_ELU, ACT_SIGMOID, ACT_TANH };

struct act_args {
    enum act_op op;
    const float *x;
    float *y;
    float alpha;
    int64_t n;
};

#if OPS_AVX512
#define ACT_LOOP(EXPR)                                                                                       \
    for (int64_t i = i0; i < i1; i += 16) {                                                                  \
        __mmask16 m = tail_mask(i1 - i);                                                                     \
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);                                                          \
        _mm512_mask_storeu_ps(y + i, m, EXPR);                                                               \
    }
#else
#define ACT_LOOP(EXPR)                                                                                       \
    for (int64_t i = i0; i < i1; i++) {                                                                      \
        float v = x[i];                                                                                      \
        y[i] = EXPR;                                                                                         \
    }
#endif

static void act_task(void *arg, int64_t b0, int64_t b1)
{
    const struct act_args *w = arg;
    const float *x = w->x;
    float *y = w->y;
    const float alpha = w->alpha;
    int64_t i0, i1;
    ew_range(w->n, b0, b1, &i0, &i1);
#if OPS_AVX512
    switch (w->op) {
    case ACT_GELU: ACT_LOOP(v_gelu(v)); break;
    case ACT_GELU_TANH: ACT_LOOP(v_gelu_tanh(v)); break;
    case ACT_SILU: ACT_LOOP(_mm512_mul_ps(v, v_sigmoid(v))); break;
    case ACT_RELU: ACT_LOOP(_mm512_max_ps(_mm512_setzero_ps(), v)); break; /* NaN stays NaN */
    case ACT_ELU: ACT_LOOP(v_elu(v, alpha)); break;
    case ACT_SIGMOID: ACT_LOOP(v_sigmoid(v)); break;
    case ACT_TANH: ACT_LOOP(v_tanh(v)); break;
    }
#else
    switch (w->op) {
    case ACT_GELU: ACT_LOOP(s_gelu(v)); break;
    case ACT_GELU_TANH: ACT_LOOP(s_gelu_tanh(v)); break;
    case ACT_SILU: ACT_LOOP(v * s_sigmoid(v)); break;
    case ACT_RELU: ACT_LOOP(v > 0.0f ? v : (v == v ? 0.0f : v)); break;
    case ACT_ELU: ACT_LOOP(s_elu(v, alpha)); break;
    case ACT_SIGMOID: ACT_LOOP(s_sigmoid(v)); break;
    case ACT_TANH: ACT_LOOP(tanhf(v)); break;
    }
#endif
}

static void act_dispatch(cochlea_ctx *ctx, enum act_op op, const float *x, float *y, float alpha, int64_t n)
{
    struct act_args w = {op, x, y, alpha, n};
    int64_t cost = op == ACT_RELU ? EW_BLOCK / 4 : EW_BLOCK * 2;
    if (n > 0)
        par_for(ctx, ew_blocks(n), cost, act_task, &w);
}

void ops_gelu(cochlea_ctx *ctx, const float *x, float *y, int64_t n)
{
    act_dispatch(ctx, ACT_GELU, x, y, 0.0f, n);
}

void ops_gelu_tanh(cochlea_ctx *ctx, const float *x, float *y, int64_t n)
{
    act_dispatch(ctx, ACT_GELU_TANH, x, y, 0.0f, n);
}

void ops_silu(cochlea_ctx *ctx, const float *x, float *y, int64_t n)
{
    act_dispatch(ctx, ACT_SILU, x, y, 0.0f, n);
}

void ops_relu(cochlea_ctx *ctx, const float *x, float *y, int64_t n)
{
    act_dispatch(ctx, ACT_RELU, x, y, 0.0f, n);
}

void ops_elu(cochlea_ctx *ctx, const float *x, float alpha, float *y, int64_t n)
{
    act_dispatch(ctx, ACT_ELU, x, y, alpha, n);
}

void ops_sigmoid(cochlea_ctx *ctx, const float *x, float *y, int64_t n)
{
    act_dispatch(ctx, ACT_SIGMOID, x, y, 0.0f, n);
}

void ops_tanh(cochlea_ctx *ctx, const float *x, float *y, int64_t n)
{
    act_dispatch(ctx, ACT_TANH, x, y, 0.0f, n);
}

/* ---- row reductions (one row at a time; the sums use a fixed order per row length) ------ */

/* sum of x[0..n) */
static float row_sum(const float *x, int64_t n)
{
#if OPS_AVX512
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    return _mm512_reduce_add_ps(acc);
#else
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    return s;
#endif
}

/* *sd = sum of (x[i] - c), *sq = sum of (x[i] - c)^2 */
static void row_dev_sums(const float *x, int64_t n, float c, float *sd, float *sq)
{
#if OPS_AVX512
    __m512 a1 = _mm512_setzero_ps(), a2 = a1, vc = _mm512_set1_ps(c);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vc);
        a1 = _mm512_add_ps(a1, d);
        a2 = _mm512_fmadd_ps(d, d, a2);
    }
    *sd = _mm512_reduce_add_ps(a1);
    *sq = _mm512_reduce_add_ps(a2);
#else
    float s1 = 0.0f, s2 = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - c;
        s1 += d;
        s2 = fmaf(d, d, s2);
    }
    *sd = s1;
    *sq = s2;
#endif
}

/* max of x[0..n); -inf for an all -inf row; NaN if any value is NaN */
static float row_max(const float *x, int64_t n)
{
#if OPS_AVX512
    __m512 ninf = _mm512_set1_ps(-INFINITY), acc = ninf;
    __mmask16 nan = 0;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_mask_loadu_ps(ninf, m, x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        acc = _mm512_max_ps(acc, v);
    }
    return nan ? NAN : _mm512_reduce_max_ps(acc);
#else
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] != x[i])
            return NAN;
        mx = x[i] > mx ? x[i] : mx;
    }
    return mx;
#endif
}

/* y[i] = exp(x[i] - c), returns the sum of the y[i] */
static float row_exp_sum(const float *x, float *y, int64_t n, float c)
{
#if OPS_AVX512
    __m512 acc = _mm512_setzero_ps(), vc = _mm512_set1_ps(c);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = v_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vc));
        _mm512_mask_storeu_ps(y + i, m, e);
        acc = _mm512_mask_add_ps(acc, m, acc, e);
    }
    return _mm512_reduce_add_ps(acc);
#else
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - c);
        s += y[i];
    }
    return s;
#endif
}

/* sum of exp(x[i] - c) */
static float row_exp_sum_only(const float *x, int64_t n, float c)
{
#if OPS_AVX512
    __m512 acc = _mm512_setzero_ps(), vc = _mm512_set1_ps(c);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = v_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vc));
        acc = _mm512_mask_add_ps(acc, m, acc, e);
    }
    return _mm512_reduce_add_ps(acc);
#else
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += expf(x[i] - c);
    return s;
#endif
}

/* y[i] = x[i] * s (vectorised through the elementwise kernel) */
static void row_scale(const float *x, float s, float *y, int64_t n)
{
    struct ew_args e = {EW_SCALE, x, NULL, s, y, n};
    ew_run(&e, 0, n);
}

/* ---- normalisations --------------------------------------------------------------------- */

struct norm_args {
    const float *x, *gamma, *beta, *mask;
    float *y;
    int64_t ldx, ldy, cols, mask_ld;
    float eps;
};

/* LayerNorm of one row by the corrected two-pass method: m0 = sum/n, then with d = x - m0,
 * mean = m0 + sum(d)/n and var = sum(d^2)/n - (sum(d)/n)^2 (removes the rounding error of m0). */
static void layer_norm_row(const struct norm_args *w, const float *x, float *y)
{
    int64_t n = w->cols;
    float m0 = row_sum(x, n) / (float)n, sd, sq;
    row_dev_sums(x, n, m0, &sd, &sq);
    float corr = sd / (float)n;
    float mean = m0 + corr;
    float var = sq / (float)n - corr * corr;
    var = var > 0.0f ? var : 0.0f;
    float rstd = 1.0f / sqrtf(var + w->eps);
    const float *g = w->gamma, *b = w->beta;
#if OPS_AVX512
    __m512 vm = _mm512_set1_ps(mean), vr = _mm512_set1_ps(rstd);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), vr);
        if (g)
            v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, g + i));
        if (b)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
#else
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] - mean) * rstd;
        if (g)
            v *= g[i];
        if (b)
            v += b[i];
        y[i] = v;
    }
#endif
}

static void layer_norm_task(void *arg, int64_t r0, int64_t r1)
{
    const struct norm_args *w = arg;
    for (int64_t r = r0; r < r1; r++)
        layer_norm_row(w, w->x + r * w->ldx, w->y + r * w->ldy);
}

void ops_layer_norm(cochlea_ctx *ctx, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                    int64_t cols, const float *gamma, const float *beta, float eps)
{
    if (rows <= 0 || cols <= 0 || ldx < cols || ldy < cols)
        return;
    struct norm_args w = {x, gamma, beta, NULL, y, ldx, ldy, cols, 0, eps};
    par_for(ctx, rows, cols, layer_norm_task, &w);
}

/* RMSNorm of rows [r0, r1): y = x / sqrt(sum(x^2)/n + eps) * gamma */
static void rms_norm_task(void *arg, int64_t r0, int64_t r1)
{
    const struct norm_args *w = arg;
    int64_t n = w->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = w->x + r * w->ldx;
        float *y = w->y + r * w->ldy;
        float sd, sq;
        row_dev_sums(x, n, 0.0f, &sd, &sq);
        float ms = sq / (float)n;
        float s = 1.0f / sqrtf(ms + w->eps);
        row_scale(x, s, y, n);
        if (w->gamma) {
            struct ew_args e = {EW_MUL, y, w->gamma, 0.0f, y, n};
            ew_run(&e, 0, n);
        }
    }
}

void ops_rms_norm(cochlea_ctx *ctx, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                  int64_t cols, const float *gamma, float eps)
{
    if (rows <= 0 || cols <= 0 || ldx < cols || ldy < cols)
        return;
    struct norm_args w = {x, gamma, NULL, NULL, y, ldx, ldy, cols, 0, eps};
    par_for(ctx, rows, cols, rms_norm_task, &w);
}

/* ---- softmax ------------------------------------------------------------------------------ */

/* Softmax of rows [r0, r1): z = x + mask written to y, then max, exp(z - max) and its sum, and
 * the scaling by 1/sum; rows with max = -inf become zeros. */
static void softmax_task(void *arg, int64_t r0, int64_t r1)
{
    const struct norm_args *w = arg;
    int64_t n = w->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = w->x + r * w->ldx;
        float *y = w->y + r * w->ldy;
        if (w->mask) {
            struct ew_args e = {EW_ADD, x, w->mask + r * w->mask_ld, 0.0f, y, n};
            ew_run(&e, 0, n);
            x = y;
        }
        float mx = row_max(x, n);
        if (mx == -INFINITY) { /* fully masked row */
            memset(y, 0, (size_t)n * sizeof *y);
            continue;
        }
        float sum = row_exp_sum(x, y, n, mx);
        row_scale(y, 1.0f / sum, y, n);
    }
}

void ops_softmax(cochlea_ctx *ctx, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                 int64_t cols, const float *mask, int64_t mask_ld)
{
    if (rows <= 0 || cols <= 0 || ldx < cols || ldy < cols || mask_ld < 0)
        return;
    struct norm_args w = {x, NULL, NULL, mask, y, ldx, ldy, cols, mask ? mask_ld : 0, 0.0f};
    par_for(ctx, rows, cols * 4, softmax_task, &w);
}

/* log_softmax of rows [r0, r1): (x - max) - log(sum exp(x - max)); all -inf rows stay -inf. */
static void log_softmax_task(void *arg, int64_t r0, int64_t r1)
{
    const struct norm_args *w = arg;
    int64_t n = w->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = w->x + r * w->ldx;
        float *y = w->y + r * w->ldy;
        float mx = row_max(x, n);
        if (mx == -INFINITY) {
            for (int64_t i = 0; i < n; i++)
                y[i] = -INFINITY;
            continue;
        }
        float lse = logf(row_exp_sum_only(x, n, mx));
#if OPS_AVX512
        __m512 vm = _mm512_set1_ps(mx), vl = _mm512_set1_ps(lse);
        for (int64_t i = 0; i < n; i += 16) {
            __mmask16 m = tail_mask(n - i);
            __m512 v = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), vl);
            _mm512_mask_storeu_ps(y + i, m, v);
        }
#else
        for (int64_t i = 0; i < n; i++)
            y[i] = (x[i] - mx) - lse;
#endif
    }
}

void ops_log_softmax(cochlea_ctx *ctx, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                     int64_t cols)
{
    if (rows <= 0 || cols <= 0 || ldx < cols || ldy < cols)
        return;
    struct norm_args w = {x, NULL, NULL, NULL, y, ldx, ldy, cols, 0, 0.0f};
    par_for(ctx, rows, cols * 4, log_softmax_task, &w);
}

/* ---- embeddings ---------------------------------------------------------------------------- */

struct emb_args {
    const tensor *table;
    const int32_t *ids;
    float *out;
    int64_t dim;
};

static void emb_task(void *arg, int64_t i0, int64_t i1)
{
    const struct emb_args *w = arg;
    for (int64_t i = i0; i < i1; i++)
        tensor_row_to_f32(w->table, w->ids[i], w->out + i * w->dim);
}

int ops_embedding(cochlea_ctx *ctx, const tensor *table, const int32_t *ids, int64_t n, float *out)
{
    const char *name = table && table->name ? table->name : "(unnamed)";
    if (!table || !table->data)
        return err_set(COCHLEA_EINVAL, "embedding: table '%s' has no data", name);
    if (type_size(table->type) == 0)
        return err_set(COCHLEA_EUNSUPPORTED, "embedding: table '%s' has unknown type %d", name, (int)table->type);
    if (table->ne[0] < 1 || table->ne[0] % type_block(table->type) != 0)
        return err_set(COCHLEA_EINVAL, "embedding: table '%s' rows of %lld are not whole %s blocks", name,
                       (long long)table->ne[0], type_name(table->type));
    int64_t vocab = 1;
    for (int d = 0; d < TENSOR_MAX_DIMS; d++) {
        if (table->ne[d] < 1)
            return err_set(COCHLEA_EINVAL, "embedding: table '%s' has dimension %d of size %lld", name, d,
                           (long long)table->ne[d]);
        if (d > 0) {
            if (vocab > INT64_MAX / table->ne[d])
                return err_set(COCHLEA_ERANGE, "embedding: table '%s' has too many rows", name);
            vocab *= table->ne[d];
        }
    }
    if (n < 0)
        return err_set(COCHLEA_EINVAL, "embedding: negative id count %lld for table '%s'", (long long)n, name);
    if (n > 0 && (!ids || !out))
        return err_set(COCHLEA_EINVAL, "embedding: NULL ids or output for table '%s'", name);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return err_set(COCHLEA_ERANGE, "embedding: id %ld at index %lld is outside table '%s' (%lld rows)",
                           (long)ids[i], (long long)i, name, (long long)vocab);
    struct emb_args w = {table, ids, out, table->ne[0]};
    par_for(ctx, n, table->ne[0] * 2, emb_task, &w);
    return COCHLEA_OK;
}

/* ---- sinusoidal positional encoding --------------------------------------------------------- */

struct pe_args {
    float *out;
    const float *freq;
    int64_t d, pos0, step;
};

/* PE rows [t0, t1): sin/cos of the float product p * w_i (see ops_sinusoidal_pe). */
static void pe_task(void *arg, int64_t t0, int64_t t1)
{
    const struct pe_args *w = arg;
    for (int64_t t = t0; t < t1; t++) {
        float p = (float)(w->pos0 + t * w->step);
        float *row = w->out + t * w->d;
        for (int64_t i = 0; i < w->d / 2; i++) {
            float a = p * w->freq[i];
            row[2 * i] = sinf(a);
            row[2 * i + 1] = cosf(a);
        }
    }
}

int ops_sinusoidal_pe(cochlea_ctx *ctx, float *out, int64_t n_pos, int64_t d, int64_t pos0, int64_t step)
{
    const int64_t lim = (int64_t)1 << 24;
    if (d < 2 || d % 2 != 0)
        return err_set(COCHLEA_EINVAL, "sinusoidal positions: dimension %lld is not a positive even number",
                       (long long)d);
    if (n_pos < 0)
        return err_set(COCHLEA_EINVAL, "sinusoidal positions: negative count %lld", (long long)n_pos);
    if (n_pos == 0)
        return COCHLEA_OK;
    if (!out)
        return err_set(COCHLEA_EINVAL, "sinusoidal positions: NULL output");
    if (pos0 <= -lim || pos0 >= lim || step <= -lim || step >= lim || n_pos >= lim ||
        llabs(pos0 + (n_pos - 1) * step) >= lim)
        return err_set(COCHLEA_ERANGE,
                       "sinusoidal positions: positions %lld + t * %lld for t < %lld leave (-2^24, 2^24)",
                       (long long)pos0, (long long)step, (long long)n_pos);
    float *freq = malloc((size_t)(d / 2) * sizeof *freq);
    if (!freq)
        return err_set(COCHLEA_ENOMEM, "sinusoidal positions: cannot allocate %lld floats", (long long)(d / 2));
    /* as torch: exp(arange(0, d, 2, float32) * -(ln(10000) / d)), the factor rounded to float */
    const float c = (float)(-(log(10000.0) / (double)d));
    for (int64_t i = 0; i < d / 2; i++)
        freq[i] = expf((float)(2 * i) * c);
    struct pe_args w = {out, freq, d, pos0, step};
    par_for(ctx, n_pos, d * 8, pe_task, &w);
    free(freq);
    return COCHLEA_OK;
}

/* ---- rotary position embedding ---------------------------------------------------------------- */

struct rope_args {
    float *x;
    const int32_t *pos;
    const double *inv_freq;
    int64_t ldx, n_head, head_dim, n_rot;
    enum ops_rope_mode mode;
};

/* RoPE on rows [t0, t1): cos/sin of each pair's angle computed once per row (in double) and
 * applied to that pair in every head. */
static void rope_task(void *arg, int64_t t0, int64_t t1)
{
    const struct rope_args *w = arg;
    int64_t half = w->n_rot / 2;
    for (int64_t t = t0; t < t1; t++) {
        float *row = w->x + t * w->ldx;
        for (int64_t i = 0; i < half; i++) {
            double th = (double)w->pos[t] * w->inv_freq[i];
            float c = (float)cos(th), s = (float)sin(th);
            int64_t ia = w->mode == OPS_ROPE_NEOX ? i : 2 * i;
            int64_t ib = w->mode == OPS_ROPE_NEOX ? i + half : 2 * i + 1;
            for (int64_t h = 0; h < w->n_head; h++) {
                float *xh = row + h * w->head_dim;
                float a = xh[ia], b = xh[ib];
                xh[ia] = a * c - b * s;
                xh[ib] = a * s + b * c;
            }
        }
    }
}

int ops_rope(cochlea_ctx *ctx, float *x, int64_t T, int64_t ldx, int64_t n_head, int64_t head_dim, int64_t n_rot,
             const int32_t *pos, float freq_base, enum ops_rope_mode mode)
{
    if (T < 0 || n_head < 1 || head_dim < 1)
        return err_set(COCHLEA_EINVAL, "rope: bad shape T=%lld n_head=%lld head_dim=%lld", (long long)T,
                       (long long)n_head, (long long)head_dim);
    if (n_rot < 0 || n_rot % 2 != 0 || n_rot > head_dim)
        return err_set(COCHLEA_EINVAL, "rope: n_rot %lld must be even and at most head_dim %lld", (long long)n_rot,
                       (long long)head_dim);
    if (n_head > INT64_MAX / head_dim || ldx < n_head * head_dim)
        return err_set(COCHLEA_EINVAL, "rope: row stride %lld is less than n_head * head_dim (%lld x %lld)",
                       (long long)ldx, (long long)n_head, (long long)head_dim);
    if (!(freq_base > 0.0f) || isinf(freq_base))
        return err_set(COCHLEA_EINVAL, "rope: freq_base %g must be positive and finite", (double)freq_base);
    if (mode != OPS_ROPE_NORMAL && mode != OPS_ROPE_NEOX)
        return err_set(COCHLEA_EINVAL, "rope: unknown mode %d", (int)mode);
    if (T == 0 || n_rot == 0)
        return COCHLEA_OK;
    if (!x || !pos)
        return err_set(COCHLEA_EINVAL, "rope: NULL data or positions");
    double stack[256], *inv = stack;
    int64_t half = n_rot / 2;
    if (half > (int64_t)(sizeof stack / sizeof stack[0])) {
        inv = malloc((size_t)half * sizeof *inv);
        if (!inv)
            return err_set(COCHLEA_ENOMEM, "rope: cannot allocate %lld frequencies", (long long)half);
    }
    for (int64_t i = 0; i < half; i++)
        inv[i] = pow((double)freq_base, -2.0 * (double)i / (double)n_rot);
    struct rope_args w = {x, pos, inv, ldx, n_head, head_dim, n_rot, mode};
    par_for(ctx, T, half * (40 + 6 * n_head), rope_task, &w);
    if (inv != stack)
        free(inv);
    return COCHLEA_OK;
}
