/* test_lm_spec.c - tree-speculative decoding engine and drafters (src/lm/spec; issue 8,
 * speculative-decoding.md §9.1, §9.2, §9.4) on small random llama models built in memory. */
#include <math.h>
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
#include "lm/spec/lookup.h"
#include "lm/spec/recycling.h"
#include "lm/spec/aded.h"
#include "tensor.h"
#include "testutil.h"

#include "lm_rig.h"

/* ---- adversarial drafters -------------------------------------------------------------------- */

enum { D_EMPTY, D_RANDOM, D_WRONG, D_ORACLE, D_DUP, D_LOOKUP, D_LOOKUP2, D_TR, D_TR_PRIME, D_ADED, D_ADED_SMALL, D_N };
static const char *DNAME[D_N] = {"empty", "random", "always-wrong", "oracle", "duplicates", "lookup",
                                 "lookup(1..2,k4)", "recycling", "recycling+prime", "aded", "aded(small)"};

typedef struct adv {
    int kind;
    test_rng g;
    int64_t V, n_prompt, n_ref, gamma;
    const int32_t *ref; /* the AR continuation (for oracle / always-wrong / duplicates) */
} adv;

static int adv_propose(void *self, const int32_t *seq, int64_t n_seq, int64_t max_nodes, int32_t *tok,
                       int32_t *par, int64_t *n)
{
    adv *a = self;
    (void)seq;
    const int64_t g = n_seq - a->n_prompt; /* tokens generated so far; the next is ref[g] */
    int64_t cnt = 0;
    switch (a->kind) {
    case D_EMPTY:
        break;
    case D_RANDOM:
        cnt = test_rng_int(&a->g, 0, (int)max_nodes);
        for (int64_t i = 0; i < cnt; i++) {
            tok[i] = (int32_t)test_rng_int(&a->g, 0, (int)a->V - 1);
            par[i] = (int32_t)test_rng_int(&a->g, -1, (int)i - 1);
        }
        break;
    case D_WRONG: /* a tree of wrong tokens: no child of the root is ever the AR token */
        cnt = max_nodes < 6 ? max_nodes : 6;
        for (int64_t i = 0; i < cnt; i++) {
            par[i] = i < 3 ? -1 : (int32_t)(i - 3);
            int32_t t = (int32_t)test_rng_int(&a->g, 0, (int)a->V - 1);
            if (i < 3 && g < a->n_ref && t == a->ref[g])
                t = (int32_t)((t + 1) % a->V);
            tok[i] = t;
        }
        break;
    case D_ORACLE: /* the next gamma AR tokens as a chain */
        for (int64_t i = 0; i < a->gamma && i < max_nodes && g + i < a->n_ref; i++, cnt++) {
            tok[i] = a->ref[g + i];
            par[i] = (int32_t)(i - 1);
        }
        break;
    case D_DUP: /* per level: a wrong token and two copies of the AR token (duplicate siblings
                 * at the root, then two duplicate chains), level order */
        for (int64_t d = 0; d < a->gamma && g + d < a->n_ref && cnt + 3 <= max_nodes; d++) {
            const int32_t pa = d == 0 ? -1 : (int32_t)((d - 1) * 3 + 1), pb = d == 0 ? -1 : (int32_t)((d - 1) * 3 + 2);
            tok[cnt] = (int32_t)((a->ref[g + d] + 1) % a->V), par[cnt++] = pa;
            tok[cnt] = a->ref[g + d], par[cnt++] = pa;
            tok[cnt] = a->ref[g + d], par[cnt++] = pb;
        }
        break;
    }
    *n = cnt;
    return COCHLEA_OK;
}

/* ---- greedy / seeded identity over many cases ------------------------------------------------ */

typedef struct runner {
    rig r;
    lm_spec_lookup lk, lk2;
    lm_spec_recycling *tr, *trp;
    lm_spec_aded *ad, *ads;
} runner;

static void make_drafter(runner *u, int kind, adv *a, lm_spec_drafter *d, int64_t *max_nodes)
{
    memset(d, 0, sizeof *d);
    *max_nodes = 12;
    switch (kind) {
    case D_LOOKUP:
        REQ(lm_spec_lookup_drafter(&u->lk, d) == 0);
        break;
    case D_LOOKUP2:
        REQ(lm_spec_lookup_drafter(&u->lk2, d) == 0);
        break;
    case D_TR:
        REQ(lm_spec_recycling_drafter(u->tr, d) == 0);
        *max_nodes = 80;
        break;
    case D_TR_PRIME:
        REQ(lm_spec_recycling_drafter(u->trp, d) == 0);
        *max_nodes = 16;
        break;
    case D_ADED:
        REQ(lm_spec_aded_drafter(u->ad, d) == 0);
        *max_nodes = 64;
        break;
    case D_ADED_SMALL:
        REQ(lm_spec_aded_drafter(u->ads, d) == 0);
        *max_nodes = 5;
        break;
    default:
        d->self = a;
        d->propose = adv_propose;
    }
}

static int64_t n_compared, agg_steps[D_N], agg_emitted[D_N];

/* One (prompt, length, eos, capacity) case for every drafter: output identical to the reference
 * AR run, KV state equal to a fresh prefill. sp NULL: greedy. */
static void run_case(runner *u, const lm_sampler_params *sp, const int32_t *prompt, int64_t n_prompt, int64_t max_new,
                     int32_t eos, int64_t cap, uint64_t seed)
{
    const int64_t V = u->r.V;
    lm_kv *kv;
    REQ(lm_blocks_kv_create(u->r.m->blocks, cap, &kv) == 0);
    int32_t ref[128], refx[128], got[128], seq[256];
    ck_assert(max_new <= 128 && n_prompt + max_new <= 256);
    const int64_t n_ref = ref_ar(&u->r, kv, sp, prompt, n_prompt, max_new, eos, ref);
    /* the oracle's continuation ignores eos / capacity: a longer AR run */
    lm_kv *big;
    REQ(lm_blocks_kv_create(u->r.m->blocks, 0, &big) == 0);
    const int64_t n_refx = ref_ar(&u->r, big, sp, prompt, n_prompt, max_new, -1, refx);
    for (int64_t i = 0; i < n_ref; i++)
        ck_assert_int_eq(ref[i], refx[i]);
    float *l1 = test_alloc((size_t)V), *l2 = test_alloc((size_t)(256 * V));
    for (int kind = 0; kind < D_N; kind++) {
        adv a = {kind, {seed * 31 + (uint64_t)kind}, V, n_prompt, n_refx, 4, refx};
        lm_spec_drafter d;
        int64_t mn;
        make_drafter(u, kind, &a, &d, &mn);
        lm_sampler *s = NULL;
        if (sp) {
            REQ(lm_sampler_create(sp, V, &s) == 0);
            for (int64_t i = 0; i < n_prompt; i++)
                REQ(lm_sampler_accept(s, prompt[i]) == 0);
        }
        lm_spec_params p = {max_new, eos, mn, NULL, NULL};
        lm_spec_stats st;
        int64_t n_got = -1;
        int rc = lm_spec_generate(u->r.ctx, u->r.m, kv, u->r.w, s, &d, &p, prompt, n_prompt, got, &n_got, &st);
        ck_assert_msg(rc == 0, "%s: %s", DNAME[kind], cochlea_last_error());
        ck_assert_msg(n_got == n_ref, "%s: %lld tokens, AR %lld (prompt %lld, max_new %lld, eos %d, cap %lld)",
                      DNAME[kind], (long long)n_got, (long long)n_ref, (long long)n_prompt, (long long)max_new, eos,
                      (long long)cap);
        for (int64_t i = 0; i < n_ref; i++)
            ck_assert_msg(got[i] == ref[i], "%s: token %lld is %d, AR %d", DNAME[kind], (long long)i, got[i], ref[i]);
        ck_assert_int_eq(st.emitted, n_ref);
        agg_steps[kind] += st.steps, agg_emitted[kind] += st.emitted;
        /* a step emits its accepted drafts plus a bonus, or only drafts when cut */
        ck_assert(st.accepted <= st.drafted && st.emitted <= st.accepted + st.steps && st.emitted >= st.steps);
        if (kind == D_EMPTY || kind == D_WRONG)
            ck_assert_int_eq(st.accepted, 0);
        if (s) { /* one draw per emitted token: the RNG state equals AR's */
            lm_sampler *s2;
            REQ(lm_sampler_create(sp, V, &s2) == 0);
            for (int64_t i = 0; i < n_ref; i++)
                (void)lm_sampler_draw(s2);
            ck_assert(lm_sampler_draw(s) == lm_sampler_draw(s2));
            int64_t nh;
            lm_sampler_history(s, &nh);
            ck_assert_int_eq(nh, n_prompt + n_ref);
            lm_sampler_free(s2);
            lm_sampler_free(s);
        }
        /* KV state: the cache holds the sequence minus its last token; the next logits equal a
         * fresh prefill of the whole sequence (§9.4) */
        const int64_t n_seq = n_prompt + n_got;
        ck_assert_int_eq(kv->n, n_seq - 1);
        if (n_seq < cap && (kind == D_TR || kind == D_DUP || kind == D_RANDOM)) {
            memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
            memcpy(seq + n_prompt, got, (size_t)n_got * sizeof *seq);
            lm_batch b = {1, seq + n_seq - 1, NULL, NULL, 0};
            REQ(lm_model_forward(u->r.ctx, u->r.m, kv, u->r.w, &b, l1) == 0);
            lm_kv_clear(big);
            lm_batch bf = {n_seq, seq, NULL, NULL, 0};
            REQ(lm_model_forward(u->r.ctx, u->r.m, big, u->r.w, &bf, l2) == 0);
            test_assert_close(l1, l2 + (size_t)(n_seq - 1) * (size_t)V, (size_t)V, 1e-4, 1e-4);
        }
        n_compared++;
    }
    free(l1), free(l2);
    lm_kv_free(big);
    lm_kv_free(kv);
}

static void runner_open(runner *u, int model)
{
    rig_open(&u->r, &CFG[model], 1000 + (uint64_t)model);
    u->lk = lm_spec_lookup_default();
    u->lk2 = (lm_spec_lookup){1, 2, 4};
    REQ(lm_spec_recycling_create(u->r.V, 8, 0, &u->tr) == 0);
    REQ(lm_spec_recycling_create(u->r.V, 8, 1, &u->trp) == 0);
    REQ(lm_spec_aded_create(u->r.V, NULL, &u->ad) == 0);
    lm_spec_aded_params ap = lm_spec_aded_default_params();
    ap.row_cap = 3, ap.iterations = 20, ap.max_rows = 40, ap.paths = 4, ap.depth = 2;
    REQ(lm_spec_aded_create(u->r.V, &ap, &u->ads) == 0);
}

static void runner_close(runner *u)
{
    lm_spec_recycling_free(u->tr);
    lm_spec_recycling_free(u->trp);
    lm_spec_aded_free(u->ad);
    lm_spec_aded_free(u->ads);
    rig_close(&u->r);
}

/* A prompt: random, or a short random pattern repeated (lookup finds matches). */
static int64_t make_prompt(test_rng *g, int64_t V, int32_t *p)
{
    int64_t n = test_rng_int(g, 1, 14);
    int per = test_rng_int(g, 0, 2) == 0 ? 0 : test_rng_int(g, 1, 4);
    for (int64_t i = 0; i < n; i++)
        p[i] = per && i >= per ? p[i - per] : (int32_t)test_rng_int(g, 0, (int)V - 1);
    return n;
}

/* Greedy: every drafter (incl. adversarial ones) gives AR's tokens; cases with eos inside the
 * output, max_new cuts and context-limit cuts (§9.1). */
START_TEST(t_greedy_identity)
{
    test_rng g = {77};
    int64_t before = n_compared, n_eos = 0, n_ctxcut = 0;
    for (int model = 0; model < 2; model++) {
        runner u;
        runner_open(&u, model);
        for (int c = 0; c < 16; c++) {
            int32_t prompt[16], tmp[64];
            const int64_t np = make_prompt(&g, u.r.V, prompt);
            const int64_t max_new = test_rng_int(&g, 1, 28);
            int32_t eos = -1;
            int64_t cap = 96;
            const int mode = c % 4;
            if (mode == 1) { /* eos = a token AR emits somewhere after the first position */
                lm_kv *kv;
                REQ(lm_blocks_kv_create(u.r.m->blocks, 0, &kv) == 0);
                int64_t n = ref_ar(&u.r, kv, NULL, prompt, np, max_new, -1, tmp);
                eos = tmp[test_rng_int(&g, (int)(n / 2), (int)n - 1)];
                lm_kv_free(kv);
                n_eos++;
            } else if (mode == 2) { /* the context limit cuts the output */
                cap = np + test_rng_int(&g, 0, (int)max_new - 1 > 0 ? (int)max_new - 1 : 0);
                n_ctxcut++;
            }
            run_case(&u, NULL, prompt, np, max_new, eos, cap, (uint64_t)c);
        }
        runner_close(&u);
    }
    fprintf(stderr, "greedy identity: %lld (case, drafter) runs, %lld eos cases, %lld context-limit cases\n",
            (long long)(n_compared - before), (long long)n_eos, (long long)n_ctxcut);
    ck_assert_int_ge(n_compared - before, 200);
    for (int k = 0; k < D_N; k++)
        fprintf(stderr, "  %-16s MAT %.2f (%lld tokens / %lld steps)\n", DNAME[k],
                agg_steps[k] ? (double)agg_emitted[k] / (double)agg_steps[k] : 0.0, (long long)agg_emitted[k],
                (long long)agg_steps[k]);
}
END_TEST

/* Seeded sampling: token-identical to seeded AR sampling (§9.2). */
START_TEST(t_seeded_identity)
{
    lm_sampler_params sp[3];
    for (int i = 0; i < 3; i++)
        sp[i] = lm_sampler_default_params();
    sp[0].temperature = 0.9f, sp[0].top_k = 10, sp[0].top_p = 0.9f, sp[0].min_p = 0.0f, sp[0].seed = 5;
    sp[1].temperature = 1.3f, sp[1].top_k = 0, sp[1].top_p = 1.0f, sp[1].min_p = 0.0f, sp[1].repeat_penalty = 1.4f,
    sp[1].repeat_last_n = 16, sp[1].seed = 11;
    sp[2].temperature = 0.7f, sp[2].min_p = 0.1f, sp[2].repeat_penalty = 1.2f, sp[2].repeat_last_n = -1,
    sp[2].seed = 99;
    test_rng g = {4242};
    int64_t before = n_compared;
    for (int model = 0; model < 2; model++) {
        runner u;
        runner_open(&u, model);
        for (int c = 0; c < 6; c++) {
            int32_t prompt[16];
            const int64_t np = make_prompt(&g, u.r.V, prompt);
            const int64_t max_new = test_rng_int(&g, 4, 24);
            int64_t cap = c == 5 ? np + max_new / 2 + 1 : 96;
            run_case(&u, &sp[c % 3], prompt, np, max_new, c == 4 ? 3 : -1, cap, (uint64_t)(100 + c));
        }
        runner_close(&u);
    }
    fprintf(stderr, "seeded identity: %lld (case, drafter) runs\n", (long long)(n_compared - before));
}
END_TEST

/* MAT = gamma + 1 for the oracle, 1 for always-wrong and empty drafts (§9.1.3). */
START_TEST(t_mat)
{
    runner u;
    runner_open(&u, 0);
    const int64_t V = u.r.V;
    lm_kv *kv;
    REQ(lm_blocks_kv_create(u.r.m->blocks, 0, &kv) == 0);
    const int32_t prompt[5] = {3, 14, 15, 9, 2};
    int32_t ref[64], got[64];
    for (int64_t gamma = 1; gamma <= 5; gamma++) {
        const int64_t max_new = 4 * (gamma + 1);
        const int64_t n_ref = ref_ar(&u.r, kv, NULL, prompt, 5, max_new, -1, ref);
        ck_assert_int_eq(n_ref, max_new);
        for (int kind = D_EMPTY; kind <= D_DUP; kind++) {
            adv a = {kind, {(uint64_t)gamma}, V, 5, n_ref, gamma, ref};
            lm_spec_drafter d = {&a, adv_propose, NULL, NULL};
            lm_spec_params p = {max_new, -1, 3 * gamma, NULL, NULL};
            lm_spec_stats st;
            int64_t n_got;
            REQ(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, &d, &p, prompt, 5, got, &n_got, &st) == 0);
            ck_assert_int_eq(n_got, max_new);
            ck_assert_mem_eq(got, ref, (size_t)max_new * sizeof *got);
            if (kind == D_ORACLE || kind == D_DUP) {
                ck_assert_int_eq(st.steps, 4);
                ck_assert_int_eq(st.accepted, 4 * gamma);
                ck_assert(st.mat == (double)(gamma + 1));
            } else if (kind == D_WRONG || kind == D_EMPTY) {
                ck_assert_int_eq(st.steps, max_new);
                ck_assert_int_eq(st.accepted, 0);
                ck_assert(st.mat == 1.0);
                ck_assert_int_eq(st.drafted, kind == D_EMPTY ? 0 : max_new * (3 * gamma < 6 ? 3 * gamma : 6));
            }
        }
    }
    /* plain AR through the engine: one step per token, nothing drafted */
    lm_spec_params p = {10, -1, 8, NULL, NULL};
    lm_spec_stats st;
    int64_t n_got;
    REQ(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, NULL, &p, prompt, 5, got, &n_got, &st) == 0);
    ck_assert_int_eq(n_got, 10);
    ck_assert_int_eq(st.steps, 10);
    ck_assert_int_eq(st.drafted, 0);
    ck_assert_mem_eq(got, ref, 10 * sizeof *got);
    lm_kv_free(kv);
    runner_close(&u);
}
END_TEST

/* ADED's tri-gram matrix: corpus weights, the adaptive update and its cap, full rows, the row
 * limit; the search drafts a learned continuation; a corpus of the AR output makes it accept. */
START_TEST(t_aded_unit)
{
    lm_spec_aded_params ap = lm_spec_aded_default_params();
    ap.row_cap = 2, ap.max_rows = 4, ap.window = 4;
    lm_spec_aded *a;
    REQ(lm_spec_aded_create(10, &ap, &a) == 0);
    /* (1,2) -> 3 twice, -> 4 once, -> 5 once: the two heaviest kept, 2/4 and 1/4 (4 before 5) */
    const int32_t c[] = {1, 2, 3, 1, 2, 3, 1, 2, 4, 1, 2, 5};
    REQ(lm_spec_aded_add_corpus(a, c, 12) == 0);
    ck_assert(fabsf(lm_spec_aded_weight(a, 1, 2, 3) - 0.5f) < 1e-6f);
    ck_assert(fabsf(lm_spec_aded_weight(a, 1, 2, 4) - 0.25f) < 1e-6f);
    ck_assert(lm_spec_aded_weight(a, 1, 2, 5) == 0.0f);
    ck_assert(fabsf(lm_spec_aded_weight(a, 2, 3, 1) - 1.0f) < 1e-6f); /* (2,3) -> 1 always */
    ck_assert(fabsf(lm_spec_aded_weight(a, 3, 1, 2) - 1.0f) < 1e-6f);
    ck_assert(fabsf(lm_spec_aded_weight(a, 2, 4, 1) - 1.0f) < 1e-6f);
    ck_assert(lm_spec_aded_weight(a, 4, 1, 2) == 0.0f); /* a fifth pair: over max_rows */
    ck_assert_int_eq(lm_spec_aded_rows(a), 4);
    const int32_t u1[] = {5, 6, 7};
    REQ(lm_spec_aded_update(a, u1, 3) == 0);
    ck_assert(lm_spec_aded_weight(a, 5, 6, 7) == 0.0f);
    ck_assert_int_eq(lm_spec_aded_rows(a), 4);
    /* the update adds 0.04 per step on the last `window` tokens only, capped at 3 */
    const int32_t u2[] = {7, 7, 7, 1, 2, 3};
    REQ(lm_spec_aded_update(a, u2, 6) == 0); /* window 4: (7,1)->2 is a new pair (refused), (1,2)->3 */
    ck_assert(fabsf(lm_spec_aded_weight(a, 1, 2, 3) - 0.54f) < 1e-6f);
    for (int i = 0; i < 100; i++)
        REQ(lm_spec_aded_update(a, u2, 6) == 0);
    ck_assert(lm_spec_aded_weight(a, 1, 2, 3) == 3.0f);
    /* a full row replaces its lightest entry when the new weight is heavier: 4 (0.25) stays
     * against 0.04, so 9 does not enter */
    const int32_t u3[] = {1, 2, 9};
    REQ(lm_spec_aded_update(a, u3, 3) == 0);
    ck_assert(lm_spec_aded_weight(a, 1, 2, 9) == 0.0f);
    ck_assert(fabsf(lm_spec_aded_weight(a, 1, 2, 4) - 0.25f) < 1e-6f);
    /* bad arguments */
    const int32_t bad[] = {1, 2, 10};
    ck_assert_int_eq(lm_spec_aded_add_corpus(a, bad, 3), COCHLEA_ERANGE);
    ck_assert_int_eq(lm_spec_aded_update(a, bad, 3), COCHLEA_ERANGE);
    ap.row_cap = 0;
    lm_spec_aded *b = NULL;
    ck_assert_int_eq(lm_spec_aded_create(10, &ap, &b), COCHLEA_EINVAL);
    ck_assert_ptr_null(b);
    /* the draft: after (2,3) the matrix has only 1, then (3,1) -> 2, (1,2) -> 3 (heaviest) */
    lm_spec_drafter d;
    REQ(lm_spec_aded_drafter(a, &d) == 0);
    int32_t tok[16], par[16];
    int64_t n;
    const int32_t seq[] = {5, 2, 3};
    REQ(d.propose(d.self, seq, 3, 16, tok, par, &n) == 0);
    ck_assert_int_ge(n, 3);
    ck_assert_int_eq(tok[0], 1);
    ck_assert_int_eq(par[0], -1);
    ck_assert_int_eq(tok[1], 2);
    ck_assert_int_eq(par[1], 0);
    ck_assert_int_eq(tok[2], 3);
    ck_assert_int_eq(par[2], 1);
    for (int64_t i = 0; i < n; i++)
        ck_assert(par[i] < i);
    REQ(d.propose(d.self, seq, 3, 2, tok, par, &n) == 0); /* max_nodes respected */
    ck_assert_int_eq(n, 2);
    const int32_t unseen[] = {8, 9};
    REQ(d.propose(d.self, unseen, 2, 16, tok, par, &n) == 0);
    ck_assert_int_eq(n, 0);
    lm_spec_aded_free(a);

    /* with the AR continuation as its corpus ADED accepts several tokens per step */
    runner u;
    runner_open(&u, 0);
    lm_kv *kv;
    REQ(lm_blocks_kv_create(u.r.m->blocks, 0, &kv) == 0);
    const int32_t prompt[5] = {3, 14, 15, 9, 2};
    int32_t ref[64], got[64], all[69];
    const int64_t n_ref = ref_ar(&u.r, kv, NULL, prompt, 5, 40, -1, ref);
    memcpy(all, prompt, sizeof prompt);
    memcpy(all + 5, ref, (size_t)n_ref * sizeof *ref);
    REQ(lm_spec_aded_create(u.r.V, NULL, &a) == 0);
    REQ(lm_spec_aded_add_corpus(a, all, 5 + n_ref) == 0);
    REQ(lm_spec_aded_drafter(a, &d) == 0);
    lm_spec_params p = {40, -1, 64, NULL, NULL};
    lm_spec_stats st;
    int64_t n_got;
    REQ(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, &d, &p, prompt, 5, got, &n_got, &st) == 0);
    ck_assert_int_eq(n_got, n_ref);
    ck_assert_mem_eq(got, ref, (size_t)n_ref * sizeof *got);
    fprintf(stderr, "aded with the continuation as corpus: MAT %.2f (%lld steps)\n", st.mat, (long long)st.steps);
    ck_assert(st.mat > 2.0);
    lm_spec_aded_free(a);
    lm_kv_free(kv);
    runner_close(&u);
}
END_TEST

/* EOS inside an accepted span: the oracle drafts past the EOS; output stops right after it. */
START_TEST(t_eos_in_span)
{
    runner u;
    runner_open(&u, 1);
    const int64_t V = u.r.V;
    lm_kv *kv;
    REQ(lm_blocks_kv_create(u.r.m->blocks, 0, &kv) == 0);
    const int32_t prompt[3] = {7, 1, 30};
    int32_t ref[32], got[32];
    const int64_t n_ref = ref_ar(&u.r, kv, NULL, prompt, 3, 20, -1, ref);
    /* eos = ref[2]; AR stops at its first occurrence j <= 2 */
    int64_t j = 0;
    while (ref[j] != ref[2])
        j++;
    adv a = {D_ORACLE, {1}, V, 3, n_ref, 8, ref};
    lm_spec_drafter d = {&a, adv_propose, NULL, NULL};
    lm_spec_params p = {20, ref[2], 8, NULL, NULL};
    lm_spec_stats st;
    int64_t n_got;
    REQ(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, &d, &p, prompt, 3, got, &n_got, &st) == 0);
    ck_assert_int_eq(n_got, j + 1);
    ck_assert_int_eq(got[n_got - 1], ref[2]);
    ck_assert_int_eq(st.steps, 1); /* all inside the first step's accepted span */
    ck_assert_int_eq(kv->n, 3 + n_got - 1);
    lm_kv_free(kv);
    runner_close(&u);
}
END_TEST

START_TEST(t_lookup_unit)
{
    lm_spec_lookup l = lm_spec_lookup_default();
    int32_t tok[16], par[16];
    int64_t n;
    const int32_t s1[7] = {1, 2, 3, 9, 1, 2, 3};
    REQ(lm_spec_lookup_propose(&l, s1, 7, 16, tok, par, &n) == 0);
    ck_assert_int_eq(n, 4); /* 3-gram at 0, continuation 9 1 2 3 */
    const int32_t w1[4] = {9, 1, 2, 3};
    ck_assert_mem_eq(tok, w1, sizeof w1);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(par[i], i - 1);
    /* longest n first: "4 5" occurs at 3 (2-gram) although "5" alone occurs earlier at 0 */
    const int32_t s2[8] = {5, 8, 8, 4, 5, 7, 4, 5};
    REQ(lm_spec_lookup_propose(&l, s2, 8, 16, tok, par, &n) == 0);
    ck_assert_int_eq(n, 3);
    const int32_t w2[3] = {7, 4, 5};
    ck_assert_mem_eq(tok, w2, sizeof w2);
    /* earliest match for a 1-gram; k and max_nodes cap the chain */
    const int32_t s3[6] = {5, 7, 5, 8, 6, 5};
    lm_spec_lookup l2 = {1, 1, 3};
    REQ(lm_spec_lookup_propose(&l2, s3, 6, 16, tok, par, &n) == 0);
    ck_assert_int_eq(n, 3);
    const int32_t w3[3] = {7, 5, 8};
    ck_assert_mem_eq(tok, w3, sizeof w3);
    REQ(lm_spec_lookup_propose(&l2, s3, 6, 2, tok, par, &n) == 0);
    ck_assert_int_eq(n, 2);
    /* no match; the suffix alone is not a match */
    const int32_t s4[4] = {1, 2, 3, 4};
    REQ(lm_spec_lookup_propose(&l, s4, 4, 16, tok, par, &n) == 0);
    ck_assert_int_eq(n, 0);
    REQ(lm_spec_lookup_propose(&l, s4, 1, 16, tok, par, &n) == 0);
    ck_assert_int_eq(n, 0);
    /* n_min > 1 ignores 1-gram matches */
    lm_spec_lookup l3 = {2, 3, 10};
    REQ(lm_spec_lookup_propose(&l3, s3, 6, 16, tok, par, &n) == 0);
    ck_assert_int_eq(n, 0);
    lm_spec_lookup bad = {0, 3, 10};
    lm_spec_drafter d;
    ck_assert_int_eq(lm_spec_lookup_drafter(&bad, &d), COCHLEA_EINVAL);
    bad = (lm_spec_lookup){2, 1, 10};
    ck_assert_int_eq(lm_spec_lookup_drafter(&bad, &d), COCHLEA_EINVAL);
}
END_TEST

/* Template "2.2.2": 80 nodes, 8/21/25/15/8/3 per level, and spot checks of rank paths. */
START_TEST(t_tr_template)
{
    int32_t par[LM_SPEC_TR_TEMPLATE_NODES], rk[LM_SPEC_TR_TEMPLATE_NODES], depth[LM_SPEC_TR_TEMPLATE_NODES];
    ck_assert_int_eq(lm_spec_tr_template(par, rk), 80);
    int per[8] = {0};
    for (int i = 0; i < 80; i++) {
        ck_assert(par[i] >= -1 && par[i] < i);
        depth[i] = par[i] < 0 ? 1 : depth[par[i]] + 1;
        ck_assert(i == 0 || depth[i] >= depth[i - 1]); /* level order */
        per[depth[i]]++;
    }
    const int want[7] = {0, 8, 21, 25, 15, 8, 3};
    for (int d = 1; d <= 6; d++)
        ck_assert_int_eq(per[d], want[d]);
    /* node 8 = [0,0], 16 = [0,8-1]=[0,7], 17 = [1,0], 29 = [0,0,0] (first of level 3) */
    ck_assert(par[8] == 0 && rk[8] == 0);
    ck_assert(par[15] == 0 && rk[15] == 7);
    ck_assert(par[16] == 1 && rk[16] == 0 && par[19] == 1 && rk[19] == 3);
    ck_assert(par[29] == 8 && rk[29] == 0 && par[36] == 8 && rk[36] == 7);
    /* last node [0,0,0,1,0,0]: rank 0 below [0,0,0,1,0] */
    const int i = 79;
    ck_assert(rk[i] == 0 && rk[par[i]] == 0 && rk[par[par[i]]] == 1 && depth[i] == 6);
    /* k = 2 keeps only nodes whose ranks along the path are < 2 */
    lm_spec_recycling *r;
    REQ(lm_spec_recycling_create(10, 2, 0, &r) == 0);
    int cnt = 0;
    for (int j = 0; j < 80; j++) {
        int ok = 1;
        for (int t = j; t >= 0; t = par[t])
            ok &= rk[t] < 2;
        cnt += ok;
    }
    ck_assert_int_eq(r->n_nodes, cnt);
    ck_assert(cnt > 10 && cnt < 80);
    lm_spec_recycling_free(r);
}
END_TEST

/* Top-k (ties: lower id), matrix update and BFS retrieval. */
START_TEST(t_tr_update_retrieve)
{
    const float lg[2][6] = {{0.5f, 2.0f, -1.0f, 2.0f, 3.0f, 0.0f}, {-INFINITY, 1, 2, 3, 4, 5}};
    int32_t ids[3];
    float vals[3];
    lm_spec_topk(lg[0], 6, 3, ids, vals);
    ck_assert(ids[0] == 4 && ids[1] == 1 && ids[2] == 3);
    lm_spec_recycling *r;
    REQ(lm_spec_recycling_create(6, 3, 0, &r) == 0);
    const int32_t tok[2] = {2, 4};
    REQ(lm_spec_recycling_update(r, tok, 2, &lg[0][0], 6) == 0);
    const int32_t w2[3] = {4, 1, 3}, w4[3] = {5, 4, 3}, z[3] = {0, 0, 0};
    ck_assert_mem_eq(r->m + 2 * 3, w2, sizeof w2);
    ck_assert_mem_eq(r->m + 4 * 3, w4, sizeof w4);
    ck_assert_mem_eq(r->m + 0 * 3, z, sizeof z);
    ck_assert_int_eq(lm_spec_recycling_update(r, tok, 2, &lg[0][0], 5), COCHLEA_EINVAL);
    lm_spec_drafter d;
    REQ(lm_spec_recycling_drafter(r, &d) == 0);
    int32_t t[80], p[80];
    int64_t n;
    const int32_t seq[2] = {0, 2};
    REQ(d.propose(d.self, seq, 2, 80, t, p, &n) == 0);
    ck_assert_int_eq(n, r->n_nodes);
    for (int64_t i = 0; i < n; i++) {
        int32_t pt = p[i] < 0 ? 2 : t[p[i]];
        ck_assert_int_eq(t[i], r->m[pt * 3 + r->rank[i]]);
    }
    /* best first (k = 3 keeps ranks 0-2): "0" (0.5), "0.0" (0.25), "1" (0.15), "0.0.0" (0.125),
     * "2" (0.08), ...: root 2 -> 4; 4 -> 5; root's rank 1 -> 1; 5's rank 0 (row 5 is zero) -> 0;
     * root's rank 2 -> 3 */
    ck_assert(t[0] == 4 && t[1] == 5 && t[2] == 1 && t[3] == 0 && t[4] == 3);
    ck_assert(p[0] == -1 && p[1] == 0 && p[2] == -1 && p[3] == 1 && p[4] == -1);
    REQ(d.propose(d.self, seq, 2, 5, t, p, &n) == 0);
    ck_assert_int_eq(n, 5);
    /* every prefix is a tree (parents first) whose path products never increase */
    for (int64_t i = 1; i < r->n_nodes; i++) {
        ck_assert(r->parent[i] < i);
        double a[8] = {0.5, 0.15, 0.08, 0.05, 0.035, 0.025, 0.02, 0.015}, pi = 1, pj = 1;
        for (int32_t j = (int32_t)i; j >= 0; j = r->parent[j])
            pi *= a[r->rank[j]];
        for (int32_t j = (int32_t)i - 1; j >= 0; j = r->parent[j])
            pj *= a[r->rank[j]];
        ck_assert_msg(pi <= pj, "node %lld (product %g) after a node with %g", (long long)i, pi, pj);
    }
    lm_spec_recycling_reset(r);
    ck_assert_mem_eq(r->m + 2 * 3, z, sizeof z);
    lm_spec_recycling_free(r);
    ck_assert_int_eq(lm_spec_recycling_create(6, 7, 0, &r), COCHLEA_EINVAL);
    ck_assert(r == NULL);
}
END_TEST

static int bad_propose(void *self, const int32_t *seq, int64_t n_seq, int64_t max_nodes, int32_t *tok, int32_t *par,
                       int64_t *n)
{
    (void)seq, (void)n_seq, (void)max_nodes;
    const int kind = *(const int *)self;
    tok[0] = 1, par[0] = -1, tok[1] = 2, par[1] = kind == 0 ? 1 : 0;
    if (kind == 1)
        tok[1] = 1000;
    *n = kind == 2 ? max_nodes + 1 : 2;
    return COCHLEA_OK;
}

START_TEST(t_errors)
{
    runner u;
    runner_open(&u, 0);
    lm_kv *kv;
    REQ(lm_blocks_kv_create(u.r.m->blocks, 8, &kv) == 0);
    int32_t prompt[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, out[8];
    int64_t n;
    lm_spec_params p = {4, -1, 4, NULL, NULL};
    ck_assert_int_eq(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, NULL, &p, prompt, 9, out, &n, NULL),
                     COCHLEA_ERANGE);
    ck_assert_int_eq(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, NULL, &p, prompt, 0, out, &n, NULL),
                     COCHLEA_EINVAL);
    p.eos = 40;
    ck_assert_int_eq(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, NULL, &p, prompt, 2, out, &n, NULL),
                     COCHLEA_EINVAL);
    p.eos = -1;
    for (int kind = 0; kind < 3; kind++) {
        lm_spec_drafter d = {&kind, bad_propose, NULL, NULL};
        ck_assert_int_eq(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, &d, &p, prompt, 2, out, &n, NULL),
                         COCHLEA_EINVAL);
        ck_assert_int_eq(n, 0);
    }
    /* prompt exactly the capacity: nothing can be generated */
    lm_spec_stats st;
    REQ(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, NULL, &p, prompt, 8, out, &n, &st) == 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(st.steps, 0);
    lm_kv_free(kv);
    runner_close(&u);
}
END_TEST

static Suite *spec_suite(void)
{
    Suite *s = suite_create("lm_spec");
    TCase *tc = tcase_create("spec");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_lookup_unit);
    tcase_add_test(tc, t_tr_template);
    tcase_add_test(tc, t_tr_update_retrieve);
    tcase_add_test(tc, t_aded_unit);
    tcase_add_test(tc, t_errors);
    tcase_add_test(tc, t_mat);
    tcase_add_test(tc, t_eos_in_span);
    tcase_add_test(tc, t_greedy_identity);
    tcase_add_test(tc, t_seeded_identity);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(spec_suite());
}
