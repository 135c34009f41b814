/* lm_model_rand.h - small random llama models (F32) built in memory as GGUF for the
 * decoder-runtime tests (through lm_rig.h for test_lm_spec.c and test_lm_aded.c, directly for
 * test_lm_draft.c). Include after check.h / testutil.h; a test may define its own REQ first. */
#ifndef COCHLEA_TESTS_LM_MODEL_RAND_H
#define COCHLEA_TESTS_LM_MODEL_RAND_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "gguf.h"
#include "tensor.h"
#include "testutil.h"

#ifndef REQ
#define REQ(cond) ck_assert_msg(cond, "%s failed: %s", #cond, cochlea_last_error())
#endif

/* ---- random llama models (F32) ------------------------------------------------------------ */

typedef struct tcfg {
    int64_t V, d, L, H, Hkv, ff, ctx;
    int tied;
    float out_scale; /* untied output head weight scale x 1/sqrt(d) (sharpness of the logits);
                      * 0 = 3 */
    float noise;     /* > 0: every weight gets relative noise of this size (a near copy of the
                      * model with the same seed and shape) */
} tcfg;

typedef struct mbuild {
    gguf_writer *w;
    void **keep;
    int64_t n_keep, cap_keep;
    test_rng rng, nrng;
    float noise;
} mbuild;

static void add_t(mbuild *b, const char *name, int n_dims, int64_t ne0, int64_t ne1, float offset, float scale)
{
    const size_t n = (size_t)(ne0 * ne1);
    float *x = malloc(n * sizeof *x);
    REQ(x != NULL);
    for (size_t i = 0; i < n; i++)
        x[i] = offset + test_rng_uniform(&b->rng, -scale, scale) +
               (b->noise > 0 ? b->noise * test_rng_uniform(&b->nrng, -scale, scale) : 0.0f);
    REQ(mem_grow((void **)&b->keep, &b->cap_keep, b->n_keep + 1, sizeof *b->keep) == 0);
    b->keep[b->n_keep++] = x;
    int64_t ne[2] = {ne0, ne1};
    REQ(gguf_writer_add_tensor(b->w, name, COCHLEA_TYPE_F32, n_dims, ne, x) == 0);
}

static void make_model(const tcfg *c, uint64_t seed, void **buf, size_t *size)
{
    mbuild b = {0};
    b.rng.s = seed;
    b.nrng.s = seed ^ 0x5eedull;
    b.noise = c->noise;
    REQ(gguf_writer_new(&b.w) == 0);
    gguf_writer *w = b.w;
    const int64_t Dh = c->d / c->H, qd = c->H * Dh, kvd = c->Hkv * Dh;
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->ctx);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->d);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->L);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->ff);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->H);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->Hkv);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)Dh);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->V);
    const float ws = 1.0f / sqrtf((float)c->d);
    add_t(&b, "token_embd.weight", 2, c->d, c->V, 0, 3.4f * ws);
    char s[128];
    for (int64_t l = 0; l < c->L; l++) {
#define N(x) (snprintf(s, sizeof s, "blk.%lld." x, (long long)l), s)
        add_t(&b, N("attn_norm.weight"), 1, c->d, 1, 1.0f, 0.3f);
        add_t(&b, N("attn_q.weight"), 2, c->d, qd, 0, 2.0f * ws);
        add_t(&b, N("attn_k.weight"), 2, c->d, kvd, 0, 2.0f * ws);
        add_t(&b, N("attn_v.weight"), 2, c->d, kvd, 0, ws);
        add_t(&b, N("attn_output.weight"), 2, qd, c->d, 0, ws);
        add_t(&b, N("ffn_norm.weight"), 1, c->d, 1, 1.0f, 0.3f);
        add_t(&b, N("ffn_gate.weight"), 2, c->d, c->ff, 0, 1.7f * ws);
        add_t(&b, N("ffn_up.weight"), 2, c->d, c->ff, 0, 1.7f * ws);
        add_t(&b, N("ffn_down.weight"), 2, c->ff, c->d, 0, 1.7f / sqrtf((float)c->ff));
#undef N
    }
    add_t(&b, "output_norm.weight", 1, c->d, 1, 1.0f, 0.3f);
    if (!c->tied)
        add_t(&b, "output.weight", 2, c->d, c->V, 0, (c->out_scale > 0 ? c->out_scale : 3.0f) * ws);
    REQ(gguf_writer_write_memory(w, buf, size) == 0);
    gguf_writer_free(w);
    for (int64_t i = 0; i < b.n_keep; i++)
        free(b.keep[i]);
    free(b.keep);
}

#endif
