/* gemm_bench.c - GFLOP/s of gemm_linear on the OWSM-CTC 1B encoder shapes (30 s input), next to
 * oneDNN's own best for each shape (a raw oneDNN matmul on pre-converted inputs and weights
 * pre-reordered into the layout oneDNN picks) and OpenBLAS sgemm. Run through bench/gemm, which
 * adds PyTorch and prints the table (bench/README.md).
 *
 * Output: one tab-separated line per measurement,
 *   shape  M  K  N  threads  impl  median_ms  gflops
 * impl: ours-f32, ours-bf16, ours-int8 (gemm_linear at that precision, F32 weights packed at
 * load with gemm_prepare, bias added), onednn-f32, onednn-bf16, onednn-int8 (raw primitives,
 * no bias), openblas-f32 (cblas_sgemm on the same layout). Medians over --reps runs after a
 * warm-up (time_median); each run is one full product. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "error.h"
#include "gemm.h"
#include "gemm_internal.h"
#include "tensor.h"

#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#ifdef HAVE_GOMP
void omp_set_num_threads(int n);
#endif
#endif

typedef struct {
    const char *name;
    int64_t M, K, N;
    int quick; /* part of --quick */
} shape;

/* owsm-ctc.md: 376 positions; Conv2dSubsampling8 on 3001 x 80 log-mel: 1500x39, 749x19, 374x9
 * outputs of 3x3 convolutions with 1 -> 1024 -> 1024 -> 1024 channels (im2col K = in_ch * 9). */
static const shape shapes[] = {
    {"ffn/att 1024->1024", 376, 1024, 1024, 1},
    {"ffn 1024->4096", 376, 1024, 4096, 1},
    {"ffn 4096->1024", 376, 4096, 1024, 1},
    {"ctc 1024->50002", 376, 1024, 50002, 0},
    {"conv0 1->1024 (im2col)", 1500 * 39, 1 * 9, 1024, 0},
    {"conv2 1024->1024 (im2col)", 749 * 19, 1024 * 9, 1024, 0},
    {"conv4 1024->1024 (im2col)", 374 * 9, 1024 * 9, 1024, 1},
    {"embed.out 9216->1024", 374, 9216, 1024, 0},
    {"decode M=1 1024->4096", 1, 1024, 4096, 1},
    {"decode M=16 1024->4096", 16, 1024, 4096, 0},
    {"decode M=64 1024->4096", 64, 1024, 4096, 0},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef int (*run_fn)(void *arg);

/* Median seconds of `reps` runs (at least 3; fewer than asked when one run is long) after a
 * warm-up of at least 3 runs and 0.3 s: the first calls after threads start are slow on some
 * machines (idle cores, or virtual CPUs, waking up), and one warm-up call is not enough. */
static double time_median(run_fn fn, void *arg, int reps, double budget_s, int *err)
{
    double t0 = now_s(), first = 0;
    for (int i = 0; i < 3 || now_s() - t0 < 0.3; i++) {
        double a = now_s();
        if (fn(arg) != 0) {
            *err = 1;
            return 0;
        }
        first = now_s() - a;
        if (now_s() - t0 > budget_s)
            break;
    }
    if (first * reps > budget_s)
        reps = (int)(budget_s / (first > 0 ? first : 1e-9));
    if (reps < 3)
        reps = 3;
    double *t = malloc(sizeof(double) * (size_t)reps);
    if (!t) {
        *err = 1;
        return 0;
    }
    for (int i = 0; i < reps; i++) {
        double a = now_s();
        if (fn(arg) != 0) {
            *err = 1;
            free(t);
            return 0;
        }
        t[i] = now_s() - a;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    free(t);
    return med;
}

static void report(const shape *s, int threads, const char *impl, double sec)
{
    double flops = 2.0 * (double)s->M * (double)s->K * (double)s->N;
    printf("%s\t%lld\t%lld\t%lld\t%d\t%s\t%.4f\t%.1f\n", s->name, (long long)s->M, (long long)s->K, (long long)s->N,
           threads, impl, sec * 1e3, flops / sec * 1e-9);
    fflush(stdout);
}

/* ---- ours ------------------------------------------------------------------------------ */

struct ours_arg {
    cochlea_ctx *ctx;
    const float *x, *bias;
    const tensor *W;
    float *y;
    int64_t M, N, K;
};

static int run_ours(void *p)
{
    struct ours_arg *a = p;
    int rc = gemm_linear(a->ctx, a->x, a->M, a->K, a->W, a->bias, 0.0f, a->y, a->N);
    if (rc)
        fprintf(stderr, "gemm_bench: %s\n", cochlea_last_error());
    return rc;
}

/* ---- raw oneDNN ------------------------------------------------------------------------ */

#ifdef HAVE_DNNL
struct raw_arg {
    dnnl_primitive_t prim;
    dnnl_stream_t st;
    dnnl_exec_arg_t args[4];
    int nargs;
};

static int run_raw(void *p)
{
    struct raw_arg *a = p;
    if (dnnl_primitive_execute(a->prim, a->st, a->nargs, a->args) != dnnl_success)
        return 1;
    return dnnl_stream_wait(a->st) != dnnl_success;
}

/* Time oneDNN's own matmul for s: src of type sdt (filled with small values), weights in the
 * layout oneDNN chooses (format any, reordered once from plain [N, K] rows), f32 dst. */
static int bench_raw(dnnl_engine_t eng, dnnl_stream_t st, const shape *s, int threads, dnnl_data_type_t sdt,
                     dnnl_data_type_t wdt, const char *impl, int reps, double budget)
{
    dnnl_memory_desc_t smd, wmd, wplain, dmd;
    dnnl_dims_t sd = {s->M, s->K}, wd = {s->K, s->N}, dd = {s->M, s->N}, ws = {1, s->K};
    dnnl_matmul_desc_t mm;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t prim = NULL, reo = NULL;
    dnnl_memory_t msrc = NULL, mw = NULL, mwp = NULL, mdst = NULL;
    int ok = 0;
    if (dnnl_memory_desc_init_by_tag(&smd, 2, sd, sdt, dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&wmd, 2, wd, wdt, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_strides(&wplain, 2, wd, wdt, ws) ||
        dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab) || dnnl_matmul_desc_init(&mm, &smd, &wmd, NULL, &dmd) ||
        dnnl_primitive_desc_create(&pd, &mm, NULL, eng, NULL) || dnnl_primitive_create(&prim, pd))
        goto out;
    const dnnl_memory_desc_t *qw = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (dnnl_memory_create(&msrc, &smd, eng, DNNL_MEMORY_ALLOCATE) ||
        dnnl_memory_create(&mw, qw, eng, DNNL_MEMORY_ALLOCATE) ||
        dnnl_memory_create(&mwp, &wplain, eng, DNNL_MEMORY_ALLOCATE) ||
        dnnl_memory_create(&mdst, &dmd, eng, DNNL_MEMORY_ALLOCATE))
        goto out;
    void *h;
    /* 0x01 bytes: small finite values in every type (denormal-free for f32/bf16) */
    dnnl_memory_get_data_handle(msrc, &h);
    memset(h, sdt == dnnl_f32 || sdt == dnnl_bf16 ? 0x3c : 0x01, dnnl_memory_desc_get_size(&smd));
    dnnl_memory_get_data_handle(mwp, &h);
    memset(h, wdt == dnnl_f32 || wdt == dnnl_bf16 ? 0x3c : 0x01, dnnl_memory_desc_get_size(&wplain));
    if (dnnl_reorder_primitive_desc_create(&rpd, &wplain, eng, qw, eng, NULL) || dnnl_primitive_create(&reo, rpd))
        goto out;
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, mwp}, {DNNL_ARG_TO, mw}};
    if (dnnl_primitive_execute(reo, st, 2, ra) || dnnl_stream_wait(st))
        goto out;
    const char *name = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    fprintf(stderr, "gemm_bench: %s %s: %s\n", s->name, impl, name);
    struct raw_arg a = {prim, st, {{DNNL_ARG_SRC, msrc}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, mdst}}, 3};
    int err = 0;
    double t = time_median(run_raw, &a, reps, budget, &err);
    if (!err) {
        report(s, threads, impl, t);
        ok = 1;
    }
out:
    if (!ok)
        fprintf(stderr, "gemm_bench: %s: raw oneDNN %s failed\n", s->name, impl);
    dnnl_memory_t ms[] = {msrc, mw, mwp, mdst};
    for (int i = 0; i < 4; i++)
        if (ms[i])
            dnnl_memory_destroy(ms[i]);
    if (reo)
        dnnl_primitive_destroy(reo);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (prim)
        dnnl_primitive_destroy(prim);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return ok ? 0 : 1;
}
#endif

struct blas_arg {
    const float *x, *w;
    float *y;
    int64_t M, N, K;
    int threads;
};

static int run_blas(void *p)
{
    struct blas_arg *a = p;
    gemm_blas_sgemm(a->threads, 0, 1, a->M, a->N, a->K, 1.0f, a->x, a->K, a->w, a->K, 0.0f, a->y, a->N);
    return 0;
}

/* ---- driver ---------------------------------------------------------------------------- */

static int want_impl(const char *list, const char *impl)
{
    if (!list)
        return 1;
    size_t n = strlen(impl);
    for (const char *p = list; (p = strstr(p, impl)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
            return 1;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: gemm_bench [--threads 1,2] [--reps N] [--quick] [--shape NAME]... [--impl LIST]\n"
                    "  --reps N      timed runs per measurement (median; default 5, at least 3)\n"
                    "  --budget S    seconds per measurement before fewer runs are taken (default 4)\n"
                    "  --quick       only the shapes marked quick\n"
                    "  --impl LIST   comma list of ours-f32,ours-bf16,ours-int8,onednn-f32,onednn-bf16,\n"
                    "                onednn-int8,openblas-f32 (default all)\n"
                    "  --list        print the shapes (with --quick: the quick ones) and exit\n");
}

int main(int argc, char **argv)
{
    int threads[8] = {1, 2}, nthreads = 2, reps = 5, quick = 0, list = 0;
    double budget = 4.0;
    const char *only[32];
    int nonly = 0;
    const char *impls = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nthreads = 0;
            for (char *p = argv[++i]; *p && nthreads < 8;) {
                threads[nthreads++] = (int)strtol(p, &p, 10);
                if (*p == ',')
                    p++;
                else if (*p)
                    break;
            }
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--budget") && i + 1 < argc) {
            budget = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc && nonly < 32) {
            only[nonly++] = argv[++i];
        } else if (!strcmp(argv[i], "--impl") && i + 1 < argc) {
            impls = argv[++i];
        } else if (!strcmp(argv[i], "--list")) {
            list = 1;
        } else {
            usage();
            return 2;
        }
    }
    if (list) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            if (!quick || shapes[s].quick)
                printf("%s\t%lld\t%lld\t%lld\n", shapes[s].name, (long long)shapes[s].M, (long long)shapes[s].K,
                       (long long)shapes[s].N);
        return 0;
    }
    for (int t = 0; t < nthreads; t++)
        if (threads[t] < 1 || threads[t] > 1024) {
            usage();
            return 2;
        }
    if (reps < 1)
        reps = 1;
    fprintf(stderr, "gemm_bench: %s\n", cochlea_system_info());
#ifdef HAVE_DNNL
    dnnl_engine_t eng;
    dnnl_stream_t st;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) || dnnl_stream_create(&st, eng, dnnl_stream_default_flags)) {
        fprintf(stderr, "gemm_bench: cannot start oneDNN\n");
        return 1;
    }
#endif
    int failed = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        if (quick && !s->quick)
            continue;
        if (nonly) {
            int hit = 0;
            for (int i = 0; i < nonly; i++)
                hit |= strcmp(only[i], s->name) == 0;
            if (!hit)
                continue;
        }
        size_t nx = (size_t)(s->M * s->K), ny = (size_t)(s->M * s->N), nw = (size_t)(s->N * s->K);
        /* 64-byte aligned like the library's tensors (malloc's 16-byte alignment splits the
         * kernels' 64-byte stores across cache lines) */
        float *x = aligned_alloc(64, (nx * sizeof(float) + 63) & ~(size_t)63);
        float *y = aligned_alloc(64, (ny * sizeof(float) + 63) & ~(size_t)63);
        float *bias = aligned_alloc(64, ((size_t)s->N * sizeof(float) + 63) & ~(size_t)63);
        tensor W;
        int64_t ne[2] = {s->K, s->N};
        if (!x || !y || !bias || tensor_new(&W, COCHLEA_TYPE_F32, 2, ne) != 0) {
            fprintf(stderr, "gemm_bench: out of memory for %s\n", s->name);
            return 1;
        }
        W.name = s->name;
        uint64_t r = 88172645463325252ull;
        for (size_t i = 0; i < nx; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            x[i] = (float)((double)(r >> 11) * 0x1p-53 * 2.0 - 1.0);
        }
        float *w = W.data;
        for (size_t i = 0; i < nw; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            w[i] = (float)(((double)(r >> 11) * 0x1p-53 * 2.0 - 1.0) * 0.05);
        }
        for (int64_t j = 0; j < s->N; j++)
            bias[j] = 0.01f * (float)(j % 7);
        for (int ti = 0; ti < nthreads; ti++) {
            int nt = threads[ti];
            static const struct {
                const char *impl;
                enum cochlea_precision p;
            } ours[] = {{"ours-f32", COCHLEA_PRECISION_F32},
                        {"ours-bf16", COCHLEA_PRECISION_BF16},
                        {"ours-int8", COCHLEA_PRECISION_INT8}};
            for (int k = 0; k < 3; k++) {
                if (!want_impl(impls, ours[k].impl))
                    continue;
                cochlea_ctx *ctx;
                if (ctx_create(nt, ours[k].p, &ctx) != 0 || gemm_prepare(ctx, &W) != 0) {
                    fprintf(stderr, "gemm_bench: %s\n", cochlea_last_error());
                    return 1;
                }
                fprintf(stderr, "gemm_bench: %s %s: %s\n", s->name, ours[k].impl, gemm_backend_name(ctx->gemm, ours[k].p));
                struct ours_arg a = {ctx, x, bias, &W, y, s->M, s->N, s->K};
                int err = 0;
                double t = time_median(run_ours, &a, reps, budget, &err);
                if (!err)
                    report(s, nt, ours[k].impl, t);
                failed |= err;
                ctx_free(ctx);
            }
#ifdef HAVE_DNNL
#ifdef HAVE_GOMP
            omp_set_num_threads(nt);
#endif
            if (want_impl(impls, "onednn-f32"))
                failed |= bench_raw(eng, st, s, nt, dnnl_f32, dnnl_f32, "onednn-f32", reps, budget);
            if (want_impl(impls, "onednn-bf16"))
                failed |= bench_raw(eng, st, s, nt, dnnl_bf16, dnnl_bf16, "onednn-bf16", reps, budget);
            if (want_impl(impls, "onednn-int8"))
                failed |= bench_raw(eng, st, s, nt, dnnl_u8, dnnl_s8, "onednn-int8", reps, budget);
#endif
            if (want_impl(impls, "openblas-f32")) {
                struct blas_arg b = {x, w, y, s->M, s->N, s->K, nt};
                int err = 0;
                double t = time_median(run_blas, &b, reps, budget, &err);
                if (!err)
                    report(s, nt, "openblas-f32", t);
            }
        }
        free(x);
        free(y);
        free(bias);
        tensor_free(&W);
    }
#ifdef HAVE_DNNL
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
#endif
    return failed ? 1 : 0;
}
