/* test_codec.c - the SECodec pipeline of codec/codec.c (cochlea_codec_* in cochlea.h) on the
 * fixture tests/fixtures/secodec-tiny.gguf: shapes, the chunk plan (each chunk equals an
 * independent pass over exactly the samples/frames the plan says), streaming from a reader equals
 * the array functions, the fingerprint, and bad arguments. */
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/codec.h"
#include "codec/se_codebook.h"
#include "cochlea.h"
#include "gguf.h"
#include "testutil.h"

static char fixture[4096];

static void find_fixture(void)
{
    const char *top = getenv("top_srcdir");
    snprintf(fixture, sizeof fixture, "%s/tests/fixtures/secodec-tiny.gguf", top ? top : "..");
}

static cochlea_codec *load(int chunk, int overlap)
{
    cochlea_codec_params p = cochlea_codec_default_params();
    p.n_threads = 1;
    if (chunk)
        p.chunk_frames = chunk;
    p.overlap_frames = overlap;
    cochlea_codec *c = NULL;
    int rc = cochlea_codec_load(fixture, &p, &c);
    ck_assert_msg(rc == COCHLEA_OK, "load %s: %s", fixture, cochlea_last_error());
    return c;
}

/* Speech-like test signal: a harmonic tone with a gliding pitch, a vowel-like envelope and noise. */
static float *signal(size_t n, uint64_t seed)
{
    float *x = test_alloc(n);
    test_rng r = {seed};
    double ph = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / 16000.0;
        double f0 = 110 + 40 * sin(2 * M_PI * 0.7 * t);
        ph += 2 * M_PI * f0 / 16000.0;
        double v = 0;
        for (int h = 1; h <= 8; h++)
            v += sin(h * ph) / h;
        double env = 0.5 + 0.5 * sin(2 * M_PI * 3.1 * t);
        x[i] = (float)(0.2 * env * v + 0.01 * test_rng_uniform(&r, -1, 1));
    }
    return x;
}

START_TEST(test_shapes)
{
    cochlea_codec *c = load(0, 50);
    ck_assert_int_eq(cochlea_codec_sample_rate(c), 16000);
    ck_assert_int_eq(cochlea_codec_hop(c), 320);
    ck_assert_int_eq(cochlea_codec_dimension(c), 32);
    ck_assert_int_eq(cochlea_codec_n_levels(c), 4);
    ck_assert_str_eq(cochlea_codec_quantizer(c), "se");
    for (int l = 0; l < 4; l++)
        ck_assert_int_gt(cochlea_codec_codebook_size(c, l), 1);
    ck_assert_int_eq(cochlea_codec_codebook_size(c, 4), 0);
    ck_assert_int_eq(cochlea_codec_codebook_size(c, -1), 0);
    uint64_t fp;
    ck_assert_int_eq(codec_fingerprint_file(codec_gguf(c), &fp), COCHLEA_OK);
    ck_assert(fp == cochlea_codec_fingerprint(c));
    ck_assert(fp != 0 && fp != codec_fingerprint_begin());
    const size_t lens[] = {0, 1, 319, 320, 321, 16007};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        size_t n = lens[i], T = cochlea_codec_n_frames(c, n);
        ck_assert_uint_eq(T, (n + 319) / 320);
        float *x = signal(n, 1 + i);
        int32_t *codes = calloc(T * 4 + 1, sizeof *codes);
        float *y = test_alloc(n);
        ck_assert_int_eq(cochlea_codec_encode(c, x, n, 4, 0, codes), COCHLEA_OK);
        for (size_t t = 0; t < T; t++)
            for (int l = 0; l < 4; l++) {
                int32_t v = codes[t * 4 + (size_t)l];
                ck_assert(v >= 0 && v < cochlea_codec_codebook_size(c, l));
            }
        ck_assert_int_eq(cochlea_codec_decode(c, codes, T, 4, y, n), COCHLEA_OK);
        for (size_t j = 0; j < n; j++)
            ck_assert(isfinite(y[j]));
        free(x);
        free(y);
        free(codes);
    }
    cochlea_codec_free(c);
}
END_TEST

/* Encoding in chunks of F frames with overlap m equals, chunk by chunk, one pass of a codec with
 * no chunking over exactly the samples [(f0 - m) hop, (f1 + m) hop) of the plan; decoding
 * likewise over frames. A wrong offset anywhere in the plan breaks the equality. */
START_TEST(test_chunk_plan)
{
    const size_t F = 20, m = 6, hop = 320;
    const size_t n = 73 * hop + 123; /* 74 frames: chunks [0,20) [20,40) [40,60) [60,74) (at most F + m
                                       * = 26 frames were left, so they form the last chunk) */
    cochlea_codec *ch = load((int)F, (int)m), *whole = load(1 << 20, 0);
    const size_t D = 32, T = cochlea_codec_n_frames(ch, n);
    ck_assert_uint_eq(T, 74);
    float *x = signal(n, 7);
    float *z = test_alloc(T * D), *zr = test_alloc(T * D);
    ck_assert_int_eq(cochlea_codec_encode_latents(ch, x, n, z), COCHLEA_OK);
    const size_t bounds[][2] = {{0, 20}, {20, 40}, {40, 60}, {60, 74}};
    for (int k = 0; k < 4; k++) {
        size_t f0 = bounds[k][0], f1 = bounds[k][1];
        size_t s0 = f0 > m ? f0 - m : 0, a = s0 * hop, b = f1 + m < T ? (f1 + m) * hop : n;
        if (f1 == T)
            b = n;
        size_t Tseg = (b - a + hop - 1) / hop;
        float *zs = test_alloc(Tseg * D);
        ck_assert_int_eq(cochlea_codec_encode_latents(whole, x + a, b - a, zs), COCHLEA_OK);
        memcpy(zr + f0 * D, zs + (f0 - s0) * D, (f1 - f0) * D * sizeof(float));
        free(zs);
    }
    ck_assert_msg(test_max_abs_diff(z, zr, T * D) == 0.0, "chunked latents differ from the plan: %g",
                  test_max_abs_diff(z, zr, T * D));
    /* and they are not just the whole-signal result (the plan is visible at the seams) */
    float *zw = test_alloc(T * D);
    ck_assert_int_eq(cochlea_codec_encode_latents(whole, x, n, zw), COCHLEA_OK);
    ck_assert(test_max_abs_diff(z, zw, T * D) > 0.0);
    /* a signal of at most F + m frames is one pass: identical to the unchunked codec */
    size_t n2 = (F + m) * hop - 5;
    float *z2 = test_alloc((F + m) * D), *z2w = test_alloc((F + m) * D);
    ck_assert_int_eq(cochlea_codec_encode_latents(ch, x, n2, z2), COCHLEA_OK);
    ck_assert_int_eq(cochlea_codec_encode_latents(whole, x, n2, z2w), COCHLEA_OK);
    ck_assert(test_max_abs_diff(z2, z2w, (F + m) * D) == 0.0);

    /* decoding: chunk k's samples = the unchunked decode of frames [f0 - m, f1 + m) */
    int32_t *codes = calloc(T * 4, sizeof *codes);
    ck_assert_int_eq(cochlea_codec_encode(ch, x, n, 4, 0, codes), COCHLEA_OK);
    float *y = test_alloc(n), *yr = test_alloc(n);
    ck_assert_int_eq(cochlea_codec_decode(ch, codes, T, 4, y, n), COCHLEA_OK);
    for (int k = 0; k < 4; k++) {
        size_t f0 = bounds[k][0], f1 = bounds[k][1];
        size_t s0 = f0 > m ? f0 - m : 0, s1 = f1 + m < T ? f1 + m : T;
        if (f1 == T)
            s1 = T;
        float *ys = test_alloc((s1 - s0) * hop);
        ck_assert_int_eq(cochlea_codec_decode(whole, codes + s0 * 4, s1 - s0, 4, ys, (s1 - s0) * hop), COCHLEA_OK);
        size_t to = f1 * hop < n ? f1 * hop : n;
        memcpy(yr + f0 * hop, ys + (f0 - s0) * hop, (to - f0 * hop) * sizeof(float));
        free(ys);
    }
    ck_assert_msg(test_max_abs_diff(y, yr, n) == 0.0, "chunked decode differs from the plan: %g",
                  test_max_abs_diff(y, yr, n));
    free(codes);
    free(y);
    free(yr);
    free(z2);
    free(z2w);
    free(zw);
    free(x);
    free(z);
    free(zr);
    cochlea_codec_free(ch);
    cochlea_codec_free(whole);
}
END_TEST

typedef struct collect {
    int32_t *codes;
    size_t n, L;
} collect;

static int collect_codes(const int32_t *codes, size_t n, void *user)
{
    collect *c = user;
    memcpy(c->codes + c->n * c->L, codes, n * c->L * sizeof *codes);
    c->n += n;
    return COCHLEA_OK;
}

typedef struct feed {
    const int32_t *codes;
    size_t n, pos, L, step;
    float *out;
    size_t n_out;
} feed;

static int feed_codes(int32_t *codes, size_t max, size_t *n, void *user)
{
    feed *f = user;
    size_t k = f->n - f->pos;
    if (k > max)
        k = max;
    if (k > f->step)
        k = f->step; /* odd pieces */
    memcpy(codes, f->codes + f->pos * f->L, k * f->L * sizeof *codes);
    f->pos += k;
    *n = k;
    return COCHLEA_OK;
}

static int take_pcm(const float *pcm, size_t n, void *user)
{
    feed *f = user;
    memcpy(f->out + f->n_out, pcm, n * sizeof *pcm);
    f->n_out += n;
    return COCHLEA_OK;
}

/* The streaming functions equal the array functions exactly (a WAV read back through a reader;
 * codes fed in pieces of 7 frames). */
START_TEST(test_streaming)
{
    cochlea_codec *c = load(30, 5);
    const size_t n = 100 * 320 + 17, L = 3;
    float *x = signal(n, 3);
    for (size_t i = 0; i < n; i++) /* exactly representable as 16-bit PCM */
        x[i] = (float)lrintf(x[i] * 32768.0f) / 32768.0f;
    char path[] = "/tmp/test_codec_XXXXXX.wav";
    int fd = mkstemps(path, 4);
    ck_assert_int_ge(fd, 0);
    close(fd);
    SF_INFO info = {0};
    info.samplerate = 16000;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    ck_assert_ptr_nonnull(sf);
    ck_assert_int_eq(sf_write_float(sf, x, (sf_count_t)n), (sf_count_t)n);
    sf_close(sf);
    cochlea_audio_params ap = cochlea_audio_default_params();
    cochlea_audio *a;
    ck_assert_int_eq(cochlea_audio_open(path, &ap, &a), COCHLEA_OK);
    size_t T = cochlea_codec_n_frames(c, n);
    collect col = {calloc(T * L, sizeof(int32_t)), 0, L};
    uint64_t got = 0;
    ck_assert_int_eq(cochlea_codec_encode_audio(c, a, (int)L, 0, collect_codes, &col, &got, NULL, NULL), COCHLEA_OK);
    cochlea_audio_close(a);
    unlink(path);
    ck_assert_uint_eq(got, n);
    ck_assert_uint_eq(col.n, T);
    int32_t *ref = calloc(T * L, sizeof *ref);
    ck_assert_int_eq(cochlea_codec_encode(c, x, n, (int)L, 0, ref), COCHLEA_OK);
    ck_assert(memcmp(ref, col.codes, T * L * sizeof *ref) == 0);
    /* nearest-codeword tokens are a different rule: they must differ somewhere on this signal */
    int32_t *near = calloc(T * L, sizeof *near);
    ck_assert_int_eq(cochlea_codec_encode(c, x, n, (int)L, 1, near), COCHLEA_OK);
    ck_assert(memcmp(ref, near, T * L * sizeof *ref) != 0);
    float *y = test_alloc(n);
    ck_assert_int_eq(cochlea_codec_decode(c, ref, T, (int)L, y, n), COCHLEA_OK);
    feed f = {ref, T, 0, L, 7, test_alloc(n), 0};
    ck_assert_int_eq(cochlea_codec_decode_stream(c, (int)L, n, feed_codes, take_pcm, &f, NULL, NULL), COCHLEA_OK);
    ck_assert_uint_eq(f.n_out, n);
    ck_assert(test_max_abs_diff(y, f.out, n) == 0.0);
    free(f.out);
    free(y);
    free(near);
    free(ref);
    free(col.codes);
    free(x);
    cochlea_codec_free(c);
}
END_TEST

START_TEST(test_bad_arguments)
{
    cochlea_codec *c = load(0, 50);
    float x[640] = {0};
    int32_t codes[2 * 4] = {0};
    float y[640];
    ck_assert_int_eq(cochlea_codec_encode(c, x, 640, 0, 0, codes), COCHLEA_EINVAL);
    ck_assert_int_eq(cochlea_codec_encode(c, x, 640, 5, 0, codes), COCHLEA_EINVAL);
    ck_assert(strstr(cochlea_last_error(), "5 levels requested, the model has 4"));
    codes[1 * 4 + 2] = cochlea_codec_codebook_size(c, 2); /* frame 1, level 2: one past the end */
    ck_assert_int_eq(cochlea_codec_decode(c, codes, 2, 4, y, 640), COCHLEA_ERANGE);
    codes[1 * 4 + 2] = -1;
    ck_assert_int_eq(cochlea_codec_decode(c, codes, 2, 4, y, 640), COCHLEA_ERANGE);
    codes[1 * 4 + 2] = 0;
    ck_assert_int_eq(cochlea_codec_decode(c, codes, 2, 4, y, 641), COCHLEA_EINVAL);
    ck_assert_int_eq(cochlea_codec_decode(c, codes, 2, 4, y, 640), COCHLEA_OK);
    cochlea_codec_free(c);

    cochlea_codec_params p = cochlea_codec_default_params();
    cochlea_codec *c2 = NULL;
    p.chunk_frames = 0;
    ck_assert_int_eq(cochlea_codec_load(fixture, &p, &c2), COCHLEA_EINVAL);
    p = cochlea_codec_default_params();
    p.overlap_frames = -1;
    ck_assert_int_eq(cochlea_codec_load(fixture, &p, &c2), COCHLEA_EINVAL);
    ck_assert_ptr_null(c2);
    ck_assert_int_ne(cochlea_codec_load("/nonexistent/codec.gguf", NULL, &c2), COCHLEA_OK);
    ck_assert_ptr_null(c2);

    /* truncated copies of the fixture fail cleanly at every size tried */
    FILE *f = fopen(fixture, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    char path[] = "/tmp/test_codec_trunc_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const long cuts[] = {0, 3, 24, 1000, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        ck_assert_int_eq(ftruncate(fd, 0), 0);
        ck_assert_int_eq(pwrite(fd, buf, (size_t)cuts[i], 0), cuts[i]);
        int rc = cochlea_codec_load(path, NULL, &c2);
        ck_assert_msg(rc != COCHLEA_OK, "a copy cut to %ld of %ld bytes loaded", cuts[i], size);
        ck_assert_ptr_null(c2);
    }
    close(fd);
    unlink(path);
    free(buf);
}
END_TEST

/* A bare network (no quantiser section) gives latents but refuses tokens with a clear message;
 * a different codebook gives a different fingerprint. */
START_TEST(test_bare_and_fingerprint)
{
    cochlea_codec *c = load(0, 50);
    const gguf_file *src = codec_gguf(c);
    /* rebuild one level from random features: a new codebook, same network */
    test_rng r = {5};
    const int64_t M = 300, D = 32;
    float *feat = test_alloc((size_t)(M * D));
    test_fill(&r, feat, (size_t)(M * D), -1, 1);
    se_build_params bp = se_build_default_params();
    bp.n_levels = 1;
    bp.n_nodes = 300;
    bp.k = 5;
    se_codebook *cb = NULL;
    cochlea_ctx *ctx = NULL;
    ck_assert_int_eq(ctx_create(1, COCHLEA_PRECISION_F32, &ctx), COCHLEA_OK);
    ck_assert_int_eq(se_codebook_build(ctx, feat, M, D, &bp, &cb, NULL), COCHLEA_OK);
    char path[] = "/tmp/test_codec_cb_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(codec_write_with_codebooks(src, cb, COCHLEA_TYPE_F32, "test", path), COCHLEA_OK);
    cochlea_codec *c2;
    ck_assert_int_eq(cochlea_codec_load(path, NULL, &c2), COCHLEA_OK);
    ck_assert_int_eq(cochlea_codec_n_levels(c2), 1);
    ck_assert(cochlea_codec_fingerprint(c2) != cochlea_codec_fingerprint(c));
    /* same network: identical latents */
    float x[3200], z1[10 * 32], z2[10 * 32];
    test_fill(&r, x, 3200, -0.5f, 0.5f);
    ck_assert_int_eq(cochlea_codec_encode_latents(c, x, 3200, z1), COCHLEA_OK);
    ck_assert_int_eq(cochlea_codec_encode_latents(c2, x, 3200, z2), COCHLEA_OK);
    ck_assert(test_max_abs_diff(z1, z2, 320) == 0.0);
    cochlea_codec_free(c2);
    unlink(path);

    /* bare: write the network only through an empty-level copy is not possible; use the writer
     * with every quantiser key and tensor left out */
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), COCHLEA_OK);
    for (int64_t i = 0; i < gguf_n_kv(src); i++) {
        const char *k = gguf_kv_key(src, i);
        if (strncmp(k, "secodec.n_levels", 16) == 0 || strncmp(k, "secodec.codebook", 16) == 0 ||
            strncmp(k, "secodec.quantizer", 17) == 0 || strncmp(k, "secodec.se.", 11) == 0 ||
            strcmp(k, "general.alignment") == 0)
            continue;
        ck_assert_int_eq(gguf_writer_set_value(w, k, gguf_kv_value(src, i)), COCHLEA_OK);
    }
    for (int64_t i = 0; i < gguf_n_tensors(src); i++) {
        const tensor *t = gguf_tensor(src, i);
        if (strncmp(t->name, "quantizer.", 10) == 0)
            continue;
        ck_assert_int_eq(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data), COCHLEA_OK);
    }
    ck_assert_int_eq(gguf_writer_write(w, path), COCHLEA_OK);
    gguf_writer_free(w);
    ck_assert_int_eq(cochlea_codec_load(path, NULL, &c2), COCHLEA_OK);
    ck_assert_int_eq(cochlea_codec_n_levels(c2), 0);
    ck_assert_str_eq(cochlea_codec_quantizer(c2), "");
    ck_assert_int_eq(cochlea_codec_encode_latents(c2, x, 3200, z2), COCHLEA_OK);
    ck_assert(test_max_abs_diff(z1, z2, 320) == 0.0);
    int32_t codes[10 * 4];
    ck_assert_int_eq(cochlea_codec_encode(c2, x, 3200, 1, 0, codes), COCHLEA_EINVAL);
    ck_assert(strstr(cochlea_last_error(), "no codebooks"));
    cochlea_codec_free(c2);
    unlink(path);
    se_codebook_free(cb);
    ctx_free(ctx);
    free(feat);
    cochlea_codec_free(c);
}
END_TEST

int main(void)
{
    find_fixture();
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("pipeline");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_chunk_plan);
    tcase_add_test(tc, test_streaming);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_bare_and_fingerprint);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
