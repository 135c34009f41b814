/* test_ops.c - ops.h first section (elementwise, norms, softmax, activations, embeddings,
 * positions, attention) against naive double-precision references written here, on odd shapes
 * and edge cases, plus thread-count independence (1 vs 2 threads: bit-identical) and the
 * row-wise attention kernel's batch invariance. Tolerances are stated at each check. */
#include <string.h>

#include "ctx.h"
#include "error.h"
#include "ops.h"
#include "tensor.h"
#include "testutil.h"

/* Check's ck_assert records every passing assertion through a system call; these only call
 * into Check when the condition fails, so per-element checks stay cheap. */
#define EXPECT_MSG(cond, ...)                                                                                \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            ck_abort_msg(__VA_ARGS__);                                                                       \
    } while (0)
#define EXPECT(cond) EXPECT_MSG(cond, "assertion '%s' failed", #cond)
#define EXPECT_FEQ(a, b)                                                                                     \
    do {                                                                                                     \
        float a_ = (a), b_ = (b);                                                                            \
        EXPECT_MSG(a_ == b_, "%s == %s: %.9g != %.9g", #a, #b, (double)a_, (double)b_);                      \
    } while (0)

static cochlea_ctx *ctx1, *ctx2; /* 1 and 2 threads */

static void setup(void)
{
    ck_assert_int_eq(ctx_create(1, COCHLEA_PRECISION_F32, &ctx1), COCHLEA_OK);
    ck_assert_int_eq(ctx_create(2, COCHLEA_PRECISION_F32, &ctx2), COCHLEA_OK);
}

static void teardown(void)
{
    ctx_free(ctx1);
    ctx_free(ctx2);
}

static const int64_t sizes[] = {1, 2, 3, 15, 16, 17, 31, 33, 64, 100, 1023, 1025};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

/* Assert |got - ref| <= atol + rtol |ref| elementwise, ref in double. */
static void assert_close_d(const float *got, const double *ref, size_t n, double atol, double rtol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        EXPECT_MSG(!isnan(got[i]) && d <= atol + rtol * fabs(ref[i]),
                      "%s: index %zu: got %.9g, expected %.12g (|diff| %.3g)", what, i, (double)got[i], ref[i], d);
    }
}

/* Assert |got - want| <= atol elementwise (float against float). */
static void assert_close_f(const float *got, const float *want, size_t n, double atol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        EXPECT_MSG(!isnan(got[i]) && d <= atol, "%s: index %zu: got %.9g, expected %.9g (|diff| %.3g)", what, i,
                   (double)got[i], (double)want[i], d);
    }
}

static double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- elementwise --------------------------------------------------------------------------- */

START_TEST(test_elementwise)
{
    test_rng r = {1};
    /* 300001 values pass the threading threshold; the others run on one thread */
    const int64_t ns[] = {1, 3, 16, 17, 1023, 300001};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        int64_t n = ns[t];
        float *a = test_alloc(n), *b = test_alloc(n), *y = test_alloc(n), *y2 = test_alloc(n);
        double *ref = dalloc(n);
        test_fill(&r, a, n, -10, 10);
        test_fill(&r, b, n, -10, 10);
        /* add and mul are single correctly rounded operations: exact */
        ops_add(ctx1, a, b, y, n);
        for (int64_t i = 0; i < n; i++)
            EXPECT_FEQ(y[i], a[i] + b[i]);
        ops_mul(ctx2, a, b, y, n);
        for (int64_t i = 0; i < n; i++)
            EXPECT_FEQ(y[i], a[i] * b[i]);
        ops_scale(ctx2, a, -0.37f, y, n);
        for (int64_t i = 0; i < n; i++)
            EXPECT_FEQ(y[i], a[i] * -0.37f);
        /* a + s b: at most one rounding (0.5 ulp of the result) */
        for (int64_t i = 0; i < n; i++)
            ref[i] = (double)a[i] + 0.5 * (double)b[i];
        ops_add_scaled(ctx2, a, b, 0.5f, y, n);
        assert_close_d(y, ref, n, 1e-30, 6.0e-8, "add_scaled");
        ops_add_scaled(ctx1, a, b, 0.5f, y2, n);
        EXPECT(memcmp(y, y2, n * sizeof *y) == 0);
        /* in place */
        memcpy(y, a, n * sizeof *y);
        ops_add(ctx2, y, b, y, n);
        for (int64_t i = 0; i < n; i++)
            EXPECT_FEQ(y[i], a[i] + b[i]);
        free(a), free(b), free(y), free(y2), free(ref);
    }
}
END_TEST

START_TEST(test_row_broadcast)
{
    test_rng r = {2};
    const int64_t shapes[][2] = {{1, 1}, {3, 17}, {1023, 3}, {5, 1025}, {2000, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t R = shapes[s][0], C = shapes[s][1], ld = C + 5;
        float *x = test_alloc(R * C), *row = test_alloc(C), *y = test_alloc(R * C), *y2 = test_alloc(R * C);
        float *xs = test_alloc(R * ld);
        test_fill(&r, x, R * C, -3, 3);
        test_fill(&r, row, C, -3, 3);
        test_fill(&r, xs, R * ld, -3, 3);
        ops_add_row(ctx1, x, row, y, R, C);
        for (int64_t i = 0; i < R * C; i++)
            EXPECT_FEQ(y[i], x[i] + row[i % C]);
        ops_add_row(ctx2, x, row, y2, R, C);
        EXPECT(memcmp(y, y2, R * C * sizeof *y) == 0);
        ops_mul_row(ctx2, x, row, y, R, C);
        for (int64_t i = 0; i < R * C; i++)
            EXPECT_FEQ(y[i], x[i] * row[i % C]);
        /* bias on a strided matrix: the 5 padding columns stay as they were */
        float *orig = test_alloc(R * ld);
        memcpy(orig, xs, R * ld * sizeof *xs);
        ops_add_bias(ctx2, xs, R, C, ld, row);
        for (int64_t i = 0; i < R; i++)
            for (int64_t c = 0; c < ld; c++)
                EXPECT_FEQ(xs[i * ld + c], c < C ? orig[i * ld + c] + row[c] : orig[i * ld + c]);
        free(x), free(row), free(y), free(y2), free(xs), free(orig);
    }
}
END_TEST

/* ---- normalisations ------------------------------------------------------------------------- */

static void ref_layer_norm(const float *x, int64_t ldx, double *y, int64_t rows, int64_t cols, const float *g,
                           const float *b, double eps, int rms)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        double mean = 0, var = 0;
        if (!rms) {
            for (int64_t i = 0; i < cols; i++)
                mean += xr[i];
            mean /= (double)cols;
        }
        for (int64_t i = 0; i < cols; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        var /= (double)cols;
        for (int64_t i = 0; i < cols; i++) {
            double v = (xr[i] - mean) / sqrt(var + eps);
            if (g)
                v *= g[i];
            if (b)
                v += b[i];
            y[r * cols + i] = v;
        }
    }
}

START_TEST(test_layer_norm)
{
    test_rng r = {3};
    const int64_t rowss[] = {1, 3, 17};
    for (size_t ri = 0; ri < 3; ri++)
        for (size_t ci = 0; ci < N_SIZES; ci++)
            for (int variant = 0; variant < 4; variant++) {
                int64_t R = rowss[ri], C = sizes[ci], ldx = C + (variant & 1) * 7, ldy = C + (variant & 2) * 3;
                float eps = variant & 1 ? 1e-12f : 1e-5f;
                float *x = test_alloc(R * ldx), *y = test_alloc(R * ldy), *g = test_alloc(C), *b = test_alloc(C);
                float *yc = test_alloc(R * C);
                double *ref = dalloc(R * C);
                test_fill(&r, x, R * ldx, -2, 2);
                test_fill(&r, g, C, 0.5f, 1.5f);
                test_fill(&r, b, C, -1, 1);
                const float *gp = variant < 2 ? g : NULL, *bp = variant == 1 || variant == 3 ? b : NULL;
                ops_layer_norm(ctx1, x, ldx, y, ldy, R, C, gp, bp, eps);
                ref_layer_norm(x, ldx, ref, R, C, gp, bp, eps, 0);
                for (int64_t i = 0; i < R; i++)
                    memcpy(yc + i * C, y + i * ldy, C * sizeof *y);
                /* outputs are O(1): 2e-6 absolute + 2e-6 relative (float sums over <= 1025 values) */
                assert_close_d(yc, ref, R * C, 2e-6, 2e-6, "layer_norm");
                ops_rms_norm(ctx1, x, ldx, y, ldy, R, C, gp, eps);
                ref_layer_norm(x, ldx, ref, R, C, gp, NULL, eps, 1);
                for (int64_t i = 0; i < R; i++)
                    memcpy(yc + i * C, y + i * ldy, C * sizeof *y);
                assert_close_d(yc, ref, R * C, 2e-6, 2e-6, "rms_norm");
                free(x), free(y), free(g), free(b), free(yc), free(ref);
            }
}
END_TEST

START_TEST(test_layer_norm_edges)
{
    test_rng r = {4};
    /* a large common offset: the corrected two-pass mean keeps the centred values accurate; what
     * remains is the float rounding of the mean itself (ulp(1000)/2 = 3e-5 against a std of 0.58) */
    int64_t C = 1024, R = 4;
    float *x = test_alloc(R * C), *y = test_alloc(R * C), *y2 = test_alloc(R * C);
    double *ref = dalloc(R * C);
    test_fill(&r, x, R * C, 999, 1001);
    ops_layer_norm(ctx1, x, C, y, C, R, C, NULL, NULL, 1e-12f);
    ref_layer_norm(x, C, ref, R, C, NULL, NULL, 1e-12, 0);
    assert_close_d(y, ref, R * C, 1e-4, 0, "layer_norm offset 1000");
    /* constant rows: var = 0, the output is beta (here 0) and never NaN; eps 1e-12 */
    for (int64_t i = 0; i < C; i++)
        x[i] = 3.25f;
    ops_layer_norm(ctx1, x, C, y, C, 1, C, NULL, NULL, 1e-12f);
    for (int64_t i = 0; i < C; i++)
        EXPECT_FEQ(y[i], 0.0f);
    /* in place, and 1 vs 2 threads bit-identical on a threaded size */
    int64_t RB = 600;
    float *big = test_alloc(RB * C), *b1 = test_alloc(RB * C), *b2 = test_alloc(RB * C), *g = test_alloc(C);
    test_fill(&r, big, RB * C, -5, 5);
    test_fill(&r, g, C, -1, 1);
    memcpy(b1, big, RB * C * sizeof *big);
    ops_layer_norm(ctx1, b1, C, b1, C, RB, C, g, g, 1e-5f);
    ops_layer_norm(ctx2, big, C, b2, C, RB, C, g, g, 1e-5f);
    EXPECT(memcmp(b1, b2, RB * C * sizeof *b1) == 0);
    ops_rms_norm(ctx1, big, C, b1, C, RB, C, g, 1e-6f);
    ops_rms_norm(ctx2, big, C, b2, C, RB, C, g, 1e-6f);
    EXPECT(memcmp(b1, b2, RB * C * sizeof *b1) == 0);
    free(x), free(y), free(y2), free(ref), free(big), free(b1), free(b2), free(g);
}
END_TEST

/* ---- softmax ------------------------------------------------------------------------------------ */

/* softmax / log_softmax of one row of x + mask in double; all -inf rows give 0 / -inf */
static void ref_softmax_row(const float *x, const float *mask, int64_t n, double *p, double *lp)
{
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++) {
        double z = (double)x[j] + (mask ? (double)mask[j] : 0.0);
        mx = z > mx ? z : mx;
    }
    for (int64_t j = 0; j < n; j++) {
        double z = (double)x[j] + (mask ? (double)mask[j] : 0.0);
        sum += mx == -INFINITY ? 0 : exp(z - mx);
    }
    for (int64_t j = 0; j < n; j++) {
        double z = (double)x[j] + (mask ? (double)mask[j] : 0.0);
        if (p)
            p[j] = mx == -INFINITY ? 0 : exp(z - mx) / sum;
        if (lp)
            lp[j] = mx == -INFINITY ? -INFINITY : z - mx - log(sum);
    }
}

/* Probabilities: relative error 4e-6 plus the float rounding of z - max (0.5 ulp, which moves
 * exp(z - max) by |z - max| * 6e-8 relative), and 1e-37 absolute for denormal results. */
static void check_probs(const float *y, const double *ref, const float *x, int64_t n, const char *what)
{
    double mx = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        mx = x[j] > mx ? x[j] : mx;
    for (int64_t j = 0; j < n; j++) {
        double tol = 1e-37 + fabs(ref[j]) * (4e-6 + 1.2e-7 * fabs((double)x[j] - mx));
        EXPECT_MSG(fabs(y[j] - ref[j]) <= tol, "%s: index %lld: got %.9g, expected %.12g", what, (long long)j,
                      (double)y[j], ref[j]);
    }
}

START_TEST(test_softmax)
{
    test_rng r = {5};
    for (size_t ci = 0; ci < N_SIZES; ci++)
        for (int big = 0; big < 2; big++) {
            int64_t R = 3, C = sizes[ci], ld = C + 3;
            float *x = test_alloc(R * ld), *y = test_alloc(R * ld);
            double *p = dalloc(C), *lp = dalloc(C);
            /* big: values of +-3e4 (a naive exp overflows), else +-8 */
            test_fill(&r, x, R * ld, big ? -3e4f : -8.0f, big ? 3e4f : 8.0f);
            ops_softmax(ctx1, x, ld, y, ld, R, C, NULL, 0);
            for (int64_t i = 0; i < R; i++) {
                ref_softmax_row(x + i * ld, NULL, C, p, lp);
                check_probs(y + i * ld, p, x + i * ld, C, "softmax");
            }
            ops_log_softmax(ctx1, x, ld, y, ld, R, C);
            for (int64_t i = 0; i < R; i++) {
                ref_softmax_row(x + i * ld, NULL, C, p, lp);
                /* log-probabilities: 2e-6 absolute (log of the sum) + 1e-6 relative */
                assert_close_d(y + i * ld, lp, C, 2e-6, 1e-6, "log_softmax");
            }
            free(x), free(y), free(p), free(lp);
        }
    /* a single column is probability 1 / log-probability 0 exactly */
    float one = 123.0f, out = 0;
    ops_softmax(ctx1, &one, 1, &out, 1, 1, 1, NULL, 0);
    EXPECT_FEQ(out, 1.0f);
    ops_log_softmax(ctx1, &one, 1, &out, 1, 1, 1);
    EXPECT_FEQ(out, 0.0f);
}
END_TEST

START_TEST(test_softmax_mask)
{
    test_rng r = {6};
    int64_t R = 5, C = 37;
    float *x = test_alloc(R * C), *m = test_alloc(R * C), *y = test_alloc(R * C), *z = test_alloc(C);
    double *p = dalloc(C);
    test_fill(&r, x, R * C, -4, 4);
    test_fill(&r, m, R * C, -2, 2);
    for (int64_t i = 0; i < R * C; i++)
        if (test_rng_int(&r, 0, 3) == 0)
            m[i] = -INFINITY;
    for (int64_t j = 0; j < C; j++) /* row 2 fully masked */
        m[2 * C + j] = -INFINITY;
    ops_softmax(ctx1, x, C, y, C, R, C, m, C);
    for (int64_t i = 0; i < R; i++) {
        ref_softmax_row(x + i * C, m + i * C, C, p, NULL);
        for (int64_t j = 0; j < C; j++)
            z[j] = x[i * C + j] + m[i * C + j];
        for (int64_t j = 0; j < C; j++) {
            if (m[i * C + j] == -INFINITY)
                EXPECT_MSG(y[i * C + j] == 0.0f, "masked entry (%lld,%lld) is %g", (long long)i, (long long)j,
                              (double)y[i * C + j]);
            else
                EXPECT(fabs(y[i * C + j] - p[j]) <= 4e-6 * p[j] + 1e-37);
        }
    }
    for (int64_t j = 0; j < C; j++)
        EXPECT_FEQ(y[2 * C + j], 0.0f);
    /* one mask row shared by every row (mask_ld = 0), in place */
    float *y2 = test_alloc(R * C);
    memcpy(y2, x, R * C * sizeof *x);
    ops_softmax(ctx2, y2, C, y2, C, R, C, m, 0);
    for (int64_t i = 0; i < R; i++) {
        ref_softmax_row(x + i * C, m, C, p, NULL);
        for (int64_t j = 0; j < C; j++)
            EXPECT(fabs(y2[i * C + j] - p[j]) <= 4e-6 * p[j] + 1e-37);
    }
    /* log_softmax of an all -inf row is all -inf, and -inf entries stay -inf */
    for (int64_t j = 0; j < C; j++)
        z[j] = j % 3 ? -INFINITY : (float)j;
    ops_log_softmax(NULL, z, C, y, C, 1, C);
    for (int64_t j = 0; j < C; j++)
        EXPECT(j % 3 ? y[j] == -INFINITY : isfinite(y[j]));
    for (int64_t j = 0; j < C; j++)
        z[j] = -INFINITY;
    ops_log_softmax(NULL, z, C, y, C, 1, C);
    for (int64_t j = 0; j < C; j++)
        EXPECT(y[j] == -INFINITY);
    free(x), free(m), free(y), free(z), free(p), free(y2);
}
END_TEST

START_TEST(test_softmax_threads)
{
    test_rng r = {7};
    int64_t R = 300, C = 1023;
    float *x = test_alloc(R * C), *y1 = test_alloc(R * C), *y2 = test_alloc(R * C);
    test_fill(&r, x, R * C, -20, 20);
    ops_softmax(ctx1, x, C, y1, C, R, C, NULL, 0);
    ops_softmax(ctx2, x, C, y2, C, R, C, NULL, 0);
    EXPECT(memcmp(y1, y2, R * C * sizeof *y1) == 0);
    ops_log_softmax(ctx1, x, C, y1, C, R, C);
    ops_log_softmax(ctx2, x, C, y2, C, R, C);
    EXPECT(memcmp(y1, y2, R * C * sizeof *y1) == 0);
    free(x), free(y1), free(y2);
}
END_TEST

/* ---- activations --------------------------------------------------------------------------------- */

enum { A_GELU, A_GELU_TANH, A_SILU, A_RELU, A_ELU, A_SIGMOID, A_TANH, A_COUNT };
static const char *act_names[A_COUNT] = {"gelu", "gelu_tanh", "silu", "relu", "elu", "sigmoid", "tanh"};

static void run_act(int op, cochlea_ctx *c, const float *x, float *y, int64_t n)
{
    switch (op) {
    case A_GELU: ops_gelu(c, x, y, n); break;
    case A_GELU_TANH: ops_gelu_tanh(c, x, y, n); break;
    case A_SILU: ops_silu(c, x, y, n); break;
    case A_RELU: ops_relu(c, x, y, n); break;
    case A_ELU: ops_elu(c, x, 0.7f, y, n); break;
    case A_SIGMOID: ops_sigmoid(c, x, y, n); break;
    default: ops_tanh(c, x, y, n); break;
    }
}

static double sigmoid_d(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* Reference value in double, and the relative tolerance of the float op at x: 2e-6 (a few ulp
 * of exp/erfc/division) plus, where the float op must round an intermediate argument u
 * (GELU-tanh's u = sqrt(2/pi)(x + 0.044715 x^3)), 3e-7 |u| for its propagated rounding. */
static double ref_act(int op, float xf, double *rtol)
{
    double x = xf, u;
    *rtol = 2e-6;
    switch (op) {
    case A_GELU: return 0.5 * x * erfc(-x / sqrt(2.0));
    case A_GELU_TANH:
        u = sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
        *rtol += 3e-7 * fabs(2 * u);
        return x * sigmoid_d(2 * u); /* = x/2 (1 + tanh u), without double's cancellation for x << 0 */
    case A_SILU: *rtol += 1.2e-7 * fabs(x); return x * sigmoid_d(x);
    case A_RELU: *rtol = 0; return x > 0 ? x : 0;
    case A_ELU: return x > 0 ? x : 0.7 * expm1(x);
    case A_SIGMOID: *rtol += 1.2e-7 * fabs(x); return sigmoid_d(x);
    default: return tanh(x);
    }
}

START_TEST(test_activations)
{
    test_rng r = {8};
    static const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-6f, -1e-6f, 1e-3f, -1e-3f, 0.5f, -0.5f,
                                    1.0f, -1.0f, 3.0f, -3.0f, 5.5f, -5.5f, 9.0f, -9.0f, 12.0f, -12.0f, 13.5f,
                                    -13.5f, 20.0f, -20.0f, 80.0f, -80.0f, 88.0f, -88.0f, 100.0f, -100.0f, 1e4f,
                                    -1e4f, 1e30f, -1e30f};
    const int64_t ns[] = {(int64_t)(sizeof special / sizeof special[0]), 1, 15, 16, 17, 1023};
    for (int op = 0; op < A_COUNT; op++)
        for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
            int64_t n = ns[t];
            float *x = test_alloc(n), *y = test_alloc(n);
            if (t == 0)
                memcpy(x, special, sizeof special);
            else
                test_fill(&r, x, n, -15, 15);
            run_act(op, ctx1, x, y, n);
            for (int64_t i = 0; i < n; i++) {
                double rtol, ref = ref_act(op, x[i], &rtol);
                double tol = 1e-37 + rtol * fabs(ref); /* 1e-37: denormal results */
                EXPECT_MSG(fabs((double)y[i] - ref) <= tol, "%s(%.9g) = %.9g, expected %.12g", act_names[op],
                              (double)x[i], (double)y[i], ref);
            }
            /* in place gives the same */
            float *z = test_alloc(n);
            memcpy(z, x, n * sizeof *x);
            run_act(op, ctx1, z, z, n);
            EXPECT(memcmp(z, y, n * sizeof *y) == 0);
            free(x), free(y), free(z);
        }
}
END_TEST

START_TEST(test_activation_specials)
{
    const float inf = INFINITY;
    float x[2] = {inf, -inf}, y[2];
    ops_sigmoid(NULL, x, y, 2);
    EXPECT(y[0] == 1.0f && y[1] == 0.0f);
    ops_tanh(NULL, x, y, 2);
    EXPECT(y[0] == 1.0f && y[1] == -1.0f);
    ops_relu(NULL, x, y, 2);
    EXPECT(y[0] == inf && y[1] == 0.0f);
    ops_elu(NULL, x, 0.5f, y, 2);
    EXPECT(y[0] == inf && y[1] == -0.5f);
    ops_gelu(NULL, x, y, 1);
    EXPECT(y[0] == inf);
    ops_gelu_tanh(NULL, x, y, 1);
    EXPECT(y[0] == inf);
    ops_silu(NULL, x, y, 1);
    EXPECT(y[0] == inf);
    float nan = NAN;
    for (int op = 0; op < A_COUNT; op++) {
        run_act(op, NULL, &nan, y, 1);
        EXPECT_MSG(isnan(y[0]), "%s(NaN) is %g", act_names[op], (double)y[0]);
    }
}
END_TEST

START_TEST(test_activation_threads)
{
    test_rng r = {9};
    int64_t n = 100003; /* above the threading threshold of the exp-based ops */
    float *x = test_alloc(n), *y1 = test_alloc(n), *y2 = test_alloc(n);
    test_fill(&r, x, n, -12, 12);
    for (int op = 0; op < A_COUNT; op++) {
        run_act(op, ctx1, x, y1, n);
        run_act(op, ctx2, x, y2, n);
        EXPECT_MSG(memcmp(y1, y2, n * sizeof *y1) == 0, "%s differs between 1 and 2 threads", act_names[op]);
    }
    free(x), free(y1), free(y2);
}
END_TEST

/* ---- embeddings ------------------------------------------------------------------------------------ */

/* element e of row `row` of a contiguous table, dequantised by hand from the raw bytes */
static float ref_table_elem(const tensor *t, int64_t row, int64_t e)
{
    int64_t dim = t->ne[0];
    switch (t->type) {
    case COCHLEA_TYPE_F32: return ((const float *)t->data)[row * dim + e];
    case COCHLEA_TYPE_F16: return fp16_to_f32(((const uint16_t *)t->data)[row * dim + e]);
    case COCHLEA_TYPE_BF16: return bf16_to_f32(((const uint16_t *)t->data)[row * dim + e]);
    case COCHLEA_TYPE_Q8_0: {
        const block_q8_0 *b = (const block_q8_0 *)t->data + (row * dim + e) / QK8_0;
        return fp16_to_f32(b->d) * (float)b->qs[e % QK8_0];
    }
    default: return NAN;
    }
}

static void make_table(tensor *t, enum cochlea_type type, int n_dims, const int64_t *ne, test_rng *r)
{
    ck_assert_int_eq(tensor_new(t, type, n_dims, ne), COCHLEA_OK);
    int64_t rows = tensor_nelements(t) / ne[0];
    float *tmp = test_alloc(ne[0]);
    for (int64_t i = 0; i < rows; i++) {
        test_fill(r, tmp, ne[0], -2, 2);
        void *dst = tensor_row(t, i);
        switch (type) {
        case COCHLEA_TYPE_F32: memcpy(dst, tmp, ne[0] * sizeof(float)); break;
        case COCHLEA_TYPE_F16: f32_to_fp16_array(tmp, dst, ne[0]); break;
        case COCHLEA_TYPE_BF16: f32_to_bf16_array(tmp, dst, ne[0]); break;
        default: q8_0_quantize(tmp, dst, ne[0]); break;
        }
    }
    free(tmp);
}

START_TEST(test_embedding)
{
    test_rng r = {10};
    const enum cochlea_type types[] = {COCHLEA_TYPE_F32, COCHLEA_TYPE_F16, COCHLEA_TYPE_BF16, COCHLEA_TYPE_Q8_0};
    for (size_t ti = 0; ti < 4; ti++) {
        int64_t dim = types[ti] == COCHLEA_TYPE_Q8_0 ? 64 : 17, vocab = 37, n = 11;
        int64_t ne[2] = {dim, vocab};
        tensor t;
        make_table(&t, types[ti], 2, ne, &r);
        t.name = "tok_embd.weight";
        int32_t ids[11];
        for (int64_t i = 0; i < n; i++)
            ids[i] = test_rng_int(&r, 0, (int)vocab - 1);
        ids[0] = 0;
        ids[1] = (int32_t)vocab - 1;
        float *out = test_alloc(n * dim);
        ck_assert_int_eq(ops_embedding(ctx1, &t, ids, n, out), COCHLEA_OK);
        for (int64_t i = 0; i < n; i++)
            for (int64_t e = 0; e < dim; e++)
                EXPECT_FEQ(out[i * dim + e], ref_table_elem(&t, ids[i], e));
        /* bad ids: ERANGE naming tensor and id, and nothing written */
        for (int64_t i = 0; i < n * dim; i++)
            out[i] = -7.0f;
        ids[5] = (int32_t)vocab;
        ck_assert_int_eq(ops_embedding(ctx1, &t, ids, n, out), COCHLEA_ERANGE);
        ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "tok_embd.weight"));
        ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "id 37 at index 5"));
        ids[5] = -1;
        ck_assert_int_eq(ops_embedding(ctx2, &t, ids, n, out), COCHLEA_ERANGE);
        ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "id -1"));
        for (int64_t i = 0; i < n * dim; i++)
            EXPECT_FEQ(out[i], -7.0f);
        free(out);
        tensor_free(&t);
    }
    /* a 3-D table is indexed over dims 1..2 flattened: 5 x 3 = 15 rows */
    int64_t ne3[3] = {16, 5, 3};
    tensor t3;
    make_table(&t3, COCHLEA_TYPE_F16, 3, ne3, &r);
    int32_t id = 14;
    float out[16];
    ck_assert_int_eq(ops_embedding(NULL, &t3, &id, 1, out), COCHLEA_OK);
    for (int e = 0; e < 16; e++)
        EXPECT_FEQ(out[e], ref_table_elem(&t3, 14, e));
    id = 15;
    ck_assert_int_eq(ops_embedding(NULL, &t3, &id, 1, out), COCHLEA_ERANGE);
    ck_assert_int_eq(ops_embedding(NULL, &t3, &id, -1, out), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_embedding(NULL, &t3, NULL, 0, NULL), COCHLEA_OK);
    /* malformed tables: Q8_0 rows that are not whole blocks, no data */
    tensor bad = t3;
    bad.type = COCHLEA_TYPE_Q8_0;
    bad.name = "bad.weight";
    id = 0;
    ck_assert_int_eq(ops_embedding(NULL, &bad, &id, 1, out), COCHLEA_EINVAL);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "bad.weight"));
    bad = t3;
    bad.data = NULL;
    ck_assert_int_eq(ops_embedding(NULL, &bad, &id, 1, out), COCHLEA_EINVAL);
    tensor_free(&t3);
}
END_TEST

START_TEST(test_embedding_threads)
{
    test_rng r = {11};
    int64_t dim = 64, vocab = 500, n = 5000;
    int64_t ne[2] = {dim, vocab};
    tensor t;
    make_table(&t, COCHLEA_TYPE_Q8_0, 2, ne, &r);
    int32_t *ids = malloc(n * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int64_t i = 0; i < n; i++)
        ids[i] = test_rng_int(&r, 0, (int)vocab - 1);
    float *a = test_alloc(n * dim), *b = test_alloc(n * dim);
    ck_assert_int_eq(ops_embedding(ctx1, &t, ids, n, a), COCHLEA_OK);
    ck_assert_int_eq(ops_embedding(ctx2, &t, ids, n, b), COCHLEA_OK);
    EXPECT(memcmp(a, b, n * dim * sizeof *a) == 0);
    EXPECT_FEQ(b[(n - 1) * dim + 3], ref_table_elem(&t, ids[n - 1], 3));
    free(ids), free(a), free(b);
    tensor_free(&t);
}
END_TEST

/* ---- sinusoidal positions --------------------------------------------------------------------------- */

START_TEST(test_sinusoidal_pe)
{
    const int64_t d = 1024, T = 376;
    float *pe = test_alloc(T * d), *pe2 = test_alloc(T * d);
    ck_assert_int_eq(ops_sinusoidal_pe(ctx1, pe, T, d, 0, 1), COCHLEA_OK);
    /* against the exact values: the float argument p * w carries about 3 roundings (7e-8 each,
     * relative), so |error| <= 1e-6 + 4e-7 * |p * w| */
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < d / 2; i++) {
            double a = (double)t * exp(-(double)(2 * i) * log(10000.0) / (double)d);
            double tol = 1e-6 + 4e-7 * a;
            EXPECT(fabs(pe[t * d + 2 * i] - sin(a)) <= tol);
            EXPECT(fabs(pe[t * d + 2 * i + 1] - cos(a)) <= tol);
        }
    /* against PyTorch (ESPnet's PositionalEncoding built in float32 by torch 1.13): the same float
     * construction agrees to 6e-7 (libm vs torch's exp/sin/cos differ by an ulp now and then, as
     * w_255 does); a table computed in double would miss by 1e-6 to 1e-5 at most of these points */
    static const struct { int t, c; float v; } torch_pe[] = {
        {1, 0, 0.8414709568023682f},      {1, 1, 0.5403023362159729f},      {2, 2, 0.923554539680481f},
        {375, 0, -0.9129575490951538f},   {375, 1, -0.40805453062057495f},  {375, 2, -0.68025660514831543f},
        {375, 3, -0.73297405242919922f}, {375, 4, -0.44838055968284607f}, {375, 5, -0.89384275674819946f},
        {370, 10, -0.89957207441329956f}, {370, 11, 0.43677231669425964f}, {333, 20, 0.98953908681869507f},
        {333, 21, -0.14426520466804504f}, {301, 40, 0.42567771673202515f}, {301, 41, -0.90487486124038696f},
        {250, 2, 0.47832095623016357f},  {250, 3, 0.87818509340286255f},  {200, 100, -0.31695979833602905f},
        {200, 101, 0.9484390020370483f}, {374, 511, -0.7861166596412659f}, {375, 1022, 0.03817141801118851f},
        {375, 1023, 0.9992712140083313f}, {333, 64, -0.9444445371627808f},  {333, 65, 0.3286708891391754f},
        {299, 300, 0.9575092792510986f}, {299, 301, 0.2884024679660797f},
    };
    for (size_t k = 0; k < sizeof torch_pe / sizeof torch_pe[0]; k++) {
        float got = pe[torch_pe[k].t * d + torch_pe[k].c], want = torch_pe[k].v;
        EXPECT_MSG(fabsf(got - want) <= 6e-7f, "PE[%d, %d] = %.9g, torch %.9g", torch_pe[k].t, torch_pe[k].c,
                   (double)got, (double)want);
    }
    /* 2 threads: identical; offset/reversed positions: rows of the same table */
    ck_assert_int_eq(ops_sinusoidal_pe(ctx2, pe2, T, d, 0, 1), COCHLEA_OK);
    EXPECT(memcmp(pe, pe2, T * d * sizeof *pe) == 0);
    ck_assert_int_eq(ops_sinusoidal_pe(ctx1, pe2, 10, d, 375, -1), COCHLEA_OK);
    for (int64_t t = 0; t < 10; t++)
        EXPECT(memcmp(pe2 + t * d, pe + (375 - t) * d, d * sizeof *pe) == 0);
    ck_assert_int_eq(ops_sinusoidal_pe(ctx1, pe2, 3, d, 100, 1), COCHLEA_OK);
    EXPECT(memcmp(pe2, pe + 100 * d, 3 * d * sizeof *pe) == 0);
    /* bad arguments */
    ck_assert_int_eq(ops_sinusoidal_pe(ctx1, pe2, 3, 7, 0, 1), COCHLEA_EINVAL);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "dimension 7"));
    ck_assert_int_eq(ops_sinusoidal_pe(ctx1, pe2, -1, 8, 0, 1), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_sinusoidal_pe(ctx1, pe2, 3, 8, 1 << 24, 1), COCHLEA_ERANGE);
    ck_assert_int_eq(ops_sinusoidal_pe(ctx1, NULL, 0, 8, 0, 1), COCHLEA_OK);
    free(pe), free(pe2);
}
END_TEST

/* ---- RoPE ---------------------------------------------------------------------------------------------- */

static void ref_rope(const float *x, double *y, int64_t T, int64_t ldx, int64_t H, int64_t Dh, int64_t n_rot,
                     const int32_t *pos, double base, int neox)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const float *xh = x + t * ldx + h * Dh;
            double *yh = y + (t * H + h) * Dh;
            for (int64_t e = 0; e < Dh; e++)
                yh[e] = xh[e];
            for (int64_t i = 0; i < n_rot / 2; i++) {
                double th = pos[t] * pow(base, -2.0 * i / n_rot);
                int64_t ia = neox ? i : 2 * i, ib = neox ? i + n_rot / 2 : 2 * i + 1;
                yh[ia] = xh[ia] * cos(th) - xh[ib] * sin(th);
                yh[ib] = xh[ia] * sin(th) + xh[ib] * cos(th);
            }
        }
}

START_TEST(test_rope)
{
    test_rng r = {12};
    const struct { int64_t T, H, Dh, n_rot; float base; } cases[] = {
        {1, 1, 2, 2, 10000.0f}, {5, 3, 64, 64, 10000.0f}, {4, 2, 8, 4, 500.0f}, {3, 4, 6, 6, 1e6f}, {7, 1, 128, 96, 10000.0f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int neox = 0; neox < 2; neox++) {
            int64_t T = cases[c].T, H = cases[c].H, Dh = cases[c].Dh, ld = H * Dh + 3;
            float *x = test_alloc(T * ld), *y = test_alloc(T * ld), *yc = test_alloc(T * H * Dh);
            double *ref = dalloc(T * H * Dh);
            int32_t *pos = malloc(T * sizeof *pos);
            ck_assert_ptr_nonnull(pos);
            test_fill(&r, x, T * ld, -1, 1);
            for (int64_t t = 0; t < T; t++)
                pos[t] = t == 0 ? 0 : t == 1 ? 100000 : test_rng_int(&r, -50, 5000);
            memcpy(y, x, T * ld * sizeof *x);
            ck_assert_int_eq(ops_rope(ctx1, y, T, ld, H, Dh, cases[c].n_rot, pos, cases[c].base,
                                      neox ? OPS_ROPE_NEOX : OPS_ROPE_NORMAL),
                             COCHLEA_OK);
            ref_rope(x, ref, T, ld, H, Dh, cases[c].n_rot, pos, cases[c].base, neox);
            for (int64_t t = 0; t < T; t++) {
                memcpy(yc + t * H * Dh, y + t * ld, H * Dh * sizeof *y);
                for (int64_t e = H * Dh; e < ld; e++) /* stride padding untouched */
                    EXPECT_FEQ(y[t * ld + e], x[t * ld + e]);
            }
            /* |x| <= 1: two float products and a sum after exact-ish cos/sin: 3e-7 absolute */
            assert_close_d(yc, ref, T * H * Dh, 3e-7, 0, neox ? "rope neox" : "rope normal");
            free(x), free(y), free(yc), free(ref), free(pos);
        }
}
END_TEST

START_TEST(test_rope_modes_threads)
{
    /* NEOX on x equals NORMAL on x with its halves interleaved (the GGUF q/k permutation),
     * bit for bit; and 1 vs 2 threads give identical results */
    test_rng r = {13};
    int64_t T = 700, H = 4, Dh = 64, n = T * H * Dh;
    float *x = test_alloc(n), *a = test_alloc(n), *b = test_alloc(n), *c = test_alloc(n);
    int32_t *pos = malloc(T * sizeof *pos);
    ck_assert_ptr_nonnull(pos);
    test_fill(&r, x, n, -2, 2);
    for (int64_t t = 0; t < T; t++)
        pos[t] = (int32_t)(3 * t + 1);
    memcpy(a, x, n * sizeof *x);
    ck_assert_int_eq(ops_rope(ctx1, a, T, H * Dh, H, Dh, Dh, pos, 10000.0f, OPS_ROPE_NEOX), COCHLEA_OK);
    for (int64_t row = 0; row < T * H; row++)
        for (int64_t i = 0; i < Dh / 2; i++) {
            b[row * Dh + 2 * i] = x[row * Dh + i];
            b[row * Dh + 2 * i + 1] = x[row * Dh + i + Dh / 2];
        }
    memcpy(c, b, n * sizeof *b);
    ck_assert_int_eq(ops_rope(ctx1, b, T, H * Dh, H, Dh, Dh, pos, 10000.0f, OPS_ROPE_NORMAL), COCHLEA_OK);
    for (int64_t row = 0; row < T * H; row++)
        for (int64_t i = 0; i < Dh / 2; i++) {
            EXPECT_FEQ(b[row * Dh + 2 * i], a[row * Dh + i]);
            EXPECT_FEQ(b[row * Dh + 2 * i + 1], a[row * Dh + i + Dh / 2]);
        }
    ck_assert_int_eq(ops_rope(ctx2, c, T, H * Dh, H, Dh, Dh, pos, 10000.0f, OPS_ROPE_NORMAL), COCHLEA_OK);
    EXPECT(memcmp(b, c, n * sizeof *b) == 0);
    /* bad arguments */
    ck_assert_int_eq(ops_rope(ctx1, c, T, H * Dh, H, Dh, 5, pos, 10000.0f, OPS_ROPE_NORMAL), COCHLEA_EINVAL);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "n_rot 5"));
    ck_assert_int_eq(ops_rope(ctx1, c, T, H * Dh, H, Dh, Dh + 2, pos, 10000.0f, OPS_ROPE_NORMAL), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_rope(ctx1, c, T, H * Dh - 1, H, Dh, Dh, pos, 10000.0f, OPS_ROPE_NORMAL), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_rope(ctx1, c, T, H * Dh, H, Dh, Dh, pos, 0.0f, OPS_ROPE_NORMAL), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_rope(ctx1, c, T, H * Dh, H, Dh, Dh, pos, 1e4f, (enum ops_rope_mode)7), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_rope(ctx1, c, T, H * Dh, H, Dh, Dh, NULL, 1e4f, OPS_ROPE_NORMAL), COCHLEA_EINVAL);
    free(x), free(a), free(b), free(c), free(pos);
}
END_TEST

/* ---- attention ------------------------------------------------------------------------------------------ */

/* Naive attention in double with the semantics documented in ops.h. */
static void ref_attention(const ops_attn_params *p, const float *q, int64_t ldq, const float *k, int64_t ldk,
                          const float *v, int64_t ldv, int64_t Tq, int64_t Tk, double *out)
{
    const int64_t H = p->n_head, D = p->head_dim, grp = p->n_head / p->n_head_kv;
    const int64_t khs = p->k_head_stride ? p->k_head_stride : D, vhs = p->v_head_stride ? p->v_head_stride : D;
    double scale = p->scale != 0.0f ? p->scale : 1.0 / sqrt((double)D);
    double *s = dalloc(Tk);
    for (int64_t h = 0; h < H; h++) {
        int64_t g = h / grp;
        for (int64_t i = 0; i < Tq; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < Tk; j++) {
                double acc = 0;
                for (int64_t d = 0; d < D; d++)
                    acc += (double)q[i * ldq + h * D + d] * k[j * ldk + g * khs + d];
                acc *= (float)scale;
                if (p->mask)
                    acc += p->mask[h * p->mask_head_stride + i * p->mask_ld + j];
                if (p->allowed && !p->allowed[i * p->allowed_ld + j])
                    acc = -INFINITY;
                if (p->causal && j > i + Tk - Tq)
                    acc = -INFINITY;
                s[j] = acc;
                mx = acc > mx ? acc : mx;
            }
            for (int64_t j = 0; j < Tk; j++) {
                s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
                sum += s[j];
            }
            for (int64_t d = 0; d < D; d++) {
                double o = 0;
                for (int64_t j = 0; j < Tk; j++)
                    o += s[j] * v[j * ldv + g * vhs + d];
                out[(i * H + h) * D + d] = sum > 0 ? o / sum : 0;
            }
        }
    }
    free(s);
}

struct attn_case {
    int64_t Tq, Tk, H, Hkv, D;
    int causal, mask, allowed, invariant;
    float scale, mag; /* scale 0: default; mag: q/k values in [-mag, mag] */
    int head_major;   /* K, V as [Hkv, capacity, D] caches (k/v_head_stride) instead of [Tk, Hkv*D] */
};

/* Run one case on ctx (q/k/v/out strided), compare with the reference; returns the output. */
static float *run_attn_case(cochlea_ctx *c, const struct attn_case *ac, uint64_t seed, double atol)
{
    test_rng r = {seed};
    const int64_t Tq = ac->Tq, Tk = ac->Tk, H = ac->H, Hkv = ac->Hkv, D = ac->D;
    const int64_t ldq = H * D + 2, ldo = H * D + 4;
    int64_t ldk = Hkv * D + 1, ldv = Hkv * D + 3, khs = 0, vhs = 0;
    if (ac->head_major) { /* caches of capacity Tk + 2 (k) and Tk + 3 (v) rows per head */
        ldk = ldv = D;
        khs = (Tk + 2) * D;
        vhs = (Tk + 3) * D;
    }
    size_t kn = ac->head_major ? Hkv * khs : Tk * ldk, vn = ac->head_major ? Hkv * vhs : Tk * ldv;
    float *q = test_alloc(Tq * ldq), *k = test_alloc(kn), *v = test_alloc(vn);
    float *out = test_alloc(Tq * ldo), *oc = test_alloc(Tq * H * D);
    float *mask = NULL;
    uint8_t *allowed = NULL;
    double *ref = dalloc(Tq * H * D);
    test_fill(&r, q, Tq * ldq, -ac->mag, ac->mag);
    test_fill(&r, k, kn, -ac->mag, ac->mag);
    test_fill(&r, v, vn, -1, 1);
    for (int64_t i = 0; i < Tq * ldo; i++)
        out[i] = 99.0f;
    ops_attn_params p = ops_attn_default_params(H, Hkv, D);
    p.scale = ac->scale;
    p.causal = ac->causal;
    p.batch_invariant = ac->invariant;
    p.k_head_stride = khs;
    p.v_head_stride = vhs;
    if (ac->mask) { /* per-head [H, Tq, Tk+1] with -inf entries, and a row fully masked */
        mask = test_alloc(H * Tq * (Tk + 1));
        test_fill(&r, mask, H * Tq * (Tk + 1), -3, 3);
        for (int64_t i = 0; i < H * Tq * (Tk + 1); i++)
            if (test_rng_int(&r, 0, 4) == 0)
                mask[i] = -INFINITY;
        for (int64_t j = 0; j < Tk; j++)
            mask[(Tq / 2) * (Tk + 1) + j] = -INFINITY; /* head 0, query Tq/2 */
        p.mask = mask;
        p.mask_ld = Tk + 1;
        p.mask_head_stride = Tq * (Tk + 1);
    }
    if (ac->allowed) {
        allowed = malloc(Tq * Tk + 1);
        ck_assert_ptr_nonnull(allowed);
        for (int64_t i = 0; i < Tq * Tk; i++)
            allowed[i] = test_rng_int(&r, 0, 3) != 0;
        for (int64_t j = 0; j < Tk; j++)
            allowed[(Tq - 1) * Tk + j] = 0; /* last query: nothing allowed */
        p.allowed = allowed;
        p.allowed_ld = Tk;
    }
    ck_assert_int_eq(ops_attention(c, &p, q, ldq, k, ldk, v, ldv, Tq, Tk, out, ldo), COCHLEA_OK);
    ref_attention(&p, q, ldq, k, ldk, v, ldv, Tq, Tk, ref);
    for (int64_t i = 0; i < Tq; i++) {
        memcpy(oc + i * H * D, out + i * ldo, H * D * sizeof *out);
        for (int64_t e = H * D; e < ldo; e++)
            EXPECT_FEQ(out[i * ldo + e], 99.0f);
    }
    char what[128];
    snprintf(what, sizeof what, "attention Tq=%lld Tk=%lld H=%lld Hkv=%lld D=%lld causal=%d mask=%d allowed=%d hm=%d",
             (long long)Tq, (long long)Tk, (long long)H, (long long)Hkv, (long long)D, ac->causal, ac->mask,
             ac->allowed, ac->head_major);
    assert_close_d(oc, ref, Tq * H * D, atol, 0, what);
    free(q), free(k), free(v), free(out), free(mask), free(allowed), free(ref);
    return oc;
}

/* Outputs are averages of values in [-1, 1]: 2e-5 absolute covers float scores (relative
 * 1e-6 of |scores| <= a few units), exp and the weighted sums. */
#define ATTN_ATOL 2e-5

START_TEST(test_attention_rowwise)
{
    const struct attn_case cases[] = {
        {17, 17, 4, 4, 16, 0, 0, 0, 0, 0, 1, 0},    {17, 17, 4, 4, 16, 1, 0, 0, 0, 0, 1, 0},
        {1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0},       {3, 5, 2, 1, 3, 1, 0, 0, 0, 0, 1, 0},
        {5, 40, 8, 2, 17, 1, 0, 0, 0, 0, 1, 0},     {1, 1023, 4, 2, 64, 1, 0, 0, 0, 0, 1, 1},
        {1, 1023, 1, 1, 80, 0, 1, 0, 0, 0, 1, 0},   {9, 33, 3, 3, 130, 0, 1, 1, 0, 0.3f, 1, 0},
        {7, 3, 2, 2, 8, 1, 0, 0, 0, 0, 1, 0},       {6, 31, 6, 3, 100, 1, 1, 1, 0, 0, 1, 1},
        {12, 12, 2, 1, 48, 0, 0, 0, 0, 1.0f, 4, 0}, {63, 200, 4, 4, 64, 1, 0, 0, 0, 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float *o1 = run_attn_case(ctx1, &cases[i], 100 + i, ATTN_ATOL);
        float *o2 = run_attn_case(ctx2, &cases[i], 100 + i, ATTN_ATOL);
        const struct attn_case *ac = &cases[i];
        EXPECT_MSG(memcmp(o1, o2, ac->Tq * ac->H * ac->D * sizeof *o1) == 0, "case %zu: 1 vs 2 threads differ", i);
        free(o1), free(o2);
    }
}
END_TEST

START_TEST(test_attention_gemm_path)
{
    /* Tq, Tk >= 256 without batch_invariant: per-head gemm_f32 */
    const struct attn_case cases[] = {
        {256, 256, 2, 2, 64, 0, 0, 0, 0, 0, 1, 0}, {256, 300, 4, 2, 32, 1, 0, 0, 0, 0, 1, 1},
        {270, 257, 2, 1, 17, 0, 1, 1, 0, 0, 1, 0}, {256, 256, 1, 1, 128, 1, 1, 0, 0, 0, 1, 0},
    };
    /* the scratch size tells which path runs: H * Tq * Tk for GEMM, threads * 4 * Tk row-wise */
    ops_attn_params pg = ops_attn_default_params(4, 2, 32);
    ck_assert_uint_eq(ops_attention_work_floats(ctx2, &pg, 256, 300), 4 * 256 * 300);
    ck_assert_uint_eq(ops_attention_work_floats(ctx2, &pg, 255, 300), 2 * 4 * 300);
    ck_assert_uint_eq(ops_attention_work_floats(NULL, &pg, 256, 300), 4 * 300);
    pg.batch_invariant = 1;
    ck_assert_uint_eq(ops_attention_work_floats(ctx2, &pg, 256, 300), 2 * 4 * 300);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct attn_case *ac = &cases[i];
        struct attn_case inv = *ac;
        inv.invariant = 1;
        float *o1 = run_attn_case(ctx1, ac, 200 + i, ATTN_ATOL);
        float *o2 = run_attn_case(ctx2, ac, 200 + i, ATTN_ATOL);
        float *orow = run_attn_case(ctx2, &inv, 200 + i, ATTN_ATOL);
        size_t n = ac->Tq * ac->H * ac->D;
        /* GEMM path: thread counts and the row-wise kernel agree up to reassociation */
        assert_close_f(o2, o1, n, 2e-6, "gemm path, 2 vs 1 threads");
        assert_close_f(orow, o1, n, 2e-6, "gemm path vs row-wise kernel");
        free(o1), free(o2), free(orow);
    }
}
END_TEST

START_TEST(test_attention_large_scores)
{
    /* mask entries of +-500 shift scores far beyond exp's float range: the stable softmax must
     * still match; the float rounding of s + 500 (ulp 3e-5) bounds the error at about 1e-4 */
    test_rng r = {300};
    const int64_t Tq = 6, Tk = 50, H = 2, D = 32;
    float *q = test_alloc(Tq * H * D), *k = test_alloc(Tk * H * D), *v = test_alloc(Tk * H * D);
    float *mask = test_alloc(Tq * Tk), *out = test_alloc(Tq * H * D);
    double *ref = dalloc(Tq * H * D);
    test_fill(&r, q, Tq * H * D, -1, 1);
    test_fill(&r, k, Tk * H * D, -1, 1);
    test_fill(&r, v, Tk * H * D, -1, 1);
    for (int64_t i = 0; i < Tq * Tk; i++)
        mask[i] = test_rng_int(&r, 0, 1) ? 500.0f : -500.0f;
    for (int inv = 0; inv < 2; inv++) {
        ops_attn_params p = ops_attn_default_params(H, H, D);
        p.mask = mask;
        p.mask_ld = Tk;
        p.batch_invariant = inv;
        ck_assert_int_eq(ops_attention(ctx2, &p, q, H * D, k, H * D, v, H * D, Tq, Tk, out, H * D), COCHLEA_OK);
        ref_attention(&p, q, H * D, k, H * D, v, H * D, Tq, Tk, ref);
        assert_close_d(out, ref, Tq * H * D, 1e-4, 0, "attention large scores");
    }
    free(q), free(k), free(v), free(mask), free(out), free(ref);
}
END_TEST

START_TEST(test_attention_batch_invariance)
{
    /* row-wise kernel: row i of a Tq-row call equals a 1-row call over the keys it may see, bit
     * for bit. With GQA (4 heads on 2) rows run in blocks of 4 and 2 (query, head) pairs, with
     * MHA (3 heads) a 1-row call runs the single-row kernel: both must agree with the 4-row one. */
    const int64_t layouts[2][2] = {{4, 2}, {3, 3}};
    for (int li = 0; li < 2; li++) {
        test_rng r = {400 + (uint64_t)li};
        const int64_t Tq = 9, Tk = 70, H = layouts[li][0], Hkv = layouts[li][1], D = 40;
        float *q = test_alloc(Tq * H * D), *k = test_alloc(Tk * Hkv * D), *v = test_alloc(Tk * Hkv * D);
        float *out = test_alloc(Tq * H * D), *o1 = test_alloc(H * D);
        float *mask = test_alloc(Tq * Tk);
        test_fill(&r, q, Tq * H * D, -1, 1);
        test_fill(&r, k, Tk * Hkv * D, -1, 1);
        test_fill(&r, v, Tk * Hkv * D, -1, 1);
        test_fill(&r, mask, Tq * Tk, -1, 1);
        for (int causal = 0; causal < 2; causal++) {
            ops_attn_params p = ops_attn_default_params(H, Hkv, D);
            p.causal = causal;
            p.mask = mask;
            p.mask_ld = Tk;
            p.batch_invariant = 1;
            ck_assert_int_eq(ops_attention(ctx2, &p, q, H * D, k, Hkv * D, v, Hkv * D, Tq, Tk, out, H * D),
                             COCHLEA_OK);
            for (int64_t i = 0; i < Tq; i++) {
                ops_attn_params p1 = p;
                p1.mask = mask + i * Tk;
                int64_t tk = causal ? i + Tk - Tq + 1 : Tk;
                ck_assert_int_eq(
                    ops_attention(ctx1, &p1, q + i * H * D, H * D, k, Hkv * D, v, Hkv * D, 1, tk, o1, H * D),
                    COCHLEA_OK);
                EXPECT_MSG(memcmp(o1, out + i * H * D, H * D * sizeof *o1) == 0,
                           "H=%lld Hkv=%lld row %lld (causal %d) differs", (long long)H, (long long)Hkv, (long long)i,
                           causal);
            }
        }
        free(q), free(k), free(v), free(out), free(o1), free(mask);
    }
}
END_TEST

START_TEST(test_attention_edges)
{
    test_rng r = {500};
    const int64_t Tq = 4, Tk = 6, H = 2, D = 8;
    float q[4 * 16], k[6 * 16], v[6 * 16], out[4 * 16], out2[4 * 16];
    test_fill(&r, q, sizeof q / sizeof q[0], -1, 1);
    test_fill(&r, k, sizeof k / sizeof k[0], -1, 1);
    test_fill(&r, v, sizeof v / sizeof v[0], -1, 1);
    ops_attn_params p = ops_attn_default_params(H, H, D);
    EXPECT_FEQ(p.scale, 1.0f / sqrtf(8.0f));
    /* Tk = 0: all rows fully masked -> zeros; Tq = 0: nothing to do */
    for (int i = 0; i < 64; i++)
        out[i] = 5.0f;
    ck_assert_int_eq(ops_attention(ctx1, &p, q, H * D, NULL, H * D, NULL, H * D, Tq, 0, out, H * D), COCHLEA_OK);
    for (int i = 0; i < 64; i++)
        EXPECT_FEQ(out[i], 0.0f);
    ck_assert_int_eq(ops_attention(ctx1, &p, NULL, H * D, NULL, H * D, NULL, H * D, 0, Tk, NULL, H * D), COCHLEA_OK);
    /* caller scratch gives the same result as internal scratch */
    ck_assert_int_eq(ops_attention(ctx2, &p, q, H * D, k, H * D, v, H * D, Tq, Tk, out, H * D), COCHLEA_OK);
    size_t need = ops_attention_work_floats(ctx2, &p, Tq, Tk);
    ck_assert_uint_ge(need, 2 * 4 * (size_t)Tk);
    float *work = test_alloc(need);
    p.work = work;
    p.work_floats = need;
    ck_assert_int_eq(ops_attention(ctx2, &p, q, H * D, k, H * D, v, H * D, Tq, Tk, out2, H * D), COCHLEA_OK);
    EXPECT(memcmp(out, out2, sizeof out) == 0);
    p.work_floats = need - 1;
    ck_assert_int_eq(ops_attention(ctx2, &p, q, H * D, k, H * D, v, H * D, Tq, Tk, out2, H * D), COCHLEA_EINVAL);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "scratch"));
    free(work);
    /* bad shapes */
    ops_attn_params b = ops_attn_default_params(3, 2, D);
    ck_assert_int_eq(ops_attention(ctx1, &b, q, 24, k, 16, v, 16, Tq, Tk, out, 24), COCHLEA_EINVAL);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "n_head=3 n_head_kv=2"));
    b = ops_attn_default_params(H, H, D);
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D - 1, k, H * D, v, H * D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D, k, H * D - 1, v, H * D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D, k, H * D, v, H * D, -1, Tk, out, H * D), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D, NULL, H * D, v, H * D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    b.mask = q;
    b.mask_ld = Tk - 1;
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D, k, H * D, v, H * D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    b = ops_attn_default_params(H, H, D);
    b.scale = NAN;
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D, k, H * D, v, H * D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_attention(ctx1, NULL, q, H * D, k, H * D, v, H * D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    b = ops_attn_default_params(H, H, D);
    b.k_head_stride = -1;
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D, k, H * D, v, H * D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    b.k_head_stride = 3 * D; /* head-major K: ldk may be D, but not less */
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D, k, D - 1, v, H * D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D, k, D, v, D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    b = ops_attn_default_params(H, 0, D);
    ck_assert_int_eq(ops_attention(ctx1, &b, q, H * D, k, H * D, v, H * D, Tq, Tk, out, H * D), COCHLEA_EINVAL);
    /* a NULL context runs the row-wise kernel on the calling thread */
    ops_attn_params p0 = ops_attn_default_params(H, H, D);
    ck_assert_int_eq(ops_attention(NULL, &p0, q, H * D, k, H * D, v, H * D, Tq, Tk, out2, H * D), COCHLEA_OK);
    EXPECT(memcmp(out, out2, sizeof out) == 0);
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("basic");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_elementwise);
    tcase_add_test(tc, test_row_broadcast);
    tcase_add_test(tc, test_layer_norm);
    tcase_add_test(tc, test_layer_norm_edges);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_softmax_mask);
    tcase_add_test(tc, test_softmax_threads);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_activation_specials);
    tcase_add_test(tc, test_activation_threads);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_embedding_threads);
    tcase_add_test(tc, test_sinusoidal_pe);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_rope_modes_threads);
    suite_add_tcase(s, tc);
    TCase *ta = tcase_create("attention");
    tcase_add_checked_fixture(ta, setup, teardown);
    tcase_set_timeout(ta, 600);
    tcase_add_test(ta, test_attention_rowwise);
    tcase_add_test(ta, test_attention_gemm_path);
    tcase_add_test(ta, test_attention_large_scores);
    tcase_add_test(ta, test_attention_batch_invariance);
    tcase_add_test(ta, test_attention_edges);
    suite_add_tcase(s, ta);
    return s;
}

int main(void)
{
    return test_run_suite(ops_suite());
}
