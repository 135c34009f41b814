/* secodec_bench.c - speed of SECodec on one thread (bench/README.md, "SECodec"): the network
 * (encoder latents, decoder through the public API), the SE quantiser (node-game rule against
 * nearest centroid) and the SE codebook build, as driven by bench/secodec_torch.py.
 *
 *     bench/secodec_bench codec MODEL.gguf PCM.f32 OUTDIR [-r REPS] [--nodes N] [--k K]
 *     bench/secodec_bench build [-r REPS] [--nodes N] [--dim D] [--clusters C] [--noise S]
 *
 * codec: MODEL is a bare network (no codebooks), PCM raw float32 mono at its rate. Steps:
 *   1. latents z [T, D] of the PCM (cochlea_codec_encode_latents), warm-up + REPS timed runs;
 *   2. a 1-level SE codebook (k fixed to K, default 10) on N (default 10000) rows made from the
 *      latents, so the nodes sit where the latents are: row i = z_a + lam (z_b - z_a) + e, a = i
 *      mod T, b uniform in [0, T), lam ~ U(0, 0.5), e ~ N(0, diag(0.25 s_j)^2) with s_j the
 *      spread of latent dimension j over the T frames; built once, timed and reported apart;
 *   3. tokens of the T latent frames with se_codebook_encode, SE rule and nearest centroid;
 *   4. MODEL copied with this codebook (OUTDIR/model-se.gguf), loaded with cochlea_codec_load,
 *      and its decoder timed through cochlea_codec_decode on the SE tokens (the codeword lookup
 *      is part of that time; it is T x D additions).
 *   Writes OUTDIR/latents.f32 [T, D], zq.f32 [T, D] (the codewords of the SE tokens: the
 *   decoder's input), audio.f32 [n samples], centroids.f32 [K, D] and tokens_nearest.i32 [T]
 *   (int32, the nearest-centroid tokens) for the PyTorch side.
 * build: se_codebook_build (1 level, N nodes of width D) on a Gaussian mixture: C (default 400)
 *   centres drawn from N(0, I/D) (norm about 1), each row a uniformly chosen centre plus noise
 *   S (default 0.7) times N(0, I/D); with k by the stable-point rule (k_max 200) and with k = 10.
 *
 * One thread (the context, and OPENBLAS_NUM_THREADS=1 from the script). Each figure: median of
 * REPS runs after a warm-up (the builds: REPS runs, no warm-up), wall time (CLOCK_MONOTONIC) and
 * process CPU time (CLOCK_PROCESS_CPUTIME_ID: every thread of the process, so a stray helper
 * thread would show). Output: one line per measurement, "name key=value ...". */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/codec.h"
#include "codec/se_codebook.h"
#include "cochlea.h"
#include "ctx.h"

#define MAX_REPS 100

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double s[MAX_REPS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static int fail(int rc, const char *what)
{
    fprintf(stderr, "secodec_bench: %s: %s\n", what,
            cochlea_last_error()[0] ? cochlea_last_error() : cochlea_strerror(rc));
    return 1;
}

/* splitmix64 (Steele et al. 2014): x += 0x9e3779b97f4a7c15, then two xor-shift-multiply rounds. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Standard normal by Box-Muller: sqrt(-2 ln u1) cos(2 pi u2), u1 in (0, 1]. */
static double rng_gauss(uint64_t *s)
{
    double u1 = ((double)(rng_next(s) >> 11) + 1.0) / 9007199254740992.0;
    double u2 = (double)(rng_next(s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static float *read_f32(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    float *p = NULL;
    long sz = -1;
    if (fseek(fp, 0, SEEK_END) == 0 && (sz = ftell(fp)) > 0 && fseek(fp, 0, SEEK_SET) == 0) {
        *n = (size_t)sz / sizeof(float);
        p = malloc(*n * sizeof(float));
        if (p && fread(p, sizeof(float), *n, fp) != *n) {
            free(p);
            p = NULL;
        }
    }
    fclose(fp);
    return p;
}

/* Write n elements of elem bytes to dir/name. */
static int write_raw(const char *dir, const char *name, const void *x, size_t n, size_t elem)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    int ok = fp && fwrite(x, elem, n, fp) == n;
    if (fp && fclose(fp))
        ok = 0;
    if (!ok)
        fprintf(stderr, "secodec_bench: cannot write %s\n", path);
    return ok ? 0 : 1;
}

static void *xmalloc(size_t n, size_t elem)
{
    if (elem && n > SIZE_MAX / elem) {
        fprintf(stderr, "secodec_bench: %zu x %zu bytes overflow\n", n, elem);
        exit(1);
    }
    void *p = malloc(n && elem ? n * elem : 1);
    if (!p) {
        fprintf(stderr, "secodec_bench: out of memory (%zu bytes)\n", n * elem);
        exit(1);
    }
    return p;
}

typedef struct timing {
    double wall[MAX_REPS], cpu[MAX_REPS];
    double t0w, t0c;
} timing;

static void tic(timing *t)
{
    t->t0w = wall_s();
    t->t0c = cpu_s();
}

static void toc(timing *t, int r)
{
    t->cpu[r] = cpu_s() - t->t0c;
    t->wall[r] = wall_s() - t->t0w;
}

static void print_timing(const char *name, const timing *t, int reps, const char *extra)
{
    double w = median(t->wall, reps), c = median(t->cpu, reps);
    printf("%s wall=%.4f cpu=%.4f reps=%d%s%s\n", name, w, c, reps, extra[0] ? " " : "", extra);
    fflush(stdout);
}

static int run_codec(int argc, char **argv)
{
    int reps = 3, k = 10;
    long n_nodes = 10000;
    if (argc < 5) {
        fprintf(stderr, "usage: secodec_bench codec MODEL.gguf PCM.f32 OUTDIR [-r REPS] [--nodes N] [--k K]\n");
        return 2;
    }
    const char *model = argv[2], *pcm_path = argv[3], *outdir = argv[4];
    for (int i = 5; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc)
            n_nodes = atol(argv[++i]);
        else if (strcmp(argv[i], "--k") == 0 && i + 1 < argc)
            k = atoi(argv[++i]);
        else {
            fprintf(stderr, "secodec_bench codec: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || n_nodes < 2 || n_nodes > 1000000 || k < 1 || k > 1000) {
        fprintf(stderr, "secodec_bench codec: REPS 1..%d, N 2..1000000, K 1..1000\n", MAX_REPS);
        return 2;
    }
    size_t n = 0;
    float *pcm = read_f32(pcm_path, &n);
    if (!pcm || n == 0) {
        fprintf(stderr, "secodec_bench: cannot read %s (or it is empty)\n", pcm_path);
        return 1;
    }
    cochlea_codec_params cp = cochlea_codec_default_params();
    cp.n_threads = 1;
    /* one pass over the whole signal (no chunk seams), as the reference computes it */
    cp.chunk_frames = 1 << 20;
    cochlea_codec *bare;
    int rc = cochlea_codec_load(model, &cp, &bare);
    if (rc)
        return fail(rc, model);
    const int rate = cochlea_codec_sample_rate(bare);
    const size_t T = cochlea_codec_n_frames(bare, n), D = (size_t)cochlea_codec_dimension(bare);
    const double audio_s = (double)n / rate;
    printf("# codec: %.2f s of audio (%zu samples, %zu frames, D %zu), one thread, median of %d after a warm-up\n",
           audio_s, n, T, D, reps);
    float *z = xmalloc(T * D, sizeof(float));
    timing tm;
    char extra[256];

    /* 1. encoder */
    for (int r = -1; r < reps; r++) {
        tic(&tm);
        if ((rc = cochlea_codec_encode_latents(bare, pcm, n, z)))
            return fail(rc, "encode");
        if (r >= 0)
            toc(&tm, r);
    }
    snprintf(extra, sizeof extra, "audio_s=%.3f", audio_s);
    print_timing("encode", &tm, reps, extra);

    /* 2. an SE codebook on mixed latents (set-up, timed once and reported apart) */
    double *mean = calloc(D, sizeof(double)), *sd = calloc(D, sizeof(double));
    if (!mean || !sd)
        return fail(COCHLEA_ENOMEM, "latent statistics");
    for (size_t t = 0; t < T; t++)
        for (size_t j = 0; j < D; j++)
            mean[j] += z[t * D + j] / (double)T;
    for (size_t t = 0; t < T; t++)
        for (size_t j = 0; j < D; j++)
            sd[j] += (z[t * D + j] - mean[j]) * (z[t * D + j] - mean[j]) / (double)T;
    for (size_t j = 0; j < D; j++)
        sd[j] = sqrt(sd[j]);
    float *rows = xmalloc((size_t)n_nodes * D, sizeof(float));
    uint64_t seed = 7;
    for (long i = 0; i < n_nodes; i++) {
        size_t a = (size_t)i % T, b = (size_t)(rng_next(&seed) % T);
        double lam = 0.5 * (double)(rng_next(&seed) >> 11) / 9007199254740992.0;
        for (size_t j = 0; j < D; j++)
            rows[(size_t)i * D + j] = (float)(z[a * D + j] + lam * (z[b * D + j] - z[a * D + j]) +
                                              0.25 * sd[j] * rng_gauss(&seed));
    }
    free(mean);
    free(sd);
    cochlea_ctx *ctx;
    if ((rc = ctx_create(1, COCHLEA_PRECISION_F32, &ctx)))
        return fail(rc, "context");
    se_build_params bp = se_build_default_params();
    bp.n_levels = 1;
    bp.n_nodes = n_nodes;
    bp.k = k;
    se_codebook *cb;
    se_level_stats st;
    tic(&tm);
    if ((rc = se_codebook_build(ctx, rows, n_nodes, (int64_t)D, &bp, &cb, &st)))
        return fail(rc, "codebook on the latents");
    toc(&tm, 0);
    free(rows);
    const se_level *lv = &cb->levels[0];
    printf("latent_codebook N=%ld k=%d K=%d edges=%lld H2=%.4f wall=%.3f cpu=%.3f\n", n_nodes, st.k, (int)st.K,
           (long long)st.n_edges, st.h2, tm.wall[0], tm.cpu[0]);

    /* 3. quantiser on the latents: node-game rule and nearest centroid */
    int32_t *tok_se = xmalloc(T, sizeof(int32_t)), *tok_nc = xmalloc(T, sizeof(int32_t));
    int64_t n_fb = 0;
    if ((rc = se_level_quantize(ctx, lv, (int64_t)D, cb->fallback, 0, z, (int64_t)T, (int64_t)D, tok_se, &n_fb)))
        return fail(rc, "se_level_quantize");
    for (int nearest = 0; nearest <= 1; nearest++) {
        int32_t *tok = nearest ? tok_nc : tok_se;
        for (int r = -1; r < reps; r++) {
            tic(&tm);
            if ((rc = se_codebook_encode(ctx, cb, z, (int64_t)T, 1, nearest, tok)))
                return fail(rc, "se_codebook_encode");
            if (r >= 0)
                toc(&tm, r);
        }
        if (nearest) {
            size_t same = 0;
            for (size_t t = 0; t < T; t++)
                same += tok_se[t] == tok_nc[t];
            snprintf(extra, sizeof extra, "frames=%zu K=%d agree_with_se=%zu", T, (int)lv->K, same);
        } else {
            /* distinct tokens used (a quantiser that maps every frame to one token would be a bug) */
            int distinct = 0;
            char *seen = calloc((size_t)lv->K, 1);
            for (size_t t = 0; seen && t < T; t++)
                if (!seen[tok_se[t]]++)
                    distinct++;
            free(seen);
            snprintf(extra, sizeof extra, "frames=%zu N=%lld k=%d fallbacks=%lld distinct=%d", T,
                     (long long)lv->n_nodes, (int)lv->k, (long long)n_fb, distinct);
        }
        print_timing(nearest ? "quantize_nearest" : "quantize_se", &tm, reps, extra);
    }

    /* 4. decoder through the public API on a model file that carries this codebook */
    char path[4096];
    snprintf(path, sizeof path, "%s/model-se.gguf", outdir);
    if ((rc = codec_write_with_codebooks(codec_gguf(bare), cb, COCHLEA_TYPE_F32, NULL, path)))
        return fail(rc, path);
    cochlea_codec *full;
    if ((rc = cochlea_codec_load(path, &cp, &full)))
        return fail(rc, path);
    float *y = xmalloc(n, sizeof(float)), *zq = xmalloc(T * D, sizeof(float));
    for (int r = -1; r < reps; r++) {
        tic(&tm);
        if ((rc = cochlea_codec_decode(full, tok_se, T, 1, y, n)))
            return fail(rc, "decode");
        if (r >= 0)
            toc(&tm, r);
    }
    snprintf(extra, sizeof extra, "audio_s=%.3f", audio_s);
    print_timing("decode", &tm, reps, extra);
    if ((rc = se_codebook_decode(cb, tok_se, (int64_t)T, 1, zq)))
        return fail(rc, "se_codebook_decode");
    int bad = write_raw(outdir, "latents.f32", z, T * D, sizeof(float)) ||
              write_raw(outdir, "zq.f32", zq, T * D, sizeof(float)) ||
              write_raw(outdir, "audio.f32", y, n, sizeof(float)) ||
              write_raw(outdir, "centroids.f32", lv->centroids, (size_t)lv->K * D, sizeof(float)) ||
              write_raw(outdir, "tokens_nearest.i32", tok_nc, T, sizeof(int32_t));
    remove(path);
    cochlea_codec_free(full);
    se_codebook_free(cb);
    ctx_free(ctx);
    cochlea_codec_free(bare);
    free(pcm);
    free(z);
    free(zq);
    free(y);
    free(tok_se);
    free(tok_nc);
    return bad;
}

static int run_build(int argc, char **argv)
{
    int reps = 1, clusters = 400;
    long n_nodes = 10000, dim = 1024;
    double noise = 0.7;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc)
            n_nodes = atol(argv[++i]);
        else if (strcmp(argv[i], "--dim") == 0 && i + 1 < argc)
            dim = atol(argv[++i]);
        else if (strcmp(argv[i], "--clusters") == 0 && i + 1 < argc)
            clusters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--noise") == 0 && i + 1 < argc)
            noise = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: secodec_bench build [-r REPS] [--nodes N] [--dim D] [--clusters C] [--noise S]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || n_nodes < 2 || n_nodes > 1000000 || dim < 1 || dim > 65536 || clusters < 1 ||
        !(noise >= 0)) {
        fprintf(stderr, "secodec_bench build: bad arguments\n");
        return 2;
    }
    const size_t N = (size_t)n_nodes, D = (size_t)dim, C = (size_t)clusters;
    float *cent = xmalloc(C * D, sizeof(float)), *x = xmalloc(N * D, sizeof(float));
    uint64_t seed = 12345;
    const double s = 1.0 / sqrt((double)D);
    for (size_t i = 0; i < C * D; i++)
        cent[i] = (float)(s * rng_gauss(&seed));
    for (size_t i = 0; i < N; i++) {
        size_t c = (size_t)(rng_next(&seed) % C);
        for (size_t j = 0; j < D; j++)
            x[i * D + j] = cent[c * D + j] + (float)(noise * s * rng_gauss(&seed));
    }
    cochlea_ctx *ctx;
    int rc = ctx_create(1, COCHLEA_PRECISION_F32, &ctx);
    if (rc)
        return fail(rc, "context");
    printf("# build: Gaussian mixture, N %zu rows of D %zu, %zu centres ~ N(0, I/D), noise %.2f x N(0, I/D); "
           "one thread, median of %d\n",
           N, D, C, noise, reps);
    const int ks[2] = {0, 10};
    for (int v = 0; v < 2; v++) {
        se_build_params p = se_build_default_params();
        p.n_levels = 1;
        p.n_nodes = n_nodes;
        p.k = ks[v];
        se_level_stats st;
        timing tm;
        for (int r = 0; r < reps; r++) {
            se_codebook *cb;
            tic(&tm);
            if ((rc = se_codebook_build(ctx, x, n_nodes, (int64_t)D, &p, &cb, &st)))
                return fail(rc, "se_codebook_build");
            toc(&tm, r);
            se_codebook_free(cb);
        }
        char extra[512];
        snprintf(extra, sizeof extra,
                 "N=%lld k=%d stable=%d K=%d edges=%lld H1=%.4f H2=%.4f sizes=%lld/%lld/%lld reassigned=%lld "
                 "passes=%d fallbacks=%lld",
                 (long long)st.n_nodes, st.k, st.k_stable, (int)st.K, (long long)st.n_edges, st.h1, st.h2,
                 (long long)st.size_min, (long long)st.size_median, (long long)st.size_max,
                 (long long)st.n_reassigned, st.passes, (long long)st.n_fallback);
        print_timing(ks[v] ? "build_k10" : "build_stable", &tm, reps, extra);
    }
    ctx_free(ctx);
    free(cent);
    free(x);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "codec") == 0)
        return run_codec(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "build") == 0)
        return run_build(argc, argv);
    fprintf(stderr, "usage: secodec_bench codec MODEL.gguf PCM.f32 OUTDIR [-r REPS] [--nodes N] [--k K]\n"
                    "       secodec_bench build [-r REPS] [--nodes N] [--dim D] [--clusters C] [--noise S]\n");
    return 2;
}
