/* test_codec_seanet.c - Check suite for codec/seanet.c (the parts that need no PyTorch), and the
 * driver that tests/secodec_parity.py runs against the PyTorch reference.
 *
 * Without arguments: the Check suite. Models are built in memory with the GGUF writer:
 * the §5.2 padding rule on hand-computed rows, hyperparameters and T = ceil(L / hop), every
 * kind of bad file (missing / mistyped / out-of-range keys, causal, unknown pad mode, missing,
 * mis-shaped or mistyped tensors) rejected with the right code and a message naming the
 * culprit, short and odd input lengths, thread-count invariance, and two networks whose output
 * is known in closed form (zero weights with biases: the LSTM recursion in both directions, the
 * skip, the [T, D] layout; the decoder's constant output).
 *
 * Driver (raw little-endian float32 files):
 *   test_codec_seanet encode MODEL.gguf IN.f32 OUT.f32 [THREADS]   pcm [L] -> latents [T, D]
 *   test_codec_seanet decode MODEL.gguf IN.f32 OUT.f32 [THREADS]   latents [T, D] -> pcm [T hop]
 *   test_codec_seanet bench MODEL.gguf SECONDS REPS [THREADS]      median encode/decode times
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/seanet.h"
#include "cochlea.h"
#include "ctx.h"
#include "error.h"
#include "gguf.h"
#include "testutil.h"

/* ---- in-memory models --------------------------------------------------------------------- */

typedef struct {
    int n_filters, dimension, n_strides, strides[8]; /* strides in encoder order */
    int kernel_size, last_kernel_size, residual_kernel_size, dilation_base, n_residual_layers, compress;
    int lstm_layers, bidirectional, true_skip;
    const char *pad_mode;
    uint64_t seed;
    float wscale;             /* weights U(-wscale, wscale) / sqrt(fan_in); 0: all zero */
    int identity_out;         /* encoder's last conv = identity (needs k = 1, in = D) */
    /* mutations for the bad-file tests */
    const char *drop_tensor;  /* leave this tensor out */
    const char *wide_tensor;  /* add 1 to its outermost dimension */
    const char *i32_tensor;   /* store it as I32 */
    void (*edit)(gguf_writer *w);
} tcfg;

static tcfg tiny_cfg(void)
{
    tcfg c = {.n_filters = 2, .dimension = 8, .n_strides = 4, .strides = {2, 4, 5, 8}, .kernel_size = 7,
              .last_kernel_size = 7, .residual_kernel_size = 3, .dilation_base = 2, .n_residual_layers = 1,
              .compress = 2, .lstm_layers = 2, .bidirectional = 1, .true_skip = 0, .pad_mode = "reflect",
              .seed = 1, .wscale = 2.0f};
    return c;
}

typedef struct {
    gguf_writer *w;
    const tcfg *c;
    test_rng rng;
    void *blobs[512];
    int n_blobs;
} builder;

static void add_t(builder *b, const char *name, int n_dims, int64_t d0, int64_t d1, int64_t d2, float scale, int kind)
{
    /* kind 0: weight U(-scale, scale); 1: bias U(-0.1, 0.1); 2: identity [D, D, 1] */
    if (b->c->drop_tensor && strcmp(name, b->c->drop_tensor) == 0)
        return;
    int64_t ne[3] = {d0, d1, d2};
    if (b->c->wide_tensor && strcmp(name, b->c->wide_tensor) == 0)
        ne[n_dims - 1]++;
    size_t n = (size_t)(ne[0] * ne[1] * ne[2]);
    float *p = test_alloc(n);
    if (kind == 1)
        test_fill(&b->rng, p, n, -0.1f, 0.1f);
    else if (kind == 2)
        for (int64_t i = 0; i < ne[1] && i < ne[2]; i++)
            p[i * ne[1] + i] = 1.0f;
    else if (scale != 0)
        test_fill(&b->rng, p, n, -scale, scale);
    ck_assert_int_lt(b->n_blobs, 512);
    b->blobs[b->n_blobs++] = p;
    int is_i32 = b->c->i32_tensor && strcmp(name, b->c->i32_tensor) == 0;
    ck_assert_int_eq(gguf_writer_add_tensor(b->w, name, is_i32 ? COCHLEA_TYPE_I32 : COCHLEA_TYPE_F32, n_dims, ne, p),
                     0);
}

/* Conv1d weight [out, in, k] (ne {k, in, out}) and bias. */
static void add_conv(builder *b, const char *prefix, int c_in, int c_out, int k, int transposed, int kind)
{
    char name[200];
    float s = b->c->wscale / sqrtf((float)((transposed ? c_out : c_in) * k));
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (transposed)
        add_t(b, name, 3, k, c_out, c_in, s, 0);
    else
        add_t(b, name, 3, k, c_in, c_out, s, kind);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add_t(b, name, 1, c_out, 1, 1, 0, 1);
}

static void add_res(builder *b, const char *prefix, int dim)
{
    char name[200];
    int hidden = dim / b->c->compress;
    snprintf(name, sizeof name, "%s.block.1.conv.conv", prefix);
    add_conv(b, name, dim, hidden, b->c->residual_kernel_size, 0, 0);
    snprintf(name, sizeof name, "%s.block.3.conv.conv", prefix);
    add_conv(b, name, hidden, dim, 1, 0, 0);
    if (!b->c->true_skip) {
        snprintf(name, sizeof name, "%s.shortcut.conv.conv", prefix);
        add_conv(b, name, dim, dim, 1, 0, 0);
    }
}

static void add_lstm(builder *b, const char *prefix, int H, int dirs)
{
    char name[200];
    float s = b->c->wscale / sqrtf((float)H);
    for (int l = 0; l < b->c->lstm_layers; l++)
        for (int d = 0; d < dirs; d++) {
            const char *rev = d ? "_reverse" : "";
            snprintf(name, sizeof name, "%s.weight_ih_l%d%s", prefix, l, rev);
            add_t(b, name, 2, l ? dirs * H : H, 4 * H, 1, s, 0);
            snprintf(name, sizeof name, "%s.weight_hh_l%d%s", prefix, l, rev);
            add_t(b, name, 2, H, 4 * H, 1, s, 0);
            snprintf(name, sizeof name, "%s.bias_ih_l%d%s", prefix, l, rev);
            add_t(b, name, 1, 4 * H, 1, 1, 0, 1);
            snprintf(name, sizeof name, "%s.bias_hh_l%d%s", prefix, l, rev);
            add_t(b, name, 1, 4 * H, 1, 1, 0, 1);
        }
}

/* The GGUF image of a model; free with free(). */
static void *build_model(const tcfg *c, size_t *size)
{
    builder b = {.c = c, .rng = {c->seed}};
    ck_assert_int_eq(gguf_writer_new(&b.w), 0);
    gguf_writer *w = b.w;
    gguf_writer_set_str(w, "general.architecture", "secodec");
    gguf_writer_set_u32(w, "secodec.sample_rate", 16000);
    gguf_writer_set_u32(w, "secodec.n_filters", (uint32_t)c->n_filters);
    gguf_writer_set_u32(w, "secodec.dimension", (uint32_t)c->dimension);
    gguf_writer_set_arr(w, "secodec.strides", GGUF_TYPE_I32, c->strides, (size_t)c->n_strides);
    gguf_writer_set_u32(w, "secodec.kernel_size", (uint32_t)c->kernel_size);
    gguf_writer_set_u32(w, "secodec.last_kernel_size", (uint32_t)c->last_kernel_size);
    gguf_writer_set_u32(w, "secodec.residual_kernel_size", (uint32_t)c->residual_kernel_size);
    gguf_writer_set_u32(w, "secodec.dilation_base", (uint32_t)c->dilation_base);
    gguf_writer_set_u32(w, "secodec.n_residual_layers", (uint32_t)c->n_residual_layers);
    gguf_writer_set_u32(w, "secodec.compress", (uint32_t)c->compress);
    gguf_writer_set_u32(w, "secodec.lstm_layers", (uint32_t)c->lstm_layers);
    gguf_writer_set_bool(w, "secodec.encoder_bidirectional", c->bidirectional);
    gguf_writer_set_bool(w, "secodec.true_skip", c->true_skip);
    gguf_writer_set_bool(w, "secodec.causal", 0);
    gguf_writer_set_str(w, "secodec.pad_mode", c->pad_mode);
    gguf_writer_set_f32(w, "secodec.elu_alpha", 1.0f);
    if (c->edit)
        c->edit(w);

    const int C = c->n_filters, n = c->n_strides, nr = c->n_residual_layers;
    const int width = C << n, bidir = c->bidirectional && c->lstm_layers > 0;
    char name[160];
    int idx = 0;
    snprintf(name, sizeof name, "encoder.model.%d.conv.conv", idx++);
    add_conv(&b, name, 1, C, c->kernel_size, 0, 0);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < nr; j++) {
            snprintf(name, sizeof name, "encoder.model.%d", idx++);
            add_res(&b, name, C << i);
        }
        idx++;
        snprintf(name, sizeof name, "encoder.model.%d.conv.conv", idx++);
        add_conv(&b, name, C << i, C << (i + 1), 2 * c->strides[i], 0, 0);
    }
    if (c->lstm_layers > 0) {
        snprintf(name, sizeof name, "encoder.model.%d.lstm", idx++);
        add_lstm(&b, name, width, bidir ? 2 : 1);
    }
    idx++;
    snprintf(name, sizeof name, "encoder.model.%d.conv.conv", idx++);
    add_conv(&b, name, (bidir ? 2 : 1) * width, c->dimension, c->last_kernel_size, 0, c->identity_out ? 2 : 0);
    idx = 0;
    snprintf(name, sizeof name, "decoder.model.%d.conv.conv", idx++);
    add_conv(&b, name, c->dimension, width, c->kernel_size, 0, 0);
    if (c->lstm_layers > 0) {
        snprintf(name, sizeof name, "decoder.model.%d.lstm", idx++);
        add_lstm(&b, name, width, 1);
    }
    for (int i = n - 1; i >= 0; i--) {
        idx++;
        snprintf(name, sizeof name, "decoder.model.%d.convtr.convtr", idx++);
        add_conv(&b, name, C << (i + 1), C << i, 2 * c->strides[i], 1, 0);
        for (int j = 0; j < nr; j++) {
            snprintf(name, sizeof name, "decoder.model.%d", idx++);
            add_res(&b, name, C << i);
        }
    }
    idx++;
    snprintf(name, sizeof name, "decoder.model.%d.conv.conv", idx++);
    add_conv(&b, name, C, 1, c->last_kernel_size, 0, 0);

    void *buf;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, size), 0);
    gguf_writer_free(w);
    for (int i = 0; i < b.n_blobs; i++)
        free(b.blobs[i]);
    return buf;
}

typedef struct {
    void *buf;
    gguf_file *f;
    seanet *net;
} model;

/* Build and load; returns the load status (the model is usable only when it is 0). */
static int open_model(const tcfg *c, model *m)
{
    size_t size;
    memset(m, 0, sizeof *m);
    m->buf = build_model(c, &size);
    ck_assert_int_eq(gguf_open_memory_named(m->buf, size, "t.gguf", &m->f), 0);
    return seanet_load(m->f, &m->net);
}

static void close_model(model *m)
{
    seanet_free(m->net);
    gguf_close(m->f);
    free(m->buf);
}

static cochlea_ctx *new_ctx(int threads)
{
    cochlea_ctx *ctx;
    ck_assert_int_eq(ctx_create(threads, COCHLEA_PRECISION_F32, &ctx), 0);
    return ctx;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void check_pad(const float *x, int n, int left, int right, enum seanet_pad_mode mode, const float *want)
{
    float out[64];
    for (int i = 0; i < 64; i++)
        out[i] = -99.0f;
    seanet_pad1d(x, n, left, right, mode, out);
    for (int i = 0; i < left + n + right; i++)
        ck_assert_msg(out[i] == want[i], "pad(n %d, %d, %d) [%d] = %g, expected %g", n, left, right, i, out[i],
                      want[i]);
    ck_assert(out[left + n + right] == -99.0f);
}

START_TEST(test_pad1d)
{
    const float x[5] = {1, 2, 3, 4, 5};
    /* ordinary reflect: edge not repeated */
    check_pad(x, 5, 2, 3, SEANET_PAD_REFLECT, (const float[]){3, 2, 1, 2, 3, 4, 5, 4, 3, 2});
    /* short rule: [1, 2] + 2 zeros reflected by 3, the 2 zeros dropped at the end */
    check_pad(x, 2, 3, 3, SEANET_PAD_REFLECT, (const float[]){0, 0, 2, 1, 2, 0, 0, 0});
    check_pad(x, 3, 1, 4, SEANET_PAD_REFLECT, (const float[]){2, 1, 2, 3, 0, 0, 0, 3});
    check_pad(x, 1, 3, 3, SEANET_PAD_REFLECT, (const float[]){0, 0, 0, 1, 0, 0, 0});
    /* exactly one more sample than the larger pad: plain reflect */
    check_pad(x, 4, 3, 2, SEANET_PAD_REFLECT, (const float[]){4, 3, 2, 1, 2, 3, 4, 3, 2});
    check_pad(x, 3, 2, 1, SEANET_PAD_CONSTANT, (const float[]){0, 0, 1, 2, 3, 0});
}
END_TEST

START_TEST(test_load_hparams)
{
    tcfg c = tiny_cfg();
    model m;
    ck_assert_int_eq(open_model(&c, &m), 0);
    const seanet_hparams *hp = seanet_get_hparams(m.net);
    ck_assert_int_eq(hp->sample_rate, 16000);
    ck_assert_int_eq(hp->n_strides, 4);
    ck_assert_int_eq(hp->strides[0], 2);
    ck_assert_int_eq(hp->strides[3], 8);
    ck_assert_int_eq(hp->lstm_layers, 2);
    ck_assert_int_eq(hp->encoder_bidirectional, 1);
    ck_assert_int_eq(hp->pad_mode, SEANET_PAD_REFLECT);
    ck_assert_int_eq(seanet_hop(m.net), 320);
    ck_assert_int_eq(seanet_dimension(m.net), 8);
    const int64_t L[] = {0, 1, 100, 319, 320, 321, 640, 641, 16000};
    const int64_t T[] = {0, 1, 1, 1, 1, 2, 2, 3, 50};
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(seanet_n_frames(m.net, L[i]), T[i]);
    size_t eb, db;
    ck_assert_int_eq(seanet_encode_scratch_bytes(m.net, 16000, &eb), 0);
    ck_assert_int_eq(seanet_decode_scratch_bytes(m.net, 50, &db), 0);
    /* three buffers of n_filters x L floats (the widest activation: C L = 2 C L/2 = ...) */
    ck_assert_uint_eq(eb, 3u * 2 * 16000 * 4);
    ck_assert_uint_ge(db, 3u * 2 * 16000 * 4);
    ck_assert_uint_le(db, 3u * 2 * 16008 * 4);
    ck_assert_int_eq(seanet_encode_scratch_bytes(m.net, INT64_MAX / 2, &eb), COCHLEA_ERANGE);
    close_model(&m);
}
END_TEST

/* ---- bad files ---- */

static void ed_kernel0(gguf_writer *w) { gguf_writer_set_u32(w, "secodec.kernel_size", 0); }
static void ed_filters_str(gguf_writer *w) { gguf_writer_set_str(w, "secodec.n_filters", "64"); }
static void ed_causal(gguf_writer *w) { gguf_writer_set_bool(w, "secodec.causal", 1); }
static void ed_pad(gguf_writer *w) { gguf_writer_set_str(w, "secodec.pad_mode", "circular"); }
static void ed_arch(gguf_writer *w) { gguf_writer_set_str(w, "general.architecture", "owsm_ctc"); }
static void ed_stride0(gguf_writer *w)
{
    int32_t s[4] = {2, 0, 5, 8};
    gguf_writer_set_arr(w, "secodec.strides", GGUF_TYPE_I32, s, 4);
}
static void ed_strides9(gguf_writer *w)
{
    int32_t s[9] = {2, 2, 2, 2, 2, 2, 2, 2, 2};
    gguf_writer_set_arr(w, "secodec.strides", GGUF_TYPE_I32, s, 9);
}
static void ed_compress(gguf_writer *w) { gguf_writer_set_u32(w, "secodec.compress", 3); }
static void ed_bidir_u32(gguf_writer *w) { gguf_writer_set_u32(w, "secodec.encoder_bidirectional", 1); }
static void ed_alpha_nan(gguf_writer *w) { gguf_writer_set_f32(w, "secodec.elu_alpha", NAN); }

START_TEST(test_bad_files)
{
    struct {
        const char *what;
        void (*edit)(gguf_writer *);
        const char *drop, *wide, *i32;
        int code;
        const char *msg;
    } cases[] = {
        {"kernel 0", ed_kernel0, NULL, NULL, NULL, COCHLEA_EFORMAT, "secodec.kernel_size"},
        {"n_filters string", ed_filters_str, NULL, NULL, NULL, COCHLEA_EFORMAT, "secodec.n_filters"},
        {"causal", ed_causal, NULL, NULL, NULL, COCHLEA_EUNSUPPORTED, "causal"},
        {"pad mode", ed_pad, NULL, NULL, NULL, COCHLEA_EUNSUPPORTED, "circular"},
        {"architecture", ed_arch, NULL, NULL, NULL, COCHLEA_EFORMAT, "owsm_ctc"},
        {"stride 0", ed_stride0, NULL, NULL, NULL, COCHLEA_EFORMAT, "secodec.strides[1]"},
        {"9 strides", ed_strides9, NULL, NULL, NULL, COCHLEA_EFORMAT, "secodec.strides"},
        {"compress", ed_compress, NULL, NULL, NULL, COCHLEA_EFORMAT, "secodec.compress"},
        {"bool as u32", ed_bidir_u32, NULL, NULL, NULL, COCHLEA_EFORMAT, "secodec.encoder_bidirectional"},
        {"alpha nan", ed_alpha_nan, NULL, NULL, NULL, COCHLEA_EFORMAT, "secodec.elu_alpha"},
        {"no convtr", NULL, "decoder.model.6.convtr.convtr.weight", NULL, NULL, COCHLEA_EFORMAT,
         "'decoder.model.6.convtr.convtr.weight'"},
        {"no bias", NULL, "encoder.model.4.shortcut.conv.conv.bias", NULL, NULL, COCHLEA_EFORMAT,
         "encoder.model.4.shortcut.conv.conv.bias"},
        {"no reverse lstm", NULL, "encoder.model.13.lstm.weight_hh_l1_reverse", NULL, NULL, COCHLEA_EFORMAT,
         "weight_hh_l1_reverse"},
        {"wide lstm", NULL, NULL, "decoder.model.1.lstm.weight_ih_l1", NULL, COCHLEA_EFORMAT,
         "decoder.model.1.lstm.weight_ih_l1"},
        {"wide conv", NULL, NULL, "encoder.model.15.conv.conv.weight", NULL, COCHLEA_EFORMAT,
         "encoder.model.15.conv.conv.weight"},
        {"wide convtr", NULL, NULL, "decoder.model.12.convtr.convtr.weight", NULL, COCHLEA_EFORMAT,
         "decoder.model.12.convtr.convtr.weight"},
        {"i32 weight", NULL, NULL, NULL, "encoder.model.3.conv.conv.weight", COCHLEA_EUNSUPPORTED,
         "encoder.model.3.conv.conv.weight"},
        {"valid", NULL, NULL, NULL, NULL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tcfg c = tiny_cfg();
        c.edit = cases[i].edit;
        c.drop_tensor = cases[i].drop;
        c.wide_tensor = cases[i].wide;
        c.i32_tensor = cases[i].i32;
        model m;
        int rc = open_model(&c, &m);
        ck_assert_msg(rc == cases[i].code, "%s: code %d, expected %d (%s)", cases[i].what, rc, cases[i].code,
                      cochlea_last_error());
        if (cases[i].msg) {
            ck_assert_ptr_null(m.net);
            ck_assert_msg(strstr(cochlea_last_error(), cases[i].msg) && strstr(cochlea_last_error(), "t.gguf"),
                          "%s: message '%s' does not name '%s' and the file", cases[i].what, cochlea_last_error(),
                          cases[i].msg);
        }
        close_model(&m);
    }

    /* a missing key: a writer with every key except secodec.residual_kernel_size */
    tcfg c = tiny_cfg();
    size_t size;
    void *full = build_model(&c, &size);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(full, size, &f), 0);
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    for (int64_t i = 0; i < gguf_n_kv(f); i++)
        if (strcmp(gguf_kv_key(f, i), "secodec.residual_kernel_size") != 0)
            ck_assert_int_eq(gguf_writer_set_value(w, gguf_kv_key(f, i), gguf_kv_value(f, i)), 0);
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const tensor *t = gguf_tensor(f, i);
        ck_assert_int_eq(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data), 0);
    }
    void *buf;
    size_t bsize;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &bsize), 0);
    gguf_writer_free(w);
    gguf_file *g;
    ck_assert_int_eq(gguf_open_memory_named(buf, bsize, "nokey.gguf", &g), 0);
    seanet *net = NULL;
    ck_assert_int_eq(seanet_load(g, &net), COCHLEA_EFORMAT);
    ck_assert_ptr_null(net);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "missing key 'secodec.residual_kernel_size'"));
    gguf_close(g);
    free(buf);
    gguf_close(f);
    free(full);
}
END_TEST

/* ---- running ---- */

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

START_TEST(test_short_inputs)
{
    tcfg c = tiny_cfg();
    model m;
    ck_assert_int_eq(open_model(&c, &m), 0);
    cochlea_ctx *ctx = new_ctx(1);
    test_rng r = {7};
    const int64_t lens[] = {1, 2, 3, 7, 100, 319, 320, 321, 1000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        int64_t L = lens[i], T = seanet_n_frames(m.net, L);
        float *pcm = test_alloc((size_t)L);
        test_fill(&r, pcm, (size_t)L, -0.5f, 0.5f);
        float *z = test_alloc((size_t)(T * 8 + 1));
        z[T * 8] = 12345.0f;
        ck_assert_int_eq(seanet_encode(ctx, m.net, pcm, L, z), 0);
        ck_assert_msg(all_finite(z, (size_t)(T * 8)), "L %lld: non-finite latents", (long long)L);
        ck_assert(z[T * 8] == 12345.0f);
        float *y = test_alloc((size_t)(T * 320 + 1));
        y[T * 320] = 12345.0f;
        ck_assert_int_eq(seanet_decode(ctx, m.net, z, T, y), 0);
        ck_assert_msg(all_finite(y, (size_t)(T * 320)), "L %lld: non-finite audio", (long long)L);
        ck_assert(y[T * 320] == 12345.0f);
        double mx = 0;
        for (int64_t t = 0; t < T * 320; t++)
            mx = fmax(mx, fabs(y[t] - y[0]));
        ck_assert_msg(mx > 0, "L %lld: constant decoder output", (long long)L);
        free(pcm);
        free(z);
        free(y);
    }
    float one = 0.1f, zz[8];
    ck_assert_int_eq(seanet_encode(ctx, m.net, &one, 0, zz), COCHLEA_EINVAL);
    ck_assert_int_eq(seanet_decode(ctx, m.net, zz, 0, &one), COCHLEA_EINVAL);
    ck_assert_int_eq(seanet_encode(ctx, NULL, &one, 1, zz), COCHLEA_EINVAL);
    ctx_free(ctx);
    close_model(&m);
}
END_TEST

/* Other shapes: no LSTM, true_skip, two ResBlocks per stage (dilation 2), constant padding,
 * odd strides (3: transposed-conv trim 2 + 1) and 1 (kernel 2, pad 1 + 0). */
START_TEST(test_variants)
{
    tcfg c = tiny_cfg();
    c.n_strides = 3;
    c.strides[0] = 3;
    c.strides[1] = 1;
    c.strides[2] = 2;
    c.lstm_layers = 0;
    c.true_skip = 1;
    c.n_residual_layers = 2;
    c.compress = 1;
    c.kernel_size = 5;
    c.last_kernel_size = 3;
    cochlea_ctx *ctx = new_ctx(1);
    for (int pass = 0; pass < 2; pass++) {
        c.pad_mode = pass ? "constant" : "reflect";
        model m;
        ck_assert_int_eq(open_model(&c, &m), 0);
        ck_assert_int_eq(seanet_hop(m.net), 6);
        const int64_t lens[] = {1, 2, 5, 6, 7, 50};
        for (size_t i = 0; i < 6; i++) {
            int64_t L = lens[i], T = seanet_n_frames(m.net, L);
            ck_assert_int_eq(T, (L + 5) / 6);
            float pcm[64], z[9 * 8], y[9 * 6];
            for (int64_t t = 0; t < L; t++)
                pcm[t] = sinf(0.3f * (float)t);
            ck_assert_int_eq(seanet_encode(ctx, m.net, pcm, L, z), 0);
            ck_assert_int_eq(seanet_decode(ctx, m.net, z, T, y), 0);
            ck_assert(all_finite(z, (size_t)(T * 8)) && all_finite(y, (size_t)(T * 6)));
        }
        close_model(&m);
    }
    ctx_free(ctx);
}
END_TEST

START_TEST(test_threads)
{
    tcfg c = tiny_cfg();
    model m;
    ck_assert_int_eq(open_model(&c, &m), 0);
    cochlea_ctx *c1 = new_ctx(1), *c2 = new_ctx(2);
    const int64_t L = 3000, T = 10;
    float *pcm = test_alloc(L), *z1 = test_alloc(T * 8), *z2 = test_alloc(T * 8);
    float *y1 = test_alloc(T * 320), *y2 = test_alloc(T * 320);
    test_rng r = {3};
    test_fill(&r, pcm, L, -0.5f, 0.5f);
    ck_assert_int_eq(seanet_encode(c1, m.net, pcm, L, z1), 0);
    ck_assert_int_eq(seanet_encode(c2, m.net, pcm, L, z2), 0);
    test_assert_close(z2, z1, T * 8, 1e-5, 1e-5);
    ck_assert_int_eq(seanet_decode(c1, m.net, z1, T, y1), 0);
    ck_assert_int_eq(seanet_decode(c2, m.net, z1, T, y2), 0);
    test_assert_close(y2, y1, T * 320, 1e-5, 1e-5);
    /* the latents depend on the input */
    pcm[1500] += 0.5f;
    ck_assert_int_eq(seanet_encode(c1, m.net, pcm, L, z2), 0);
    ck_assert_double_gt(test_max_abs_diff(z1, z2, T * 8), 1e-4);
    free(pcm), free(z1), free(z2), free(y1), free(y2);
    ctx_free(c1);
    ctx_free(c2);
    close_model(&m);
}
END_TEST

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }
static double elu1(double x) { return x > 0 ? x : expm1(x); }
static float tensor_f(const gguf_file *f, const char *name, int64_t i)
{
    const tensor *t;
    ck_assert_int_eq(gguf_get_tensor(f, name, &t), 0);
    return ((const float *)t->data)[i];
}

/* Zero weights, random biases: every conv emits its bias, so the stage before the LSTM is the
 * constant b_d; a zero-weight LSTM runs c_t = s(f) c_{t-1} + s(i) tanh(g), h_t = s(o) tanh(c_t)
 * on its biases alone, forward from frame 0 and backward from the last frame; the encoder's
 * last conv is the identity, so z[t] = ELU([h_f(t) + b_d, h_b(t) + b_d]) + b_out. */
START_TEST(test_closed_form)
{
    tcfg c = tiny_cfg();
    c.n_filters = 1;
    c.n_strides = 1;
    c.strides[0] = 2;
    c.dimension = 4;
    c.lstm_layers = 1;
    c.compress = 1;
    c.kernel_size = 3;
    c.last_kernel_size = 1;
    c.wscale = 0;
    c.identity_out = 1;
    model m;
    ck_assert_int_eq(open_model(&c, &m), 0);
    cochlea_ctx *ctx = new_ctx(2);
    const int64_t L = 11, T = 6;
    float pcm[11], z[6 * 4], y[6 * 2];
    for (int i = 0; i < L; i++)
        pcm[i] = (float)i - 4.0f;
    ck_assert_int_eq(seanet_encode(ctx, m.net, pcm, L, z), 0);
    const char *P = "encoder.model.4.lstm";
    char nb[128];
    double want[6][4];
    for (int dir = 0; dir < 2; dir++) {
        float gate[8];
        for (int g = 0; g < 8; g++) {
            snprintf(nb, sizeof nb, "%s.bias_ih_l0%s", P, dir ? "_reverse" : "");
            gate[g] = tensor_f(m.f, nb, g);
            snprintf(nb, sizeof nb, "%s.bias_hh_l0%s", P, dir ? "_reverse" : "");
            gate[g] += tensor_f(m.f, nb, g);
        }
        for (int h = 0; h < 2; h++) {
            double cs = 0;
            for (int step = 0; step < T; step++) {
                cs = sigm(gate[2 + h]) * cs + sigm(gate[h]) * tanh(gate[4 + h]);
                double hv = sigm(gate[6 + h]) * tanh(cs);
                int t = dir ? (int)T - 1 - step : step;
                double bd = tensor_f(m.f, "encoder.model.3.conv.conv.bias", h);
                want[t][dir * 2 + h] = elu1(hv + bd) + tensor_f(m.f, "encoder.model.6.conv.conv.bias", dir * 2 + h);
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int d = 0; d < 4; d++)
            ck_assert_msg(fabs(z[t * 4 + d] - want[t][d]) < 1e-5, "z[%d, %d] = %.7f, expected %.7f", t, d,
                          z[t * 4 + d], want[t][d]);
    /* forward and backward halves differ in time */
    ck_assert_double_gt(fabs(want[0][0] - want[5][0]), 1e-4);
    /* decoder: zero weights, so the audio is the last conv's bias everywhere */
    ck_assert_int_eq(seanet_decode(ctx, m.net, z, T, y), 0);
    float b = tensor_f(m.f, "decoder.model.6.conv.conv.bias", 0);
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq(y[i], b);
    ctx_free(ctx);
    close_model(&m);
}
END_TEST

/* ---- driver ---------------------------------------------------------------------------------- */

static float *read_f32(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    float *p = malloc(sz > 0 ? (size_t)sz : 1);
    *n = sz > 0 ? (size_t)sz / sizeof(float) : 0;
    if (p && fread(p, sizeof(float), *n, fp) != *n) {
        free(p);
        p = NULL;
    }
    fclose(fp);
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int driver(int argc, char **argv)
{
    const char *mode = argv[1];
    if (argc < 5) {
        fprintf(stderr, "usage: %s encode|decode MODEL IN.f32 OUT.f32 [THREADS] | bench MODEL SECONDS REPS [THREADS]\n",
                argv[0]);
        return 2;
    }
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    gguf_file *f = NULL;
    seanet *net = NULL;
    cochlea_ctx *ctx = NULL;
    float *in = NULL, *out = NULL;
    int rc = gguf_open(argv[2], &f);
    if (rc == 0)
        rc = seanet_load(f, &net);
    if (rc == 0)
        rc = ctx_create(threads, COCHLEA_PRECISION_F32, &ctx);
    if (rc) {
        fprintf(stderr, "error: %s\n", cochlea_last_error());
        goto done;
    }
    const int64_t hop = seanet_hop(net), D = seanet_dimension(net);
    if (strcmp(mode, "bench") == 0) {
        int64_t L = (int64_t)(atof(argv[3]) * seanet_get_hparams(net)->sample_rate), T = seanet_n_frames(net, L);
        int reps = atoi(argv[4]);
        in = malloc((size_t)L * sizeof *in);
        out = malloc((size_t)(T * D) * sizeof *out);
        float *y = malloc((size_t)(T * hop) * sizeof *y);
        for (int64_t i = 0; i < L; i++)
            in[i] = 0.3f * sinf(0.01f * (float)i) + 0.1f * sinf(0.37f * (float)i);
        double te[64], td[64];
        reps = reps < 1 ? 1 : reps > 64 ? 64 : reps;
        for (int r = 0; r < reps && rc == 0; r++) {
            double t0 = now_s();
            rc = seanet_encode(ctx, net, in, L, out);
            double t1 = now_s();
            if (rc == 0)
                rc = seanet_decode(ctx, net, out, T, y);
            te[r] = t1 - t0;
            td[r] = now_s() - t1;
        }
        free(y);
        if (rc == 0) {
            qsort(te, (size_t)reps, sizeof(double), cmp_d);
            qsort(td, (size_t)reps, sizeof(double), cmp_d);
            double sec = (double)L / seanet_get_hparams(net)->sample_rate;
            printf("audio %.2f s, %d threads: encode %.3f s (RTF %.3f), decode %.3f s (RTF %.3f), median of %d\n",
                   sec, threads, te[reps / 2], te[reps / 2] / sec, td[reps / 2], td[reps / 2] / sec, reps);
        }
    } else {
        size_t n;
        in = read_f32(argv[3], &n);
        if (!in || n == 0) {
            fprintf(stderr, "error: cannot read %s (or it is empty)\n", argv[3]);
            rc = 1;
            goto done;
        }
        size_t n_out;
        if (strcmp(mode, "encode") == 0) {
            n_out = (size_t)(seanet_n_frames(net, (int64_t)n) * D);
            out = malloc(n_out * sizeof *out);
            rc = out ? seanet_encode(ctx, net, in, (int64_t)n, out) : COCHLEA_ENOMEM;
        } else {
            if (n % (size_t)D) {
                fprintf(stderr, "error: %zu floats is not a whole number of %lld-wide frames\n", n, (long long)D);
                rc = 1;
                goto done;
            }
            n_out = n / (size_t)D * (size_t)hop;
            out = malloc(n_out * sizeof *out);
            rc = out ? seanet_decode(ctx, net, in, (int64_t)(n / (size_t)D), out) : COCHLEA_ENOMEM;
        }
        if (rc) {
            fprintf(stderr, "error: %s\n", cochlea_last_error());
            goto done;
        }
        FILE *fp = fopen(argv[4], "wb");
        if (!fp || fwrite(out, sizeof *out, n_out, fp) != n_out) {
            fprintf(stderr, "error: cannot write %s\n", argv[4]);
            rc = 1;
        }
        if (fp && fclose(fp))
            rc = 1;
    }
done:
    free(in);
    free(out);
    ctx_free(ctx);
    seanet_free(net);
    gguf_close(f);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return driver(argc, argv);
    Suite *s = suite_create("codec_seanet");
    TCase *tc = tcase_create("seanet");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pad1d);
    tcase_add_test(tc, test_load_hparams);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_short_inputs);
    tcase_add_test(tc, test_variants);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_closed_form);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
