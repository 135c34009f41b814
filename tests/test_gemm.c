/* test_gemm.c - GEMM backends against naive double-precision references.
 *
 * Tolerances (per output element, with S = sum_k |x_k * w_k| over the products that form it):
 *   fp32 path:  |err| <= 1e-5 * S             (fp32 rounding of K-term sums, K <= 5000)
 *   bf16 path:  |err| <= 1e-5 * S' against the reference on bf16-rounded x and W (S' on the
 *               rounded values), and |err| <= 2^-7 * S against the exact reference (each bf16
 *               rounding is within 2^-9 relative, so a product is within ~2^-8)
 *   int8 path:  |err| <= sum_k (|x_k| + sx/2) * sw/2 + |w_k| * sx/2, plus 1e-5 * S, where sx is
 *               the activation step (range of x including 0, / 255) and sw = max|w_row| / 127 the
 *               weight row step: the worst case of round-to-nearest quantisation of both sides.
 * Thread independence: 1 vs 2 threads agree within 1e-6 * S (summation order only). */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "gemm.h"
#include "gemm_internal.h"
#include "tensor.h"
#include "testutil.h"

/* An assertion for inner loops: Check's ck_assert_* writes to a pipe on every pass (a system
 * call per element); this one only calls into Check when it fails. */
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            ck_abort_msg(__VA_ARGS__);                                                                       \
    } while (0)

static const enum cochlea_type all_types[] = {COCHLEA_TYPE_F32, COCHLEA_TYPE_F16, COCHLEA_TYPE_BF16,
                                              COCHLEA_TYPE_Q8_0};
static const enum cochlea_precision all_precs[] = {COCHLEA_PRECISION_F32, COCHLEA_PRECISION_BF16,
                                                   COCHLEA_PRECISION_INT8};

static cochlea_ctx *make_ctx(int threads, enum cochlea_precision p)
{
    cochlea_ctx *c = NULL;
    ck_assert_int_eq(ctx_create(threads, p, &c), 0);
    return c;
}

/* Backends to run: OpenBLAS always, oneDNN when this build has it. Returns the count. */
static int backends(enum gemm_backend out[2])
{
    cochlea_ctx *c = make_ctx(1, COCHLEA_PRECISION_F32);
    int n = 0;
    out[n++] = GEMM_BACKEND_OPENBLAS;
    if (gemm_set_backend(c->gemm, GEMM_BACKEND_ONEDNN) == 0)
        out[n++] = GEMM_BACKEND_ONEDNN;
    ctx_free(c);
    return n;
}

/* A {K, N} weight of type t with row stride padded by `pad` elements (a multiple of 32 for
 * Q8_0), filled from U(-1, 1); *deq receives its exact fp32 values (N rows of K). */
static void make_weight(test_rng *r, enum cochlea_type t, int64_t K, int64_t N, int64_t pad, tensor *W, tensor *store,
                        float **deq)
{
    int64_t ne[2] = {K + pad, N};
    ck_assert_int_eq(tensor_new(store, t, 2, ne), 0);
    float *row = test_alloc((size_t)(K + pad));
    for (int64_t n = 0; n < N; n++) {
        test_fill(r, row, (size_t)(K + pad), -1.0f, 1.0f);
        void *p = tensor_row(store, n);
        switch (t) {
        case COCHLEA_TYPE_F32: memcpy(p, row, (size_t)(K + pad) * sizeof(float)); break;
        case COCHLEA_TYPE_F16: f32_to_fp16_array(row, p, (size_t)(K + pad)); break;
        case COCHLEA_TYPE_BF16: f32_to_bf16_array(row, p, (size_t)(K + pad)); break;
        case COCHLEA_TYPE_Q8_0: q8_0_quantize(row, p, (size_t)(K + pad)); break;
        default: ck_abort_msg("type");
        }
    }
    free(row);
    *W = *store;
    W->owned = 0;
    W->ne[0] = K;
    W->name = "test.weight";
    *deq = test_alloc((size_t)(K * N));
    for (int64_t n = 0; n < N; n++)
        tensor_row_to_f32(W, n, *deq + n * K);
}

static float bf16_round(float v)
{
    return bf16_to_f32(f32_to_bf16(v));
}

/* ref[i*N+j] = sum_k x[i,k] w[j,k] + bias[j] + beta*y0[i,j] in double; mag = sum |x w|. */
static void ref_linear(const float *x, int64_t M, int64_t ldx, const float *w, int64_t K, int64_t N, const float *bias,
                       float beta, const float *y0, int64_t ldy, int round_bf16, double *ref, double *mag)
{
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = 0, m = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = x[i * ldx + k], b = w[j * K + k];
                if (round_bf16) {
                    a = bf16_round((float)a);
                    b = bf16_round((float)b);
                }
                s += a * b;
                m += fabs(a * b);
            }
            if (bias)
                s += bias[j];
            if (beta != 0.0f) {
                s += (double)beta * y0[i * ldy + j];
                m += fabs((double)beta * y0[i * ldy + j]);
            }
            ref[i * N + j] = s;
            mag[i * N + j] = m + (bias ? fabs(bias[j]) : 0.0);
        }
    }
}

/* The int8 activation step: the range of x widened to include 0, over 255 levels. */
static double int8_step(const float *x, int64_t M, int64_t ldx, int64_t K)
{
    float mn = 0, mx = 0;
    for (int64_t a = 0; a < M; a++)
        for (int64_t k = 0; k < K; k++) {
            float v = x[a * ldx + k];
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
    return ((double)mx - mn) / 255.0;
}

/* The int8 worst-case bound for output (i, j), see the top of the file. */
static double int8_bound(const float *x, double sx, int64_t ldx, const float *w, int64_t K, int64_t i, int64_t j)
{
    double wmax = 0;
    for (int64_t k = 0; k < K; k++)
        wmax = fmax(wmax, fabs(w[j * K + k]));
    double sw = wmax / 127.0, b = 0;
    for (int64_t k = 0; k < K; k++)
        b += (fabs(x[i * ldx + k]) + sx / 2) * sw / 2 + fabs(w[j * K + k]) * sx / 2;
    return b;
}

/* The f32 -> bf16 kernels agree with the portable f32_to_bf16 bit for bit (the AVX512-BF16
 * instruction reads subnormals as zero: there the result must be a signed zero). */
START_TEST(test_bf16_kernels)
{
    enum { n = 1000 };
    float x[n];
    uint16_t ref[n], got[n];
    test_rng r = {3};
    for (int i = 0; i < n; i++) {
        uint32_t u = (uint32_t)test_rng_next(&r);
        memcpy(&x[i], &u, sizeof u); /* every bit pattern: NaN, Inf, subnormals, ties */
    }
    x[0] = 1.0f + 0x1p-8f;                 /* tie: rounds to even (1) */
    x[1] = 1.0f + 0x1p-8f + 0x1p-7f;       /* tie: rounds to even (1 + 2^-6) */
    x[2] = 3.0e38f;                        /* rounds up to Inf */
    x[3] = -0.0f;
    f32_to_bf16_array(x, ref, n);
    ck_assert_uint_eq(ref[0], 0x3f80);
    ck_assert_uint_eq(ref[1], 0x3f82);
    ck_assert_int_eq(gemm_cvt_bf16_kernel(x, got, n, 0), 0);
    ck_assert_mem_eq(got, ref, sizeof ref);
    ck_assert_int_eq(gemm_cvt_bf16_kernel(x, got, n, 3), COCHLEA_EUNSUPPORTED);
    for (int k = 1; k <= 2; k++) {
        for (size_t len = 0; len <= 40; len += 13) { /* tails of every length class */
            memset(got, 0xAB, sizeof got);
            if (gemm_cvt_bf16_kernel(x, got, len, k) != 0)
                break;
            ck_assert_uint_eq(got[len], 0xABAB); /* nothing written past the end */
        }
        if (gemm_cvt_bf16_kernel(x, got, n, k) != 0)
            continue; /* this CPU lacks the kernel */
        for (int i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &x[i], sizeof u);
            int sub = (u & 0x7f800000u) == 0;
            if (k == 2 && sub)
                CHECK((got[i] & 0x7fff) == 0 && (got[i] >> 15) == (u >> 31), "kernel 2: subnormal %08x -> %04x", u,
                      got[i]);
            else if ((u & 0x7fffffffu) > 0x7f800000u)
                CHECK((got[i] & 0x7fff) > 0x7f80 && (got[i] & 0x40), "kernel %d: NaN %08x -> %04x", k, u, got[i]);
            else
                CHECK(got[i] == ref[i], "kernel %d: %08x -> %04x, expected %04x", k, u, got[i], ref[i]);
        }
    }
}
END_TEST

/* gemm_parallel runs a task on all of the context's threads or on one: a team of another size
 * between two oneDNN products made libgomp end and restart threads on every call. */
struct par_rec {
    int calls[8];
    int nth[8];
};

static void par_task(void *arg, int ith, int nth)
{
    struct par_rec *r = arg;
    if (ith >= 0 && ith < 8) {
        r->calls[ith]++;
        r->nth[ith] = nth;
    }
}

START_TEST(test_parallel_team_size)
{
    cochlea_ctx *c = make_ctx(3, COCHLEA_PRECISION_F32);
    static const int64_t works[] = {1, GEMM_GRAIN, 2 * GEMM_GRAIN, 2 * GEMM_GRAIN + 1, 100 * GEMM_GRAIN};
    for (int omp = 0; omp < 2; omp++)
        for (size_t w = 0; w < sizeof works / sizeof works[0]; w++) {
            struct par_rec r;
            memset(&r, 0, sizeof r);
            gemm_parallel(c, omp, works[w], par_task, &r);
            int want = works[w] < 2 * GEMM_GRAIN ? 1 : 3;
            for (int i = 0; i < 8; i++) {
                ck_assert_int_eq(r.calls[i], i < want ? 1 : 0);
                if (i < want)
                    ck_assert_int_eq(r.nth[i], want);
            }
        }
    ctx_free(c);
}
END_TEST

/* ---- gemm_f32 -------------------------------------------------------------------------- */

static void check_f32_case(cochlea_ctx *c, test_rng *r, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                           float beta, int64_t pad)
{
    int64_t arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    int64_t lda = (acols ? acols : 1) + pad, ldb = (bcols ? bcols : 1) + pad, ldc = (N ? N : 1) + pad;
    float *A = test_alloc((size_t)(arows * lda)), *B = test_alloc((size_t)(brows * ldb));
    float *C = test_alloc((size_t)(M * ldc)), *C0 = test_alloc((size_t)(M * ldc));
    test_fill(r, A, (size_t)(arows * lda), -1, 1);
    test_fill(r, B, (size_t)(brows * ldb), -1, 1);
    test_fill(r, C0, (size_t)(M * ldc), -1, 1);
    for (int64_t i = 0; i < M * ldc; i++)
        C[i] = beta == 0.0f ? NAN : C0[i]; /* beta 0: C must not be read */
    ck_assert_int_eq(gemm_f32(c, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), 0);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = 0, m = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
                m += fabs(a * b);
            }
            double ref = alpha * s + (beta != 0.0f ? (double)beta * C0[i * ldc + j] : 0.0);
            double tol = 1e-5 * (fabs(alpha) * m + fabs(beta * C0[i * ldc + j])) + 1e-30;
            double got = C[i * ldc + j];
            CHECK(fabs(got - ref) <= tol, "%s gemm_f32 ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g: "
                          "C[%lld,%lld] = %.9g, expected %.9g",
                          gemm_backend_name(c->gemm, COCHLEA_PRECISION_F32), ta, tb, (long long)M, (long long)N,
                          (long long)K, alpha, beta, (long long)i, (long long)j, got, ref);
        }
        for (int64_t j = N; j < ldc; j++) /* padding untouched */
            CHECK(beta == 0.0f ? isnan(C[i * ldc + j]) : C[i * ldc + j] == C0[i * ldc + j], "padding written");
    }
    free(A);
    free(B);
    free(C);
    free(C0);
}

START_TEST(test_f32_shapes)
{
    enum gemm_backend be[2];
    int nb = backends(be);
    test_rng r = {11};
    static const int64_t sizes[][3] = {{1, 1, 1},    {1, 7, 33},   {5, 1, 3},    {3, 4, 0},   {2, 3, 1},
                                       {17, 31, 13}, {64, 64, 64}, {33, 65, 129}, {100, 3, 257}, {7, 300, 2}};
    static const float ab[][2] = {{1, 0}, {0.5f, 1}, {-2, 0.25f}};
    for (int b = 0; b < nb; b++) {
        cochlea_ctx *c = make_ctx(1, COCHLEA_PRECISION_F32); /* 2 threads: test_thread_independence */
        ck_assert_int_eq(gemm_set_backend(c->gemm, be[b]), 0);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int t = 0; t < 4; t++)
                check_f32_case(c, &r, t & 1, t >> 1, sizes[s][0], sizes[s][1], sizes[s][2], ab[(s + t) % 3][0],
                               ab[(s + t) % 3][1], (int64_t)((s + t) % 3));
        ctx_free(c);
    }
}
END_TEST

START_TEST(test_f32_empty)
{
    cochlea_ctx *c = make_ctx(1, COCHLEA_PRECISION_F32);
    float C[4] = {1, 2, 3, 4};
    /* M = 0 and N = 0 do nothing; K = 0 gives C = beta * C */
    ck_assert_int_eq(gemm_f32(c, 0, 0, 0, 2, 2, 1.0f, NULL, 2, NULL, 2, 0.0f, C, 2), 0);
    ck_assert_int_eq(gemm_f32(c, 0, 0, 2, 0, 2, 1.0f, NULL, 2, NULL, 1, 0.0f, C, 1), 0);
    ck_assert_float_eq(C[0], 1.0f);
    ck_assert_int_eq(gemm_f32(c, 0, 0, 2, 2, 0, 1.0f, NULL, 1, NULL, 2, 0.5f, C, 2), 0);
    ck_assert_float_eq(C[0], 0.5f);
    ck_assert_float_eq(C[3], 2.0f);
    ctx_free(c);
}
END_TEST

/* ---- gemm_linear: every weight type x every precision x every backend ------------------ */

static void check_linear_case(cochlea_ctx *c, test_rng *r, enum cochlea_type t, int64_t M, int64_t K, int64_t N,
                              int use_bias, float beta, int64_t pad)
{
    tensor W, store;
    float *w;
    int64_t wpad = t == COCHLEA_TYPE_Q8_0 ? 32 * pad : pad;
    make_weight(r, t, K, N, wpad, &W, &store, &w);
    int64_t ldx = K + pad, ldy = N + 2 * pad;
    float *x = test_alloc((size_t)(M * ldx)), *y = test_alloc((size_t)(M * ldy)), *y0 = test_alloc((size_t)(M * ldy));
    float *bias = use_bias ? test_alloc((size_t)N) : NULL;
    test_fill(r, x, (size_t)(M * ldx), -1.0f, 1.0f);
    test_fill(r, y0, (size_t)(M * ldy), -1.0f, 1.0f);
    if (bias)
        test_fill(r, bias, (size_t)N, -0.5f, 0.5f);
    for (int64_t i = 0; i < M * ldy; i++)
        y[i] = beta == 0.0f ? NAN : y0[i];
    gemm_stats st0, st1;
    gemm_get_stats(c->gemm, &st0);
    int rc = gemm_linear(c, x, M, ldx, &W, bias, beta, y, ldy);
    ck_assert_msg(rc == 0, "gemm_linear failed: %s", cochlea_last_error());
    gemm_get_stats(c->gemm, &st1);
    double *ref = malloc(sizeof(double) * (size_t)(M * N)), *mag = malloc(sizeof(double) * (size_t)(M * N));
    double *refb = malloc(sizeof(double) * (size_t)(M * N)), *magb = malloc(sizeof(double) * (size_t)(M * N));
    ck_assert(ref && mag && refb && magb);
    ref_linear(x, M, ldx, w, K, N, bias, beta, y0, ldy, 0, ref, mag);
    ref_linear(x, M, ldx, w, K, N, bias, beta, y0, ldy, 1, refb, magb);
    const char *name = gemm_backend_name(c->gemm, c->precision);
    /* a product that fell back (no fast kernel for this shape) ran a more exact path */
    int fell = st1.fallbacks != st0.fallbacks;
    int is_bf16 = strncmp(name, "onednn-bf16", 11) == 0 && !fell, is_int8 = strncmp(name, "onednn-int8", 11) == 0;
    double sx = int8_step(x, M, ldx, K);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double got = y[i * ldy + j], e = ref[i * N + j], tol;
            if (is_int8)
                tol = int8_bound(x, sx, ldx, w, K, i, j) + 1e-5 * mag[i * N + j];
            else if (is_bf16)
                tol = 0x1p-7 * mag[i * N + j];
            else
                tol = 1e-5 * mag[i * N + j];
            CHECK(fabs(got - e) <= tol + 1e-30,
                          "%s, %s weight, M=%lld K=%lld N=%lld bias=%d beta=%g pad=%lld: y[%lld,%lld] = %.9g, expected "
                          "%.9g (tolerance %.3g)",
                          name, type_name(t), (long long)M, (long long)K, (long long)N, use_bias, beta, (long long)pad,
                          (long long)i, (long long)j, got, e, tol);
            if (is_bf16)
                CHECK(fabs(got - refb[i * N + j]) <= 1e-5 * magb[i * N + j] + 1e-30,
                              "%s, %s weight, M=%lld K=%lld N=%lld: y[%lld,%lld] = %.9g, bf16-rounded reference %.9g",
                              name, type_name(t), (long long)M, (long long)K, (long long)N, (long long)i,
                              (long long)j, got, refb[i * N + j]);
        }
        for (int64_t j = N; j < ldy; j++)
            CHECK(beta == 0.0f ? isnan(y[i * ldy + j]) : y[i * ldy + j] == y0[i * ldy + j],
                          "output padding written");
    }
    gemm_forget(c, &W);
    free(ref);
    free(mag);
    free(refb);
    free(magb);
    free(x);
    free(y);
    free(y0);
    free(bias);
    free(w);
    tensor_free(&store);
}

static void linear_all(int type_index)
{
    enum gemm_backend be[2];
    int nb = backends(be);
    test_rng r = {100 + (uint64_t)type_index};
    enum cochlea_type t = all_types[type_index];
    /* M, K, N; K a multiple of 32 where Q8_0 needs it */
    static const int64_t shapes[][3] = {{1, 32, 1},  {1, 64, 17},  {3, 96, 5},    {17, 32, 33},
                                        {64, 128, 70}, {65, 160, 257}, {130, 64, 48}, {3, 1024, 1100}};
    static const int64_t odd[][3] = {{1, 1, 1}, {2, 7, 3}, {9, 33, 19}};
    for (int b = 0; b < nb; b++) {
        for (size_t p = 0; p < 3; p++) {
            cochlea_ctx *c = make_ctx(1, all_precs[p]);
            ck_assert_int_eq(gemm_set_backend(c->gemm, be[b]), 0);
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_linear_case(c, &r, t, shapes[s][0], shapes[s][1], shapes[s][2], (int)(s & 1),
                                  s % 3 == 2 ? 0.5f : 0.0f, (int64_t)(s % 2));
            if (t != COCHLEA_TYPE_Q8_0)
                for (size_t s = 0; s < sizeof odd / sizeof odd[0]; s++)
                    check_linear_case(c, &r, t, odd[s][0], odd[s][1], odd[s][2], (int)(s & 1), s == 1 ? 1.0f : 0.0f,
                                      (int64_t)s);
            ctx_free(c);
        }
    }
}

START_TEST(test_linear_f32_weights) { linear_all(0); }
END_TEST
START_TEST(test_linear_f16_weights) { linear_all(1); }
END_TEST
START_TEST(test_linear_bf16_weights) { linear_all(2); }
END_TEST
START_TEST(test_linear_q8_0_weights) { linear_all(3); }
END_TEST

/* Blocks large enough that the conversion, quantisation and tile dequantisation split across 2
 * threads (dense and strided rows), on both backends. */
START_TEST(test_linear_parallel_glue)
{
    enum gemm_backend be[2];
    int nb = backends(be);
    test_rng r = {77};
    for (int b = 0; b < nb; b++)
        for (size_t p = 0; p < 3; p++) {
            cochlea_ctx *c = make_ctx(2, all_precs[p]);
            ck_assert_int_eq(gemm_set_backend(c->gemm, be[b]), 0);
            check_linear_case(c, &r, COCHLEA_TYPE_F16, 160, 256, 300, 1, 0.0f, 0);
            check_linear_case(c, &r, COCHLEA_TYPE_Q8_0, 161, 256, 300, 0, 1.0f, 1);
            ctx_free(c);
        }
}
END_TEST

/* The bf16 path rounds (not truncates) x: a value just above a bf16 midpoint must round up. */
START_TEST(test_bf16_rounds_to_nearest)
{
    cochlea_ctx *c = make_ctx(1, COCHLEA_PRECISION_BF16);
    if (strcmp(gemm_backend_name(c->gemm, COCHLEA_PRECISION_BF16), "onednn-bf16") != 0) {
        ctx_free(c);
        return; /* fp32 path: exact, nothing to check here */
    }
    int64_t ne[2] = {32, 1};
    tensor W;
    ck_assert_int_eq(tensor_new(&W, COCHLEA_TYPE_F32, 2, ne), 0);
    float x[32] = {0}, y = 0;
    ((float *)W.data)[0] = 1.0f;
    x[0] = 1.0f + 0x1p-8f + 0x1p-12f; /* bf16 neighbours 1 and 1 + 2^-7: nearest is 1 + 2^-7 */
    ck_assert_int_eq(gemm_linear(c, x, 1, 32, &W, NULL, 0.0f, &y, 1), 0);
    ck_assert_float_eq(y, 1.0f + 0x1p-7f);
    tensor_free(&W);
    ctx_free(c);
}
END_TEST

/* ggml's tests/test-quantize-fns.cpp budget, in our words: on rows of 4096 values of the
 * synthetic signal 0.1 + 2 cos(i + offset), the total quantisation error sqrt(sum of squared
 * errors) / n (ggml's "rmse") stays below 0.002, and a dot product against the quantised weight
 * differs from the fp32 one by less than 0.02 per element (|difference| / n). We also check the
 * stricter per-value bound of round-to-nearest: |error| <= d / 2 for the block's step d. */
START_TEST(test_q8_0_budget)
{
    const int64_t K = 4096, N = 8, M = 4;
    int64_t ne[2] = {K, N};
    tensor W32, W8;
    ck_assert_int_eq(tensor_new(&W32, COCHLEA_TYPE_F32, 2, ne), 0);
    ck_assert_int_eq(tensor_new(&W8, COCHLEA_TYPE_Q8_0, 2, ne), 0);
    float *w = W32.data, *deq = test_alloc((size_t)K), *x = test_alloc((size_t)(M * K));
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++)
            w[n * K + k] = 0.1f + 2.0f * cosf((float)k + (float)n);
        q8_0_quantize(w + n * K, tensor_row(&W8, n), (size_t)K);
        tensor_row_to_f32(&W8, n, deq);
        double se = 0;
        const block_q8_0 *blk = tensor_row(&W8, n);
        for (int64_t k = 0; k < K; k++) {
            double e = (double)deq[k] - w[n * K + k];
            se += e * e;
            /* half a step, plus the fp16 rounding of the stored step (2^-11 relative) times |q| <= 127 */
            double d = fp16_to_f32(blk[k / QK8_0].d);
            CHECK(fabs(e) <= 0.5 * d + 127 * d * 0x1p-11 + 1e-7,
                          "row %lld value %lld: error %.5f beyond half a step", (long long)n, (long long)k, e);
        }
        ck_assert_msg(sqrt(se) / (double)K < 0.002, "row %lld: Q8_0 total error %.6f", (long long)n, sqrt(se) / (double)K);
    }
    for (int64_t i = 0; i < M * K; i++)
        x[i] = 0.1f + 2.0f * cosf((float)i + 7.0f);
    for (size_t p = 0; p < 3; p++) {
        cochlea_ctx *c = make_ctx(2, all_precs[p]);
        float y32[32], y8[32];
        ck_assert_int_eq(gemm_linear(c, x, M, K, &W32, NULL, 0.0f, y32, N), 0);
        ck_assert_int_eq(gemm_linear(c, x, M, K, &W8, NULL, 0.0f, y8, N), 0);
        for (int64_t i = 0; i < M * N; i++)
            CHECK(fabs((double)y8[i] - y32[i]) / (double)K < 0.02, "%s: output %lld: %.5f vs %.5f",
                          gemm_backend_name(c->gemm, all_precs[p]), (long long)i, y8[i], y32[i]);
        ctx_free(c);
    }
    free(deq);
    free(x);
    tensor_free(&W32);
    tensor_free(&W8);
}
END_TEST

/* ---- threads, caches, fallbacks -------------------------------------------------------- */

START_TEST(test_thread_independence)
{
    test_rng r = {7};
    const int64_t M = 50, K = 320, N = 300;
    for (size_t t = 0; t < 4; t++) {
        tensor W, store;
        float *w;
        make_weight(&r, all_types[t], K, N, 0, &W, &store, &w);
        float *x = test_alloc((size_t)(M * K)), *y1 = test_alloc((size_t)(M * N)), *y2 = test_alloc((size_t)(M * N));
        test_fill(&r, x, (size_t)(M * K), -1, 1);
        for (size_t p = 0; p < 3; p++) {
            cochlea_ctx *c1 = make_ctx(1, all_precs[p]), *c2 = make_ctx(2, all_precs[p]);
            ck_assert_int_eq(gemm_linear(c1, x, M, K, &W, NULL, 0.0f, y1, N), 0);
            ck_assert_int_eq(gemm_linear(c2, x, M, K, &W, NULL, 0.0f, y2, N), 0);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double m = 0;
                    for (int64_t k = 0; k < K; k++)
                        m += fabs((double)x[i * K + k] * w[j * K + k]);
                    CHECK(fabs((double)y1[i * N + j] - y2[i * N + j]) <= 1e-6 * m,
                                  "%s %s: 1 thread %.9g, 2 threads %.9g", type_name(all_types[t]),
                                  gemm_backend_name(c1->gemm, all_precs[p]), y1[i * N + j], y2[i * N + j]);
                }
            ctx_free(c1);
            ctx_free(c2);
        }
        free(x);
        free(y1);
        free(y2);
        free(w);
        tensor_free(&store);
    }
}
END_TEST

static void check_pack_cache(enum cochlea_precision prec, const char *path)
{
    cochlea_ctx *c = make_ctx(1, prec);
    int packs = strcmp(gemm_backend_name(c->gemm, prec), path) == 0;
    test_rng r = {5};
    tensor W, store;
    float *w;
    make_weight(&r, COCHLEA_TYPE_BF16, 96, 64, 0, &W, &store, &w);
    float x[3 * 96], y1[3 * 64], y2[3 * 64];
    test_fill(&r, x, 3 * 96, -1, 1);
    gemm_stats st;
    ck_assert_int_eq(gemm_linear(c, x, 3, 96, &W, NULL, 0.0f, y1, 64), 0);
    const void *p1 = gemm_packed_data(c, &W, prec);
    ck_assert_int_eq(gemm_linear(c, x, 3, 96, &W, NULL, 0.0f, y2, 64), 0);
    ck_assert_mem_eq(y1, y2, sizeof y1);
    gemm_get_stats(c->gemm, &st);
    if (!packs) {
        ck_assert_ptr_null(p1);
        ck_assert_int_eq((int)st.packs, 0);
    } else {
        ck_assert_ptr_nonnull(p1);
        ck_assert_ptr_eq(gemm_packed_data(c, &W, prec), p1);
        ck_assert_int_eq((int)st.packs, 1);
        ck_assert_int_ge((int)st.pack_hits, 1);
        ck_assert_int_eq(st.n_packed, 1);
        ck_assert_int_eq(st.n_primitives, 1);
        ck_assert_int_ge((int)st.primitive_hits, 1);
        ck_assert(st.packed_bytes >= 96 * 64);
        /* the packing is per precision: another precision has none yet */
        ck_assert_ptr_null(gemm_packed_data(c, &W, prec == COCHLEA_PRECISION_BF16 ? COCHLEA_PRECISION_INT8
                                                                               : COCHLEA_PRECISION_BF16));
        /* changing W in place (first row sampled by the fingerprint) repacks, and the result follows */
        uint16_t *wd = W.data;
        wd[0] = f32_to_bf16(8.0f);
        w[0] = 8.0f;
        ck_assert_int_eq(gemm_linear(c, x, 3, 96, &W, NULL, 0.0f, y2, 64), 0);
        gemm_get_stats(c->gemm, &st);
        ck_assert_int_eq((int)st.packs, 2);
        ck_assert_int_eq(st.n_packed, 1);
        double sx = int8_step(x, 3, 96, 96);
        for (int i = 0; i < 3; i++) {
            double s = 0, m = 0;
            for (int k = 0; k < 96; k++) {
                s += (double)x[i * 96 + k] * w[k];
                m += fabs((double)x[i * 96 + k] * w[k]);
            }
            double tol = prec == COCHLEA_PRECISION_INT8 ? int8_bound(x, sx, 96, w, 96, i, 0) + 1e-5 * m : 0x1p-7 * m;
            ck_assert_msg(fabs(s - y2[i * 64]) <= tol, "row %d after change: %g vs %g", i, y2[i * 64], s);
            ck_assert_msg(fabs(s - y1[i * 64]) > tol, "row %d: the change is not visible", i);
        }
        /* gemm_prepare packs a new weight ahead; the product then finds it */
        tensor W2, store2;
        float *w2;
        make_weight(&r, COCHLEA_TYPE_F16, 96, 64, 0, &W2, &store2, &w2);
        ck_assert_int_eq(gemm_prepare(c, &W2), 0);
        gemm_get_stats(c->gemm, &st);
        ck_assert_int_eq((int)st.packs, 3);
        ck_assert_int_eq(gemm_linear(c, x, 3, 96, &W2, NULL, 0.0f, y2, 64), 0);
        gemm_get_stats(c->gemm, &st);
        ck_assert_int_eq((int)st.packs, 3);
        /* forget drops it */
        gemm_forget(c, &W2);
        ck_assert_ptr_null(gemm_packed_data(c, &W2, prec));
        gemm_get_stats(c->gemm, &st);
        ck_assert_int_eq(st.n_packed, 1);
        free(w2);
        tensor_free(&store2);
    }
    free(w);
    tensor_free(&store);
    ctx_free(c);
}

START_TEST(test_pack_cache_bf16) { check_pack_cache(COCHLEA_PRECISION_BF16, "onednn-bf16"); }
END_TEST
START_TEST(test_pack_cache_int8) { check_pack_cache(COCHLEA_PRECISION_INT8, "onednn-int8"); }
END_TEST

/* Inf/NaN in x cannot be quantised: the int8 path hands the call to fp32 and they propagate. */
START_TEST(test_int8_nonfinite)
{
    cochlea_ctx *c = make_ctx(1, COCHLEA_PRECISION_INT8);
    int64_t ne[2] = {32, 2};
    tensor W;
    ck_assert_int_eq(tensor_new(&W, COCHLEA_TYPE_F32, 2, ne), 0);
    float *w = W.data;
    for (int i = 0; i < 64; i++)
        w[i] = 0.5f;
    float x[64], y[4];
    for (int i = 0; i < 64; i++)
        x[i] = 1.0f;
    x[3] = INFINITY;
    x[40] = NAN;
    ck_assert_int_eq(gemm_linear(c, x, 2, 32, &W, NULL, 0.0f, y, 2), 0);
    ck_assert(isinf(y[0]) && y[0] > 0 && isinf(y[1]));
    ck_assert(isnan(y[2]) && isnan(y[3]));
    tensor_free(&W);
    ctx_free(c);
}
END_TEST

/* ---- bad arguments --------------------------------------------------------------------- */

START_TEST(test_bad_arguments)
{
    cochlea_ctx *c = make_ctx(1, COCHLEA_PRECISION_F32);
    float buf[64] = {0};
    ck_assert_int_eq(gemm_f32(c, 0, 0, -1, 2, 2, 1, buf, 2, buf, 2, 0, buf, 2), COCHLEA_EINVAL);
    ck_assert_int_eq(gemm_f32(c, 0, 0, 2, 2, -3, 1, buf, 2, buf, 2, 0, buf, 2), COCHLEA_EINVAL);
    ck_assert_int_eq(gemm_f32(c, 0, 0, 2, 2, 3, 1, buf, 2, buf, 2, 0, buf, 2), COCHLEA_EINVAL); /* lda < K */
    ck_assert_int_eq(gemm_f32(c, 1, 0, 3, 2, 2, 1, buf, 2, buf, 2, 0, buf, 2), COCHLEA_EINVAL); /* lda < M */
    ck_assert_int_eq(gemm_f32(c, 0, 1, 2, 3, 2, 1, buf, 2, buf, 1, 0, buf, 3), COCHLEA_EINVAL); /* ldb < K */
    ck_assert_int_eq(gemm_f32(c, 0, 0, 2, 3, 2, 1, buf, 2, buf, 3, 0, buf, 2), COCHLEA_EINVAL); /* ldc < N */
    ck_assert_int_eq(gemm_f32(c, 0, 0, 2, 2, 2, 1, NULL, 2, buf, 2, 0, buf, 2), COCHLEA_EINVAL);
    ck_assert_int_eq(gemm_f32(NULL, 0, 0, 2, 2, 2, 1, buf, 2, buf, 2, 0, buf, 2), COCHLEA_EINVAL);

    int64_t ne[2] = {8, 4};
    tensor W;
    ck_assert_int_eq(tensor_new(&W, COCHLEA_TYPE_F32, 2, ne), 0);
    W.name = "enc.w";
    ck_assert_int_eq(gemm_linear(c, buf, -1, 8, &W, NULL, 0, buf, 4), COCHLEA_EINVAL);
    ck_assert_int_eq(gemm_linear(c, buf, 2, 7, &W, NULL, 0, buf, 4), COCHLEA_EINVAL); /* ldx < K */
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "enc.w"));
    ck_assert_int_eq(gemm_linear(c, buf, 2, 8, &W, NULL, 0, buf, 3), COCHLEA_EINVAL); /* ldy < N */
    ck_assert_int_eq(gemm_linear(c, NULL, 2, 8, &W, NULL, 0, buf, 4), COCHLEA_EINVAL);
    ck_assert_int_eq(gemm_linear(c, buf, 2, 8, NULL, NULL, 0, buf, 4), COCHLEA_EINVAL);
    ck_assert_int_eq(gemm_linear(c, buf, 0, 8, &W, NULL, 0, NULL, 4), COCHLEA_OK); /* M = 0: nothing to do */
    tensor bad = W;
    bad.type = COCHLEA_TYPE_I32;
    ck_assert_int_eq(gemm_linear(c, buf, 2, 8, &bad, NULL, 0, buf, 4), COCHLEA_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "i32"));
    bad.type = (enum cochlea_type)99;
    ck_assert_int_eq(gemm_linear(c, buf, 2, 8, &bad, NULL, 0, buf, 4), COCHLEA_EUNSUPPORTED);
    ck_assert_int_eq(gemm_prepare(c, &bad), COCHLEA_EUNSUPPORTED);
    bad = W;
    bad.ne[2] = 2; /* 3-D */
    ck_assert_int_eq(gemm_linear(c, buf, 2, 8, &bad, NULL, 0, buf, 4), COCHLEA_EINVAL);
    bad = W;
    bad.nb[1] = 16; /* rows overlap */
    ck_assert_int_eq(gemm_linear(c, buf, 2, 8, &bad, NULL, 0, buf, 4), COCHLEA_EINVAL);
    bad = W;
    bad.data = NULL;
    ck_assert_int_eq(gemm_linear(c, buf, 2, 8, &bad, NULL, 0, buf, 4), COCHLEA_EINVAL);
    /* Q8_0 with K not a multiple of 32 (hand-made, tensor_init refuses it) */
    bad = W;
    bad.type = COCHLEA_TYPE_Q8_0;
    bad.ne[0] = 48;
    bad.nb[0] = sizeof(block_q8_0);
    bad.nb[1] = 2 * sizeof(block_q8_0);
    ck_assert_int_eq(gemm_linear(c, buf, 1, 48, &bad, NULL, 0, buf, 4), COCHLEA_EINVAL);
    /* unknown precision and backend */
    c->precision = (enum cochlea_precision)7;
    ck_assert_int_eq(gemm_linear(c, buf, 2, 8, &W, NULL, 0, buf, 4), COCHLEA_EINVAL);
    c->precision = COCHLEA_PRECISION_F32;
    ck_assert_int_eq(gemm_set_backend(c->gemm, (enum gemm_backend)9), COCHLEA_EINVAL);
    tensor_free(&W);
    ctx_free(c);
}
END_TEST

/* ---- gemm_linear_small: every weight type, 1..GEMM_SMALL_MAX_M rows, batch invariance ------ */

START_TEST(test_linear_small)
{
    test_rng r = {77};
    tensor probe = {0};
    probe.type = COCHLEA_TYPE_F32;
    if (!gemm_small_available(&probe, 1)) {
        /* no AVX-512 here: the kernel must say so, and callers use gemm_linear */
        cochlea_ctx *c = make_ctx(1, COCHLEA_PRECISION_F32);
        float x = 1, y = 0;
        probe.ne[0] = probe.ne[1] = 1;
        ck_assert_int_eq(gemm_linear_small(c, &x, 1, 1, &probe, NULL, 0.0f, &y, 1), COCHLEA_EUNSUPPORTED);
        ctx_free(c);
        return;
    }
    cochlea_ctx *c1 = make_ctx(1, COCHLEA_PRECISION_F32), *c2 = make_ctx(2, COCHLEA_PRECISION_F32);
    cochlea_ctx *cb = make_ctx(2, COCHLEA_PRECISION_BF16);
    /* K: a multiple of 16, a tail, a Q8_0 shape; N odd (the unpaired last weight row), large
     * enough that two threads split it */
    static const int64_t shapes[][2] = {{64, 33}, {77, 130}, {256, 1027}, {704, 96}};
    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        enum cochlea_type t = all_types[ti];
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            int64_t K = shapes[si][0], N = shapes[si][1], M = GEMM_SMALL_MAX_M;
            if (t == COCHLEA_TYPE_Q8_0 && K % 32)
                continue;
            tensor W, store;
            float *w;
            make_weight(&r, t, K, N, t == COCHLEA_TYPE_Q8_0 ? 32 : 3, &W, &store, &w);
            int64_t ldx = K + 5, ldy = N + 3;
            float *x = test_alloc((size_t)(M * ldx)), *y0 = test_alloc((size_t)(M * ldy));
            float *bias = test_alloc((size_t)N), *full = test_alloc((size_t)(M * ldy));
            float *part = test_alloc((size_t)(M * ldy));
            test_fill(&r, x, (size_t)(M * ldx), -1.0f, 1.0f);
            test_fill(&r, y0, (size_t)(M * ldy), -1.0f, 1.0f);
            test_fill(&r, bias, (size_t)N, -0.5f, 0.5f);
            for (int with = 0; with < 2; with++) {
                float beta = with ? 0.5f : 0.0f;
                const float *b = with ? bias : NULL;
                double *ref = malloc(sizeof(double) * (size_t)(M * N)), *mag = malloc(sizeof(double) * (size_t)(M * N));
                ck_assert(ref && mag);
                ref_linear(x, M, ldx, w, K, N, b, beta, y0, ldy, 0, ref, mag);
                memcpy(full, y0, sizeof(float) * (size_t)(M * ldy));
                ck_assert_int_eq(gemm_linear_small(c1, x, M, ldx, &W, b, beta, full, ldy), 0);
                for (int64_t i = 0; i < M; i++) {
                    for (int64_t j = 0; j < N; j++)
                        CHECK(fabs(full[i * ldy + j] - ref[i * N + j]) <= 1e-5 * mag[i * N + j] + 1e-30,
                              "small %s K=%lld N=%lld: y[%lld,%lld] = %.9g, expected %.9g", type_name(t),
                              (long long)K, (long long)N, (long long)i, (long long)j, full[i * ldy + j],
                              ref[i * N + j]);
                    for (int64_t j = N; j < ldy; j++)
                        CHECK(full[i * ldy + j] == y0[i * ldy + j], "small: output padding written");
                }
                free(ref);
                free(mag);
                /* batch invariance: any sub-batch [m0, m0 + m), on 1 or 2 threads or at bf16
                 * precision, gives bit-identical rows */
                for (int64_t m = 1; m <= M; m += 3) {
                    int64_t m0 = (m * 7) % (M - m + 1);
                    cochlea_ctx *c = m % 2 ? c2 : (m % 3 ? cb : c1);
                    memcpy(part, y0, sizeof(float) * (size_t)(M * ldy));
                    ck_assert_int_eq(gemm_linear_small(c, x + m0 * ldx, m, ldx, &W, b, beta, part + m0 * ldy, ldy), 0);
                    CHECK(memcmp(part + m0 * ldy, full + m0 * ldy, sizeof(float) * (size_t)((m - 1) * ldy + N)) == 0,
                          "small %s K=%lld N=%lld: rows [%lld, %lld) alone differ from the same rows in a batch of %lld",
                          type_name(t), (long long)K, (long long)N, (long long)m0, (long long)(m0 + m), (long long)M);
                }
            }
            free(x);
            free(y0);
            free(bias);
            free(full);
            free(part);
            free(w);
            tensor_free(&store);
        }
    }
    /* out of range: M = 0 and M > GEMM_SMALL_MAX_M are refused, nothing written */
    {
        tensor W, store;
        float *w;
        make_weight(&r, COCHLEA_TYPE_F32, 16, 4, 0, &W, &store, &w);
        float *x = test_alloc(16 * (GEMM_SMALL_MAX_M + 1)), y[4 * (GEMM_SMALL_MAX_M + 1)];
        for (size_t i = 0; i < sizeof y / sizeof y[0]; i++)
            y[i] = 42.0f;
        ck_assert_int_eq(gemm_small_available(&W, GEMM_SMALL_MAX_M + 1), 0);
        ck_assert_int_eq(gemm_linear_small(c1, x, GEMM_SMALL_MAX_M + 1, 16, &W, NULL, 0.0f, y, 4), COCHLEA_EUNSUPPORTED);
        ck_assert_int_eq(gemm_linear_small(c1, x, 0, 16, &W, NULL, 0.0f, y, 4), COCHLEA_EUNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "test.weight"));
        for (size_t i = 0; i < sizeof y / sizeof y[0]; i++)
            ck_assert(y[i] == 42.0f);
        free(x);
        free(w);
        tensor_free(&store);
    }
    ctx_free(c1);
    ctx_free(c2);
    ctx_free(cb);
}
END_TEST

static Suite *gemm_suite(void)
{
    Suite *s = suite_create("gemm");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"bf16_kernels", test_bf16_kernels},
        {"parallel_team_size", test_parallel_team_size},
        {"f32_shapes", test_f32_shapes},
        {"f32_empty", test_f32_empty},
        {"linear_f32_weights", test_linear_f32_weights},
        {"linear_f16_weights", test_linear_f16_weights},
        {"linear_bf16_weights", test_linear_bf16_weights},
        {"linear_q8_0_weights", test_linear_q8_0_weights},
        {"linear_parallel_glue", test_linear_parallel_glue},
        {"bf16_rounds_to_nearest", test_bf16_rounds_to_nearest},
        {"q8_0_budget", test_q8_0_budget},
        {"thread_independence", test_thread_independence},
        {"pack_cache_bf16", test_pack_cache_bf16},
        {"pack_cache_int8", test_pack_cache_int8},
        {"int8_nonfinite", test_int8_nonfinite},
        {"bad_arguments", test_bad_arguments},
        {"linear_small", test_linear_small},
    };
    /* one case per test so that CK_RUN_CASE can pick one */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    return test_run_suite(gemm_suite());
}
