/* lm_rig.h - shared by the decoder-runtime tests (test_lm_spec.c, test_lm_aded.c): small random
 * llama models built in memory as GGUF (lm_model_rand.h), a rig holding one with its context and
 * scratch, and the plain AR reference decoder (greedy or seeded sampling) the speculative
 * decoders are compared with. Include after check.h / testutil.h. */
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

#include "lm_model_rand.h"

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
    {40, 32, 2, 4, 2, 64, 96, 0, 0, 0}, /* separate output, grouped-query */
    {48, 32, 2, 4, 1, 48, 96, 1, 0, 0}, /* tied output, multi-query */
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
