/* test_ops_conv.c - conv1d, transposed conv1d, conv2d and LSTM against naive references
 * (double accumulation) written here, on random and edge-case shapes, 1 and 2 threads.
 *
 * Run with `--torch FIXTURE` it instead compares the ops with outputs that PyTorch computed
 * (tests/ref/ops_ref.py writes the fixture; tests/ops_torch.sh drives it). */
#include <stdint.h>
#include <string.h>

#include "cochlea.h"
#include "ctx.h"
#include "ops.h"
#include "tensor.h"
#include "testutil.h"

static cochlea_ctx *ctx1, *ctx2;

static void setup(void)
{
    ck_assert_int_eq(ctx_create(1, COCHLEA_PRECISION_F32, &ctx1), 0);
    ck_assert_int_eq(ctx_create(2, COCHLEA_PRECISION_F32, &ctx2), 0);
}

static void teardown(void)
{
    ctx_free(ctx1);
    ctx_free(ctx2);
    ctx1 = ctx2 = NULL;
}

/* A contiguous weight of `type` with PyTorch shape `shape` (outermost first), random values in
 * [-1, 1); wf receives the values it holds after rounding to the type. */
static void make_weight(tensor *t, enum cochlea_type type, int nd, const int64_t *shape, test_rng *r, float *wf)
{
    int64_t ne[TENSOR_MAX_DIMS];
    size_t n = 1;
    for (int i = 0; i < nd; i++) {
        ne[i] = shape[nd - 1 - i];
        n *= (size_t)shape[i];
    }
    ck_assert_int_eq(tensor_new(t, type, nd, ne), 0);
    test_fill(r, wf, n, -1.0f, 1.0f);
    switch (type) {
    case COCHLEA_TYPE_F32: memcpy(t->data, wf, n * sizeof(float)); break;
    case COCHLEA_TYPE_F16:
        f32_to_fp16_array(wf, t->data, n);
        fp16_to_f32_array(t->data, wf, n);
        break;
    case COCHLEA_TYPE_BF16:
        f32_to_bf16_array(wf, t->data, n);
        bf16_to_f32_array(t->data, wf, n);
        break;
    case COCHLEA_TYPE_Q8_0:
        q8_0_quantize(wf, t->data, n);
        q8_0_dequantize(t->data, wf, n);
        break;
    default: ck_abort_msg("unsupported test weight type %d", (int)type);
    }
}

static int error_mentions(const char *s)
{
    const char *e = cochlea_last_error();
    return e && strstr(e, s) != NULL;
}

#define ASSERT_ERR(call, code, text)                                                                         \
    do {                                                                                                     \
        int rc_ = (call);                                                                                    \
        ck_assert_msg(rc_ == (code), "expected %d, got %d (%s)", (int)(code), rc_, cochlea_last_error());     \
        ck_assert_msg(error_mentions(text), "message '%s' does not mention '%s'", cochlea_last_error(), text); \
    } while (0)

/* Assert |a-b| <= atol + rtol*|b| everywhere with one Check assertion (Check records every
 * passing assertion, so per-element asserts would dominate the run time on big outputs). */
#define assert_close(a, b, n, atol, rtol) assert_close_at(__LINE__, a, b, n, atol, rtol)
static void assert_close_at(int line, const float *a, const float *b, size_t n, double atol, double rtol)
{
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= atol + rtol * fabs((double)b[i])))
            bad = i;
    }
    ck_assert_msg(bad == n, "line %d: index %zu of %zu: got %.9g, expected %.9g (|diff| %.3g, atol %.3g)", line,
                  bad, n, bad < n ? (double)a[bad] : 0.0, bad < n ? (double)b[bad] : 0.0,
                  bad < n ? fabs((double)a[bad] - (double)b[bad]) : 0.0, atol);
}

/* Absolute tolerance for fp32 sums of `terms` products of values in [-1, 1]. */
static double sum_tol(int64_t terms)
{
    return 1e-5 * fmax(1.0, sqrt((double)terms / 64.0));
}

/* ---- references ---------------------------------------------------------------------------- */

/* Sample j of row xr (length T) after padding on the left by pl: zero or reflect. */
static double ref_pad_at(const float *xr, int64_t T, int64_t j, int64_t pl, int reflect)
{
    int64_t s = j - pl;
    if (s >= 0 && s < T)
        return xr[s];
    if (!reflect)
        return 0.0;
    if (s < 0)
        s = -s;
    if (s >= T)
        s = 2 * (T - 1) - s;
    return xr[s];
}

/* conv1d by definition: wf is PyTorch [C_out, C_in/g, K]. */
static void ref_conv1d(const float *x, int64_t C_in, int64_t T, const float *wf, int64_t C_out, int64_t K,
                       const float *bias, const ops_conv1d_params *p, float *y, int64_t T_out)
{
    int64_t Cg = C_in / p->groups, Cog = C_out / p->groups;
    for (int64_t co = 0; co < C_out; co++) {
        int64_t g = co / Cog;
        for (int64_t t = 0; t < T_out; t++) {
            double acc = bias ? bias[co] : 0.0;
            for (int64_t c = 0; c < Cg; c++)
                for (int64_t k = 0; k < K; k++)
                    acc += (double)wf[(co * Cg + c) * K + k] *
                           ref_pad_at(x + (g * Cg + c) * T, T, t * p->stride + k * p->dilation, p->pad_left,
                                      p->pad_mode == OPS_PAD_REFLECT);
            y[co * T_out + t] = (float)acc;
        }
    }
}

/* conv_transpose1d by scattering every input sample: wf is PyTorch [C_in, C_out/g, K]. */
static void ref_conv_transpose1d(const float *x, int64_t C_in, int64_t T, const float *wf, int64_t Cog, int64_t K,
                                 const float *bias, const ops_conv_transpose1d_params *p, float *y, int64_t T_out)
{
    int64_t Cg = C_in / p->groups, C_out = Cog * p->groups;
    double *acc = calloc((size_t)(C_out * T_out), sizeof(double));
    ck_assert_ptr_nonnull(acc);
    for (int64_t co = 0; co < C_out; co++)
        for (int64_t t = 0; t < T_out; t++)
            acc[co * T_out + t] = bias ? bias[co] : 0.0;
    for (int64_t ci = 0; ci < C_in; ci++) {
        int64_t g = ci / Cg;
        for (int64_t t = 0; t < T; t++)
            for (int64_t c = 0; c < Cog; c++)
                for (int64_t k = 0; k < K; k++) {
                    int64_t to = t * p->stride + k * p->dilation - p->padding;
                    if (to >= 0 && to < T_out)
                        acc[(g * Cog + c) * T_out + to] += (double)x[ci * T + t] * wf[(ci * Cog + c) * K + k];
                }
    }
    for (int64_t i = 0; i < C_out * T_out; i++)
        y[i] = (float)acc[i];
    free(acc);
}

/* conv2d by definition: wf is PyTorch [C_out, C_in, kh, kw]. */
static void ref_conv2d(const float *x, int64_t C_in, int64_t H, int64_t W, const float *wf, int64_t C_out,
                       int64_t kh, int64_t kw, const float *bias, const ops_conv2d_params *p, float *y, int64_t Ho,
                       int64_t Wo)
{
    for (int64_t co = 0; co < C_out; co++)
        for (int64_t i = 0; i < Ho; i++)
            for (int64_t j = 0; j < Wo; j++) {
                double acc = bias ? bias[co] : 0.0;
                for (int64_t ci = 0; ci < C_in; ci++)
                    for (int64_t a = 0; a < kh; a++)
                        for (int64_t b = 0; b < kw; b++) {
                            int64_t ih = i * p->stride_h + a * p->dilation_h - p->pad_h;
                            int64_t iw = j * p->stride_w + b * p->dilation_w - p->pad_w;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                acc += (double)wf[((co * C_in + ci) * kh + a) * kw + b] * x[(ci * H + ih) * W + iw];
                        }
                y[(co * Ho + i) * Wo + j] = (float)acc;
            }
}

/* ---- conv1d ---------------------------------------------------------------------------------- */

struct conv1d_case {
    int64_t C_in, C_out, K, T;
    ops_conv1d_params p;
    enum cochlea_type type;
    int bias;
};

/* Run one conv1d case on 1 and 2 threads and compare with the reference; returns 1 when run,
 * 0 when the shape is invalid (and then checks that it is rejected). */
static int check_conv1d(const struct conv1d_case *c, test_rng *r)
{
    int64_t Cg = c->C_in / c->p.groups;
    int64_t shape[3] = {c->C_out, Cg, c->K};
    int64_t T_out = 0;
    float *wf = test_alloc((size_t)(c->C_out * Cg * c->K));
    tensor w;
    make_weight(&w, c->type, 3, shape, r, wf);
    float *x = test_alloc((size_t)(c->C_in * c->T)), *b = test_alloc((size_t)c->C_out);
    test_fill(r, x, (size_t)(c->C_in * c->T), -1.0f, 1.0f);
    test_fill(r, b, (size_t)c->C_out, -1.0f, 1.0f);
    int64_t Tp = c->T + c->p.pad_left + c->p.pad_right;
    int ran = 0;
    if (Tp < (int64_t)c->p.dilation * (c->K - 1) + 1) {
        ASSERT_ERR(ops_conv1d_out_len(c->T, c->K, &c->p, &T_out), COCHLEA_EINVAL, "shorter than the dilated kernel");
        float dummy[1];
        ASSERT_ERR(ops_conv1d(ctx1, x, c->C_in, c->T, &w, b, &c->p, dummy, 1), COCHLEA_EINVAL, "dilated kernel");
    } else {
        ck_assert_int_eq(ops_conv1d_out_len(c->T, c->K, &c->p, &T_out), 0);
        ck_assert_int_eq(T_out, (Tp - (int64_t)c->p.dilation * (c->K - 1) - 1) / c->p.stride + 1);
        size_t n = (size_t)(c->C_out * T_out);
        float *ref = test_alloc(n), *y1 = test_alloc(n), *y2 = test_alloc(n);
        ref_conv1d(x, c->C_in, c->T, wf, c->C_out, c->K, c->bias ? b : NULL, &c->p, ref, T_out);
        int rc = ops_conv1d(ctx1, x, c->C_in, c->T, &w, c->bias ? b : NULL, &c->p, y1, T_out);
        ck_assert_msg(rc == 0, "conv1d failed: %s", cochlea_last_error());
        ck_assert_int_eq(ops_conv1d(ctx2, x, c->C_in, c->T, &w, c->bias ? b : NULL, &c->p, y2, T_out), 0);
        double tol = sum_tol(Cg * c->K);
        assert_close(y1, ref, n, tol, 1e-5);
        assert_close(y2, ref, n, tol, 1e-5);
        assert_close(y2, y1, n, tol, 1e-5);
        free(ref);
        free(y1);
        free(y2);
        ran = 1;
    }
    tensor_free(&w);
    free(wf);
    free(x);
    free(b);
    return ran;
}

START_TEST(conv1d_random)
{
    test_rng r = {101};
    int ran = 0, depthwise = 0, grouped = 0, reflect = 0;
    for (int it = 0; it < 300; it++) {
        struct conv1d_case c;
        memset(&c, 0, sizeof c);
        int kind = test_rng_int(&r, 0, 2); /* 0: groups 1, 1: groups 2, 2: depthwise */
        int64_t Cg = test_rng_int(&r, 1, 4), Cog = test_rng_int(&r, 1, 3);
        c.p = ops_conv1d_default_params();
        c.p.groups = kind == 0 ? 1 : kind == 1 ? 2 : test_rng_int(&r, 1, 5);
        if (kind == 2)
            Cg = 1;
        c.C_in = Cg * c.p.groups;
        c.C_out = Cog * c.p.groups;
        c.K = test_rng_int(&r, 1, 7);
        c.T = test_rng_int(&r, 1, 19);
        c.p.stride = test_rng_int(&r, 1, 4);
        c.p.dilation = test_rng_int(&r, 1, 3);
        if (test_rng_int(&r, 0, 2) == 0 && c.T > 1) {
            c.p.pad_mode = OPS_PAD_REFLECT;
            c.p.pad_left = test_rng_int(&r, 0, (int)c.T - 1);
            c.p.pad_right = test_rng_int(&r, 0, (int)c.T - 1);
        } else {
            c.p.pad_left = test_rng_int(&r, 0, 6);
            c.p.pad_right = test_rng_int(&r, 0, 6);
        }
        c.type = COCHLEA_TYPE_F32;
        c.bias = test_rng_int(&r, 0, 3) != 0;
        if (check_conv1d(&c, &r)) {
            ran++;
            depthwise += Cg == 1 && c.p.groups > 1;
            grouped += Cg > 1 && c.p.groups > 1;
            reflect += c.p.pad_mode == OPS_PAD_REFLECT;
        }
    }
    /* the random shapes must cover every path */
    ck_assert_int_ge(ran, 150);
    ck_assert_int_ge(depthwise, 20);
    ck_assert_int_ge(grouped, 20);
    ck_assert_int_ge(reflect, 20);
}
END_TEST

START_TEST(conv1d_edges)
{
    test_rng r = {7};
    struct conv1d_case cases[] = {
        /* T = 1, kernel 3 with "same" padding */
        {3, 4, 3, 1, {1, 1, 1, 1, 1, OPS_PAD_ZERO}, COCHLEA_TYPE_F32, 1},
        /* kernel longer than the input, made valid by padding */
        {2, 3, 5, 2, {1, 1, 1, 2, 2, OPS_PAD_ZERO}, COCHLEA_TYPE_F32, 1},
        /* stride larger than the kernel */
        {3, 2, 2, 17, {5, 1, 1, 0, 0, OPS_PAD_ZERO}, COCHLEA_TYPE_F32, 0},
        /* causal (left-only) dilated padding */
        {4, 4, 3, 11, {1, 4, 2, 8, 0, OPS_PAD_ZERO}, COCHLEA_TYPE_F32, 1},
        /* reflect padding of T-1 on both sides, also on a depthwise conv */
        {2, 2, 3, 5, {1, 1, 1, 4, 4, OPS_PAD_REFLECT}, COCHLEA_TYPE_F32, 1},
        {3, 6, 4, 6, {2, 1, 3, 5, 5, OPS_PAD_REFLECT}, COCHLEA_TYPE_F32, 1},
        /* pointwise conv; C_in = 1 (runs as a depthwise loop with 5 outputs per channel) */
        {6, 5, 1, 9, {1, 1, 1, 0, 0, OPS_PAD_ZERO}, COCHLEA_TYPE_F32, 1},
        {1, 5, 7, 30, {1, 1, 1, 3, 3, OPS_PAD_REFLECT}, COCHLEA_TYPE_F32, 1},
        /* half-precision weights, dense and depthwise */
        {4, 6, 3, 13, {2, 1, 2, 1, 1, OPS_PAD_ZERO}, COCHLEA_TYPE_F16, 1},
        {5, 5, 31, 40, {1, 1, 5, 15, 15, OPS_PAD_ZERO}, COCHLEA_TYPE_BF16, 1},
        /* Q8_0 weight (K a multiple of 32) */
        {3, 4, 32, 40, {1, 1, 1, 0, 0, OPS_PAD_ZERO}, COCHLEA_TYPE_Q8_0, 1},
        /* several im2col blocks: (C_in*K + C_out) * T_out exceeds the 24 MiB scratch */
        {2048, 8, 4, 1503, {1, 1, 1, 0, 0, OPS_PAD_ZERO}, COCHLEA_TYPE_F32, 1},
        {2048, 6, 4, 1503, {1, 1, 2, 1, 2, OPS_PAD_REFLECT}, COCHLEA_TYPE_F32, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(check_conv1d(&cases[i], &r), "case %zu did not run", i);
}
END_TEST

START_TEST(conv1d_reflect_limits)
{
    test_rng r = {9};
    int64_t shape[3] = {2, 2, 3};
    float wf[12], x[10], y[22];
    tensor w;
    make_weight(&w, COCHLEA_TYPE_F32, 3, shape, &r, wf);
    test_fill(&r, x, 10, -1, 1);
    ops_conv1d_params p = ops_conv1d_default_params();
    p.pad_mode = OPS_PAD_REFLECT;
    int64_t T_out;
    p.pad_left = 4;
    p.pad_right = 5; /* == T */
    ASSERT_ERR(ops_conv1d_out_len(5, 3, &p, &T_out), COCHLEA_EINVAL, "reflect padding (4, 5)");
    ASSERT_ERR(ops_conv1d(ctx1, x, 2, 5, &w, NULL, &p, y, 9), COCHLEA_EINVAL, "smaller than the input length 5");
    p.pad_left = 1;
    p.pad_right = 1; /* T = 1: any reflect padding is too much */
    ASSERT_ERR(ops_conv1d(ctx1, x, 2, 1, &w, NULL, &p, y, 1), COCHLEA_EINVAL, "reflect");
    p.pad_left = 4;
    p.pad_right = 4;
    ck_assert_int_eq(ops_conv1d_out_len(5, 3, &p, &T_out), 0);
    ck_assert_int_eq(T_out, 11);
    /* reflect of [a b c d e] by 4: e d c b | a b c d e | d c b a; check one output directly */
    ck_assert_int_eq(ops_conv1d(ctx1, x, 2, 5, &w, NULL, &p, y, 11), 0);
    double e0 = 0;
    for (int c = 0; c < 2; c++) /* output 0 of channel 0 covers padded samples 0..2 = x[4], x[3], x[2] */
        e0 += wf[c * 3 + 0] * x[c * 5 + 4] + wf[c * 3 + 1] * x[c * 5 + 3] + wf[c * 3 + 2] * x[c * 5 + 2];
    ck_assert_double_eq_tol(y[0], e0, 1e-5);
    tensor_free(&w);
}
END_TEST

START_TEST(conv1d_bad_args)
{
    test_rng r = {11};
    int64_t shape[3] = {4, 3, 3};
    float wf[36], x[60], y[80], b[4];
    tensor w;
    make_weight(&w, COCHLEA_TYPE_F32, 3, shape, &r, wf);
    w.name = "enc.conv.weight";
    test_fill(&r, x, 60, -1, 1);
    ops_conv1d_params p = ops_conv1d_default_params();
    /* weight for 3 input channels, input with 4 */
    ASSERT_ERR(ops_conv1d(ctx1, x, 4, 10, &w, b, &p, y, 8), COCHLEA_EINVAL, "enc.conv.weight");
    /* groups must divide channels */
    p.groups = 2;
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 10, &w, b, &p, y, 8), COCHLEA_EINVAL, "groups 2 must divide");
    p = ops_conv1d_default_params();
    /* wrong output length */
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 10, &w, b, &p, y, 9), COCHLEA_EINVAL, "produces 8");
    /* bad parameters */
    p.stride = 0;
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 10, &w, b, &p, y, 8), COCHLEA_EINVAL, "stride 0");
    p = ops_conv1d_default_params();
    p.pad_left = -1;
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 10, &w, b, &p, y, 8), COCHLEA_EINVAL, "padding (-1, 0)");
    p = ops_conv1d_default_params();
    p.pad_mode = (enum ops_pad_mode)7;
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 10, &w, b, &p, y, 8), COCHLEA_EINVAL, "padding mode 7");
    p = ops_conv1d_default_params();
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 0, &w, b, &p, y, 8), COCHLEA_EINVAL, "input length 0");
    ASSERT_ERR(ops_conv1d(ctx1, NULL, 3, 10, &w, b, &p, y, 8), COCHLEA_EINVAL, "missing");
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 10, NULL, b, &p, y, 8), COCHLEA_EINVAL, "weight tensor is missing");
    /* a non-contiguous weight */
    tensor v = w;
    v.nb[1] *= 2;
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 10, &v, b, &p, y, 8), COCHLEA_EINVAL, "not contiguous");
    /* an integer weight */
    v = w;
    v.type = COCHLEA_TYPE_I32;
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 10, &v, b, &p, y, 8), COCHLEA_EUNSUPPORTED, "type i32");
    /* a 4-D weight */
    v = w;
    v.ne[3] = 2;
    v.n_dims = 4;
    ASSERT_ERR(ops_conv1d(ctx1, x, 3, 10, &v, b, &p, y, 8), COCHLEA_EINVAL, "4 dimensions");
    tensor_free(&w);
}
END_TEST

/* ---- transposed conv1d --------------------------------------------------------------------- */

struct convt_case {
    int64_t C_in, Cog, K, T;
    ops_conv_transpose1d_params p;
    enum cochlea_type type;
    int bias;
};

static int check_convt(const struct convt_case *c, test_rng *r)
{
    int64_t shape[3] = {c->C_in, c->Cog, c->K}, C_out = c->Cog * c->p.groups, T_out = 0;
    float *wf = test_alloc((size_t)(c->C_in * c->Cog * c->K));
    tensor w;
    make_weight(&w, c->type, 3, shape, r, wf);
    float *x = test_alloc((size_t)(c->C_in * c->T)), *b = test_alloc((size_t)C_out);
    test_fill(r, x, (size_t)(c->C_in * c->T), -1.0f, 1.0f);
    test_fill(r, b, (size_t)C_out, -1.0f, 1.0f);
    int64_t full = (c->T - 1) * c->p.stride + (int64_t)c->p.dilation * (c->K - 1) + c->p.output_padding + 1 -
                   2 * (int64_t)c->p.padding;
    int ran = 0;
    if (full < 1) {
        ASSERT_ERR(ops_conv_transpose1d_out_len(c->T, c->K, &c->p, &T_out), COCHLEA_EINVAL, "leaves no output");
    } else {
        ck_assert_int_eq(ops_conv_transpose1d_out_len(c->T, c->K, &c->p, &T_out), 0);
        ck_assert_int_eq(T_out, full);
        size_t n = (size_t)(C_out * T_out);
        float *ref = test_alloc(n), *y1 = test_alloc(n), *y2 = test_alloc(n);
        ref_conv_transpose1d(x, c->C_in, c->T, wf, c->Cog, c->K, c->bias ? b : NULL, &c->p, ref, T_out);
        int rc = ops_conv_transpose1d(ctx1, x, c->C_in, c->T, &w, c->bias ? b : NULL, &c->p, y1, T_out);
        ck_assert_msg(rc == 0, "conv_transpose1d failed: %s", cochlea_last_error());
        ck_assert_int_eq(ops_conv_transpose1d(ctx2, x, c->C_in, c->T, &w, c->bias ? b : NULL, &c->p, y2, T_out), 0);
        double tol = sum_tol(c->C_in / c->p.groups * c->K);
        assert_close(y1, ref, n, tol, 1e-5);
        assert_close(y2, ref, n, tol, 1e-5);
        assert_close(y2, y1, n, tol, 1e-5);
        free(ref);
        free(y1);
        free(y2);
        ran = 1;
    }
    tensor_free(&w);
    free(wf);
    free(x);
    free(b);
    return ran;
}

START_TEST(convt_random)
{
    test_rng r = {202};
    int ran = 0, outpad = 0, grouped = 0;
    for (int it = 0; it < 300; it++) {
        struct convt_case c;
        memset(&c, 0, sizeof c);
        c.p = ops_conv_transpose1d_default_params();
        c.p.groups = test_rng_int(&r, 1, 3);
        c.C_in = test_rng_int(&r, 1, 3) * c.p.groups;
        c.Cog = test_rng_int(&r, 1, 3);
        c.K = test_rng_int(&r, 1, 6);
        c.T = test_rng_int(&r, 1, 12);
        c.p.stride = test_rng_int(&r, 1, 4);
        c.p.dilation = test_rng_int(&r, 1, 3);
        c.p.padding = test_rng_int(&r, 0, 3);
        int maxop = (c.p.stride > c.p.dilation ? c.p.stride : c.p.dilation) - 1;
        c.p.output_padding = test_rng_int(&r, 0, maxop);
        c.type = COCHLEA_TYPE_F32;
        c.bias = test_rng_int(&r, 0, 3) != 0;
        if (check_convt(&c, &r)) {
            ran++;
            outpad += c.p.output_padding > 0;
            grouped += c.p.groups > 1;
        }
    }
    ck_assert_int_ge(ran, 200);
    ck_assert_int_ge(outpad, 40);
    ck_assert_int_ge(grouped, 40);
}
END_TEST

START_TEST(convt_edges)
{
    test_rng r = {303};
    struct convt_case cases[] = {
        /* T = 1 */
        {3, 2, 4, 1, {2, 1, 1, 0, 0}, COCHLEA_TYPE_F32, 1},
        /* SEANet-style upsampling: kernel 2*stride, output padding */
        {4, 3, 8, 9, {4, 1, 1, 2, 1}, COCHLEA_TYPE_F32, 1},
        /* output padding allowed because it is below the dilation (not the stride) */
        {2, 2, 3, 5, {1, 3, 1, 0, 2}, COCHLEA_TYPE_F32, 1},
        /* stride larger than the kernel leaves gaps that only the bias fills */
        {2, 3, 2, 6, {5, 1, 1, 0, 3}, COCHLEA_TYPE_F32, 1},
        /* depthwise-like groups, half-precision weights */
        {4, 1, 3, 7, {2, 1, 4, 1, 1}, COCHLEA_TYPE_F16, 1},
        {6, 2, 5, 8, {3, 2, 2, 2, 0}, COCHLEA_TYPE_BF16, 0},
        /* several GEMM blocks: C_out*K*T exceeds the scratch */
        {2, 1024, 16, 600, {8, 1, 1, 4, 0}, COCHLEA_TYPE_F32, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(check_convt(&cases[i], &r), "case %zu did not run", i);
}
END_TEST

START_TEST(convt_bad_args)
{
    test_rng r = {404};
    int64_t shape[3] = {3, 2, 4};
    float wf[24], x[30], y[100];
    tensor w;
    make_weight(&w, COCHLEA_TYPE_F32, 3, shape, &r, wf);
    w.name = "dec.up.weight";
    test_fill(&r, x, 30, -1, 1);
    ops_conv_transpose1d_params p = ops_conv_transpose1d_default_params();
    int64_t T_out;
    /* output padding must be below stride or dilation */
    p.stride = 2;
    p.output_padding = 2;
    ASSERT_ERR(ops_conv_transpose1d_out_len(10, 4, &p, &T_out), COCHLEA_EINVAL, "output padding 2");
    /* too much padding */
    p.output_padding = 0;
    p.stride = 1;
    p.padding = 3;
    ASSERT_ERR(ops_conv_transpose1d(ctx1, x, 3, 1, &w, NULL, &p, y, 1), COCHLEA_EINVAL, "leaves no output");
    p = ops_conv_transpose1d_default_params();
    /* channel mismatch names the weight */
    ASSERT_ERR(ops_conv_transpose1d(ctx1, x, 2, 10, &w, NULL, &p, y, 13), COCHLEA_EINVAL, "dec.up.weight");
    /* groups must divide C_in */
    p.groups = 2;
    ASSERT_ERR(ops_conv_transpose1d(ctx1, x, 3, 10, &w, NULL, &p, y, 13), COCHLEA_EINVAL, "groups 2");
    p = ops_conv_transpose1d_default_params();
    ASSERT_ERR(ops_conv_transpose1d(ctx1, x, 3, 10, &w, NULL, &p, y, 12), COCHLEA_EINVAL, "produces 13");
    p.dilation = 0;
    ASSERT_ERR(ops_conv_transpose1d(ctx1, x, 3, 10, &w, NULL, &p, y, 13), COCHLEA_EINVAL, "dilation 0");
    tensor_free(&w);
}
END_TEST

/* ---- conv2d ---------------------------------------------------------------------------------- */

struct conv2d_case {
    int64_t C_in, C_out, H, W, kh, kw;
    ops_conv2d_params p;
    enum cochlea_type type;
    int bias;
};

static int check_conv2d(cochlea_ctx *cb, double tol, const struct conv2d_case *c, test_rng *r)
{
    int64_t shape[4] = {c->C_out, c->C_in, c->kh, c->kw}, Ho = 0, Wo = 0;
    size_t nw = (size_t)(c->C_out * c->C_in * c->kh * c->kw), nx = (size_t)(c->C_in * c->H * c->W);
    float *wf = test_alloc(nw);
    tensor w;
    make_weight(&w, c->type, 4, shape, r, wf);
    float *x = test_alloc(nx), *b = test_alloc((size_t)c->C_out);
    test_fill(r, x, nx, -1.0f, 1.0f);
    test_fill(r, b, (size_t)c->C_out, -1.0f, 1.0f);
    int64_t eh = (c->H + 2 * c->p.pad_h - (int64_t)c->p.dilation_h * (c->kh - 1) - 1);
    int64_t ew = (c->W + 2 * c->p.pad_w - (int64_t)c->p.dilation_w * (c->kw - 1) - 1);
    int ran = 0;
    if (eh < 0 || ew < 0) {
        ASSERT_ERR(ops_conv2d_out_size(c->H, c->W, c->kh, c->kw, &c->p, &Ho, &Wo), COCHLEA_EINVAL,
                   "smaller than the dilated kernel");
    } else {
        ck_assert_int_eq(ops_conv2d_out_size(c->H, c->W, c->kh, c->kw, &c->p, &Ho, &Wo), 0);
        ck_assert_int_eq(Ho, eh / c->p.stride_h + 1);
        ck_assert_int_eq(Wo, ew / c->p.stride_w + 1);
        size_t n = (size_t)(c->C_out * Ho * Wo);
        float *ref = test_alloc(n), *y1 = test_alloc(n), *y2 = test_alloc(n);
        ref_conv2d(x, c->C_in, c->H, c->W, wf, c->C_out, c->kh, c->kw, c->bias ? b : NULL, &c->p, ref, Ho, Wo);
        int rc = ops_conv2d(cb ? cb : ctx1, x, c->C_in, c->H, c->W, &w, c->bias ? b : NULL, &c->p, y1, Ho, Wo);
        ck_assert_msg(rc == 0, "conv2d failed: %s", cochlea_last_error());
        if (cb) {
            /* reduced precision: error relative to the output scale */
            double scale = 0;
            for (size_t i = 0; i < n; i++)
                scale = fmax(scale, fabs(ref[i]));
            assert_close(y1, ref, n, tol * scale, 0.0);
        } else {
            ck_assert_int_eq(ops_conv2d(ctx2, x, c->C_in, c->H, c->W, &w, c->bias ? b : NULL, &c->p, y2, Ho, Wo), 0);
            double t = sum_tol(c->C_in * c->kh * c->kw);
            assert_close(y1, ref, n, t, 1e-5);
            assert_close(y2, ref, n, t, 1e-5);
            assert_close(y2, y1, n, t, 1e-5);
        }
        free(ref);
        free(y1);
        free(y2);
        ran = 1;
    }
    tensor_free(&w);
    free(wf);
    free(x);
    free(b);
    return ran;
}

START_TEST(conv2d_random)
{
    test_rng r = {505};
    int ran = 0, padded = 0;
    for (int it = 0; it < 150; it++) {
        struct conv2d_case c;
        memset(&c, 0, sizeof c);
        c.C_in = test_rng_int(&r, 1, 5);
        c.C_out = test_rng_int(&r, 1, 6);
        c.H = test_rng_int(&r, 1, 13);
        c.W = test_rng_int(&r, 1, 13);
        c.kh = test_rng_int(&r, 1, 4);
        c.kw = test_rng_int(&r, 1, 4);
        c.p.stride_h = test_rng_int(&r, 1, 3);
        c.p.stride_w = test_rng_int(&r, 1, 3);
        c.p.pad_h = test_rng_int(&r, 0, 2);
        c.p.pad_w = test_rng_int(&r, 0, 2);
        c.p.dilation_h = test_rng_int(&r, 1, 2);
        c.p.dilation_w = test_rng_int(&r, 1, 2);
        c.type = COCHLEA_TYPE_F32;
        c.bias = test_rng_int(&r, 0, 3) != 0;
        if (check_conv2d(NULL, 0, &c, &r)) {
            ran++;
            padded += c.p.pad_h > 0 || c.p.pad_w > 0;
        }
    }
    ck_assert_int_ge(ran, 80);
    ck_assert_int_ge(padded, 40);
}
END_TEST

START_TEST(conv2d_edges)
{
    test_rng r = {606};
    struct conv2d_case cases[] = {
        /* Conv2dSubsampling8 first layer on a short odd input (time x mel), 1 input channel */
        {1, 16, 31, 80, 3, 3, {2, 2, 0, 0, 1, 1}, COCHLEA_TYPE_F32, 1},
        /* its next layers: 3x3 stride 2 on odd sizes */
        {16, 8, 15, 39, 3, 3, {2, 2, 0, 0, 1, 1}, COCHLEA_TYPE_F32, 1},
        {8, 8, 7, 19, 3, 3, {2, 2, 0, 0, 1, 1}, COCHLEA_TYPE_BF16, 1},
        /* 1x1 input, padded */
        {2, 3, 1, 1, 3, 3, {1, 1, 1, 1, 1, 1}, COCHLEA_TYPE_F32, 1},
        /* kernel wider than the image, padding makes it valid; stride > kernel */
        {2, 2, 5, 2, 2, 4, {3, 1, 0, 1, 1, 1}, COCHLEA_TYPE_F16, 0},
        /* several im2col blocks: (C_in*9 + C_out) * H_out * W_out exceeds the scratch */
        {1024, 4, 61, 81, 3, 3, {2, 2, 0, 0, 1, 1}, COCHLEA_TYPE_F32, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(check_conv2d(NULL, 0, &cases[i], &r), "case %zu did not run", i);
}
END_TEST

START_TEST(conv2d_bf16_precision)
{
    test_rng r = {707};
    cochlea_ctx *cb;
    ck_assert_int_eq(ctx_create(2, COCHLEA_PRECISION_BF16, &cb), 0);
    struct conv2d_case c = {32, 24, 21, 19, 3, 3, {2, 2, 0, 0, 1, 1}, COCHLEA_TYPE_F32, 1};
    /* bf16 inputs and weights (8-bit mantissa), fp32 accumulation over 288 terms */
    ck_assert(check_conv2d(cb, 2e-2, &c, &r));
    ctx_free(cb);
}
END_TEST

START_TEST(conv2d_bad_args)
{
    test_rng r = {808};
    int64_t shape[4] = {2, 3, 3, 3};
    float wf[54], x[300], y[300];
    tensor w;
    make_weight(&w, COCHLEA_TYPE_F32, 4, shape, &r, wf);
    w.name = "encoder.embed.conv.0.weight";
    test_fill(&r, x, 300, -1, 1);
    ops_conv2d_params p = ops_conv2d_default_params();
    int64_t Ho, Wo;
    ASSERT_ERR(ops_conv2d(ctx1, x, 2, 10, 10, &w, NULL, &p, y, 8, 8), COCHLEA_EINVAL, "encoder.embed.conv.0.weight");
    ASSERT_ERR(ops_conv2d(ctx1, x, 3, 10, 10, &w, NULL, &p, y, 8, 7), COCHLEA_EINVAL, "produces 8 x 8");
    ASSERT_ERR(ops_conv2d(ctx1, x, 3, 2, 10, &w, NULL, &p, y, 1, 8), COCHLEA_EINVAL, "padded height size 2");
    p.stride_w = 0;
    ASSERT_ERR(ops_conv2d_out_size(10, 10, 3, 3, &p, &Ho, &Wo), COCHLEA_EINVAL, "width stride 0");
    p = ops_conv2d_default_params();
    p.pad_h = -2;
    ASSERT_ERR(ops_conv2d_out_size(10, 10, 3, 3, &p, &Ho, &Wo), COCHLEA_EINVAL, "padding -2");
    tensor v = w;
    v.nb[3] *= 2; /* a gap between output channels */
    ASSERT_ERR(ops_conv2d(ctx1, x, 3, 10, 10, &v, NULL, &p, y, 8, 8), COCHLEA_EINVAL, "not contiguous");
    tensor_free(&w);
}
END_TEST

/* ---- LSTM ------------------------------------------------------------------------------------- */

static double sigm(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

/* One LSTM direction by the PyTorch equations; wih [4H, I], whh [4H, H]; h, c updated in place. */
static void ref_lstm_dir(const float *x, int64_t T, int64_t I, int64_t H, const float *wih, const float *whh,
                         const float *bih, const float *bhh, int reverse, double *h, double *c, float *y,
                         int64_t ldy)
{
    double *g = calloc((size_t)(4 * H), sizeof(double)), *hn = calloc((size_t)H, sizeof(double));
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_nonnull(hn);
    for (int64_t s = 0; s < T; s++) {
        int64_t t = reverse ? T - 1 - s : s;
        for (int64_t r = 0; r < 4 * H; r++) {
            double a = (bih ? bih[r] : 0.0) + (bhh ? bhh[r] : 0.0);
            for (int64_t i = 0; i < I; i++)
                a += (double)wih[r * I + i] * x[t * I + i];
            for (int64_t j = 0; j < H; j++)
                a += (double)whh[r * H + j] * h[j];
            g[r] = a;
        }
        for (int64_t j = 0; j < H; j++) {
            c[j] = sigm(g[H + j]) * c[j] + sigm(g[j]) * tanh(g[2 * H + j]);
            hn[j] = sigm(g[3 * H + j]) * tanh(c[j]);
            y[t * ldy + j] = (float)hn[j];
        }
        memcpy(h, hn, (size_t)H * sizeof(double));
    }
    free(g);
    free(hn);
}

struct lstm_case {
    int64_t T, I, H;
    int layers, bidir, init, bias;
    enum cochlea_type type;
};

static void check_lstm(const struct lstm_case *lc, test_rng *r)
{
    int nd = lc->bidir ? 2 : 1, nw = lc->layers * nd;
    int64_t H = lc->H, G = 4 * H;
    tensor *wih = calloc((size_t)nw, sizeof(tensor)), *whh = calloc((size_t)nw, sizeof(tensor));
    float **wihf = calloc((size_t)nw, sizeof(float *)), **whhf = calloc((size_t)nw, sizeof(float *));
    float **bih = calloc((size_t)nw, sizeof(float *)), **bhh = calloc((size_t)nw, sizeof(float *));
    ops_lstm_weights *lw = calloc((size_t)nw, sizeof(ops_lstm_weights));
    ck_assert(wih && whh && wihf && whhf && bih && bhh && lw);
    for (int l = 0; l < lc->layers; l++)
        for (int d = 0; d < nd; d++) {
            int k = l * nd + d;
            int64_t I = l == 0 ? lc->I : nd * H;
            int64_t s_ih[2] = {G, I}, s_hh[2] = {G, H};
            wihf[k] = test_alloc((size_t)(G * I));
            whhf[k] = test_alloc((size_t)(G * H));
            make_weight(&wih[k], lc->type, 2, s_ih, r, wihf[k]);
            make_weight(&whh[k], lc->type, 2, s_hh, r, whhf[k]);
            bih[k] = test_alloc((size_t)G);
            bhh[k] = test_alloc((size_t)G);
            test_fill(r, bih[k], (size_t)G, -0.5f, 0.5f);
            test_fill(r, bhh[k], (size_t)G, -0.5f, 0.5f);
            lw[k].w_ih = &wih[k];
            lw[k].w_hh = &whh[k];
            lw[k].b_ih = lc->bias ? bih[k] : NULL;
            lw[k].b_hh = lc->bias ? bhh[k] : NULL;
        }
    ops_lstm_desc m = {lc->I, H, lc->layers, lc->bidir, lw};
    size_t ny = (size_t)(lc->T * nd * H), ns = (size_t)(nw * H);
    float *x = test_alloc((size_t)(lc->T * lc->I)), *h0 = test_alloc(ns), *c0 = test_alloc(ns);
    test_fill(r, x, (size_t)(lc->T * lc->I), -1.0f, 1.0f);
    test_fill(r, h0, ns, -1.0f, 1.0f);
    test_fill(r, c0, ns, -1.0f, 1.0f);

    /* reference, layer by layer */
    float *ref = test_alloc(ny), *in = test_alloc(ny), *rh = test_alloc(ns), *rc = test_alloc(ns);
    double *h = calloc((size_t)H, sizeof(double)), *c = calloc((size_t)H, sizeof(double));
    ck_assert(h && c);
    const float *lin = x;
    for (int l = 0; l < lc->layers; l++) {
        int64_t I = l == 0 ? lc->I : nd * H;
        for (int d = 0; d < nd; d++) {
            int k = l * nd + d;
            for (int64_t j = 0; j < H; j++) {
                h[j] = lc->init ? h0[k * H + j] : 0.0;
                c[j] = lc->init ? c0[k * H + j] : 0.0;
            }
            ref_lstm_dir(lin, lc->T, I, H, wihf[k], whhf[k], lw[k].b_ih, lw[k].b_hh, d, h, c, ref + d * H, nd * H);
            for (int64_t j = 0; j < H; j++) {
                rh[k * H + j] = (float)h[j];
                rc[k * H + j] = (float)c[j];
            }
        }
        memcpy(in, ref, ny * sizeof(float));
        lin = in;
    }

    float *y1 = test_alloc(ny), *y2 = test_alloc(ny), *hn = test_alloc(ns), *cn = test_alloc(ns);
    int rc1 = ops_lstm(ctx1, &m, x, lc->T, lc->init ? h0 : NULL, lc->init ? c0 : NULL, y1, hn, cn);
    ck_assert_msg(rc1 == 0, "lstm failed: %s", cochlea_last_error());
    assert_close(y1, ref, ny, 2e-5, 1e-4);
    assert_close(hn, rh, ns, 2e-5, 1e-4);
    assert_close(cn, rc, ns, 2e-5, 1e-4);
    ck_assert_int_eq(ops_lstm(ctx2, &m, x, lc->T, lc->init ? h0 : NULL, lc->init ? c0 : NULL, y2, NULL, NULL), 0);
    assert_close(y2, y1, ny, 1e-6, 1e-6);

    for (int k = 0; k < nw; k++) {
        tensor_free(&wih[k]);
        tensor_free(&whh[k]);
        free(wihf[k]);
        free(whhf[k]);
        free(bih[k]);
        free(bhh[k]);
    }
    free(wih);
    free(whh);
    free(wihf);
    free(whhf);
    free(bih);
    free(bhh);
    free(lw);
    free(x);
    free(h0);
    free(c0);
    free(ref);
    free(in);
    free(rh);
    free(rc);
    free(h);
    free(c);
    free(y1);
    free(y2);
    free(hn);
    free(cn);
}

START_TEST(lstm_cases)
{
    test_rng r = {909};
    struct lstm_case cases[] = {
        {9, 7, 13, 1, 0, 0, 1, COCHLEA_TYPE_F32},  /* unidirectional, 1 layer */
        {1, 5, 6, 1, 0, 1, 1, COCHLEA_TYPE_F32},   /* T = 1 with initial state */
        {9, 7, 13, 1, 1, 0, 1, COCHLEA_TYPE_F32},  /* bidirectional */
        {8, 3, 11, 2, 0, 1, 1, COCHLEA_TYPE_F32},  /* 2 layers with initial state */
        {10, 4, 9, 2, 1, 1, 1, COCHLEA_TYPE_F32},  /* bidirectional, 2 layers, initial state */
        {6, 5, 7, 3, 1, 1, 0, COCHLEA_TYPE_F32},   /* 3 layers (both inter-layer buffers), no bias */
        {7, 6, 10, 2, 1, 0, 1, COCHLEA_TYPE_BF16}, /* bf16 weights */
        {5, 20, 72, 2, 1, 1, 1, COCHLEA_TYPE_F16}, /* big enough to run the recurrence on the pool */
        {4, 64, 64, 1, 0, 1, 1, COCHLEA_TYPE_Q8_0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_lstm(&cases[i], &r);
}
END_TEST

START_TEST(lstm_bad_args)
{
    test_rng r = {1001};
    int64_t s_ih[2] = {16, 3}, s_hh[2] = {16, 4}, s_bad[2] = {16, 5};
    float f[80], x[30], y[40];
    tensor wih, whh, bad;
    make_weight(&wih, COCHLEA_TYPE_F32, 2, s_ih, &r, f);
    make_weight(&whh, COCHLEA_TYPE_F32, 2, s_hh, &r, f);
    make_weight(&bad, COCHLEA_TYPE_F32, 2, s_bad, &r, f);
    bad.name = "lstm.weight_hh_l0";
    test_fill(&r, x, 30, -1, 1);
    ops_lstm_weights w[2] = {{&wih, &whh, NULL, NULL}, {&wih, &bad, NULL, NULL}};
    ops_lstm_desc m = {3, 4, 1, 0, w};
    ck_assert_int_eq(ops_lstm(ctx1, &m, x, 10, NULL, NULL, y, NULL, NULL), 0);
    ASSERT_ERR(ops_lstm(ctx1, &m, x, 0, NULL, NULL, y, NULL, NULL), COCHLEA_EINVAL, "sequence length 0");
    m.input_size = 4;
    ASSERT_ERR(ops_lstm(ctx1, &m, x, 5, NULL, NULL, y, NULL, NULL), COCHLEA_EINVAL, "expected [16, 4]");
    m.input_size = 3;
    m.bidirectional = 1; /* the reverse direction's weight_hh has the wrong shape */
    ASSERT_ERR(ops_lstm(ctx1, &m, x, 5, NULL, NULL, y, NULL, NULL), COCHLEA_EINVAL, "lstm.weight_hh_l0");
    m.bidirectional = 2;
    ASSERT_ERR(ops_lstm(ctx1, &m, x, 5, NULL, NULL, y, NULL, NULL), COCHLEA_EINVAL, "bidirectional");
    m.bidirectional = 0;
    m.n_layers = 0;
    ASSERT_ERR(ops_lstm(ctx1, &m, x, 5, NULL, NULL, y, NULL, NULL), COCHLEA_EINVAL, "layers 0");
    m.n_layers = 1;
    w[0].w_hh = NULL;
    ASSERT_ERR(ops_lstm(ctx1, &m, x, 5, NULL, NULL, y, NULL, NULL), COCHLEA_EINVAL, "weight_hh is missing");
    w[0].w_hh = &whh;
    m.w = NULL;
    ASSERT_ERR(ops_lstm(ctx1, &m, x, 5, NULL, NULL, y, NULL, NULL), COCHLEA_EINVAL, "weights are missing");
    tensor_free(&wih);
    tensor_free(&whh);
    tensor_free(&bad);
}
END_TEST

/* ---- PyTorch fixture mode ---------------------------------------------------------------------- */

/* Fixture records (little-endian): int32 kind, int32 n_ints, ints, int32 n_arrays, then per
 * array int32 length and float32 data. kind 1: conv1d, 2: conv_transpose1d, 3: conv2d, 4: LSTM;
 * the ints and arrays per kind are listed where each is read below and in tests/ref/ops_ref.py. */
struct rec {
    int32_t kind, ni, na;
    int32_t iv[32];
    float *a[64];
    int32_t al[64];
};

/* calloc for the fixture mode, which runs outside Check (no ck_assert allowed there). */
static float *fx_alloc(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}

static int read_i32(FILE *f, int32_t *v)
{
    return fread(v, 4, 1, f) == 1;
}

static int read_rec(FILE *f, struct rec *r)
{
    memset(r, 0, sizeof *r);
    if (!read_i32(f, &r->kind))
        return 0;
    if (!read_i32(f, &r->ni) || r->ni < 0 || r->ni > 32)
        return -1;
    for (int i = 0; i < r->ni; i++)
        if (!read_i32(f, &r->iv[i]))
            return -1;
    if (!read_i32(f, &r->na) || r->na < 0 || r->na > 64)
        return -1;
    for (int i = 0; i < r->na; i++) {
        if (!read_i32(f, &r->al[i]) || r->al[i] < 0 || r->al[i] > (1 << 26))
            return -1;
        r->a[i] = malloc((size_t)r->al[i] * sizeof(float) + 4);
        if (!r->a[i] || fread(r->a[i], sizeof(float), (size_t)r->al[i], f) != (size_t)r->al[i])
            return -1;
    }
    return 1;
}

static void free_rec(struct rec *r)
{
    for (int i = 0; i < r->na; i++)
        free(r->a[i]);
}

/* A contiguous f32 tensor over `data` with PyTorch shape `shape`. */
static void f32_view(tensor *t, int nd, const int64_t *shape, float *data)
{
    int64_t ne[TENSOR_MAX_DIMS];
    for (int i = 0; i < nd; i++)
        ne[i] = shape[nd - 1 - i];
    tensor_init(t, COCHLEA_TYPE_F32, nd, ne);
    t->data = data;
}

static double cmp(const char *what, const float *got, const float *want, size_t n)
{
    double md = test_max_abs_diff(got, want, n), scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    printf("  %-44s max |diff| %.3g (max |ref| %.3g)\n", what, md, scale);
    return md / (scale > 1 ? scale : 1);
}

/* Compare one fixture record with the op; returns the relative error, or -1 when it failed. */
static double run_rec(cochlea_ctx *c, const struct rec *r, char *what, size_t wn)
{
    int rc = -1;
    double err = -1;
    const int32_t *v = r->iv;
    if ((r->kind == 1 && r->ni == 10 && r->iv[6] < 1) || (r->kind == 2 && r->ni == 9 && r->iv[8] < 1))
        return -1;
    if (r->kind == 1 && r->ni == 10 && r->na == 4) {
        /* C_in, T, C_out, K, stride, dilation, groups, pad_left, pad_right, reflect; x, w, b, y */
        ops_conv1d_params p = {v[4], v[5], v[6], v[7], v[8], v[9] ? OPS_PAD_REFLECT : OPS_PAD_ZERO};
        int64_t shape[3] = {v[2], v[0] / v[6], v[3]}, T_out = 0;
        tensor w;
        f32_view(&w, 3, shape, r->a[1]);
        snprintf(what, wn, "conv1d Cin%d T%d Cout%d K%d s%d d%d g%d pad%d,%d %s", v[0], v[1], v[2], v[3], v[4], v[5],
                 v[6], v[7], v[8], v[9] ? "reflect" : "zero");
        float *y = NULL;
        if (ops_conv1d_out_len(v[1], v[3], &p, &T_out) == 0 && (size_t)(v[2] * T_out) == (size_t)r->al[3] &&
            (y = fx_alloc((size_t)r->al[3])) != NULL &&
            (rc = ops_conv1d(c, r->a[0], v[0], v[1], &w, r->a[2], &p, y, T_out)) == 0)
            err = cmp(what, y, r->a[3], (size_t)r->al[3]);
        free(y);
    } else if (r->kind == 2 && r->ni == 9 && r->na == 4) {
        /* C_in, T, C_out, K, stride, padding, output_padding, dilation, groups; x, w, b, y */
        ops_conv_transpose1d_params p = {v[4], v[7], v[8], v[5], v[6]};
        int64_t shape[3] = {v[0], v[2] / v[8], v[3]}, T_out = 0;
        tensor w;
        f32_view(&w, 3, shape, r->a[1]);
        snprintf(what, wn, "conv_transpose1d Cin%d T%d Cout%d K%d s%d p%d op%d d%d g%d", v[0], v[1], v[2], v[3], v[4],
                 v[5], v[6], v[7], v[8]);
        float *y = NULL;
        if (ops_conv_transpose1d_out_len(v[1], v[3], &p, &T_out) == 0 && (size_t)(v[2] * T_out) == (size_t)r->al[3] &&
            (y = fx_alloc((size_t)r->al[3])) != NULL &&
            (rc = ops_conv_transpose1d(c, r->a[0], v[0], v[1], &w, r->a[2], &p, y, T_out)) == 0)
            err = cmp(what, y, r->a[3], (size_t)r->al[3]);
        free(y);
    } else if (r->kind == 3 && r->ni == 10 && r->na == 4) {
        /* C_in, H, W, C_out, kh, kw, sh, sw, ph, pw; x, w, b, y */
        ops_conv2d_params p = {v[6], v[7], v[8], v[9], 1, 1};
        int64_t shape[4] = {v[3], v[0], v[4], v[5]}, Ho = 0, Wo = 0;
        tensor w;
        f32_view(&w, 4, shape, r->a[1]);
        snprintf(what, wn, "conv2d Cin%d %dx%d Cout%d k%dx%d s%d,%d p%d,%d", v[0], v[1], v[2], v[3], v[4], v[5], v[6],
                 v[7], v[8], v[9]);
        float *y = NULL;
        if (ops_conv2d_out_size(v[1], v[2], v[4], v[5], &p, &Ho, &Wo) == 0 &&
            (size_t)(v[3] * Ho * Wo) == (size_t)r->al[3] && (y = fx_alloc((size_t)r->al[3])) != NULL &&
            (rc = ops_conv2d(c, r->a[0], v[0], v[1], v[2], &w, r->a[2], &p, y, Ho, Wo)) == 0)
            err = cmp(what, y, r->a[3], (size_t)r->al[3]);
        free(y);
    } else if (r->kind == 4 && r->ni == 6) {
        /* T, I, H, layers, bidirectional, has_init; x, then per layer and direction w_ih, w_hh,
         * b_ih, b_hh; then h0, c0 (if has_init), y, h_n, c_n */
        int T = v[0], I = v[1], H = v[2], L = v[3], nd = v[4] ? 2 : 1, init = v[5];
        int nw = L * nd, base = 1 + 4 * nw;
        if (L < 1 || nw > 8 || r->na != base + (init ? 2 : 0) + 3)
            return -1;
        tensor wt[16];
        ops_lstm_weights lw[8];
        for (int k = 0; k < nw; k++) {
            int64_t in = k < nd ? I : nd * H;
            int64_t s_ih[2] = {4 * H, in}, s_hh[2] = {4 * H, H};
            f32_view(&wt[2 * k], 2, s_ih, r->a[1 + 4 * k]);
            f32_view(&wt[2 * k + 1], 2, s_hh, r->a[2 + 4 * k]);
            lw[k].w_ih = &wt[2 * k];
            lw[k].w_hh = &wt[2 * k + 1];
            lw[k].b_ih = r->a[3 + 4 * k];
            lw[k].b_hh = r->a[4 + 4 * k];
        }
        ops_lstm_desc m = {I, H, L, v[4], lw};
        int o = base + (init ? 2 : 0);
        snprintf(what, wn, "lstm T%d I%d H%d layers%d %s%s", T, I, H, L, v[4] ? "bidirectional" : "unidirectional",
                 init ? " init" : "");
        float *y = fx_alloc((size_t)r->al[o]), *hn = fx_alloc((size_t)r->al[o + 1]),
              *cn = fx_alloc((size_t)r->al[o + 2]);
        if ((size_t)r->al[o] == (size_t)T * (size_t)(nd * H) && (size_t)r->al[o + 1] == (size_t)(nw * H) &&
            (rc = ops_lstm(c, &m, r->a[0], T, init ? r->a[base] : NULL, init ? r->a[base + 1] : NULL, y, hn, cn)) ==
                0) {
            err = cmp(what, y, r->a[o], (size_t)r->al[o]);
            err = fmax(err, cmp("  final h", hn, r->a[o + 1], (size_t)r->al[o + 1]));
            err = fmax(err, cmp("  final c", cn, r->a[o + 2], (size_t)r->al[o + 2]));
        }
        free(y);
        free(hn);
        free(cn);
    }
    if (rc != 0)
        printf("  record kind %d: %s\n", r->kind, rc == -1 ? "malformed record" : cochlea_last_error());
    return err;
}

static int torch_fixture(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    cochlea_ctx *c;
    if (ctx_create(2, COCHLEA_PRECISION_F32, &c) != 0) {
        fclose(f);
        return 1;
    }
    int bad = 0, n = 0, st;
    struct rec r;
    char what[160];
    while ((st = read_rec(f, &r)) == 1) {
        what[0] = 0;
        double e = run_rec(c, &r, what, sizeof what);
        n++;
        if (e < 0 || e > 1e-5) {
            printf("FAIL %s: relative error %.3g\n", what, e);
            bad++;
        }
        free_rec(&r);
    }
    if (st < 0) {
        printf("FAIL: %s is truncated or malformed after %d records\n", path, n);
        free_rec(&r);
        bad++;
    }
    ctx_free(c);
    fclose(f);
    printf("%d records compared with PyTorch, %d failed\n", n, bad);
    return bad || n == 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--torch") == 0)
        return torch_fixture(argv[2]);
    Suite *s = suite_create("ops_conv");
    TCase *tc = tcase_create("conv1d");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, conv1d_random);
    tcase_add_test(tc, conv1d_edges);
    tcase_add_test(tc, conv1d_reflect_limits);
    tcase_add_test(tc, conv1d_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("conv_transpose1d");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, convt_random);
    tcase_add_test(tc, convt_edges);
    tcase_add_test(tc, convt_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("conv2d");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, conv2d_random);
    tcase_add_test(tc, conv2d_edges);
    tcase_add_test(tc, conv2d_bf16_precision);
    tcase_add_test(tc, conv2d_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("lstm");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, lstm_cases);
    tcase_add_test(tc, lstm_bad_args);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
