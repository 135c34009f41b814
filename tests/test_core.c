/* test_core.c - errors, tensor shapes/views, type conversions, thread pool, context, progress. */
#include <pthread.h>
#include <string.h>

#include "cli/progress.h"
#include "ctx.h"
#include "error.h"
#include "tensor.h"
#include "testutil.h"
#include "threadpool.h"

START_TEST(test_error_messages)
{
    cochlea_clear_error();
    ck_assert_str_eq(cochlea_last_error(), "");
    int rc = err_set(COCHLEA_EFORMAT, "%s: bad magic 0x%08x", "m.gguf", 0x12345678u);
    ck_assert_int_eq(rc, COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "m.gguf: bad magic 0x12345678");
    rc = err_prefix(COCHLEA_EFORMAT, "loading %s", "model");
    ck_assert_str_eq(cochlea_last_error(), "loading model: m.gguf: bad magic 0x12345678");
    ck_assert_str_eq(cochlea_strerror(COCHLEA_ENOMEM), "out of memory");
    ck_assert_str_eq(cochlea_strerror(COCHLEA_OK), "success");
    ck_assert_str_eq(cochlea_strerror(12345), "unknown error");
    /* every code has a distinct message */
    for (int a = COCHLEA_ECANCELED; a <= 0; a++)
        for (int b = a + 1; b <= 0; b++)
            ck_assert_str_ne(cochlea_strerror(a), cochlea_strerror(b));
}
END_TEST

static void *thread_sets_error(void *arg)
{
    (void)arg;
    err_set(COCHLEA_EIO, "other thread");
    return NULL;
}

START_TEST(test_error_thread_local)
{
    err_set(COCHLEA_EINVAL, "main thread");
    pthread_t t;
    pthread_create(&t, NULL, thread_sets_error, NULL);
    pthread_join(t, NULL);
    ck_assert_str_eq(cochlea_last_error(), "main thread");
}
END_TEST

struct log_capture {
    int n;
    enum cochlea_log_level last_level;
    char last[256];
};

static void capture_log(enum cochlea_log_level level, const char *msg, void *user)
{
    struct log_capture *c = user;
    c->n++;
    c->last_level = level;
    snprintf(c->last, sizeof c->last, "%s", msg);
}

START_TEST(test_logging)
{
    struct log_capture c = {0};
    LOG_WARN("dropped, no callback %d", 1);
    cochlea_log_set(capture_log, COCHLEA_LOG_INFO, &c);
    LOG_DEBUG("too verbose");
    ck_assert_int_eq(c.n, 0);
    LOG_INFO("loaded %d tensors", 42);
    ck_assert_int_eq(c.n, 1);
    ck_assert_int_eq(c.last_level, COCHLEA_LOG_INFO);
    ck_assert_str_eq(c.last, "loaded 42 tensors");
    LOG_ERROR("bad");
    ck_assert_int_eq(c.n, 2);
    ck_assert_int_eq(c.last_level, COCHLEA_LOG_ERROR);
    cochlea_log_set(NULL, COCHLEA_LOG_WARN, NULL);
    LOG_ERROR("dropped again");
    ck_assert_int_eq(c.n, 2);
}
END_TEST

START_TEST(test_overflow_helpers)
{
    size_t s;
    ck_assert_int_eq(size_mul(SIZE_MAX / 2, 3, &s), -1);
    ck_assert_int_eq(size_mul(1u << 20, 1u << 10, &s), 0);
    ck_assert_uint_eq(s, (size_t)1 << 30);
    ck_assert_int_eq(size_add(SIZE_MAX, 1, &s), -1);
    uint64_t u;
    ck_assert_int_eq(u64_mul(UINT64_MAX, 2, &u), -1);
    ck_assert_int_eq(u64_add(UINT64_MAX - 1, 1, &u), 0);
    ck_assert(u == UINT64_MAX);
}
END_TEST

/* fp16: exact values, rounding to nearest even, subnormals, overflow, inf/nan; all 65536
 * half values survive half -> float -> half. */
START_TEST(test_fp16)
{
    ck_assert_uint_eq(f32_to_fp16(1.0f), 0x3c00);
    ck_assert_uint_eq(f32_to_fp16(-2.0f), 0xc000);
    ck_assert_uint_eq(f32_to_fp16(65504.0f), 0x7bff);
    ck_assert_uint_eq(f32_to_fp16(65520.0f), 0x7c00);         /* rounds up to inf */
    ck_assert_uint_eq(f32_to_fp16(65519.0f), 0x7bff);         /* rounds down */
    ck_assert_uint_eq(f32_to_fp16(5.9604644775390625e-8f), 0x0001); /* smallest subnormal */
    ck_assert_uint_eq(f32_to_fp16(2.98e-8f), 0x0000);         /* below half of it */
    ck_assert_uint_eq(f32_to_fp16(1.0f + 1.0f / 2048.0f), 0x3c00); /* tie -> even (down) */
    ck_assert_uint_eq(f32_to_fp16(1.0f + 3.0f / 2048.0f), 0x3c02); /* tie -> even (up) */
    ck_assert_uint_eq(f32_to_fp16(INFINITY), 0x7c00);
    ck_assert((f32_to_fp16(NAN) & 0x7c00) == 0x7c00 && (f32_to_fp16(NAN) & 0x3ff) != 0);
    ck_assert(fp16_to_f32(0x3555) > 0.333f && fp16_to_f32(0x3555) < 0.3334f);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        ck_assert_msg(f32_to_fp16(f) == h, "half 0x%04x -> %g -> 0x%04x", h, f, f32_to_fp16(f));
    }
}
END_TEST

START_TEST(test_bf16)
{
    ck_assert_uint_eq(f32_to_bf16(1.0f), 0x3f80);
    ck_assert_float_eq(bf16_to_f32(0x3f80), 1.0f);
    /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: rounds to even (1.0) */
    ck_assert_uint_eq(f32_to_bf16(1.0f + 1.0f / 256.0f), 0x3f80);
    ck_assert_uint_eq(f32_to_bf16(1.0f + 3.0f / 256.0f), 0x3f82);
    ck_assert(isnan(bf16_to_f32(f32_to_bf16(NAN))));
    ck_assert(isinf(bf16_to_f32(f32_to_bf16(INFINITY))));
    test_rng r = {7};
    for (int i = 0; i < 10000; i++) {
        float x = test_rng_uniform(&r, -1000.f, 1000.f);
        float y = bf16_to_f32(f32_to_bf16(x));
        ck_assert(fabsf(x - y) <= fabsf(x) * (1.0f / 256.0f));
    }
}
END_TEST

/* Q8_0 as ggml: d = amax/127 in fp16, q = round(x/d); error per element <= d/2 (+ fp16 error of d). */
START_TEST(test_q8_0)
{
    test_rng r = {11};
    enum { N = 32 * 37 };
    float x[N], y[N];
    block_q8_0 q[N / 32];
    test_fill(&r, x, N, -3.0f, 3.0f);
    x[5] = 0.0f;
    for (int j = 64; j < 96; j++) /* an all-zero block */
        x[j] = 0.0f;
    q8_0_quantize(x, q, N);
    q8_0_dequantize(q, y, N);
    double se = 0, ss = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        float d = fp16_to_f32(q[b].d);
        ck_assert(fabsf(d - amax / 127.0f) <= amax / 127.0f * 1e-3f);
        int has_127 = 0;
        for (int j = 0; j < 32; j++) {
            ck_assert(fabsf(x[b * 32 + j] - y[b * 32 + j]) <= d * 0.5f + amax * 1e-3f);
            has_127 |= abs(q[b].qs[j]) == 127;
            se += (x[b * 32 + j] - y[b * 32 + j]) * (x[b * 32 + j] - y[b * 32 + j]);
            ss += x[b * 32 + j] * x[b * 32 + j];
        }
        ck_assert(amax == 0.0f || has_127);
    }
    for (int j = 64; j < 96; j++)
        ck_assert_float_eq(y[j], 0.0f);
    ck_assert_float_eq(y[5], 0.0f);
    ck_assert(sqrt(se / ss) < 0.01);
}
END_TEST

START_TEST(test_tensor_shapes)
{
    tensor t;
    int64_t ne[3] = {64, 3, 2};
    ck_assert_int_eq(tensor_new(&t, COCHLEA_TYPE_F32, 3, ne), 0);
    ck_assert_int_eq(tensor_nelements(&t), 384);
    ck_assert_uint_eq(tensor_nbytes(&t), 384 * 4);
    ck_assert_uint_eq(t.nb[1], 256);
    ck_assert_uint_eq(t.nb[2], 768);
    ck_assert(tensor_is_contiguous(&t));
    float *d = t.data;
    for (int i = 0; i < 384; i++)
        d[i] = (float)i;
    tensor v;
    ck_assert_int_eq(tensor_view_rows(&t, 1, 1, &v), 0);
    ck_assert_int_eq(v.ne[2], 1);
    ck_assert_int_eq(v.owned, 0);
    ck_assert_float_eq(((float *)v.data)[0], 192.0f);
    ck_assert_float_eq(((float *)tensor_row(&t, 4))[1], 4 * 64 + 1);
    ck_assert_int_eq(tensor_view_rows(&t, 1, 2, &v), COCHLEA_ERANGE);
    ck_assert_int_eq(tensor_view_rows(&t, -1, 1, &v), COCHLEA_ERANGE);
    tensor_free(&t);
    tensor_free(&t); /* idempotent */

    ck_assert_int_eq(tensor_init(&t, COCHLEA_TYPE_Q8_0, 2, (int64_t[]){64, 10}), 0);
    ck_assert_uint_eq(t.nb[1], 2 * 34);
    ck_assert_uint_eq(tensor_nbytes(&t), 680);
    ck_assert_int_eq(tensor_init(&t, COCHLEA_TYPE_Q8_0, 2, (int64_t[]){33, 10}), COCHLEA_EINVAL);
    ck_assert(strstr(cochlea_last_error(), "block size") != NULL);
    ck_assert_int_eq(tensor_init(&t, COCHLEA_TYPE_F32, 0, ne), COCHLEA_EINVAL);
    ck_assert_int_eq(tensor_init(&t, COCHLEA_TYPE_F32, 5, ne), COCHLEA_EINVAL);
    ck_assert_int_eq(tensor_init(&t, COCHLEA_TYPE_F32, 2, (int64_t[]){4, 0}), COCHLEA_EINVAL);
    ck_assert_int_eq(tensor_init(&t, COCHLEA_TYPE_F32, 4, (int64_t[]){1 << 30, 1 << 30, 1 << 30, 1 << 30}),
                     COCHLEA_ERANGE);
    ck_assert_int_eq(tensor_init(&t, (enum cochlea_type)2, 1, ne), COCHLEA_EUNSUPPORTED);
}
END_TEST

START_TEST(test_type_names)
{
    enum cochlea_type ty;
    ck_assert_int_eq(type_from_name("q8_0", &ty), 0);
    ck_assert_int_eq(ty, COCHLEA_TYPE_Q8_0);
    ck_assert_int_eq(type_from_name("bf16", &ty), 0);
    ck_assert_int_eq(ty, COCHLEA_TYPE_BF16);
    ck_assert_int_eq(type_from_name("q4_0", &ty), COCHLEA_EINVAL);
    ck_assert_str_eq(type_name(COCHLEA_TYPE_F16), "f16");
    ck_assert(type_is_known(30) && type_is_known(8) && !type_is_known(2) && !type_is_known(999));
}
END_TEST

START_TEST(test_row_to_f32)
{
    float x[64], y[64];
    test_rng r = {3};
    test_fill(&r, x, 64, -1, 1);
    uint16_t h[64];
    tensor t;
    tensor_init(&t, COCHLEA_TYPE_BF16, 2, (int64_t[]){32, 2});
    f32_to_bf16_array(x, h, 64);
    t.data = h;
    tensor_row_to_f32(&t, 1, y);
    for (int i = 0; i < 32; i++)
        ck_assert_float_eq(y[i], bf16_to_f32(h[32 + i]));
    tensor_init(&t, COCHLEA_TYPE_F16, 2, (int64_t[]){32, 2});
    f32_to_fp16_array(x, h, 64);
    t.data = h;
    tensor_row_to_f32(&t, 1, y);
    test_assert_close(y, x + 32, 32, 1e-3, 1e-3);
}
END_TEST

struct sum_job {
    const int64_t *v;
    int64_t n;
    int64_t partial[8];
    int calls[8];
};

static void sum_task(void *arg, int ith, int nth)
{
    struct sum_job *j = arg;
    int64_t b, e, s = 0;
    pool_split(j->n, ith, nth, &b, &e);
    for (int64_t i = b; i < e; i++)
        s += j->v[i];
    j->partial[ith] = s;
    j->calls[ith]++;
}

START_TEST(test_threadpool)
{
    enum { N = 100003 };
    static int64_t v[N];
    int64_t want = 0;
    for (int i = 0; i < N; i++) {
        v[i] = i * 7 % 1000;
        want += v[i];
    }
    for (int nt = 1; nt <= 4; nt++) {
        threadpool *p;
        ck_assert_int_eq(pool_create(nt, &p), 0);
        ck_assert_int_eq(pool_size(p), nt);
        for (int rep = 0; rep < 50; rep++) {
            struct sum_job j = {.v = v, .n = N};
            pool_run(p, sum_task, &j);
            int64_t got = 0;
            for (int t = 0; t < nt; t++) {
                got += j.partial[t];
                ck_assert_int_eq(j.calls[t], 1);
            }
            ck_assert_int_eq(got, want);
        }
        pool_free(p);
    }
    threadpool *p;
    ck_assert_int_eq(pool_create(0, &p), COCHLEA_EINVAL);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_pool_split)
{
    for (int64_t n = 0; n < 40; n++)
        for (int nth = 1; nth <= 7; nth++) {
            int64_t prev_end = 0;
            for (int ith = 0; ith < nth; ith++) {
                int64_t b, e;
                pool_split(n, ith, nth, &b, &e);
                ck_assert_int_eq(b, prev_end);
                ck_assert(e - b == n / nth || e - b == n / nth + 1);
                prev_end = e;
            }
            ck_assert_int_eq(prev_end, n);
        }
}
END_TEST

START_TEST(test_ctx)
{
    cochlea_ctx *c;
    ck_assert_int_eq(ctx_create(2, COCHLEA_PRECISION_F32, &c), 0);
    ck_assert_int_eq(c->n_threads, 2);
    ck_assert_int_eq(pool_size(c->pool), 2);
    ctx_free(c);
    ck_assert_int_eq(ctx_create(0, COCHLEA_PRECISION_BF16, &c), 0);
    ck_assert_int_eq(c->n_threads, ctx_default_threads());
    ctx_free(c);
    ck_assert_int_eq(ctx_create(-1, COCHLEA_PRECISION_F32, &c), COCHLEA_EINVAL);
    ck_assert_int_eq(ctx_create(1, (enum cochlea_precision)9, &c), COCHLEA_EINVAL);
    ctx_free(NULL);
}
END_TEST

START_TEST(test_progress_render)
{
    char buf[256], t[32];
    progress_render(buf, sizeof buf, "decode", 50, 200, 10.0, 8);
    ck_assert_str_eq(buf, "decode [##......]  25% 10.0s, ETA 30.0s");
    progress_render(buf, sizeof buf, "decode", 200, 200, 75.0, 4);
    ck_assert_str_eq(buf, "decode [####] 100% 1m15s");
    progress_format_time(3723.0, t, sizeof t);
    ck_assert_str_eq(t, "1h02m03s");
    /* not a TTY: nothing is drawn */
    FILE *f = tmpfile();
    progress p;
    progress_start(&p, f, "x", 10, 0);
    ck_assert_int_eq(p.enabled, 0);
    progress_update(&p, 5);
    progress_end(&p);
    ck_assert_int_eq((int)ftell(f), 0);
    fclose(f);
}
END_TEST

START_TEST(test_version)
{
    ck_assert_str_eq(cochlea_version(), PACKAGE_VERSION_STR);
    const char *s = cochlea_system_info();
    ck_assert(strstr(s, "BLAS=") != NULL);
    ck_assert(strstr(s, "oneDNN=") != NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_error_messages);
    tcase_add_test(tc, test_error_thread_local);
    tcase_add_test(tc, test_logging);
    tcase_add_test(tc, test_overflow_helpers);
    tcase_add_test(tc, test_fp16);
    tcase_add_test(tc, test_bf16);
    tcase_add_test(tc, test_q8_0);
    tcase_add_test(tc, test_tensor_shapes);
    tcase_add_test(tc, test_type_names);
    tcase_add_test(tc, test_row_to_f32);
    tcase_add_test(tc, test_threadpool);
    tcase_add_test(tc, test_pool_split);
    tcase_add_test(tc, test_ctx);
    tcase_add_test(tc, test_progress_render);
    tcase_add_test(tc, test_version);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
