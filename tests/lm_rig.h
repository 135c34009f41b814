/* lm_rig.h - shared by the decoder-runtime tests (test_lm_spec.c, test_lm_aded.c): small random
 * llama models built in memory as GGUF, a rig holding one with its context and scratch, and the
 * plain AR reference decoder (greedy or seeded sampling) the speculative decoders are compared
 * with. Include after check.h / testutil.h. */
#ifndef COCHLEA_TESTS_LM_RIG_H
#define COCHLEA_TESTS_LM_RIG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "error.h"
#include "gguf.h"
#include "lm/kv.h"
#include "lm/model.h"
#include "lm/sampler.h"
#include "lm/spec/engine.h"
#include "tensor.h"
#include "testutil.h"

#define REQ(cond) ck_assert_msg(cond, "%s failed: %s", #cond, cochlea_last_error())

/* ---- random llama models (F32) ------------------------------------------------------------ */

typedef struct tcfg {
    int64_t V, d, L, H, Hkv, ff, ctx;
    int tied;
} tcfg;

typedef struct mbuild {
    gguf_writer *w;
    void **keep;
    int64_t n_keep, cap_keep;
    test_rng rng;
} mbuild;

static void add_t(mbuild *b, const char *name, int n_dims, int64_t ne0, int64_t ne1, float offset, float scale)
{
    const size_t n = (size_t)(ne0 * ne1);
    float *x = malloc(n * sizeof *x);
    REQ(x != NULL);
    for (size_t i = 0; i < n; i++)
        x[i] = offset + test_rng_uniform(&b->rng, -scale, scale);
    REQ(mem_grow((void **)&b->keep, &b->cap_keep, b->n_keep + 1, sizeof *b->keep) == 0);
    b->keep[b->n_keep++] = x;
    int64_t ne[2] = {ne0, ne1};
    REQ(gguf_writer_add_tensor(b->w, name, COCHLEA_TYPE_F32, n_dims, ne, x) == 0);
}

static void make_model(const tcfg *c, uint64_t seed, void **buf, size_t *size)
{
    mbuild b = {0};
    b.rng.s = seed;
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
        add_t(&b, "output.weight", 2, c->d, c->V, 0, 3.0f * ws);
    REQ(gguf_writer_write_memory(w, buf, size) == 0);
    gguf_writer_free(w);
    for (int64_t i = 0; i < b.n_keep; i++)
        free(b.keep[i]);
    free(b.keep);
}

typedef struct rig {
    void *buf;
    gguf_file *f;
    lm_model *m;
    cochlea_ctx *ctx;
    lm_work *w;
    int64_t V;
} rig;

static void rig_open(rig *r, const tcfg *c, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    size_t size;
    make_model(c, seed, &r->buf, &size);
    REQ(gguf_open_memory(r->buf, size, &r->f) == 0);
    REQ(lm_model_from_gguf(r->f, &r->m) == 0);
    REQ(ctx_create(1, COCHLEA_PRECISION_F32, &r->ctx) == 0);
    REQ(lm_work_create(&r->w) == 0);
    r->V = r->m->n_vocab;
}

static void rig_close(rig *r)
{
    lm_work_free(r->w);
    ctx_free(r->ctx);
    lm_model_free(r->m);
    gguf_close(r->f);
    free(r->buf);
}

static const tcfg CFG[2] = {
    {40, 32, 2, 4, 2, 64, 96, 0}, /* separate output, grouped-query */
    {48, 32, 2, 4, 1, 48, 96, 1}, /* tied output, multi-query */
};

/* ---- the reference: plain AR decoding written independently of the engine ------------------ */

/* Prefill the whole prompt, then one token per forward; stops after eos, at max_new and when
 * the sequence reaches the cache capacity. sp NULL: greedy argmax. Returns the count. */
static int64_t ref_ar(rig *r, lm_kv *kv, const lm_sampler_params *sp, const int32_t *prompt, int64_t n_prompt,
                      int64_t max_new, int32_t eos, int32_t *out)
{
    const int64_t V = r->V, C = kv->capacity;
    float *l = test_alloc((size_t)V);
    lm_sampler *s = NULL;
    if (sp) {
        REQ(lm_sampler_create(sp, V, &s) == 0);
        for (int64_t i = 0; i < n_prompt; i++)
            REQ(lm_sampler_accept(s, prompt[i]) == 0);
    }
    lm_kv_clear(kv);
    int32_t last = (int32_t)(n_prompt - 1);
    lm_batch b = {n_prompt, prompt, NULL, &last, 1};
    REQ(lm_model_forward(r->ctx, r->m, kv, r->w, &b, l) == 0);
    int64_t gen = 0, L = n_prompt;
    while (gen < max_new && L < C) {
        int32_t y;
        if (s)
            REQ(lm_sampler_sample(s, l, NULL, &y) == 0);
        else {
            y = 0;
            for (int64_t t = 1; t < V; t++)
                if (l[t] > l[y])
                    y = (int32_t)t;
        }
        out[gen++] = y;
        L++;
        if (y == eos || gen == max_new || L == C)
            break;
        lm_batch bb = {1, &y, NULL, NULL, 0};
        REQ(lm_model_forward(r->ctx, r->m, kv, r->w, &bb, l) == 0);
    }
    lm_sampler_free(s);
    free(l);
    return gen;
}

#endif
